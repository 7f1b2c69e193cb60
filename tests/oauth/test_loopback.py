"""Loopback redirect URIs (RFC 8252 §7.3, MCP authorization): any port, and localhost, 127.0.0.1
and [::1] for one another; exact on scheme, path and query; never for any other host. The token
request repeats the authorization request's URI exactly (RFC 6749 §4.1.3)."""

from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client

from accounts.publishers import recognise
from accounts.redirects import loopback_match
from tests.oauth.oauthutil import authorize_params, authorize_path, consent_decision, pkce, query


pytestmark = pytest.mark.django_db

VSCODE = [
    "https://insiders.vscode.dev/redirect",
    "https://vscode.dev/redirect",
    "http://127.0.0.1/",
    "http://127.0.0.1:33418/",
]
INSPECTOR = ["http://localhost:6274/oauth/callback", "http://localhost:6274/oauth/callback/debug"]
CLAUDE_CODE = ["http://localhost:8787/callback"]


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        (VSCODE, "http://127.0.0.1:51234/"),
        (VSCODE, "http://127.0.0.1:33418/"),
        (VSCODE, "http://localhost:51234/"),
        (VSCODE, "http://[::1]:51234/"),
        (INSPECTOR, "http://localhost:6274/oauth/callback"),
        (INSPECTOR, "http://localhost:7000/oauth/callback"),
        (INSPECTOR, "http://127.0.0.1:6274/oauth/callback"),
        (INSPECTOR, "http://127.0.0.1:6274/oauth/callback/debug"),
        (CLAUDE_CODE, "http://localhost:45678/callback"),
        (CLAUDE_CODE, "http://127.0.0.1:45678/callback"),
        (CLAUDE_CODE, "http://LOCALHOST:45678/callback"),
        (["http://[::1]:9000/callback"], "http://localhost:9001/callback"),
        (["http://127.0.0.1:5000/cb?client=x"], "http://localhost:5001/cb?client=x"),
    ],
)
def test_loopback_redirect_uris_match_on_any_port_and_any_loopback_name(register, alice, acme, registered, requested):
    app = register(redirect_uris=registered)
    client = Client()
    client.force_login(alice)
    verifier, challenge = pkce()
    url = authorize_path(authorize_params(app["client_id"], requested, challenge))
    page = client.get(url)
    assert page.status_code == 200, page.content
    decision = client.post(
        url, urlencode(consent_decision(page.content.decode())), content_type="application/x-www-form-urlencoded"
    )
    assert decision.status_code == 302
    # The code goes exactly where the request said, never to the registered variant.
    assert decision["Location"].split("?")[0] == requested.split("?")[0]
    code = query(decision["Location"])["code"]

    def exchange(redirect_uri):
        return Client().post(
            "/o/token/",
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": app["client_id"],
                "code_verifier": verifier,
            },
        )

    # RFC 6749 §4.1.3: the token request must repeat the authorization request's URI, not the
    # registered one nor another loopback alias.
    other = registered[-1] if registered[-1] != requested else registered[0]
    refused = exchange(other)
    assert refused.status_code == 400
    # oauthlib says invalid_request ("Mismatching redirect URI."), where RFC 6749 §5.2 says invalid_grant.
    assert refused.json()["error"] in ("invalid_grant", "invalid_request")
    assert exchange(requested).status_code == 200


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        (INSPECTOR, "http://localhost:6274/oauth/other"),
        (INSPECTOR, "http://127.0.0.1:6274/oauth/callback/"),
        (INSPECTOR, "https://localhost:6274/oauth/callback"),
        (INSPECTOR, "http://localhost.evil.com:6274/oauth/callback"),
        (INSPECTOR, "http://localhost:6274@evil.example/oauth/callback"),
        (INSPECTOR, "http://evil@localhost:6274/oauth/callback"),
        (INSPECTOR, "http://localhost:6274/oauth/callback?x=1"),
        (INSPECTOR, "http://localhost:6274/oauth/callback#f"),
        (INSPECTOR, "http://127.0.0.2:6274/oauth/callback"),
        (INSPECTOR, "http://0.0.0.0:6274/oauth/callback"),
        (VSCODE, "http://127.0.0.1:51234"),
        (VSCODE, "https://vscode.dev:8443/redirect"),
        (["https://app.example/cb"], "https://app.example:8443/cb"),
        (["https://localhost:6274/cb"], "https://localhost:6275/cb"),
        (["https://localhost:6274/cb"], "https://127.0.0.1:6274/cb"),
        (["http://127.0.0.1:5000/cb?client=x"], "http://127.0.0.1:5001/cb?client=y"),
        (["http://127.0.0.1:5000/cb?"], "http://127.0.0.1:5001/cb"),
    ],
)
def test_everything_else_is_refused_without_a_redirect(register, alice, acme, registered, requested):
    app = register(redirect_uris=registered)
    client = Client()
    client.force_login(alice)
    _verifier, challenge = pkce()
    response = client.get(authorize_path(authorize_params(app["client_id"], requested, challenge)))
    assert response.status_code == 400
    assert "Location" not in response


@pytest.mark.parametrize(
    "registered", ["http://localhost.evil.com/cb", "http://localhost.evil.com:6274/oauth/callback"]
)
def test_a_host_that_only_starts_with_localhost_is_not_loopback(registered):
    assert not loopback_match("http://localhost:6274/oauth/callback", registered)
    assert not loopback_match(registered, "http://localhost:6274/oauth/callback")


@pytest.mark.parametrize("uri", ["http://127.0.0.1:99999/cb", "http://[::1/cb", "http://localhost:x/cb"])
def test_malformed_uris_never_match(uri):
    assert not loopback_match(uri, "http://127.0.0.1/cb")
    assert not loopback_match("http://127.0.0.1/cb", uri)


@pytest.mark.parametrize(
    ("uri", "verified"),
    [
        ("http://localhost:6274/oauth/callback", True),
        ("http://localhost:6274/oauth/callback/debug", True),
        ("http://127.0.0.1:6274/oauth/callback", False),
        ("http://[::1]:6274/oauth/callback", False),
        ("http://localhost:6275/oauth/callback", False),
        ("https://localhost:6274/oauth/callback", False),
        ("http://localhost:6274/oauth/callback/other", False),
        ("http://localhost:6274/oauth/callback?x=1", False),
        ("http://localhost.evil.com:6274/oauth/callback", False),
        ("http://127.0.0.1:33418/", False),
        ("http://localhost:8787/callback", False),
    ],
)
def test_only_the_exact_inspector_url_is_a_verified_publisher(uri, verified):
    assert recognise(uri, "MCP Inspector").verified is verified


def test_the_consent_screen_verifies_the_uri_the_request_used_not_the_registered_one(register, alice, acme):
    app = register(client_name="MCP Inspector", redirect_uris=INSPECTOR)
    client = Client()
    client.force_login(alice)
    _verifier, challenge = pkce()
    for requested, verified in [
        ("http://localhost:6274/oauth/callback", True),
        ("http://127.0.0.1:6274/oauth/callback", False),
        ("http://localhost:9999/oauth/callback", False),
    ]:
        page = client.get(authorize_path(authorize_params(app["client_id"], requested, challenge))).content.decode()
        assert ("Verified publisher" in page) is verified, requested
        assert f'<code class="consent-uri">{requested}</code>' in page
        assert urlsplit(requested).port is not None
