"""Bearer authentication of the MCP endpoint against django-oauth-toolkit's access tokens.

The SDK's own bearer middleware answers every failure with "Authentication required"; the product
promises "Not authenticated" for a token that no longer works, so the user knows to reconnect.
This layer answers 401 itself (RFC 6750 §3, RFC 9728 §5.1) and, for a valid token, puts the
connection's workspace in the ASGI scope, where the tools read it.

A token this process checked before is answered from its memory on the event loop (no I/O); any
other goes to the warm lane (`mcpserver.lanes`), which asks Redis and then the database. Either way
the expiry is compared with the clock here, so an expired token is refused without a query.

Every challenge names the scopes to request (`scope="..."`, RFC 6750 §3): MCP clients take their
scopes from the challenge first (the authorization spec's scope selection strategy).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from starlette.types import ASGIApp, Receive, Scope, Send

from accounts.connections import cached_token_grant, token_grant
from accounts.oauth import RESOURCE_SCOPES
from mcpserver import lanes
from workspaces.models import Workspace


SCOPE_KEY = "avtrz.connection"
NOT_AUTHENTICATED = "Not authenticated"


@dataclass(frozen=True)
class BoundConnection:
    """Who a request acts for: the workspace its token was bound to at consent."""

    workspace: Workspace


def resource_metadata_url() -> str:
    return f"{settings.PUBLIC_BASE_URL}/.well-known/oauth-protected-resource/mcp"


def challenge(*, error: str | None = None) -> str:
    """The `WWW-Authenticate` value: no error code when no token was sent (RFC 6750 §3.1)."""
    params = [f'error="{error}"', f'error_description="{NOT_AUTHENTICATED}"'] if error else []
    params += [f'resource_metadata="{resource_metadata_url()}"', f'scope="{" ".join(RESOURCE_SCOPES)}"']
    return "Bearer " + ", ".join(params)


def bound_connection(scope: Scope) -> BoundConnection:
    return scope[SCOPE_KEY]


class BearerAuth:
    def __init__(self, app: ASGIApp, *, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _bearer_token(scope)
        if token is None:
            # No credentials yet: no error code, just where to start.
            return await _unauthorized(send, challenge())
        grant = cached_token_grant(token, local_only=True) or await lanes.warm().run(token_grant, token)
        if grant is None or not grant.is_live(self.clock()):
            return await _unauthorized(send, challenge(error="invalid_token"), error="invalid_token")
        await self.app({**scope, SCOPE_KEY: BoundConnection(grant.workspace)}, receive, send)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    return None


async def _unauthorized(send: Send, www_authenticate: str, *, error: str = "unauthorized") -> None:
    body = json.dumps({"error": error, "error_description": NOT_AUTHENTICATED}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", www_authenticate.encode("latin-1")),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
