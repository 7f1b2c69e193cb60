"""A loopback HTTP/1.1 proxy that adds `Authorization: Bearer <token>` to every request it forwards.

The conformance suite cannot send a bearer token, and the MCP endpoint answers 401 without one.
The proxy works on bytes, not on a parsed request: it inserts one header line after the request
line and otherwise forwards the request exactly as the suite wrote it (header names, their case,
whitespace around values, duplicates), so what the server sees is what the suite sent. Each
connection carries one request (`Connection: close` upstream), so no HTTP framing is parsed.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager


HEADER_LIMIT = 64 * 1024


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _rewrite(head: bytes, token: str) -> bytes:
    """The request head with our Authorization header and `Connection: close`, nothing else changed."""
    request_line, _, rest = head.partition(b"\r\n")
    lines = [line for line in rest.split(b"\r\n") if line]
    kept = [line for line in lines if line.split(b":", 1)[0].strip().lower() not in (b"authorization", b"connection")]
    added = [f"Authorization: Bearer {token}".encode(), b"Connection: close"]
    return b"\r\n".join([request_line, *added, *kept]) + b"\r\n\r\n"


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        client: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk or len(head) > HEADER_LIMIT:
                return
            head += chunk
        head, _, body_start = head.partition(b"\r\n\r\n")
        with socket.create_connection(self.server.upstream, timeout=120) as upstream:
            upstream.sendall(_rewrite(head + b"\r\n\r\n", self.server.token) + body_start)
            forward = threading.Thread(target=_pipe, args=(client, upstream), daemon=True)
            forward.start()
            _pipe(upstream, client)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: tuple[str, int], token: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.token = token


@contextmanager
def bearer_proxy(upstream_port: int, token: str) -> Iterator[int]:
    """Run the proxy in front of 127.0.0.1:`upstream_port`; yields the port it listens on."""
    server = _Server(("127.0.0.1", upstream_port), token)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
