"""The MCP endpoint's door: RFC 9728 discovery, the 401 challenges, revocation and expiry, CORS."""

from __future__ import annotations

import pytest
import requests
from oauth2_provider.models import AccessToken

from accounts.connections import revoke_connection
from accounts.oauth import RESOURCE_SCOPES, issuer, mcp_resource_url
from tests.mcp.conftest import MemoryStorage, call, with_client
from tests.oauth.oauthutil import stored
from tests.services import sign_in


pytestmark = pytest.mark.django_db(transaction=True)


def list_tools(client):
    return client.list_tools()


def test_an_anonymous_request_learns_where_to_authorize(live):
    missing = call(live, None)
    slash = requests.post(f"{live}/mcp/", json={}, allow_redirects=False, timeout=10)
    garbage = call(live, "not-a-token")
    metadata = [
        requests.get(f"{live}{path}", timeout=10)
        for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource")
    ]
    preflight = requests.options(
        f"{live}/mcp",
        headers={
            "Origin": "https://inspector.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, mcp-protocol-version",
        },
        timeout=10,
    )
    from_browser = requests.post(f"{live}/mcp", json={}, headers={"Origin": "https://claude.ai"}, timeout=10)

    challenge_url = f"{live}/.well-known/oauth-protected-resource/mcp"
    # The challenge names the scopes to request (RFC 6750 §3): MCP clients take them from here first.
    scopes = " ".join(RESOURCE_SCOPES)
    assert scopes == "openid"
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == f'Bearer resource_metadata="{challenge_url}", scope="{scopes}"'
    assert slash.status_code == 401  # /mcp/ is the endpoint too, not a redirect to it
    assert garbage.status_code == 401
    assert garbage.headers["WWW-Authenticate"] == (
        f'Bearer error="invalid_token", error_description="Not authenticated", '
        f'resource_metadata="{challenge_url}", scope="{scopes}"'
    )
    assert "offline_access" not in garbage.headers["WWW-Authenticate"]
    assert garbage.json()["error_description"] == "Not authenticated"
    for response in metadata:
        document = response.json()
        assert document["resource"] == mcp_resource_url() == f"{live}/mcp"
        assert document["authorization_servers"] == [issuer()]
        assert document["bearer_methods_supported"] == ["header"]
        assert "openid" in document["scopes_supported"]
        assert "offline_access" not in document["scopes_supported"]
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    exposed = from_browser.headers["Access-Control-Expose-Headers"].lower()
    assert {"www-authenticate", "mcp-session-id", "mcp-protocol-version"} <= set(map(str.strip, exposed.split(",")))


def test_a_revoked_token_is_not_authenticated_and_a_reconnection_works(live, profile, alice, acme):
    """Across processes: this one revokes, the server refuses (expiry: tests/mcp/test_token_cache.py)."""
    browser = sign_in(live, alice)
    first, second = MemoryStorage(), MemoryStorage()
    with_client(live, browser, list_tools, storage=first)
    with_client(live, browser, list_tools, storage=second)
    before = call(live, first.tokens.access_token)

    # Revoked in the dashboard: the next call is refused.
    connection = stored(AccessToken, first.tokens.access_token).get().connection_link.connection
    revoke_connection(actor=alice, connection=connection)
    revoked = call(live, first.tokens.access_token)

    # Reconnecting makes a fresh connection.
    third = MemoryStorage()
    with_client(live, browser, list_tools, storage=third)
    valid = call(live, third.tokens.access_token)

    assert first.tokens.access_token != second.tokens.access_token
    assert before.status_code == 200 and valid.status_code == 200
    assert revoked.status_code == 401
    assert 'error="invalid_token"' in revoked.headers["WWW-Authenticate"]
    assert revoked.json()["error_description"] == "Not authenticated"


def test_a_token_for_another_resource_is_refused(live, profile, alice, acme):
    storage = MemoryStorage()
    with_client(live, sign_in(live, alice), list_tools, storage=storage)
    # Edited as the admin would (a save): the server's cached check of the token goes with it.
    edited = stored(AccessToken, storage.tokens.access_token).get()
    edited.resource = ["https://other.example/mcp"]
    edited.save()
    response = call(live, storage.tokens.access_token)
    assert response.status_code == 401
    assert response.json()["error_description"] == "Not authenticated"
