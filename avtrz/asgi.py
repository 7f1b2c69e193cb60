"""The one ASGI application that serves the whole product.

HTTP goes to Django (behind the `/v1/avatar` fast path), except the MCP endpoint, which the MCP
SDK's app answers at `/mcp` and `/mcp/` alike (some clients do not follow a redirect). The
lifespan runs the MCP session manager, which must be running before it can serve a request, and
at shutdown stores the usage counted since the last flush.
Every HTTP request gets its request id (`avtrz.lib.logs.RequestIdApp`) before anything answers it,
the fast path's and `/mcp`'s answers included. WebSockets (the dashboard's live updates) go to
Channels, routed in `workspaces.routing`.
"""

import os

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.asgi import get_asgi_application
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "avtrz.settings")

django_application = get_asgi_application()

from avtrz.avatars.fastpath import AvatarFastPath  # noqa: E402  (needs Django set up first)
from avtrz.lib.logs import RequestIdApp  # noqa: E402
from mcpserver import app as mcp  # noqa: E402
from workspaces import routing as websockets  # noqa: E402
from workspaces import usage  # noqa: E402


mcp_application = mcp.build()


async def route(scope, receive, send):
    if scope["type"] == "http":
        if scope["path"] in mcp.PATHS:
            await mcp_application.app(scope, receive, send)
        else:
            await django_application(scope, receive, send)
    elif scope["type"] == "websocket":
        await websockets.application(scope, receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)
    else:
        raise ValueError(f"Unsupported ASGI scope type {scope['type']!r}")


fast_path = AvatarFastPath(route)
# The request id first, and the fast path's replays straight from memory (each layer below would cost a
# hit about as much as its bucket admission); anything else goes down the layers.
application: RequestIdApp | ProxyHeadersMiddleware = RequestIdApp(fast_path, answer_now=fast_path.answer_now)
if settings.TRUSTED_PROXY_IPS:
    # The client's address and scheme from X-Forwarded-For/-Proto, only when the peer is one of our proxies;
    # outermost, so that uvicorn's access line shows the client's address for the fast path's answers too.
    # With no proxy configured it would believe no one and change nothing, at a cost on every request.
    application = ProxyHeadersMiddleware(application, trusted_hosts=settings.TRUSTED_PROXY_IPS)


async def _lifespan(receive, send):
    await receive()  # lifespan.startup
    async with mcp_application.lifespan:
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
    await sync_to_async(usage.flush_at_shutdown, thread_sensitive=False)()
    await send({"type": "lifespan.shutdown.complete"})
