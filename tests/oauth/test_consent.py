"""The consent screen at the authorization endpoint, driven in-process with Django's test client."""

from urllib.parse import urlencode

import jwt
import pytest
from django.test import Client

from accounts.connections import workspace_for_access_token
from accounts.models import Connection
from tests.oauth.oauthutil import CLAUDE, authorize_params, authorize_path, consent_decision, pkce, query


pytestmark = pytest.mark.django_db

KNOWN_CLIENTS = [
    ("Claude", "Anthropic", "https://claude.ai/api/mcp/auth_callback"),
    ("Claude", "Anthropic", "https://claude.com/api/mcp/auth_callback"),
    ("ChatGPT", "OpenAI", "https://chatgpt.com/connector_platform_oauth_redirect"),
    ("ChatGPT", "OpenAI", "https://chatgpt.com/connector/oauth/c_abc123"),
    ("Cursor", "Anysphere", "cursor://anysphere.cursor-mcp/oauth/callback"),
    ("Cursor", "Anysphere", "https://www.cursor.com/agents/mcp/oauth/callback"),
    ("VS Code", "Microsoft", "https://vscode.dev/redirect"),
    ("VS Code", "Microsoft", "https://insiders.vscode.dev/redirect"),
    ("MCP Inspector", "Model Context Protocol", "http://localhost:6274/oauth/callback"),
    ("MCP Inspector", "Model Context Protocol", "http://localhost:6274/oauth/callback/debug"),
]


def _start(client, register, redirect_uri=CLAUDE, name="Some client", **extra):
    app = register(client_name=name, redirect_uris=[redirect_uri])
    verifier, challenge = pkce()
    params = authorize_params(app["client_id"], redirect_uri, challenge, **extra)
    return app, verifier, params, client.get(authorize_path(params))


def _decide(client, response, **decision):
    """Post the consent form shown in ``response`` back to the authorization endpoint."""
    return client.post(
        response.wsgi_request.get_full_path(),
        urlencode(consent_decision(response.content.decode(), **decision)),
        content_type="application/x-www-form-urlencoded",
    )


def _assert_sections(html: str, redirect_uri: str) -> None:
    for text in (
        "Granting access as",
        "alice@example.com",
        "Acme",
        "Switch",
        "Permissions requested",
        "Read-only",
        "can't write or delete data, change billing, or message your team",
        "Tools this unlocks",
        "get_profile_avatar",
        "get_profile",
        "Security",
        f'<code class="consent-uri">{redirect_uri}</code>',
        "OAuth 2.1 with PKCE",
        'href="/w/acme/connections/"',  # where the connection can be revoked
        ">Authorize</button>",
        ">Deny</button>",
        'name="csrfmiddlewaretoken"',
    ):
        assert text in html, text


@pytest.mark.parametrize(("name", "vendor", "redirect_uri"), KNOWN_CLIENTS)
def test_known_clients_are_named_from_their_redirect_uri_with_a_verified_badge(
    alice_client, register, name, vendor, redirect_uri
):
    _app, _verifier, _params, response = _start(alice_client, register, redirect_uri, name="whatever they claim")
    html = response.content.decode()
    assert response.status_code == 200
    assert f"{name}</span> wants to connect" in html
    assert "✓ Verified publisher" in html
    assert f"{name} by {vendor}" in html
    assert "whatever they claim" not in html
    _assert_sections(html, redirect_uri)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/api/mcp/auth_callback",
        "http://127.0.0.1:33418/",  # VS Code's loopback callback, but anyone can listen there
        "http://localhost:8787/callback",  # Cursor's loopback callback, likewise
        "http://localhost:6275/oauth/callback",
    ],
)
def test_an_unknown_client_is_shown_by_its_registered_name_and_marked_unverified(alice_client, register, redirect_uri):
    _app, _verifier, _params, response = _start(alice_client, register, redirect_uri, name="Claude")
    html = response.content.decode()
    assert "Claude</span> wants to connect" in html
    assert "Unverified" in html
    assert "Verified publisher" not in html
    _assert_sections(html, redirect_uri)


