"""A two-level cache for what every `/v1/avatar` hit reads: key contexts and profile cards.

Level 2 is Django's cache (Redis in production): shared, the source of truth for cached values.
Level 1 is this process's memory, so a hit costs no network round trip at all. Level 1 is only
trusted while this process is subscribed to the invalidation channel: every `set` and `delete`
publishes the key, and every process drops it from level 1 when the message arrives, so a revoked
key stops working everywhere within milliseconds. If the subscription drops, level 1 is cleared and
bypassed until it is back. Without Redis (the embedded default) Django's cache is already in this
process and level 1 is skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError


log = logging.getLogger(__name__)

L1_TTL_S = 60.0
MISSING = object()


class _Level1:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[Any, float]] = {}
        self.generation = 0  # bumped by every invalidation: a read that raced one is not kept
        self.live = False  # subscribed to invalidations

    def get(self, key: str) -> Any:
        found = self._values.get(key)
        if found is None or found[1] < time.monotonic():
            return MISSING
        return found[0]

    def put(self, key: str, value: Any, generation: int) -> None:
        with self._lock:
            if self.live and generation == self.generation:
                self._values[key] = (value, time.monotonic() + L1_TTL_S)

    def drop(self, key: str | None) -> None:
        with self._lock:
            self.generation += 1
            if key is None:
                self._values.clear()
            else:
                self._values.pop(key, None)


_level1 = _Level1()
_listener_started = threading.Lock()
_listener: threading.Thread | None = None
# Deletes that could not reach Redis; retried before level 1 is trusted again.
_pending_deletes: set[str] = set()


def _channel() -> str:
    return f"{settings.AVTRZ_COUNTER_PREFIX}invalidate"


def _listen(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, health_check_interval=10)
    while True:
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(_channel())
            _retry_pending_deletes()
            _level1.drop(None)
            _level1.live = True
            for message in pubsub.listen():
                _level1.drop(message["data"].decode())
        except Exception as exc:  # any failure: stop trusting level 1, then resubscribe
            log.warning("cache invalidation channel lost (%s); level-1 cache off until it is back", exc)
        _level1.live = False
        _level1.drop(None)
        time.sleep(1)


def _ensure_listener() -> None:
    global _listener
    if _listener is not None or not settings.REDIS_URL:
        return
    with _listener_started:
        if _listener is None:
            _listener = threading.Thread(target=_listen, args=(settings.REDIS_URL,), name="avtrz-l1", daemon=True)
            _listener.start()


def generation() -> int | None:
    """A number that changes whenever any cached value may have changed anywhere, or None when this
    process cannot know that (Redis is configured but the invalidation channel is down)."""
    if settings.REDIS_URL and not _level1.live:
        return None
    return _level1.generation


def get(key: str, local_only: bool = False) -> Any:
    """The cached value, or None when there is none or the cache cannot be reached: callers then
    take the database path, slower but correct. `local_only` answers from this process's memory
    alone (level 1 when Redis is configured), never waiting on the network: for the event loop."""
    value = _level1.get(key) if _level1.live else MISSING
    if value is not MISSING:
        return value
    if local_only and settings.REDIS_URL:
        return None
    _ensure_listener()
    generation = _level1.generation
    try:
        value = cache.get(key)
    except RedisError:
        return None
    if value is not None:
        _level1.put(key, value, generation)
    return value


def set(key: str, value: Any, timeout: float) -> None:  # noqa: A001 (mirrors the cache API)
    try:
        cache.set(key, value, timeout)
    except RedisError:
        _pending_deletes.add(key)  # whatever Redis holds for it now is not this value
    _invalidate(key)


def delete(key: str) -> None:
    delete_many([key])


def delete_many(keys: list[str]) -> None:
    try:
        cache.delete_many(keys)
    except RedisError:
        _pending_deletes.update(keys)
    for key in keys:
        _invalidate(key)


def _invalidate(key: str) -> None:
    _level1.drop(key)
    if settings.REDIS_URL:
        from workspaces.usage import redis_client

        try:
            redis_client().publish(_channel(), key)
        except RedisError:
            pass  # the other processes' listeners lost Redis too: their level 1 is off until it is back


def _retry_pending_deletes() -> None:
    while _pending_deletes:
        key = _pending_deletes.pop()
        try:
            cache.delete(key)
        except RedisError:
            _pending_deletes.add(key)
            raise
