"""This process's Redis client: bounded waits, no silent retries.

Every Redis call on a request's path goes through a client from here. A Redis that stalls (packets
dropped, a failover in progress) accepts connections and then answers nothing, so only a socket
timeout ends the wait: each connect and each read gives up after REDIS_TIMEOUT_S. redis-py's own
default would retry a timed-out call ten times with backoff (over ten seconds for one call); callers
here fail open or fall back to the database instead, so a call is tried once.
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry


_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def connect(**options) -> redis.Redis:
    """A new client of REDIS_URL with its own connection pool (e.g. for a pub/sub listener)."""
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=settings.REDIS_TIMEOUT_S,
        socket_connect_timeout=settings.REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


def client() -> redis.Redis:
    """The process's shared client of REDIS_URL (thread-safe: it pools connections)."""
    with _lock:
        if settings.REDIS_URL not in _clients:
            _clients[settings.REDIS_URL] = connect()
        return _clients[settings.REDIS_URL]
