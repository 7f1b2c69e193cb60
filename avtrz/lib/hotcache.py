"""A two-level cache for what every `/v1/avatar` hit reads: key contexts and profile cards.

Level 2 is shared and the source of truth for cached values: Redis in production (`REDIS_URL`),
Django's in-process cache on the embedded default (where level 1 is skipped: level 2 is already in
this process). Level 1 is this process's memory, so a hit costs no network round trip at all.

Level 1 is only trusted while this process hears the invalidation channel: every write and delete
publishes the key, and every process drops it from level 1 when the message arrives, so a revoked
key stops working everywhere within milliseconds. A listener thread pings the channel every
PING_INTERVAL_S; when Redis has not answered for LIVENESS_S (refused, or stalled without a word),
level 1 is bypassed, and it is emptied before it is trusted again.

Two things keep a stale value from coming back:
- Writes are versioned. Each key has a write counter in level 2, bumped by every delete and every
  unconditional write. A loader reads the counter with the value (`read`), then the database, and
  stores what it found with `set_if_current`, which lands only if no invalidation happened meanwhile:
  a context read before a revocation, or a card read before an enrichment, is not written back.
- A delete that cannot reach Redis is kept pending: retried before that key is read or written
  here, and by the listener every PING_INTERVAL_S; until it succeeds this process trusts neither
  level for the key (readers take the database path).
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, cast

from django.conf import settings
from django.core.cache import cache as django_cache
from django.core.signals import setting_changed
from django.dispatch import receiver
from redis import Redis
from redis.client import PubSub
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout


log = logging.getLogger(__name__)

L1_TTL_S = 60.0
PING_INTERVAL_S = 1.0
LIVENESS_S = 3.0
# How long the first read in a process waits for the channel to answer (bounded like any Redis call).
STARTUP_WAIT_S = 1.0
# A key's write counter outlives its last bump by this much: far longer than any load that read it.
VERSION_TTL_S = 24 * 3600
MISSING = object()

# Stores the value only if the key's write counter is still the one the loader read.
_SET_IF_CURRENT = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

Version = int | None  # a key's write counter as read; None: unknown (Redis unreachable), never written back


class _Level1:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[Any, float]] = {}
        self.generation = 0  # bumped by every invalidation: a read that raced one is not kept

    def get(self, key: str, now: float) -> Any:
        found = self._values.get(key)
        if found is None or found[1] < now:
            return MISSING
        return found[0]

    def put(self, key: str, value: Any, generation: int) -> None:
        with self._lock:
            if generation == self.generation:
                self._values[key] = (value, self._clock() + L1_TTL_S)

    def replace(self, key: str, value: Any, generation: int) -> None:
        """This process just wrote `value`: keep it, unless something was invalidated since `generation`."""
        with self._lock:
            if generation == self.generation:
                self._values[key] = (value, self._clock() + L1_TTL_S)
            else:
                self._values.pop(key, None)
            self.generation += 1

    def drop(self, key: str | None) -> None:
        with self._lock:
            self.generation += 1
            if key is None:
                self._values.clear()
            else:
                self._values.pop(key, None)


class _RedisStore:
    """Level 2 in Redis: pickled values under `<prefix>hot:<key>`, write counters under `<prefix>hotv:<key>`."""

    def __init__(self, client: Callable[[], Redis], prefix: Callable[[], str]) -> None:
        self.client = client
        self.prefix = prefix

    def _keys(self, key: str) -> tuple[str, str]:
        prefix = self.prefix()
        return f"{prefix}hot:{key}", f"{prefix}hotv:{key}"

    def read(self, key: str) -> tuple[Any, int]:
        value, version = self.client().mget(*self._keys(key))
        # This client does not decode responses: a value is the bytes pickle.dumps wrote.
        return (None if value is None else pickle.loads(cast(bytes, value))), int(version or 0)  # noqa: S301 (our own Redis)

    def write(self, key: str, value: Any, timeout: float) -> None:
        value_key, version_key = self._keys(key)
        pipe = self.client().pipeline(transaction=True)
        pipe.set(value_key, pickle.dumps(value, pickle.HIGHEST_PROTOCOL), ex=max(1, int(timeout)))
        pipe.incr(version_key)
        pipe.expire(version_key, VERSION_TTL_S)
        pipe.execute()

    def write_if_current(self, key: str, value: Any, timeout: float, version: int) -> bool:
        data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        landed = self.client().eval(_SET_IF_CURRENT, 2, *self._keys(key), str(version), data, max(1, int(timeout)))
        return bool(landed)

    def delete_many(self, keys: Iterable[str]) -> None:
        pipe = self.client().pipeline(transaction=True)
        for key in keys:
            value_key, version_key = self._keys(key)
            pipe.delete(value_key)
            pipe.incr(version_key)
            pipe.expire(version_key, VERSION_TTL_S)
        pipe.execute()


class _ProcessStore:
    """Level 2 without Redis: Django's in-process cache; a lock makes the versioned write atomic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def read(self, key: str) -> tuple[Any, int]:
        return django_cache.get(key), django_cache.get(f"v:{key}", 0)

    def write(self, key: str, value: Any, timeout: float) -> None:
        with self._lock:
            django_cache.set(key, value, timeout)
            self._bump(key)

    def write_if_current(self, key: str, value: Any, timeout: float, version: int) -> bool:
        with self._lock:
            if django_cache.get(f"v:{key}", 0) != version:
                return False
            django_cache.set(key, value, timeout)
            return True

    def delete_many(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                django_cache.delete(key)
                self._bump(key)

    def _bump(self, key: str) -> None:
        django_cache.set(f"v:{key}", django_cache.get(f"v:{key}", 0) + 1, VERSION_TTL_S)


class HotCache:
    """The two levels for one process. `redis` (a client factory) None means the embedded default.

    The module functions below use the process's instance; tests build their own with a fake clock
    and drive the listener with `tick()` instead of a thread."""

    def __init__(
        self,
        redis: Callable[[], Redis] | None,
        *,
        prefix: Callable[[], str],
        subscriber: Callable[[], Redis] | None = None,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.subscriber = subscriber or redis
        self.clock = clock
        self.background = background
        self.level1 = _Level1(clock)
        self.store = _RedisStore(redis, prefix) if redis else _ProcessStore()
        self.sender = uuid.uuid4().hex[:12]  # names this process's invalidations, so it skips their echo
        # Deletes that could not reach Redis yet: key -> how many times one failed, so a retry that
        # ran (outside the lock) while another failure came in does not forget the newer one.
        self.pending: dict[str, int] = {}
        self._pending_lock = threading.Lock()
        self._heard_at = float("-inf")  # when the invalidation channel last answered
        self._pinged_at = float("-inf")
        self._pubsub: PubSub | None = None
        self._subscribed_at = float("-inf")
        self._listener: threading.Thread | None = None
        self._listener_started = threading.Lock()
        self._first_heard = threading.Event()

    # ------------------------------------------------------------ reading
    def trusted(self, now: float | None = None) -> bool:
        """Level 1 may answer: Redis is configured and the invalidation channel answered lately."""
        return self.redis is not None and (self.clock() if now is None else now) - self._heard_at < LIVENESS_S

    def _from_level1(self, key: str) -> Any:
        """The key's value in level 1 if it may be trusted, else MISSING (the hit path: one clock read)."""
        now = self.clock()
        return self.level1.get(key, now) if self.trusted(now) else MISSING

    def generation(self) -> int | None:
        return self.level1.generation if self.redis is None or self.trusted() else None

    def get(self, key: str, local_only: bool = False) -> Any:
        if self.pending and key in self.pending:
            if local_only or not self.retry_pending():
                return None  # Redis may still hold what was deleted: the database answers
        if local_only and self.redis is not None:
            value = self._from_level1(key)
            return None if value is MISSING else value
        return self.read(key)[0]

    def read(self, key: str) -> tuple[Any, Version]:
        """The value (None when there is none) and the key's write counter, for `set_if_current`
        (None, so nothing is written back, when the value came from level 1 or Redis is away)."""
        if self.pending and key in self.pending and not self.retry_pending():
            return None, None
        if (value := self._from_level1(key)) is not MISSING:
            return value, None
        self._ensure_listener()
        generation = self.level1.generation
        try:
            value, version = self.store.read(key)
        except RedisError:
            return None, None
        if value is not None and self.redis is not None and self.trusted():
            self.level1.put(key, value, generation)
        return value, version

    # ------------------------------------------------------------ writing
    def set(self, key: str, value: Any, timeout: float) -> None:
        """Store `value`, whatever was there (it is newer than anything a loader read)."""
        generation = self.level1.generation
        superseded = self._pending_now([key])
        try:
            self.store.write(key, value, timeout)
        except RedisError:
            self._keep_pending([key])  # whatever Redis holds for it now is not this value
            self._invalidate(key)
        else:
            self._forget_pending(superseded)  # this write replaced what those deletes were for
            self._invalidate(key, value, generation)

    def set_if_current(self, key: str, value: Any, timeout: float, version: Version) -> bool:
        """Store what a loader read, unless the key was invalidated since `read` gave it `version`."""
        if version is None or (self.pending and key in self.pending and not self.retry_pending()):
            return False
        generation = self.level1.generation
        try:
            landed = self.store.write_if_current(key, value, timeout, version)
        except RedisError:
            return False
        if landed:
            self._invalidate(key, value, generation)
        return landed

    def delete_many(self, keys: list[str]) -> None:
        try:
            self.store.delete_many(keys)
        except RedisError:
            self._keep_pending(keys)
        for key in keys:
            self._invalidate(key)

    def _invalidate(self, key: str, written: Any = MISSING, generation: int = 0) -> None:
        """Drop `key` from every process's level 1; this one keeps what it just `written`, if anything
        (so the fast path can answer the next request without a round trip)."""
        if written is MISSING or not self.trusted():
            self.level1.drop(key)
        else:
            self.level1.replace(key, written, generation)
        if self.redis is not None:
            try:
                self.redis().publish(self._channel(), f"{self.sender} {key}")
            except RedisError:
                pass  # the other processes stop hearing the channel too, and stop trusting level 1

    # ------------------------------------------------------------ failed deletes
    def _keep_pending(self, keys: Iterable[str]) -> None:
        with self._pending_lock:
            for key in keys:
                self.pending[key] = self.pending.get(key, 0) + 1
        self._ensure_listener()  # it retries them

    def _pending_now(self, keys: Iterable[str] | None = None) -> dict[str, int]:
        if not self.pending:
            return {}
        with self._pending_lock:
            if keys is None:
                return dict(self.pending)
            return {key: self.pending[key] for key in keys if key in self.pending}

    def _forget_pending(self, done: dict[str, int]) -> None:
        """Drop the deletes in `done`, unless one of them failed again since."""
        if done:
            with self._pending_lock:
                for key, failures in done.items():
                    if self.pending.get(key) == failures:
                        del self.pending[key]

    def retry_pending(self) -> bool:
        """Delete what could not be deleted before (Redis I/O outside the lock); True when nothing is
        left pending."""
        retrying = self._pending_now()
        if not retrying:
            return True
        try:
            self.store.delete_many(sorted(retrying))
        except RedisError:
            return False
        self._forget_pending(retrying)
        for key in retrying:
            self._invalidate(key)
        return not self.pending

    # ------------------------------------------------------------ the invalidation channel
    def _channel(self) -> str:
        return f"{self.prefix()}invalidate"

    def tick(self, timeout: float = PING_INTERVAL_S) -> None:
        """One round of the listener: (re)subscribe if needed, apply invalidations that arrived within
        `timeout`, ping the channel, retry pending deletes. Raises on a broken connection, and on a
        silent one: a stalled Redis (or a half-open connection) is given up and dialled again."""
        if self._pubsub is None:
            assert self.subscriber is not None, "the listener runs only with Redis (_ensure_listener)"
            self._pubsub = self.subscriber().pubsub()
            self._pubsub.subscribe(self._channel())
            self._subscribed_at = self.clock()
        now = self.clock()
        if now - self._pinged_at >= PING_INTERVAL_S:
            self._pubsub.ping()
            self._pinged_at = now
        while (message := self._pubsub.get_message(timeout=timeout)) is not None:
            self._heard(message)
            timeout = 0
        if self.pending:
            self.retry_pending()
        if self.clock() - max(self._heard_at, self._subscribed_at) >= LIVENESS_S:
            raise RedisTimeout(f"the invalidation channel has not answered for {LIVENESS_S:g} s")

    def _heard(self, message: dict) -> None:
        if not self.trusted():
            # Invalidations sent while this process could not hear them are lost: start level 1 empty.
            self.level1.drop(None)
        self._heard_at = self.clock()
        self._first_heard.set()
        if message["type"] == "message":
            sender, _, key = message["data"].decode().partition(" ")
            if sender != self.sender:
                self.level1.drop(key)

    def lose_channel(self, reason: object) -> None:
        if self._heard_at > float("-inf"):  # once per outage, not at every reconnection attempt
            log.warning("cache invalidation channel lost (%s); level-1 cache off until it is back", reason)
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except RedisError:
                pass
        self._pubsub = None
        self._heard_at = float("-inf")
        self.level1.drop(None)

    def _listen(self) -> None:
        while True:
            try:
                self.tick()
            except Exception as exc:  # any failure: stop trusting level 1, then resubscribe
                self.lose_channel(exc)
                time.sleep(PING_INTERVAL_S)

    def _ensure_listener(self) -> None:
        if self._listener is not None or self.redis is None or not self.background:
            return
        with self._listener_started:
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, name="avtrz-l1", daemon=True)
                self._listener.start()
                # Once per process, off the event loop: the first value read can go to level 1 at once.
                self._first_heard.wait(STARTUP_WAIT_S)


def _process_cache() -> HotCache:
    from avtrz.lib import redisclient

    if not settings.REDIS_URL:
        return HotCache(None, prefix=lambda: settings.AVTRZ_COUNTER_PREFIX)
    return HotCache(
        redisclient.client,
        prefix=lambda: settings.AVTRZ_COUNTER_PREFIX,
        # Its own connection: a subscribed connection serves nothing else.
        subscriber=lambda: redisclient.connect(health_check_interval=0),
    )


_instance: HotCache | None = None
_instance_lock = threading.Lock()


def instance() -> HotCache:
    """This process's cache (reading a Django setting here would cost more than a level-1 hit)."""
    global _instance
    if _instance is None:
        with _instance_lock:
            _instance = _instance or _process_cache()
    return _instance


@receiver(setting_changed)
def _follow_redis_url(setting: str, **kwargs: object) -> None:
    """Tests switch REDIS_URL in-process: the next call builds the cache for the new one."""
    global _instance
    if setting == "REDIS_URL":
        _instance = None


def reset() -> None:
    """Forget this process's cached values and pending deletes (tests: a fresh start per test)."""
    cache = instance()
    cache.level1.drop(None)
    cache.pending.clear()


def generation() -> int | None:
    """A number that changes whenever any cached value may have changed anywhere, or None when this
    process cannot know that (Redis is configured but the invalidation channel is not heard). Read on
    every replayed hit: the instance without a call once it exists."""
    return (_instance or instance()).generation()


def get(key: str, local_only: bool = False) -> Any:
    """The cached value, or None when there is none or the cache cannot be reached: callers then
    take the database path, slower but correct. `local_only` answers from this process's memory
    alone (level 1 when Redis is configured), never waiting on the network: for the event loop."""
    return instance().get(key, local_only)


def read(key: str) -> tuple[Any, Version]:
    """The value and its write counter, for a loader that may store what it finds (`set_if_current`)."""
    return instance().read(key)


def set(key: str, value: Any, timeout: float) -> None:  # noqa: A001 (mirrors the cache API)
    instance().set(key, value, timeout)


def set_if_current(key: str, value: Any, timeout: float, version: Version) -> bool:
    return instance().set_if_current(key, value, timeout, version)


def delete(key: str) -> None:
    instance().delete_many([key])


def delete_many(keys: list[str]) -> None:
    instance().delete_many(keys)
