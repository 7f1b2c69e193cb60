"""A small fixed-window counter over the cache, shared by every rate limit that is not hot.

The cache is Redis in production, so limits hold across processes; `incr` is atomic there. When the
cache cannot be reached these limits fail open (count zero): refusing every sign-in or registration
because Redis is down would turn a cache outage into a full outage.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.http import HttpRequest
from redis.exceptions import RedisError


@dataclass(frozen=True)
class Window:
    count: int
    retry_after: int  # seconds until the current window ends


# A window opens at its first event and lasts `window_s` from there. Windows cut at fixed clock times
# (every five minutes on the minute) let a burst straddling a boundary count as two windows' worth, and a
# caller who learns the boundary double the limit. The count is one key (`incr` counts atomically), the
# window's end another: the end decides when a window is over (the keys' expiry only cleans up).
# Two first events at the same instant may both open the window: the limit is then one event late.
def _keys(scope: str, ident: str) -> tuple[str, str]:
    key = f"throttle:{scope}:{ident}"
    return key, f"{key}:ends"


def _open(count_key: str, ends_key: str, now: float, window_s: int) -> Window:
    cache.set_many({ends_key: now + window_s, count_key: 1}, timeout=window_s)
    return Window(1, window_s)


def hit(scope: str, ident: str, window_s: int) -> Window:
    """Count one event and return the count in the current window."""
    count_key, ends_key = _keys(scope, ident)
    now = time.time()
    try:
        ends = cache.get(ends_key)
        if ends is None or now >= ends:
            return _open(count_key, ends_key, now, window_s)
        try:
            count = cache.incr(count_key)
        except ValueError:  # the count expired a moment before the window's end
            return _open(count_key, ends_key, now, window_s)
    except RedisError:
        return Window(0, window_s)
    return Window(count, max(1, math.ceil(ends - now)))


def peek(scope: str, ident: str, window_s: int) -> Window:
    count_key, ends_key = _keys(scope, ident)
    now = time.time()
    try:
        found = cache.get_many([count_key, ends_key])
    except RedisError:
        return Window(0, window_s)
    ends = found.get(ends_key)
    if ends is None or now >= ends:
        return Window(0, window_s)
    return Window(found.get(count_key, 0), max(1, math.ceil(ends - now)))


def reset(scope: str, ident: str) -> None:
    try:
        cache.delete_many(list(_keys(scope, ident)))
    except RedisError:
        pass  # the window expires by itself


def client_ip(request: HttpRequest) -> str:
    """The caller's address. Behind a proxy, REMOTE_ADDR is set from a trusted header upstream."""
    return request.META.get("REMOTE_ADDR", "") or "unknown"
