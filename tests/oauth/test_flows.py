"""Whole OAuth flows over HTTP against the real ASGI server, driven by client libraries we did not
write: authlib's OAuth2Session for the client side, the MCP SDK's discovery and registration
helpers, and a signed-in ``requests`` session for the user on the consent screen."""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx2
import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.utils import timezone
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    create_client_registration_request,
    handle_auth_metadata_response,
    handle_protected_resource_response,
    handle_registration_response,
    validate_authorization_response_iss,
    validate_metadata_issuer,
)
from mcp.shared.auth import OAuthClientMetadata
from oauth2_provider.models import AccessToken, RefreshToken

from accounts.connections import workspace_for_access_token
from accounts.models import Connection
from tests import services
from tests.oauth.oauthutil import CLAUDE, SCOPE, consent_decision, query


pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def _serve(tmp_path_factory, tls_files, *, workers: int = 1, **env: str) -> Iterator[str]:
    port = services.free_port()
    base = f"http://127.0.0.1:{port}"
    environment = services.server_env(
        PUBLIC_BASE_URL=base,
        # The CIMD document is served from the test machine: allow that one private address,
        # and trust the test certificate.
        AVTRZ_FETCH_ALLOW_PRIVATE="127.0.0.1",
        OAUTH_CIMD_CA_BUNDLE=tls_files[0],
        **env,
    )
    log = tmp_path_factory.mktemp("server") / "uvicorn.log"
    with services.running(services.uvicorn_cmd(port, workers=workers), env=environment, port=port, log=log):
        yield base


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory, tls_files) -> Iterator[str]:
    # Registrations made by all the tests in this module come from one address.
    with _serve(tmp_path_factory, tls_files, OAUTH_REGISTRATION_RATE_LIMIT="1000") as base:
        yield base


@pytest.fixture(autouse=True)
def _public_base_url(server, settings):
    """This process checks tokens the server issued: it must agree on the public URL (the audience)."""
    settings.PUBLIC_BASE_URL = server


@pytest.fixture
def metadata(server) -> dict:
    return requests.get(f"{server}/.well-known/oauth-authorization-server", timeout=10).json()


@pytest.fixture
def user(server, alice, acme) -> requests.Session:
    """Alice, signed in over HTTP through the login form."""
    return services.sign_in(server, alice)


def register(metadata: dict, **fields) -> dict:
    body = {"client_name": "Test client", "redirect_uris": [CLAUDE], **fields}
    response = requests.post(metadata["registration_endpoint"], json=body, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def consent(user: requests.Session, url: str, **decision) -> str:
    """Open the consent screen at ``url`` as the user, decide, and return where the browser is sent."""
    page = user.get(url, allow_redirects=False, timeout=10)
    assert page.status_code == 200, page.text[:2000]
    response = user.post(url, data=consent_decision(page.text, **decision), allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:2000]
    return response.headers["Location"]


def oauth_session(client: dict, redirect_uri: str = CLAUDE, scope: str = SCOPE) -> OAuth2Session:
    return OAuth2Session(
        client["client_id"],
        client.get("client_secret"),
        scope=scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method=client["token_endpoint_auth_method"],
    )


def authorization(oauth: OAuth2Session, metadata: dict, resource: str | None, **params) -> tuple[str, str]:
    """The authorization URL (PKCE S256, state) and the code verifier behind it."""
    verifier = generate_token(48)
    extra = {"resource": resource} if resource else {}
    url, _state = oauth.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, **extra, **params
    )
    return url, verifier


