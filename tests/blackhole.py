"""A TCP proxy for fault tests that can stop forwarding without refusing: a service that stalls.

A stopped service refuses connections at once; a stalled one (packets dropped, a failover in
progress) accepts them, or keeps the ones it has, and then answers nothing, so only timeouts end a
client's wait. `BlackHole` listens on 127.0.0.1 and forwards to a target while it `flows`; after
`stall()` it still accepts connections but passes no byte either way, on new connections and on the
ones already open, until `flow()` lets everything through again (what was sent meanwhile included),
which shows recovery.

    with BlackHole("127.0.0.1", 6379) as hole:
        url = f"redis://127.0.0.1:{hole.port}/9"
        hole.stall()
        ...
        hole.flow()
"""

from __future__ import annotations

import socket
import threading


CHUNK = 65536


class BlackHole:
    def __init__(self, target_host: str, target_port: int, *, flowing: bool = True) -> None:
        self.target = (target_host, target_port)
        self._flowing = threading.Event()
        if flowing:
            self._flowing.set()
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0  # connections clients opened, stalled or not

    def __enter__(self) -> BlackHole:
        threading.Thread(target=self._accept, name="blackhole-accept", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stall(self) -> None:
        """Accept and keep connections, forward nothing."""
        self._flowing.clear()

    def flow(self) -> None:
        """Forward again, on every connection."""
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()  # let waiting threads see the end
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)
            self._sockets.clear()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            if self._closed.is_set():
                _close(sock)
                raise OSError("proxy closed")
            self._sockets.add(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._connect, args=(client,), name="blackhole-conn", daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            self._track(client)
            self._flowing.wait()  # a stalled service does not even reach its backend
            if self._closed.is_set():
                return
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            self._track(upstream)
        except OSError:
            _close(client)
            return
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), name="blackhole-pump", daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                self._flowing.wait()  # held here, not dropped: it arrives when the proxy flows again
                if self._closed.is_set():
                    break
                sink.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
