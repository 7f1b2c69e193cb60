"""Bearer authentication of the MCP endpoint against django-oauth-toolkit's access tokens.

The SDK's own bearer middleware answers every failure with "Authentication required"; the product
promises "Not authenticated" for a token that no longer works, so the user knows to reconnect.
This layer answers 401 itself (RFC 6750 §3, RFC 9728 §5.1) and, for a valid token, puts the
connection's workspace in the ASGI scope, where the tools read it.

Every challenge names the scopes to request (`scope="..."`, RFC 6750 §3): MCP clients take their
scopes from the challenge first (the authorization spec's scope selection strategy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from oauth2_provider.models import AbstractAccessToken
from starlette.types import ASGIApp, Receive, Scope, Send

from accounts.connections import workspace_for_access_token
from accounts.oauth import RESOURCE_SCOPES
from workspaces.models import Workspace


SCOPE_KEY = "avtrz.connection"
NOT_AUTHENTICATED = "Not authenticated"


@dataclass(frozen=True)
class BoundConnection:
    """Who a request acts for: the workspace its token was bound to at consent."""

    workspace: Workspace
    access_token: AbstractAccessToken


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
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _bearer_token(scope)
        if token is None:
            # No credentials yet: no error code, just where to start.
            return await _unauthorized(send, challenge())
        found = await sync_to_async(_verify)(token)
        if found is None:
            return await _unauthorized(send, challenge(error="invalid_token"), error="invalid_token")
        access_token, workspace = found
        try:
            await self.app({**scope, SCOPE_KEY: BoundConnection(workspace, access_token)}, receive, send)
        finally:
            # What Django does when a request finishes: drop a connection past CONN_MAX_AGE or broken.
            await sync_to_async(close_old_connections)()


def _verify(token: str):
    close_old_connections()  # as Django does when a request starts
    return workspace_for_access_token(token)


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