def full_flow(user, metadata, client, *, redirect_uri=CLAUDE, resource=None) -> None:
    """discovery (done) → registration (done) → authorize → token → refresh → revoke."""
    mcp = f"{metadata['issuer']}/mcp"
    oauth = oauth_session(client, redirect_uri)
    url, verifier = authorization(oauth, metadata, resource or mcp)
    location = consent(user, url)
    assert location.startswith(redirect_uri.split("?")[0])
    assert query(location)["iss"] == metadata["issuer"]

    token = oauth.fetch_token(
        metadata["token_endpoint"], authorization_response=location, code_verifier=verifier, resource=mcp, timeout=30
    )
    assert token["token_type"] == "Bearer"
    assert token["scope"] == SCOPE
    assert 3500 <= token["expires_in"] <= 3600
    assert token["id_token"]
    found = workspace_for_access_token(token["access_token"])
    assert found is not None
    assert found[1].slug == "acme"
    assert found[0].resource == [mcp]

    refreshed = oauth.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert workspace_for_access_token(refreshed["access_token"])[1].slug == "acme"

    revoked = oauth.revoke_token(
        metadata["revocation_endpoint"], refreshed["refresh_token"], token_type_hint="refresh_token"
    )
    assert revoked.status_code == 200
    assert workspace_for_access_token(refreshed["access_token"]) is None
    with pytest.raises(OAuthError) as refused:
        oauth.refresh_token(metadata["token_endpoint"], refresh_token=refreshed["refresh_token"])
    assert refused.value.error == "invalid_grant"


def test_a_public_pkce_client(user, metadata):
    full_flow(user, metadata, register(metadata, token_endpoint_auth_method="none"))


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_confidential_client(user, metadata, method):
    client = register(metadata, token_endpoint_auth_method=method)
    assert client["client_secret"]
    full_flow(user, metadata, client)


def test_a_client_id_metadata_document_client(user, metadata, cimd_host):
    client_id = cimd_host.url("/oauth/client.json")
    document = {
        "client_id": client_id,
        "client_name": "Metadata Document Client",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    }
    cimd_host.route(
        "/oauth/client.json",
        body=json.dumps(document).encode(),
        headers={"Content-Type": "application/json", "Cache-Control": "max-age=600"},
    )
    client = {"client_id": client_id, "token_endpoint_auth_method": "none"}
    # A loopback redirect URI matches on any port (RFC 8252 §7.3).
    full_flow(user, metadata, client, redirect_uri="http://127.0.0.1:53682/callback")
    assert [r.path for r in cimd_host.requests] == ["/oauth/client.json"]
    assert Connection.objects.get().application.registration_source == "cimd"


def test_a_missing_resource_binds_the_token_to_the_mcp_endpoint(user, metadata):
    client = register(metadata, token_endpoint_auth_method="none")
    oauth = oauth_session(client)
    url, verifier = authorization(oauth, metadata, resource=None)
    token = oauth.fetch_token(
        metadata["token_endpoint"], authorization_response=consent(user, url), code_verifier=verifier, timeout=30
    )
    assert workspace_for_access_token(token["access_token"])[0].resource == [f"{metadata['issuer']}/mcp"]


def test_no_offline_access_no_refresh_token(user, metadata):
    client = register(metadata, token_endpoint_auth_method="none")
    oauth = oauth_session(client)
    url, verifier = authorization(oauth, metadata, None)
    location = consent(user, url, stay_connected=False)
    token = oauth.fetch_token(
        metadata["token_endpoint"], authorization_response=location, code_verifier=verifier, timeout=30
    )
    assert token["scope"] == "openid profile email"
    assert "refresh_token" not in token


def test_the_mcp_sdk_discovers_registers_and_checks_iss(server, user):
    """The official MCP client's own discovery and registration steps, starting from the connector URL."""
    connector = f"{server}/mcp"

    async def discover_and_register():
        async with httpx2.AsyncClient() as http:
            for url in build_protected_resource_metadata_discovery_urls(None, connector):
                resource = await handle_protected_resource_response(await http.get(url))
                if resource:
                    break
            issuer = str(resource.authorization_servers[0])
            for url in build_oauth_authorization_server_metadata_discovery_urls(issuer, connector):
                ok, server_metadata = await handle_auth_metadata_response(await http.get(url))
                if server_metadata:
                    break
            validate_metadata_issuer(server_metadata, issuer)
            client_metadata = OAuthClientMetadata(
                redirect_uris=["http://localhost:6274/oauth/callback"],
                client_name="MCP Inspector",
                token_endpoint_auth_method="none",
                grant_types=["authorization_code", "refresh_token"],
                scope=SCOPE,
            )
            request = create_client_registration_request(server_metadata, client_metadata, issuer)
            info = await handle_registration_response(await http.send(request))
            return resource, server_metadata, info

    resource, server_metadata, info = asyncio.run(discover_and_register())
    assert str(resource.resource) == connector
    assert server_metadata.code_challenge_methods_supported == ["S256"]
    assert info.client_id_issued_at is not None
    client = {"client_id": info.client_id, "token_endpoint_auth_method": "none"}
    oauth = oauth_session(client, "http://localhost:6274/oauth/callback")
    url, _verifier = authorization(oauth, server_metadata.model_dump(mode="json"), connector)
    page = user.get(url, timeout=10)
    assert "MCP Inspector</span> wants to connect" in page.text
    assert "✓ Verified publisher" in page.text
    location = consent(user, url)
    validate_authorization_response_iss(query(location).get("iss"), server_metadata)


