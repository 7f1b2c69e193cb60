"""This process's Redis client: bounded waits, no silent retries, no waiting twice on a stall.

Every Redis call on a request's path goes through a client from here (or Django's cache, which uses
the same connection class). A Redis that stalls (packets dropped, a failover in progress) accepts
connections and then answers nothing, so only a socket timeout ends the wait: each connect and each
read gives up after REDIS_TIMEOUT_S. redis-py's own default would retry a timed-out call ten times
with backoff (over ten seconds for one call); callers here fail open or fall back to the database
instead, so a call is tried once. And once a call to a Redis timed out, calls to it fail at once for
STALL_PAUSE_S instead of each waiting out its own timeout; the first call after the pause tries again.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.exceptions import TimeoutError as RedisTimeout
from redis.retry import Retry


STALL_PAUSE_S = 2.0
_paused_until: dict[tuple[str, int], float] = {}  # (host, port) -> _clock() time
_clock = time.monotonic  # tests move their own


class StallBreakerConnection(redis.Connection):
    """A connection that fails at once while its server timed out moments ago (see above)."""

    def _wait_allowed(self) -> None:
        if _paused_until.get((self.host, self.port), 0.0) > _clock():
            raise RedisTimeout(f"Redis at {self.host}:{self.port} timed out moments ago; not waiting on it again yet")

    def _timed_out(self) -> None:
        _paused_until[(self.host, self.port)] = _clock() + STALL_PAUSE_S

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        self._wait_allowed()
        try:
            return super().connect_check_health(*args, **kwargs)
        except RedisTimeout:
            self._timed_out()
            raise

    def send_packed_command(self, command: str | bytes | list[bytes], check_health: bool = True) -> None:
        self._wait_allowed()
        try:
            return super().send_packed_command(command, check_health)
        except RedisTimeout:
            self._timed_out()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except RedisTimeout:
            self._timed_out()
            raise


_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def connect(**options: Any) -> redis.Redis:
    """A new client of REDIS_URL with its own connection pool (e.g. for a pub/sub listener)."""
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=settings.REDIS_TIMEOUT_S,
        socket_connect_timeout=settings.REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
        connection_class=StallBreakerConnection,
        **options,
    )


def client() -> redis.Redis:
    """The process's shared client of REDIS_URL (thread-safe: it pools connections)."""
    with _lock:
        if settings.REDIS_URL not in _clients:
            _clients[settings.REDIS_URL] = connect()
        return _clients[settings.REDIS_URL]
