"""The live counters behind `usage.admit`: request quota, rate limit and last-used times.

Two implementations with one contract (`admit`, `used`, `drain`); counts only ever go up, so the
database copy can be written with GREATEST and a late write never lowers it:

* `LocalCounters`, for the embedded single-process default: exact counts in this process.
* `LeasedCounters`, for Redis: every process leases blocks of tokens from the shared Redis counters
  with an atomic script, so most requests are admitted from this process's memory without a round
  trip. A lease never takes more than the room left, and leases shrink as the room does (to a single
  token at the end), so across any number of processes no request is admitted past the quota or the
  per-second rate. Actual use is added to a separate `used` counter by `drain`, twice a second;
  unused tokens of an idle lease go back to the pool after a second.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from redis.exceptions import RedisError


log = logging.getLogger(__name__)


LEASE_IDLE_S = 1.0
# A lease takes at most 1/16 of the room left and never more than LEASE_MAX tokens: large enough that a
# busy process asks Redis a few dozen times a second, small enough that idle leases hold back little.
LEASE_MAX = 512
LEASE_SHARE = 16

_LEASE_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[3])
local room = tonumber(ARGV[1]) - tonumber(redis.call('GET', KEYS[1]))
if room <= 0 then return 0 end
local grant = math.min(tonumber(ARGV[4]), math.max(1, math.floor(room / tonumber(ARGV[5]))))
redis.call('INCRBY', KEYS[1], grant)
return grant
"""


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str = ""  # "rate_limited" or "quota_exceeded" when refused
    retry_after: int = 0
    # Tokens left in the workspace's rate bucket as this process knows it (the `RateLimit` header's
    # remaining), or None when not known.
    remaining: int | None = None


ADMITTED = Admission(True)
RATE_LIMITED = Admission(False, "rate_limited", 1)
QUOTA_EXCEEDED = Admission(False, "quota_exceeded")


@dataclass
class Activity:
    """What happened since the last drain: periods that counted requests, keys that were used."""

    periods: set[int] = field(default_factory=set)
    keys: dict[int, float] = field(default_factory=dict)  # key id -> last used (epoch seconds)


def _key(name: str, *parts: object) -> str:
    return settings.AVTRZ_COUNTER_PREFIX + ":".join([name, *map(str, parts)])


class LocalCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: dict[int, int] = {}
        self._rate: dict[int, tuple[int, int]] = {}  # workspace -> (second, count)
        self._activity = Activity()

    def admit(self, meter, key_id: int | None, local_only: bool = False) -> Admission | None:
        second = int(time.time())
        with self._lock:
            window, count = self._rate.get(meter.workspace_id, (second, 0))
            count = count + 1 if window == second else 1
            self._rate[meter.workspace_id] = (second, count)
            if count > meter.requests_per_second:
                return RATE_LIMITED
            used = self._used.get(meter.period_id, meter.requests_used)
            if used >= meter.requests_limit:
                return QUOTA_EXCEEDED
            self._used[meter.period_id] = used + 1
            self._activity.periods.add(meter.period_id)
            if key_id:
                self._activity.keys[key_id] = time.time()
        return ADMITTED

    def used(self, meter) -> int | None:
        with self._lock:
            return self._used.get(meter.period_id)

    def drain(self) -> Activity:
        with self._lock:
            activity, self._activity = self._activity, Activity()
        return activity

    def note_stored(self, period_id: int, count: int) -> None:
        """Nothing to do: this process's counts are the truth, the database only copies them."""


@dataclass
class _Lease:
    tokens: int = 0
    delta: int = 0  # used here, not yet added to the shared `used` counter
    seed: int = 0
    ttl: int = 60
    last_use: float = 0.0  # epoch seconds


