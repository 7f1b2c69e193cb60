"""WebSocket routes, mounted by avtrz.asgi for every `websocket` scope.

Sessions authenticate the socket like a page view (AuthMiddlewareStack), and the Origin must be one
of ALLOWED_HOSTS, so another site cannot open a socket with the user's cookies."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from workspaces.consumers import WorkspaceConsumer


# Channels routes ASGI apps with Django's path(); django-stubs types path() for views, channels-stubs
# wants its own pattern type in URLRouter: neither knows the other.
websocket_urlpatterns = [
    path("ws/w/<slug:slug>/", WorkspaceConsumer.as_asgi()),  # type: ignore[arg-type]
]

application = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))  # type: ignore[arg-type]