# ------------------------------------------------------------------------------------ refusals


@pytest.fixture
def public_client(metadata) -> dict:
    return register(metadata, token_endpoint_auth_method="none")


def _token_error(metadata: dict, **data) -> str:
    response = requests.post(metadata["token_endpoint"], data=data, timeout=10)
    assert response.status_code in (400, 401), response.text
    return response.json()["error"]


def _code(user, metadata, client, *, redirect_uri=CLAUDE, **params) -> tuple[str, str]:
    oauth = oauth_session(client, redirect_uri)
    url, verifier = authorization(oauth, metadata, None, **params)
    return query(consent(user, url))["code"], verifier


def test_a_wrong_or_absent_code_verifier_is_refused(user, metadata, public_client):
    base = {"grant_type": "authorization_code", "client_id": public_client["client_id"], "redirect_uri": CLAUDE}
    code, _verifier = _code(user, metadata, public_client)
    assert _token_error(metadata, **base, code=code, code_verifier=generate_token(48)) == "invalid_grant"
    code, _verifier = _code(user, metadata, public_client)
    assert _token_error(metadata, **base, code=code) == "invalid_request"


def test_an_authorization_request_without_pkce_is_refused(user, metadata, public_client):
    url = f"{metadata['authorization_endpoint']}?" + requests.compat.urlencode(
        {"response_type": "code", "client_id": public_client["client_id"], "redirect_uri": CLAUDE, "state": "s1"}
    )
    response = user.get(url, allow_redirects=False, timeout=10)
    answer = query(response.headers["Location"])
    assert (answer["error"], answer["state"], answer["iss"]) == ("invalid_request", "s1", metadata["issuer"])


def test_plain_pkce_is_refused(user, metadata, public_client):
    verifier = generate_token(48)
    url = f"{metadata['authorization_endpoint']}?" + requests.compat.urlencode(
        {
            "response_type": "code",
            "client_id": public_client["client_id"],
            "redirect_uri": CLAUDE,
            "code_challenge": verifier,
            "code_challenge_method": "plain",
        }
    )
    response = user.get(url, allow_redirects=False, timeout=10)
    assert query(response.headers["Location"])["error"] == "invalid_request"


def test_a_mismatched_redirect_uri_is_refused(user, metadata, public_client):
    # At the authorization endpoint: never redirected to, an error page instead.
    for wrong in (CLAUDE + "/", CLAUDE + "?x=1", "https://claude.ai.evil.example/api/mcp/auth_callback"):
        oauth = oauth_session(public_client, wrong)
        url, _verifier = authorization(oauth, metadata, None)
        response = user.get(url, allow_redirects=False, timeout=10)
        assert response.status_code == 400
        assert "Location" not in response.headers
    # At the token endpoint: the code is bound to the redirect URI it was issued for.
    code, verifier = _code(user, metadata, public_client)
    error = _token_error(
        metadata,
        grant_type="authorization_code",
        client_id=public_client["client_id"],
        redirect_uri=CLAUDE + "/other",
        code=code,
        code_verifier=verifier,
    )
    assert error in ("invalid_request", "invalid_grant")


def test_a_code_works_once(user, metadata, public_client):
    code, verifier = _code(user, metadata, public_client)
    data = {
        "grant_type": "authorization_code",
        "client_id": public_client["client_id"],
        "redirect_uri": CLAUDE,
        "code": code,
        "code_verifier": verifier,
    }
    assert requests.post(metadata["token_endpoint"], data=data, timeout=10).status_code == 200
    assert _token_error(metadata, **data) == "invalid_grant"


