"""The MCP endpoint as one ASGI app, and the lifespan it needs, for `avtrz.asgi` to mount.

Stateless streamable HTTP: each POST carries everything needed to answer it (no session held in
a process), so any worker on any host serves any request. Responses are JSON, or SSE when the
client asks for a stream. Layers, outermost first: CORS (browser clients must read our 401
challenge and the MCP headers), bearer authentication, the HTTP door (`mcpserver.envelope`: POST
only, no idle streams, short errors for malformed messages), the SDK's transport.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from mcpserver.auth import BearerAuth
from mcpserver.envelope import StatelessHttp
from mcpserver.server import build_server


PATHS = frozenset({"/mcp", "/mcp/"})

# Browser-based clients that call the endpoint directly; hosted ones (Claude, ChatGPT) call it from
# their servers. A localhost origin is the MCP Inspector on the user's own machine. DNS rebinding,
# which the Origin check exists for, cannot reach a public server, and the bearer token is what
# authorizes a call.
CLIENT_ORIGINS = [
    "https://claude.ai",
    "https://claude.com",
    "https://chatgpt.com",
    "http://localhost:*",
    "http://127.0.0.1:*",
]


@dataclass(frozen=True)
class McpApp:
    app: ASGIApp
    lifespan: AbstractAsyncContextManager[None]


def transport_security() -> TransportSecuritySettings:
    """Answer only the hosts Django answers (the SDK refuses any other Host with 421)."""
    if "*" in settings.ALLOWED_HOSTS:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    # The SDK has no subdomain wildcards: Django's ".example.com" entries are not carried over.
    hosts = [host for host in settings.ALLOWED_HOSTS if not host.startswith(".")]
    public = urlsplit(settings.PUBLIC_BASE_URL)
    return TransportSecuritySettings(
        allowed_hosts=[*hosts, *(f"{host}:*" for host in hosts)],
        allowed_origins=[f"{public.scheme}://{public.netloc}", *CLIENT_ORIGINS],
    )


def build() -> McpApp:
    server = build_server()
    security = transport_security()
    server.streamable_http_app(stateless_http=True, json_response=True, transport_security=security)
    manager = server.session_manager
    door = StatelessHttp(manager.handle_request, security=security, max_body_size=manager.max_request_body_size)
    app = CORSMiddleware(
        BearerAuth(door),
        allow_origins=["*"],  # bearer tokens, never cookies: no credentials to protect
        # GET and DELETE stay allowed here so a browser client reads our 405 instead of a CORS failure.
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Accept",
            "Mcp-Session-Id",
            "MCP-Protocol-Version",
            "Last-Event-ID",
            "Mcp-Method",
            "Mcp-Name",
        ],
        expose_headers=["WWW-Authenticate", "Mcp-Session-Id", "MCP-Protocol-Version"],
        max_age=86400,
    )
    return McpApp(app=app, lifespan=manager.run())
