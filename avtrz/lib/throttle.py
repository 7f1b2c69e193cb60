"""A small fixed-window counter over the cache, shared by every rate limit that is not hot.

The cache is Redis in production, so limits hold across processes; `incr` is atomic there. When the
cache cannot be reached these limits fail open (count zero): refusing every sign-in or registration
because Redis is down would turn a cache outage into a full outage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.cache import cache
from django.http import HttpRequest
from redis.exceptions import RedisError


@dataclass(frozen=True)
class Window:
    count: int
    retry_after: int  # seconds until the current window ends


def _key(scope: str, ident: str, window_s: int) -> tuple[str, int]:
    now = int(time.time())
    start = now - now % window_s
    return f"throttle:{scope}:{ident}:{start}", start + window_s - now


def hit(scope: str, ident: str, window_s: int) -> Window:
    """Count one event and return the count in the current window."""
    key, remaining = _key(scope, ident, window_s)
    try:
        if cache.add(key, 1, timeout=window_s + 1):
            return Window(1, remaining)
        try:
            return Window(cache.incr(key), remaining)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window_s + 1)
            return Window(1, remaining)
    except RedisError:
        return Window(0, remaining)


def peek(scope: str, ident: str, window_s: int) -> Window:
    key, remaining = _key(scope, ident, window_s)
    try:
        return Window(cache.get(key, 0), remaining)
    except RedisError:
        return Window(0, remaining)


def reset(scope: str, ident: str, window_s: int) -> None:
    try:
        cache.delete(_key(scope, ident, window_s)[0])
    except RedisError:
        pass  # the window expires by itself


def client_ip(request: HttpRequest) -> str:
    """The caller's address. Behind a proxy, REMOTE_ADDR is set from a trusted header upstream."""
    return request.META.get("REMOTE_ADDR", "") or "unknown"
