"""Discovery: RFC 8414 and OpenID metadata, the JWKS and the MCP resource's RFC 9728 metadata."""

import pytest
from django.test import Client
from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata

from accounts.oauth import issuer, mcp_resource_url


pytestmark = pytest.mark.django_db

SCOPES = ["email", "offline_access", "openid", "profile"]


def _get(path: str, **headers):
    return Client().get(path, headers=headers)


@pytest.mark.parametrize("path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"])
def test_both_discovery_documents_describe_the_same_server(path, settings):
    base = settings.PUBLIC_BASE_URL
    data = _get(path).json()
    assert data["issuer"] == base == issuer()
    assert not data["issuer"].endswith("/")
    assert data["authorization_endpoint"] == f"{base}/o/authorize/"
    assert data["token_endpoint"] == f"{base}/o/token/"
    assert data["registration_endpoint"] == f"{base}/o/register/"
    assert data["revocation_endpoint"] == f"{base}/o/revoke_token/"
    assert data["jwks_uri"] == f"{base}/.well-known/jwks.json"
    assert data["code_challenge_methods_supported"] == ["S256"]
    assert "none" in data["token_endpoint_auth_methods_supported"]
    assert {"client_secret_basic", "client_secret_post"} <= set(data["token_endpoint_auth_methods_supported"])
    assert data["client_id_metadata_document_supported"] is True
    assert data["authorization_response_iss_parameter_supported"] is True
    assert sorted(data["scopes_supported"]) == SCOPES
    assert data["response_types_supported"] == ["code"]
    assert data["grant_types_supported"] == ["authorization_code", "refresh_token"]
    # The MCP SDK's client parses it and checks the issuer exactly.
    OAuthMetadata.model_validate(data)


def test_the_jwks_publishes_the_signing_key():
    keys = _get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1
    assert (keys[0]["kty"], keys[0]["alg"], keys[0]["use"]) == ("RSA", "RS256", "sig")
    assert "d" not in keys[0]  # never the private part


@pytest.mark.parametrize("path", ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"])
def test_the_mcp_endpoint_names_this_server_as_its_authorization_server(path):
    data = ProtectedResourceMetadata.model_validate(_get(path).json())
    assert str(data.resource) == mcp_resource_url()
    assert [str(url) for url in data.authorization_servers] == [issuer()]
    assert data.bearer_methods_supported == ["header"]


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/o/token/",
        "/o/register/",
        "/o/revoke_token/",
    ],
)
def test_browser_clients_may_call_discovery_token_registration_and_revocation(path):
    preflight = Client().options(
        path,
        headers={
            "Origin": "https://inspector.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, mcp-protocol-version",
        },
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == "*"
    assert "mcp-protocol-version" in preflight["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight


def test_the_consent_screen_and_the_dashboard_do_not_answer_cors():
    response = Client().options(
        "/o/authorize/", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in response
