"""A real HTTP(S) server on 127.0.0.1 for tests that must cross a socket.

Register routes, point the code under test at :meth:`FixtureServer.url`, and inspect what it
sent in :attr:`FixtureServer.requests`::

    with FixtureServer() as server:
        server.route("/photo.jpg", body=b"...", headers={"Content-Type": "image/jpeg"})
        server.redirect("/old", "/photo.jpg")
        fetch(server.url("/old"), ...)

As a pytest fixture: ``server = fixture_server()`` at module (or conftest) level.

Routes match on the path only (the query is ignored). A route can delay its headers, send its
body in chunks with pauses (chunked transfer encoding, no Content-Length), or omit
Content-Length. Unknown paths answer 404. Everything binds to loopback only.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

import pytest


@dataclass(frozen=True)
class Route:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before sending the status line."""
    chunks: tuple[bytes, ...] | None = None
    """Send these with chunked transfer encoding instead of ``body``."""
    chunk_delay: float = 0.0
    """Seconds to wait before each chunk."""
    content_length: bool = True
    """Send Content-Length for ``body`` (False: close the connection to end the body)."""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    at: float = field(default_factory=time.monotonic)
    """When the request arrived (``time.monotonic()``), for tests that check the gap between tries."""


class FixtureServer:
    """A threaded HTTP server with a route table; optionally HTTPS with ``certfile``/``keyfile``."""

    def __init__(self, *, certfile: str | None = None, keyfile: str | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.fixture = self
        self.scheme = "http"
        if certfile:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certfile, keyfile)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fixture-server",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def route(self, path: str, **options: Any) -> Route:
        """Register (or replace) the answer for ``path``; options are :class:`Route` fields."""
        self.routes[path] = Route(**options)
        return self.routes[path]

    def redirect(self, path: str, location: str, status: int = 302) -> Route:
        return self.route(path, status=status, headers={"Location": location})

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a delay
        self._httpd.shutdown()
        self._httpd.server_close()

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def fixture_server(**server_options: Any) -> Any:
    """A pytest fixture (function scope) that yields a started :class:`FixtureServer`."""

    @pytest.fixture
    def _fixture() -> Iterator[FixtureServer]:
        with FixtureServer(**server_options) as server:
            yield server

    return _fixture


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fixture: FixtureServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out and hang up are what some tests are about: stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        fixture = self.server.fixture
        path = urlsplit(self.path).path
        fixture.requests.append(RecordedRequest("GET", self.path, dict(self.headers.items())))
        route = fixture.routes.get(path, Route(status=404, body=b"not found"))
        fixture.sleep(route.delay)
        self.send_response(route.status)
        for name, value in route.headers.items():
            self.send_header(name, value)
        if route.chunks is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in route.chunks:
                fixture.sleep(route.chunk_delay)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if route.content_length:
            self.send_header("Content-Length", str(len(route.body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(route.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging."""
