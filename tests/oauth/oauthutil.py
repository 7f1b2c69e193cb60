"""Helpers for driving the authorization server like a client and a user would."""

from __future__ import annotations

import hashlib
import json
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge


SCOPE = "openid profile email offline_access"
CLAUDE = "https://claude.ai/api/mcp/auth_callback"


def pkce() -> tuple[str, str]:
    verifier = generate_token(48)
    return verifier, create_s256_code_challenge(verifier)


class _FormParser(HTMLParser):
    """The fields a browser would submit from the page's own form: the first POST form posting
    back to the page (the navigation's sign-out form has an action). Buttons are excluded."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._in_form = self._done = False
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("method", "").lower() == "post" and "action" not in attrs and not self._done:
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and "name" in attrs and "disabled" not in attrs:
            kind = attrs.get("type", "text")
            if kind not in ("checkbox", "radio") or "checked" in attrs:
                self.fields.append((attrs["name"], attrs.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select":
            self._select, self._options = attrs.get("name"), []
        elif tag == "option" and self._select:
            self._options.append((attrs.get("value", ""), "selected" in attrs))

    def handle_endtag(self, tag):
        if tag == "select" and self._select and self._options:
            chosen = next((value for value, selected in self._options if selected), self._options[0][0])
            self.fields.append((self._select, chosen))
            self._select = None
        elif tag == "form" and self._in_form:
            self._in_form, self._done = False, True


def form_fields(html: str) -> list[tuple[str, str]]:
    parser = _FormParser()
    parser.feed(html)
    return parser.fields


def consent_decision(
    html: str,
    *,
    allow: bool = True,
    workspace: str | None = None,
    drop_scopes: tuple[str, ...] = (),
    stay_connected: bool = True,
) -> list[tuple[str, str]]:
    """The consent form as a user would submit it: optionally switching workspace, unticking
    scopes and switching "Stay connected" off."""
    fields = [
        (k, v)
        for k, v in form_fields(html)
        if not (k == "scopes" and v in drop_scopes) and not (k == "stay_connected" and not stay_connected)
    ]
    if workspace is not None:
        fields = [(k, workspace if k == "workspace" else v) for k, v in fields]
    if allow:
        fields.append(("allow", "true"))
    return fields


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def authorize_params(client_id: str, redirect_uri: str, challenge: str, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPE,
        "state": generate_token(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return {key: value for key, value in params.items() if value is not None}


def authorize_path(params: dict[str, str]) -> str:
    return f"/o/authorize/?{urlencode(params)}"


def registration(**metadata) -> str:
    return json.dumps(
        {
            "client_name": "Test client",
            "redirect_uris": [CLAUDE],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            **metadata,
        }
    )


def stored(model, raw_token: str):
    """The rows of a DOT token model for a token in clear: only its SHA-256 digest is stored."""
    return model.objects.filter(token_checksum=hashlib.sha256(raw_token.encode()).hexdigest())


def start_authorization(base: str, client_name: str, redirect_uri: str):
    """A public client registered over HTTP at ``base`` and its authorization URL (PKCE S256, state,
    ``resource``), as a browser test opens it. Returns (session, code verifier, URL, state)."""
    client = requests.post(
        f"{base}/o/register/",
        json={"client_name": client_name, "redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none"},
        timeout=10,
    ).json()
    oauth = OAuth2Session(client["client_id"], scope=SCOPE, redirect_uri=redirect_uri, code_challenge_method="S256")
    verifier = generate_token(48)
    url, state = oauth.create_authorization_url(f"{base}/o/authorize/", code_verifier=verifier, resource=f"{base}/mcp")
    return oauth, verifier, url, state