class LeasedCounters:
    """While Redis is unreachable, requests are admitted on what this process knows (its own rate
    window, the quota minus what it has counted): limits hold per process rather than overall, no
    request fails, and the counts kept meanwhile are added to Redis when it answers again."""

    def __init__(self, client) -> None:
        self._client = client
        self._lease_script = client.register_script(_LEASE_SCRIPT)
        self._lock = threading.Lock()
        self._leases: dict[int, _Lease] = {}
        self._rate: dict[int, tuple[int, int]] = {}  # workspace -> (second, tokens left)
        self._activity = Activity()
        self._local = LocalCounters()  # the limiter while Redis is away
        self._retry_at = 0.0
        # The count last written to the database per period: the floor for re-seeding Redis counters
        # that Redis lost (a restart without persistence), so counting resumes where it was.
        self._stored: dict[int, int] = {}

    def note_stored(self, period_id: int, count: int) -> None:
        with self._lock:
            self._stored[period_id] = max(count, self._stored.get(period_id, 0))

    def _seed(self, period_id: int, lease: _Lease) -> int:
        return max(lease.seed, self._stored.get(period_id, 0))

    def _lease(self, counter: str, limit: int, seed: int, ttl: int) -> int | None:
        """Tokens granted, or None when Redis cannot be asked (then retried at most once a second)."""
        if time.time() < self._retry_at:
            return None
        try:
            return int(self._lease_script(keys=[counter], args=[limit, seed, ttl, LEASE_MAX, LEASE_SHARE]))
        except RedisError as exc:
            self._retry_at = time.time() + 1
            log.warning("usage counters cannot reach Redis (%s); limiting per process until it is back", exc)
            return None

    def admit(self, meter, key_id: int | None, local_only: bool = False) -> Admission | None:
        """`local_only`: decide without I/O, or return None when that needs Redis."""
        now = time.time()
        second = int(now)
        with self._lock:
            window, tokens = self._rate.get(meter.workspace_id, (second, 0))
            if window != second:
                tokens = 0
            if tokens == 0:
                if local_only:
                    return None
                tokens = self._lease(_key("rate", meter.workspace_id, second), meter.requests_per_second, 0, 2)
                if tokens is None:
                    return self._admit_locally(meter, key_id, now)
            if tokens <= 0:
                # Spent for this second, here and everywhere: no need to ask Redis again until the next.
                self._rate[meter.workspace_id] = (second, -1)
                return RATE_LIMITED
            self._rate[meter.workspace_id] = (second, tokens - 1)

            lease = self._leases.get(meter.period_id)
            if lease is None:
                lease = self._leases[meter.period_id] = _Lease(seed=meter.requests_used, ttl=_ttl(meter))
            if lease.tokens <= 0:
                if local_only:
                    return None
                granted = self._lease(
                    _key("reserved", meter.period_id),
                    meter.requests_limit,
                    self._seed(meter.period_id, lease),
                    lease.ttl,
                )
                if granted is None:
                    return self._admit_locally(meter, key_id, now)
                lease.tokens = granted
                if lease.tokens <= 0:
                    return QUOTA_EXCEEDED
            lease.tokens -= 1
            lease.delta += 1
            lease.last_use = now
            self._activity.periods.add(meter.period_id)
            if key_id:
                self._activity.keys[key_id] = now
        return ADMITTED

    def _admit_locally(self, meter, key_id: int | None, now: float) -> Admission:
        """Admit with what this process knows; the count still goes into the lease's delta."""
        admission = self._local.admit(meter, key_id)
        if admission.allowed:
            lease = self._leases.setdefault(meter.period_id, _Lease(seed=meter.requests_used, ttl=_ttl(meter)))
            lease.delta += 1
            lease.last_use = now
            self._activity.periods.add(meter.period_id)
            if key_id:
                self._activity.keys[key_id] = now
        return admission

    def used(self, meter) -> int | None:
        try:
            raw = self._client.get(_key("used", meter.period_id))
        except RedisError:
            raw = None
        with self._lock:
            lease = self._leases.get(meter.period_id)
            local = lease.delta if lease else 0
        if raw is None and not local:
            return None
        return (int(raw) if raw is not None else meter.requests_used) + local

    def drain(self) -> Activity:
        """Add local use to the shared counters and hand back the tokens of idle leases."""
        now = time.time()
        with self._lock:
            pending = []
            for period_id, lease in list(self._leases.items()):
                returned = lease.tokens if now - lease.last_use > LEASE_IDLE_S else 0
                if lease.delta or returned:
                    pending.append((period_id, lease.delta, returned, self._seed(period_id, lease), lease.ttl))
                lease.delta = 0
                lease.tokens -= returned
                if not lease.tokens and now - lease.last_use > LEASE_IDLE_S:
                    del self._leases[period_id]
            activity, self._activity = self._activity, Activity()
            self._local.drain()  # its activity was recorded here too
        if pending:
            pipe = self._client.pipeline(transaction=False)
            for period_id, delta, returned, seed, ttl in pending:
                used = _key("used", period_id)
                pipe.set(used, seed, nx=True, ex=ttl)
                pipe.incrby(used, delta)
                if returned:
                    pipe.decrby(_key("reserved", period_id), returned)
            try:
                pipe.execute()
            except Exception:
                self._restore(pending)
                raise
        return activity

    def _restore(self, pending) -> None:
        """Redis did not take the deltas: keep them for the next drain, nothing is lost."""
        with self._lock:
            for period_id, delta, _returned, seed, ttl in pending:
                lease = self._leases.setdefault(period_id, _Lease(seed=seed, ttl=ttl, last_use=time.time()))
                lease.delta += delta


def _ttl(meter) -> int:
    return max(60, int(meter.period_ends_at - time.time()) + 86400)