def test_a_foreign_resource_is_refused(user, metadata, public_client):
    oauth = oauth_session(public_client)
    url, _verifier = authorization(oauth, metadata, "https://evil.example/mcp")
    response = user.get(url, allow_redirects=False, timeout=10)
    assert query(response.headers["Location"])["error"] == "invalid_target"
    # And at the token endpoint, for a code issued for the MCP endpoint.
    code, verifier = _code(user, metadata, public_client)
    error = _token_error(
        metadata,
        grant_type="authorization_code",
        client_id=public_client["client_id"],
        redirect_uri=CLAUDE,
        code=code,
        code_verifier=verifier,
        resource="https://evil.example/mcp",
    )
    assert error == "invalid_target"


def test_an_unknown_scope_is_refused(user, metadata, public_client):
    oauth = oauth_session(public_client, scope="openid admin")
    url, _verifier = authorization(oauth, metadata, None)
    response = user.get(url, allow_redirects=False, timeout=10)
    assert query(response.headers["Location"])["error"] == "invalid_scope"


@pytest.fixture(scope="module")
def two_workers(django_db_setup, tmp_path_factory, tls_files) -> Iterator[str]:
    """A second server of two worker processes on the same database, so two requests really run at once."""
    with _serve(tmp_path_factory, tls_files, workers=2) as base:
        yield base


def test_parallel_refreshes_both_succeed_and_later_reuse_revokes_the_family(user, metadata, public_client, two_workers):
    """Hosts fire tool calls in parallel; on a 401 each may refresh with the same refresh token."""
    oauth = oauth_session(public_client)
    url, verifier = authorization(oauth, metadata, None)
    token = oauth.fetch_token(
        metadata["token_endpoint"], authorization_response=consent(user, url), code_verifier=verifier, timeout=30
    )
    start = threading.Barrier(2)

    def refresh(_):
        start.wait()
        # Each of the two calls lands on its own worker process, at the same instant.
        return requests.post(
            f"{two_workers}/o/token/",
            data={
                "grant_type": "refresh_token",
                "refresh_token": token["refresh_token"],
                "client_id": public_client["client_id"],
            },
            timeout=30,
        )

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(refresh, range(2)))
    assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
    first, second = (answer.json() for answer in answers)
    # Tokens are stored as digests, so the loser of the race cannot be handed the winner's pair:
    # it gets a pair of its own, in the same family, and both work.
    assert first["access_token"] != second["access_token"]
    for pair in (first, second):
        assert workspace_for_access_token(pair["access_token"])[1].slug == "acme"
    assert not AccessToken.objects.exclude(token="").exists()
    assert not RefreshToken.objects.exclude(token="").exists()

    # The grace period is over (as if time had passed): reuse is detected.
    RefreshToken.objects.filter(revoked__isnull=False).update(revoked=timezone.now() - datetime.timedelta(hours=1))
    with pytest.raises(OAuthError) as refused:
        oauth.refresh_token(metadata["token_endpoint"], refresh_token=token["refresh_token"])
    assert refused.value.error == "invalid_grant"
    # ...and the whole family dies, including the tokens both parallel callers hold.
    for pair in (first, second):
        assert workspace_for_access_token(pair["access_token"]) is None
        with pytest.raises(OAuthError):
            oauth.refresh_token(metadata["token_endpoint"], refresh_token=pair["refresh_token"])


def test_the_consent_screen_answers_over_http_with_its_headers(user, metadata, public_client):
    oauth = oauth_session(public_client)
    url, _verifier = authorization(oauth, metadata, None)
    response = user.get(url, timeout=10)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert urlsplit(response.url).path == "/o/authorize/"


def test_a_registration_flood_is_refused_with_429(tmp_path_factory, tls_files):
    with _serve(tmp_path_factory, tls_files, OAUTH_REGISTRATION_RATE_LIMIT="3") as base:
        body = {"redirect_uris": [CLAUDE], "token_endpoint_auth_method": "none"}
        statuses = [requests.post(f"{base}/o/register/", json=body, timeout=10).status_code for _ in range(5)]
        assert statuses == [201, 201, 201, 429, 429]
        response = requests.post(f"{base}/o/register/", json=body, timeout=10)
        assert response.json()["error"] == "too_many_requests"
        assert int(response.headers["Retry-After"]) > 0
