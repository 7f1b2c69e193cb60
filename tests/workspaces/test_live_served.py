"""The dashboard's WebSocket on the real server (uvicorn, the Redis channel layer): browsers that leave, by
closing the page or by their connection just dropping, leave nothing behind. The server's Redis connections
do not grow with the number of pages that came and went, every page leaves the workspace's group, a page
opened afterwards still hears a push, and the server still stops at once when asked (a consumer whose
channel-layer receive never ended would hold uvicorn's graceful shutdown for good)."""

import json
import socket
import struct
from base64 import b64encode
from os import urandom
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from accounts.connections import revoke_connection
from tests import services
from workspaces import live


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

BATCHES = 10  # of `_batch`, after a first one
PAGES_AT_ONCE = 3
SETTLE_S = 10.0


def _layer(url: str) -> dict:
    """The served app's channel layer (avtrz.settings with REDIS_URL), for this process's pushes."""
    return {
        "default": {
            "BACKEND": "avtrz.lib.channel_layer.CancellableRedisChannelLayer",
            "CONFIG": {"hosts": [{"address": url, "socket_connect_timeout": 1}], "prefix": "avtrz:ch"},
        }
    }


def _local_ports_to(pid: int, port: int) -> set[int]:
    """The local ports of `pid`'s TCP connections to `port` (Linux: /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:  # closed while listed
            continue
        if str(target).startswith("socket:["):
            inodes.add(str(target)[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == port:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _server_clients(pid: int, client: redis.Redis, redis_port: int) -> list[dict]:
    """What Redis's CLIENT LIST shows of the server process's connections."""
    ports = _local_ports_to(pid, redis_port)
    return [entry for entry in client.client_list() if int(entry["addr"].rsplit(":", 1)[1]) in ports]


def blocked(entries: list[dict]) -> list[dict]:
    """Connections waiting in a blocking command: a channel-layer receive's BZPOPMIN."""
    return [entry for entry in entries if "b" in entry["flags"]]


class Pages:
    """Dashboard pages of one server: opened with a browser's Origin and, for a member, its session."""

    def __init__(self, base: str, slug: str, sessionid: str | None) -> None:
        self.base, self.path, self.sessionid = base, f"/ws/w/{slug}/", sessionid
        self.port = urlsplit(base).port

    def _headers(self) -> dict[str, str]:
        return {"Cookie": f"sessionid={self.sessionid}"} if self.sessionid else {}

    def open(self):
        """A page with the websockets client (closed cleanly with `close()`)."""
        return connect(f"ws://127.0.0.1:{self.port}{self.path}", origin=self.base, additional_headers=self._headers())

    def open_raw(self) -> socket.socket:
        """A page over a bare TCP socket after the RFC 6455 handshake, to be dropped without a close frame."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        key = b64encode(urandom(16)).decode()
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            f"Origin: {self.base}",
            *(f"{name}: {value}" for name, value in self._headers().items()),
        ]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, f"the server closed during the handshake: {answer!r}"
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 101"), answer
        return sock


def _drop(sock: socket.socket, *, reset: bool) -> None:
    """The browser's connection goes away without a close frame: a FIN, or a RST (linger 0)."""
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _batch(member: Pages, visitor: Pages, turn: int) -> None:
    """PAGES_AT_ONCE (3) member pages open at once, then gone: closed, dropped (FIN), reset (RST), each first in turn;
    and a visitor without a session, refused."""
    with member.open() as clean:
        dropped, reset = member.open_raw(), member.open_raw()
        ways = [clean.close, lambda: _drop(dropped, reset=False), lambda: _drop(reset, reset=True)]
        for leave in ways[turn % 3 :] + ways[: turn % 3]:
            leave()
    with pytest.raises(InvalidStatus) as refused:
        visitor.open()
    assert refused.value.response.status_code == 403


def test_pages_that_leave_leave_nothing_behind(alice, acme, make_connection, settings, tmp_path):
    url = services.redis_url()
    redis_port = urlsplit(url).port or 6379
    settings.CHANNEL_LAYERS = _layer(url)  # this process's pushes reach the server's pages
    monitor = redis.Redis.from_url(url)
    group = f"avtrz:ch:group:{live.group_name(acme.pk)}"
    connection, _token = make_connection(alice, acme)

    port = services.free_port()
    base = f"http://127.0.0.1:{port}"
    environment = services.server_env(REDIS_URL=url, PUBLIC_BASE_URL=base, MEDIA_ROOT=str(tmp_path / "media"))
    log = tmp_path / "server.log"
    with services.running(services.uvicorn_cmd(port), env=environment, port=port, log=log) as server:
        member = Pages(base, "acme", services.sign_in(base, alice).cookies["sessionid"])
        visitor = Pages(base, "acme", None)

        def clients() -> list[dict]:
            return _server_clients(server.pid, monitor, redis_port)

        outside = set(monitor.zrange(group, 0, -1))  # a previous run's leftovers in this Redis database, if any

        def left() -> bool:
            return set(monitor.zrange(group, 0, -1)) <= outside

        # A first batch: the server's pools then hold what three pages at once take.
        _batch(member, visitor, 0)
        services.wait_until(left, SETTLE_S, "the first pages to leave the group")
        before = clients()

        for turn in range(1, BATCHES + 1):
            _batch(member, visitor, turn)

        # Every page left the group (its disconnect ran); no receive of theirs still blocks in Redis (BZPOPMIN);
        # and the server's connections are what pages at once take (its pools may grow to that), not one
        # more per page that came and went.
        def settled() -> bool:
            now = clients()
            return left() and not blocked(now) and len(now) <= len(before) + PAGES_AT_ONCE

        services.wait_until(
            settled,
            SETTLE_S,
            lambda: (
                f"every page to leave: after {3 * BATCHES} pages came and went, "
                f"{len(monitor.zrange(group, 0, -1)) - len(outside)} are still in the group; the server's Redis "
                f"connections went from {len(before)} to {len(clients())}, {len(blocked(clients()))} blocked: "
                f"{[entry['cmd'] for entry in clients()]}"
            ),
        )

        with member.open() as page:
            revoke_connection(actor=alice, connection=connection)
            message = json.loads(page.recv(timeout=10))
        assert message["kind"] == "connections"
        assert message["data"]["connections"] == 0

        # No consumer is left running: uvicorn's graceful shutdown waits for every one.
        server.terminate()
        services.wait_until(
            lambda: server.poll() is not None, SETTLE_S, lambda: f"the server to stop: {log.read_text()[-1500:]}"
        )
    monitor.close()
