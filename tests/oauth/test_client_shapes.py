"""Each real AI client's own shape, end to end over HTTP: how it registers (its redirect URIs and
token endpoint auth method, by DCR or a Client ID Metadata Document), where it takes its scopes
from (the 401 challenge, else the resource metadata, else none), whether it sends ``resource``,
then consent, tools, an access token that expires an hour later, and the refreshes that keep the
connection alive: one an hour later, and two in parallel with the same refresh token.

The shapes are the ones the clients were seen sending (see shared/reference/mcp-auth.md §2).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import requests
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from django.db.models import F
from oauth2_provider.models import AccessToken, RefreshToken

from accounts.connections import workspace_for_access_token
from accounts.models import Connection
from tests import services
from tests.mcp.conftest import call
from tests.oauth.oauthutil import consent_decision, query


pytestmark = pytest.mark.django_db(transaction=True)

CHALLENGE = "challenge"  # scope= of the 401 WWW-Authenticate challenge (Claude, VS Code, Claude Code)
METADATA = "metadata"  # every scopes_supported of the protected resource metadata (ChatGPT, Inspector)
NO_SCOPE = "none"  # no scope parameter at all (Cursor)
SDK = "sdk"  # the official Python SDK: the challenge's scopes plus offline_access, and prompt=consent


@dataclass(frozen=True)
class Shape:
    name: str
    redirect_uri: str
    """The redirect URI of the authorization request (a loopback one may use any port)."""
    scope_from: str
    sends_resource: bool
    registration: dict = field(default_factory=dict)
    """The DCR body; empty for a client that identifies itself by a metadata document URL."""
    publisher: str | None = None
    """The verified publisher the consent screen names, None for an unverified client."""


SHAPES = [
    Shape(
        "Claude",
        "https://claude.ai/api/mcp/auth_callback",
        CHALLENGE,
        sends_resource=True,
        # The hosted connector asks for client_secret_post and reads the method from the response.
        registration={
            "client_name": "Claude",
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
        },
        publisher="Claude",
    ),
    Shape(
        "ChatGPT", "https://chatgpt.com/connector/oauth/c_7Hq2xK", METADATA, sends_resource=True, publisher="ChatGPT"
    ),
    Shape(
        "Cursor",
        "cursor://anysphere.cursor-mcp/oauth/callback",
        NO_SCOPE,
        sends_resource=False,
        registration={
            "client_name": "Cursor",
            "redirect_uris": [
                "cursor://anysphere.cursor-mcp/oauth/callback",
                "https://www.cursor.com/agents/mcp/oauth/callback",
                "http://localhost:8787/callback",
            ],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
        publisher="Cursor",
    ),
    Shape(
        "VS Code",
        # 33418 was taken: VS Code listens on a random port of the registered loopback URI.
        "http://127.0.0.1:54731/",
        CHALLENGE,
        sends_resource=True,
        registration={
            "client_name": "Visual Studio Code",
            "redirect_uris": [
                "https://insiders.vscode.dev/redirect",
                "https://vscode.dev/redirect",
                "http://127.0.0.1/",
                "http://127.0.0.1:33418/",
            ],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        },
    ),
    Shape(
        "MCP Inspector",
        "http://localhost:6274/oauth/callback",
        METADATA,
        sends_resource=True,
        registration={
            "client_name": "MCP Inspector",
            "redirect_uris": ["http://localhost:6274/oauth/callback", "http://localhost:6274/oauth/callback/debug"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
        publisher="MCP Inspector",
    ),
    Shape(
        "Claude Code",
        "http://localhost:61234/callback",
        CHALLENGE,
        # Claude Code 2.1.251 was seen sending no resource at all.
        sends_resource=False,
        registration={
            "client_name": "Claude Code (avtrz)",
            "redirect_uris": ["http://localhost:61234/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
    ),
    Shape(
        "MCP Python SDK",
        "http://127.0.0.1:53682/callback",
        SDK,
        sends_resource=True,
        registration={
            "client_name": "Avtrz MCP tests",
            "redirect_uris": ["http://127.0.0.1:53682/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        },
    ),
]


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory, tls_files) -> Iterator[str]:
    port = services.free_port()
    base = f"http://127.0.0.1:{port}"
    environment = services.server_env(
        PUBLIC_BASE_URL=base, AVTRZ_FETCH_ALLOW_PRIVATE="127.0.0.1", OAUTH_CIMD_CA_BUNDLE=tls_files[0]
    )
    log = tmp_path_factory.mktemp("server") / "uvicorn.log"
    with services.running(services.uvicorn_cmd(port), env=environment, port=port, log=log):
        yield base


@pytest.fixture(autouse=True)
def _public_base_url(server, settings):
    settings.PUBLIC_BASE_URL = server


@dataclass
class Client:
    """What a client holds after registering: its id, and how it authenticates at the token endpoint."""

    client_id: str
    auth_method: str = "none"
    secret: str | None = None

    def token(self, endpoint: str, **form: str) -> requests.Response:
        form = {**form, "client_id": self.client_id}
        auth = None
        if self.auth_method == "client_secret_post":
            form["client_secret"] = self.secret
        elif self.auth_method == "client_secret_basic":
            auth = (self.client_id, self.secret)
        return requests.post(endpoint, data=form, auth=auth, timeout=30)


def _challenge_scope(base: str) -> str | None:
    challenge = call(base, None).headers["WWW-Authenticate"]
    found = re.search(r'scope="([^"]*)"', challenge)
    return found.group(1) if found else None


def _scope_for(shape: Shape, base: str, as_metadata: dict) -> str | None:
    """The MCP spec's scope selection, as each client implements it."""
    if shape.scope_from == NO_SCOPE:
        return None
    if shape.scope_from == METADATA:
        resource = requests.get(f"{base}/.well-known/oauth-protected-resource/mcp", timeout=10).json()
        return " ".join(resource["scopes_supported"])
    scope = _challenge_scope(base)
    if shape.scope_from == SDK and "offline_access" in as_metadata["scopes_supported"]:
        scope = f"{scope} offline_access"
    return scope