def test_signing_in_first_comes_back_to_the_same_request(client, alice, acme, register):
    _app, _verifier, params, response = _start(client, register)
    assert response.status_code == 302
    login = response["Location"]
    assert login.startswith("/accounts/login/?next=")
    signin = client.get(login)
    next_url = signin.context["next"]
    assert query(f"http://x{next_url}") == params
    response = client.post(
        login, {"username": "alice@example.com", "password": "correct horse battery staple", "next": next_url}
    )
    assert response["Location"] == next_url
    assert "Granting access as" in client.get(next_url).content.decode()


def test_the_page_cannot_be_framed_or_cached(alice_client, register):
    *_, response = _start(alice_client, register)
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "form-action" not in response["Content-Security-Policy"]
    assert "no-store" in response["Cache-Control"]


def test_the_form_is_csrf_protected(alice, acme, register):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    *_, response = _start(client, register)
    fields = [(k, v) for k, v in consent_decision(response.content.decode()) if k != "csrfmiddlewaretoken"]
    response = client.post(response.wsgi_request.get_full_path(), dict(fields))
    assert response.status_code == 403
    assert not Connection.objects.exists()


def test_authorize_redirects_with_code_state_and_iss(alice_client, register, acme, settings):
    _app, _verifier, params, response = _start(alice_client, register)
    response = _decide(alice_client, response)
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith(CLAUDE + "?")
    answer = query(location)
    assert answer["code"]
    assert answer["state"] == params["state"]
    assert answer["iss"] == settings.PUBLIC_BASE_URL
    connection = Connection.objects.get()
    assert (connection.user.email, connection.workspace, connection.scope) == (
        "alice@example.com",
        acme,
        "openid profile email offline_access",
    )


def test_deny_answers_access_denied_with_state_and_iss(alice_client, register, settings):
    _app, _verifier, params, response = _start(alice_client, register)
    response = _decide(alice_client, response, allow=False)
    answer = query(response["Location"])
    assert response["Location"].startswith(CLAUDE + "?")
    assert answer == {"error": "access_denied", "state": params["state"], "iss": settings.PUBLIC_BASE_URL}
    assert not Connection.objects.exists()


def test_a_cursor_scheme_redirect_is_followed(alice_client, register, acme):
    uri = "cursor://anysphere.cursor-mcp/oauth/callback"
    *_, response = _start(alice_client, register, uri)
    response = _decide(alice_client, response)
    assert response["Location"].startswith(uri + "?code=")


def test_without_a_workspace_the_screen_offers_to_create_one_and_continues(client, alice, register):
    client.force_login(alice)
    *_, response = _start(client, register)
    html = response.content.decode()
    assert "You need a workspace first" in html
    assert 'name="allow" value="true" disabled' in html
    create_url = response.context["create_workspace_url"]
    authorize_url = response.wsgi_request.get_full_path()
    assert query(f"http://x{create_url}")["next"] == authorize_url

    page = client.get(create_url)
    response = client.post(create_url, {"name": "Initech", "next": page.context["next"]})
    assert response["Location"] == authorize_url
    html = client.get(authorize_url).content.decode()
    assert "<strong>Initech</strong>" in html
    assert "You need a workspace first" not in html


def test_plain_pkce_is_refused_before_asking_the_user(alice_client, register):
    _app, _verifier, params, response = _start(alice_client, register, code_challenge_method="plain")
    assert response.status_code == 302
    answer = query(response["Location"])
    assert answer["error"] == "invalid_request"
    assert answer["state"] == params["state"]


def test_a_foreign_resource_is_refused_before_asking_the_user(alice_client, register):
    *_, response = _start(alice_client, register, resource="https://evil.example/mcp")
    assert query(response["Location"])["error"] == "invalid_target"


def test_an_unknown_scope_is_refused(alice_client, register):
    *_, response = _start(alice_client, register, scope="openid admin")
    assert query(response["Location"])["error"] == "invalid_scope"


