"""Matching an authorization request's redirect URI against the ones a client registered.

DOT compares exactly (RFC 9700 §2.1), except that a loopback IP URI (``127.0.0.1``, ``::1``, and
``localhost`` with ``ALLOW_LOCALHOST_LOOPBACK``) matches on any port, as RFC 8252 §7.3 requires
for native apps that listen on an ephemeral port. Real MCP clients need one more step: the MCP
Inspector registers ``http://localhost:6274/oauth/callback``, other tools send ``127.0.0.1`` for a
``localhost`` registration or the other way round. All three names reach only the user's own
machine, where any program may listen on any port anyway, so a loopback URI also matches another
loopback name: the code goes to no other place than the port exemption already allows. Scheme,
path and query still compare exactly, and nothing else is ever treated as loopback
(``localhost.evil.com`` is an ordinary host).

The token request still has to repeat the authorization request's URI exactly (RFC 6749 §4.1.3):
DOT compares it with the one recorded on the grant, which this module does not touch.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def malformed(uri: str) -> str | None:
    """Why ``uri`` cannot be a redirect URI at all (before any policy), or None.

    Python's URL parser raises on an out-of-range port or a broken IPv6 literal, and Django's
    URL validation lets control characters through; neither may reach the matching code.
    """
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in uri):
        return f"{uri!r} contains spaces or control characters"
    if _split(uri) is None:
        return f"{uri} is not a valid URL (check its host and port)"
    return None


def _split(uri: str) -> SplitResult | None:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 (an out-of-range port raises here)
    except ValueError:
        return None
    return parts


def _is_loopback(parts: SplitResult) -> bool:
    # No userinfo: "http://localhost@evil.example/" has hostname evil.example, but be explicit.
    return parts.scheme == "http" and "@" not in parts.netloc and parts.hostname in LOOPBACK_HOSTS


def loopback_match(uri: str, registered: str) -> bool:
    """True if ``uri`` and ``registered`` are both loopback ``http`` URIs that differ at most in
    the loopback name and the port. Fragments never match (RFC 6749 §3.1.2)."""
    if "#" in uri or "#" in registered:
        return False
    asked, allowed = _split(uri), _split(registered)
    if asked is None or allowed is None or not (_is_loopback(asked) and _is_loopback(allowed)):
        return False
    # "http://localhost/cb?" and "http://localhost/cb" differ: compare the delimiter too.
    return asked.path == allowed.path and ("?" in uri) == ("?" in registered) and asked.query == allowed.query


def redirect_uri_allowed(application, uri: str) -> bool:
    """Whether an authorization request for ``application`` may name ``uri`` as its redirect URI."""
    try:
        if application.redirect_uri_allowed(uri):
            return True
    except ValueError:  # a malformed port in a registered URI; the loopback check skips those
        pass
    return any(loopback_match(uri, registered) for registered in application.redirect_uris.split())
