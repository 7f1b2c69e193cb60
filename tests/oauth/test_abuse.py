"""Attacks on sign-in and the authorization server that the flow tests do not already try: open
redirects through `next`, redirect URI look-alikes, codes redeemed by another client, PKCE downgrade,
a token outliving its workspace membership, and framing of the sign-in pages."""

import re
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from django.core import mail
from django.test import Client
from oauth2_provider.models import AccessToken

from accounts.connections import workspace_for_access_token
from tests import services
from tests.factories import PASSWORD
from tests.oauth.oauthutil import CLAUDE, authorize_params, authorize_path, consent_decision, pkce, query
from workspaces.models import Membership


pytestmark = pytest.mark.django_db

HOSTILE_NEXT = [
    "https://evil.example/steal",
    "//evil.example/steal",
    "/\\evil.example/steal",
    "\\\\evil.example/steal",
    "/\\/evil.example/steal",
    "http:evil.example",
    "https:///evil.example",
    " //evil.example",
    "javascript:alert(document.domain)",
    "data:text/html,<script>alert(1)</script>",
]


def assert_stays_here(location: str) -> None:
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc, location
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_signing_in_never_redirects_off_site(client, alice, target):
    response = client.post("/accounts/login/", {"username": alice.email, "password": PASSWORD, "next": target})
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    # Already signed in, the login page sends the user on at once: still not off site.
    assert_stays_here(client.get("/accounts/login/", {"next": target})["Location"])


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_signing_up_never_redirects_off_site(client, target):
    data = {"email": "new@example.com", "password1": "a sturdy passphrase 42", "password2": "a sturdy passphrase 42"}
    client.post("/accounts/signup/", {**data, "next": target})
    link = re.search(r"https?://[^/\s]+(/accounts/activate/\S+)", mail.outbox[-1].body).group(1)
    assert client.get(link)["Location"] == "/workspaces/new/"
    assert_stays_here(client.get("/accounts/signup/", {"next": target})["Location"])


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_creating_a_workspace_and_signing_out_never_redirect_off_site(alice_client, target):
    response = alice_client.post("/workspaces/new/", {"name": "Initech", "next": target})
    assert response["Location"] == "/w/initech/"
    response = alice_client.post("/accounts/logout/", {"next": target})
    assert response.status_code == 302
    assert_stays_here(response["Location"])


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://claude.ai@evil.example/api/mcp/auth_callback",  # userinfo: the host is evil.example
        "https://claude.ai:8443/api/mcp/auth_callback",  # another port
        "https://claude.ai/api/mcp/auth_callback/../../evil",  # another path, dressed up
        "https://claude.ai/api/mcp/other_callback",
        "https://claude.ai/api/mcp/auth_callback#@evil.example",
        "http://claude.ai/api/mcp/auth_callback",  # downgraded scheme
        "javascript:alert(document.domain)//https://claude.ai/api/mcp/auth_callback",
        "https://evil.example/?r=https://claude.ai/api/mcp/auth_callback",
    ],
)
def test_redirect_uri_look_alikes_are_never_followed(alice_client, register, acme, redirect_uri):
    app = register(redirect_uris=[CLAUDE])
    _verifier, challenge = pkce()
    response = alice_client.get(authorize_path(authorize_params(app["client_id"], redirect_uri, challenge)))
    assert response.status_code == 400
    assert "Location" not in response
    # Nor after a consent submitted anyway, straight to the endpoint.
    response = alice_client.post(
        authorize_path(authorize_params(app["client_id"], redirect_uri, challenge)),
        {"workspace": "acme", "allow": "true"},
    )
    assert response.status_code == 400
    assert "Location" not in response


def _code(client, app: dict) -> tuple[str, str, str]:
    """Alice approves `app` on the consent screen; returns (code, verifier, challenge)."""
    verifier, challenge = pkce()
    path = authorize_path(authorize_params(app["client_id"], CLAUDE, challenge))
    page = client.get(path)
    decision = client.post(
        path, urlencode(consent_decision(page.content.decode())), content_type="application/x-www-form-urlencoded"
    )
    return query(decision["Location"])["code"], verifier, challenge


def _redeem(client_id: str, code: str, verifier: str | None):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CLAUDE, "client_id": client_id}
    if verifier is not None:
        data["code_verifier"] = verifier
    return Client().post("/o/token/", data)


def test_a_code_issued_to_one_client_cannot_be_redeemed_by_another(alice_client, register, acme):
    victim, attacker = register(client_name="Victim"), register(client_name="Attacker")  # same redirect URI
    code, verifier, _challenge = _code(alice_client, victim)
    stolen = _redeem(attacker["client_id"], code, verifier)
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.filter(user__isnull=False).exists()  # DCR registration tokens have no user
    assert _redeem(victim["client_id"], code, verifier).status_code == 200  # the rightful client still can


@pytest.mark.parametrize("change", ["deactivated", "left the workspace"])
def test_no_tokens_for_a_code_whose_user_lost_access_since_consenting(alice_client, register, alice, acme, change):
    """A code lives a minute: a user deactivated, or removed from the workspace, in between gets no tokens
    (they would be dead on arrival at /mcp), and the refusal is the one a client knows: invalid_grant."""
    app = register()
    code, verifier, _challenge = _code(alice_client, app)
    if change == "deactivated":
        alice.is_active = False
        alice.save(update_fields=["is_active"])
    else:
        Membership.objects.filter(user=alice, workspace=acme).delete()
    response = _redeem(app["client_id"], code, verifier)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.filter(user__isnull=False).exists()


@pytest.mark.parametrize(
    ("verifier", "error"),
    [
        ("challenge", "invalid_grant"),  # plain-method downgrade: the challenge sent back as the verifier
        (None, "invalid_request"),  # no verifier at all
        ("", "invalid_grant"),
    ],
)
def test_pkce_cannot_be_downgraded_at_the_token_endpoint(alice_client, register, acme, verifier, error):
    app = register()
    code, _verifier, challenge = _code(alice_client, app)
    response = _redeem(app["client_id"], code, challenge if verifier == "challenge" else verifier)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert not AccessToken.objects.filter(user__isnull=False).exists()


@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"])
def test_sign_in_pages_cannot_be_framed(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


@pytest.mark.django_db(transaction=True)
def test_a_token_stops_working_on_mcp_when_its_user_leaves_the_bound_workspace(
    tmp_path, settings, alice_client, connect, alice, acme, globex
):
    """Bound to Globex, Alice is removed from Globex but stays in Acme: the token is dead, not re-bound."""
    port = services.free_port()
    base = f"http://127.0.0.1:{port}"
    settings.PUBLIC_BASE_URL = base  # the tokens' audience must be the server's
    _app, token = connect(alice_client, workspace="globex")
    headers = {
        "Authorization": f"Bearer {token['access_token']}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    tools_list = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    # The server's cache namespace is this process's: the revocation below reaches its token cache.
    env = services.server_env(PUBLIC_BASE_URL=base, MEDIA_ROOT=str(tmp_path / "media"), **services.shared_cache_env())
    with services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "server.log"):
        before = requests.post(f"{base}/mcp", json=tools_list, headers=headers, timeout=10)
        Membership.objects.filter(user=alice, workspace=globex).delete()
        after = requests.post(f"{base}/mcp", json=tools_list, headers=headers, timeout=10)
    assert before.status_code == 200
    assert after.status_code == 401
    assert after.json()["error_description"] == "Not authenticated"
    assert 'error="invalid_token"' in after.headers["WWW-Authenticate"]
    assert workspace_for_access_token(token["access_token"]) is None