def test_a_redirect_uri_that_was_not_registered_is_never_followed(alice_client, register):
    app = register(redirect_uris=[CLAUDE])
    _verifier, challenge = pkce()
    params = authorize_params(app["client_id"], CLAUDE + "?x=1", challenge)
    response = alice_client.get(authorize_path(params))
    assert response.status_code == 400
    assert "This connection can" in response.content.decode()


def _exchange(app, params, verifier, location):
    return Client().post(
        "/o/token/",
        {
            "grant_type": "authorization_code",
            "code": query(location)["code"],
            "redirect_uri": params["redirect_uri"],
            "client_id": app["client_id"],
            "code_verifier": verifier,
        },
    )


def test_switching_workspace_binds_the_token_to_the_chosen_one(alice_client, register, acme, globex):
    app, verifier, params, response = _start(alice_client, register)
    html = response.content.decode()
    assert '<option value="acme" selected>Acme (owner)</option>' in html
    assert '<option value="globex">Globex (member)</option>' in html
    location = _decide(alice_client, response, workspace="globex")["Location"]
    token = _exchange(app, params, verifier, location).json()

    found = workspace_for_access_token(token["access_token"])
    assert found is not None
    assert found[1] == globex
    assert Connection.objects.get().workspace == globex


def test_a_workspace_the_user_does_not_belong_to_cannot_be_chosen(alice_client, register, acme, charlie):
    *_, response = _start(alice_client, register)
    response = _decide(alice_client, response, workspace="charlie-co")
    assert response.status_code == 400
    assert not Connection.objects.exists()


@pytest.mark.parametrize(
    ("unticked", "stay_connected", "granted"),
    [
        ((), True, "openid profile email offline_access"),
        (("email",), True, "openid profile offline_access"),
        (("profile", "email"), False, "openid"),
        (("openid",), True, "openid profile email offline_access"),  # locked on: unticking it changes nothing
    ],
)
def test_scope_toggles_decide_the_granted_scope(alice_client, register, acme, unticked, stay_connected, granted):
    app, verifier, params, response = _start(alice_client, register)
    html = response.content.decode()
    assert '<input type="checkbox" id="scope-openid" checked disabled>' in html
    for optional in ("profile", "email"):
        assert f'name="scopes" value="{optional}" checked>' in html
    # offline_access is not a scope to untick: "Stay connected" decides it, on by default.
    assert 'value="offline_access"' not in html
    assert 'name="stay_connected" value="true" checked>' in html
    location = _decide(alice_client, response, drop_scopes=unticked, stay_connected=stay_connected)["Location"]
    token = _exchange(app, params, verifier, location).json()
    assert token["scope"] == granted
    # A refresh token exactly when the user chose to stay connected.
    assert ("refresh_token" in token) == stay_connected
    # ID token claims follow the scopes left on.
    claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert ("email" in claims) == ("email" in granted)
    assert ("name" in claims) == ("profile" in granted)


@pytest.mark.parametrize("scope", [None, "openid", "openid profile"])
def test_a_client_that_never_asks_for_offline_access_still_stays_connected(alice_client, register, acme, scope):
    """Clients take their scopes from our challenge or resource metadata, or send none: no
    offline_access. The connection the user approves must still outlive its first access token."""
    app, verifier, params, response = _start(alice_client, register, scope=scope)
    html = response.content.decode()
    assert "Stay connected until I revoke it" in html
    token = _exchange(app, params, verifier, _decide(alice_client, response)["Location"]).json()
    assert token["scope"].split()[-1] == "offline_access"
    assert token["refresh_token"]
    refreshed = Client().post(
        "/o/token/",
        {"grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": app["client_id"]},
    )
    assert refreshed.status_code == 200, refreshed.content
    assert refreshed.json()["refresh_token"] != token["refresh_token"]


def test_only_requested_scopes_are_shown(alice_client, register):
    *_, response = _start(alice_client, register, scope="openid email")
    html = response.content.decode()
    assert 'value="email"' in html
    assert 'value="profile"' not in html
    assert 'value="offline_access"' not in html
