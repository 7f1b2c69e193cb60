"""The OAuth 2.1 authorization server's own rules, on top of django-oauth-toolkit.

Everything that names our issuer, our one protected resource (the MCP endpoint) or our policy
for redirect URIs lives here, so the views, the validator, the CIMD fetcher and the MCP server
agree. Values are derived from ``PUBLIC_BASE_URL`` at call time, never cached at import.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from oauthlib.oauth2.rfc6749.errors import CustomOAuth2Error


# Granted whenever it is requested: it only says who the user is. The consent screen shows it locked on.
REQUIRED_SCOPES = frozenset({"openid"})
# What the MCP endpoint asks a client to request: in its 401 challenge (`scope="..."`) and in its
# protected resource metadata (`scopes_supported`). Clients choose their scopes from the challenge,
# else from the metadata, else send none; all three roads end at the same consent screen.
# `offline_access` is deliberately absent (MCP 2026-07-28: a resource server should not ask for
# it): every connection the user approves gets a refresh token unless they switch "Stay connected"
# off on the consent screen, whatever the client asked for.
RESOURCE_SCOPES = ("openid",)
# The scope a token carries when it comes with a refresh token (the consent screen's "Stay connected").
OFFLINE_SCOPE = "offline_access"
# What a token lets a client do on the MCP server, listed on the consent screen.
MCP_TOOLS = (
    ("get_profile_avatar", "A person's profile photo, as an image and a durable URL."),
    ("get_profile", "A person's public profile: name, headline, location and more."),
    (
        "get_publishable_key",
        "The workspace's publishable key, for image URLs that count against this workspace's quota.",
    ),
)

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def issuer() -> str:
    """The issuer identifier: the public base URL exactly as configured (no trailing slash)."""
    return settings.PUBLIC_BASE_URL


def mcp_resource_url() -> str:
    """The canonical URL of the MCP endpoint: every access token's audience (RFC 8707)."""
    return f"{settings.PUBLIC_BASE_URL}/mcp"


def canonical_resource(value: str) -> str | None:
    """The MCP resource URL if ``value`` names it, else None.

    Scheme and host compare case-insensitively and a trailing slash is ignored (clients differ
    on both). The bare origin is accepted as well, as some clients send it: the token is
    then narrowed to the MCP endpoint, the only resource this server protects.
    """
    if not isinstance(value, str):
        return None
    parts = urlsplit(value.strip())
    ours = urlsplit(mcp_resource_url())
    if parts.query or parts.fragment or parts.username is not None or parts.password is not None:
        return None
    same_origin = (parts.scheme.lower(), parts.netloc.lower()) == (ours.scheme, ours.netloc.lower())
    if same_origin and parts.path.rstrip("/") in ("", ours.path):
        return mcp_resource_url()
    return None


def bind_resource(values: list[str] | None, request=None) -> list[str]:
    """The audience to record for a request's ``resource`` values (RFC 8707).

    No value binds the token to the MCP endpoint (some clients never send ``resource``);
    any value naming another resource is refused with ``invalid_target``. ``request`` is the
    oauthlib request, when there is one, so the error carries its ``state``.
    """
    for value in values or []:
        if canonical_resource(value) is None:
            raise CustomOAuth2Error(
                error="invalid_target",
                description=f"This server only issues tokens for {mcp_resource_url()}.",
                request=request,
            )
    return [mcp_resource_url()]


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` may not be registered as a redirect URI, or None if it may.

    On top of DOT's scheme allow-list: plain ``http`` is only for loopback callbacks of native
    apps (RFC 8252 §7.3, OAuth 2.1 §2.3.1), where the code never leaves the user's machine.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() != "http":
        return None
    host = (parts.hostname or "").lower()
    if host in _LOOPBACK_HOSTS:
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return f"{uri} uses http on a non-loopback host; use https, a loopback address or an app scheme"


def sign_id_tokens_with_rs256(sender, instance, **kwargs) -> None:
    """``pre_save`` of DOT's Application: a client without a signing algorithm gets RS256.

    Dynamically registered clients (DCR, CIMD) never choose one, and DOT then cannot issue the
    ID token an ``openid`` request asks for. The server's RSA key is the one the JWKS publishes.
    """
    if not instance.algorithm:
        instance.algorithm = instance.RS256_ALGORITHM
