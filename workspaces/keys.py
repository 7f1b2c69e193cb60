"""What the avatar API needs to know about a key, served from the cache so a hit costs no query.

A `KeyContext` is everything the request path decides with: the key's kind and domains, the
workspace's plan limits and its current usage period. It is cached under the key's digest until
the period ends (at most an hour) and dropped the moment the key, its domains or the plan change.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from avtrz.lib import hotcache, throttle
from avtrz.lib.hosts import host_matches
from workspaces.models import ApiKey, Workspace, key_digest
from workspaces.usage import Meter, meter_for


CACHE_PREFIX = "apikey:"
MAX_TTL = 3600
# Unknown keys are remembered briefly, so guessing keys cannot turn into a database load.
UNKNOWN_TTL = 60
UNKNOWN = "unknown"
# Invalid keys counted per client address (avtrz.lib.throttle), so cycling new random keys, each of
# which misses the cache above and reaches the database, is cut off after a few dozen tries.
GUESS_SCOPE = "invalid-key"


@dataclass(frozen=True)
class KeyContext:
    key_id: int
    kind: str
    allowed_domains: tuple[str, ...]
    meter: Meter
    # A rotated key's end (epoch seconds): past it the key stops on every worker, whatever is cached.
    expires_at: float | None = None

    @property
    def is_secret(self) -> bool:
        return self.kind == ApiKey.Kind.SECRET

    def allows(self, origin: str | None, referer: str | None) -> bool:
        """Publishable keys with an allow-list only answer pages on those hosts."""
        if self.is_secret or not self.allowed_domains:
            return True
        host = origin_host(origin, referer)
        return host is not None and host_matches(host, self.allowed_domains)


@functools.lru_cache(maxsize=4096)  # a SHA-256 per hit adds up; the same keys come back all day
def cache_key(raw: str) -> str:
    return CACHE_PREFIX + key_digest(raw)


def origin_host(origin: str | None, referer: str | None) -> str | None:
    """The page's host from `Origin`, else from `Referer` (browsers send one or the other for images)."""
    for value in (origin, referer):
        if value and value != "null":
            try:
                host = urlsplit(value).hostname
            except ValueError:  # a malformed header names no page
                continue
            if host:
                return host.rstrip(".").lower()
    return None


def cached_context(raw: str, local_only: bool = False) -> KeyContext | str | None:
    """The cached context, `UNKNOWN` for a key known not to exist, None when the cache has no answer
    (`local_only`: no answer without a network round trip, see `hotcache.get`)."""
    return _still_current(hotcache.get(cache_key(raw), local_only=local_only))


def _still_current(found: KeyContext | str | None) -> KeyContext | str | None:
    if isinstance(found, KeyContext) and found.meter.period_ends_at <= time.time():
        return None  # the cycle rolled over: reload limits and the new period
    if isinstance(found, KeyContext) and found.expires_at is not None and found.expires_at <= time.time():
        return None  # a rotated key's grace ended: the database says it is gone
    return found


def context_for(key: ApiKey) -> KeyContext:
    return KeyContext(
        key_id=key.pk,
        kind=key.kind,
        allowed_domains=tuple(key.allowed_domains),
        meter=meter_for(key.workspace),
        expires_at=key.expires_at.timestamp() if key.expires_at else None,
    )


def load_context(raw: str) -> KeyContext | None:
    """The key's context from the cache, else from the database (and then cached, unless the key was
    revoked or changed while it was read: what was read then is not written back)."""
    found, version = hotcache.read(cache_key(raw))
    found = _still_current(found)
    if found is not None:
        return None if isinstance(found, str) else found  # the one string cached is UNKNOWN
    key = ApiKey.objects.for_key(raw)
    if key is None:
        hotcache.set_if_current(cache_key(raw), UNKNOWN, UNKNOWN_TTL, version)
        return None
    context = context_for(key)
    ends = min(context.meter.period_ends_at, context.expires_at or context.meter.period_ends_at)
    ttl = max(1, min(MAX_TTL, int(ends - time.time())))
    hotcache.set_if_current(cache_key(raw), context, ttl, version)
    return context


def guessing_retry_after(client_ip: str, raw: str) -> int:
    """Seconds until `client_ip` may try keys again, once it sent AVTRZ_INVALID_KEY_LIMIT invalid
    keys in a window; 0 when it may go on. A key already cached as valid always passes: the fast
    path would serve it anyway, and callers with working keys are not held back by someone guessing
    from the same address. Checked before the key is looked up, so a blocked guesser learns nothing."""
    if isinstance(cached_context(raw), KeyContext):
        return 0
    window = throttle.peek(GUESS_SCOPE, client_ip, settings.AVTRZ_INVALID_KEY_WINDOW_S)
    return max(1, window.retry_after) if window.count >= settings.AVTRZ_INVALID_KEY_LIMIT else 0


def note_invalid_key(client_ip: str) -> None:
    throttle.hit(GUESS_SCOPE, client_ip, settings.AVTRZ_INVALID_KEY_WINDOW_S)


def connector_cache_key(workspace_id: int) -> str:
    """Where the MCP tools keep the workspace's AI connector key in clear (mcpserver.lookups.connector)."""
    return f"mcp:connector-key:{workspace_id}"


def forget_key(key: ApiKey) -> None:
    hotcache.delete(CACHE_PREFIX + key.digest)


def forget_workspace_keys(workspace: Workspace) -> None:
    """Drop every cached context of the workspace (plan or period changed)."""
    digests = workspace.api_keys.values_list("digest", flat=True)
    hotcache.delete_many([CACHE_PREFIX + digest for digest in digests])