def _register(shape: Shape, as_metadata: dict, cimd_host) -> Client:
    if not shape.registration:
        # ChatGPT identifies itself by a metadata document at a URL of its own.
        path = "/oauth/c_7Hq2xK/client.json"
        client_id = cimd_host.url(path)
        document = {
            "client_id": client_id,
            "client_name": shape.name,
            "redirect_uris": [shape.redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        cimd_host.route(path, body=json.dumps(document).encode(), headers={"Content-Type": "application/json"})
        return Client(client_id)
    response = requests.post(as_metadata["registration_endpoint"], json=shape.registration, timeout=10)
    assert response.status_code == 201, response.text
    registered = response.json()
    return Client(registered["client_id"], registered["token_endpoint_auth_method"], registered.get("client_secret"))


def _an_hour_passes() -> None:
    """Move the clock an hour on: every stored time of the tokens is an hour (and a second) older."""
    hour = timedelta(hours=1, seconds=1)
    AccessToken.objects.update(expires=F("expires") - hour, created=F("created") - hour)
    RefreshToken.objects.update(created=F("created") - hour, updated=F("updated") - hour)
    RefreshToken.objects.filter(revoked__isnull=False).update(revoked=F("revoked") - hour)


def _tools_answer(base: str, access_token: str) -> int:
    return call(base, access_token).status_code


@pytest.mark.parametrize("shape", SHAPES, ids=[shape.name for shape in SHAPES])
def test_a_connection_outlives_its_first_access_token(server, alice, acme, cimd_host, shape):
    base = server
    as_metadata = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
    # Discovery from the connector URL: a 401 that says where to start, and which scopes to ask for.
    assert _challenge_scope(base) == "openid"

    client = _register(shape, as_metadata, cimd_host)
    verifier = generate_token(48)
    state = generate_token(16)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": shape.redirect_uri,
        "state": state,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    scope = _scope_for(shape, base, as_metadata)
    if scope is not None:
        params["scope"] = scope
    if shape.scope_from == SDK:
        params["prompt"] = "consent"
    resource = {"resource": f"{base}/mcp"} if shape.sends_resource else {}

    browser = services.sign_in(base, alice)
    page = browser.get(
        as_metadata["authorization_endpoint"], params={**params, **resource}, allow_redirects=False, timeout=10
    )
    assert page.status_code == 200, page.text[:2000]
    if shape.publisher:
        assert (
            "✓ Verified publisher" in page.text
            and f'<span class="consent-client">{shape.publisher}</span>' in page.text
        )
    else:
        assert "Unverified" in page.text
    # The user approves with the defaults: stay connected is on.
    decision = browser.post(page.url, data=consent_decision(page.text), allow_redirects=False, timeout=10)
    assert decision.status_code == 302, decision.text[:2000]
    answer = query(decision.headers["Location"])
    assert decision.headers["Location"].startswith(shape.redirect_uri)
    assert (answer["state"], answer["iss"]) == (state, base)

    token = client.token(
        as_metadata["token_endpoint"],
        grant_type="authorization_code",
        code=answer["code"],
        redirect_uri=shape.redirect_uri,
        code_verifier=verifier,
        **resource,
    )
    assert token.status_code == 200, token.text
    token = token.json()
    assert token["refresh_token"], f"{shape.name} got no refresh token: its connection would die in an hour"
    assert "offline_access" in token["scope"].split()
    assert 3500 <= token["expires_in"] <= 3600
    assert _tools_answer(base, token["access_token"]) == 200
    assert Connection.objects.get().redirect_uri == shape.redirect_uri

    # An hour later the access token has expired (the MCP endpoint's cached check refuses it by its own
    # clock: tests/mcp/test_token_cache.py), and the refresh token renews it.
    _an_hour_passes()
    assert workspace_for_access_token(token["access_token"]) is None
    renewed = client.token(
        as_metadata["token_endpoint"], grant_type="refresh_token", refresh_token=token["refresh_token"]
    )
    assert renewed.status_code == 200, renewed.text
    renewed = renewed.json()
    assert renewed["refresh_token"] != token["refresh_token"]  # rotated
    assert _tools_answer(base, renewed["access_token"]) == 200

    # Another hour, and two tool calls hit the 401 at once: both refresh with the same token.
    _an_hour_passes()
    start = threading.Barrier(2)

    def refresh(_):
        start.wait()
        return client.token(
            as_metadata["token_endpoint"], grant_type="refresh_token", refresh_token=renewed["refresh_token"]
        )

    with ThreadPoolExecutor(2) as pool:
        parallel = list(pool.map(refresh, range(2)))
    assert [response.status_code for response in parallel] == [200, 200], [response.text for response in parallel]
    for response in parallel:
        assert _tools_answer(base, response.json()["access_token"]) == 200
    # Still one connection on the dashboard, and no token stored in clear.
    assert Connection.objects.active().count() == 1
    assert not AccessToken.objects.exclude(token="").exists()
    assert not RefreshToken.objects.exclude(token="").exists()
