"""The live counters behind `usage.admit`: rate buckets, request quota, last-used times and the daily
chart's tally.

Two implementations with one contract (`admit`, `tally`, `not_stored`, `drain`, `take_drained`, `note_stored`):

* `LocalCounters`, for the embedded single-process default: exact in this process.
* `LeasedCounters`, for Redis: every process leases blocks of tokens from the shared counters with one
  atomic script, so most requests are admitted from this process's memory without a round trip.

The rate limit is a token bucket per workspace: it holds up to the plan's `burst` tokens and refills
at `requests_per_second` (so a page of 50 avatars is admitted at once and a sustained flood still gets
the rate). In Redis the bucket is a hash (tokens, last refill time by Redis `TIME`); a lease takes at
most 1/16 of what it holds, so across any number of processes no request is admitted past it.
The quota is a `reserved` counter per period, leased the same way against the period's limit.

Counts reach the database by addition, each exactly once: `drain` (twice a second) adds this
process's admissions to a shared `drained` counter in Redis, and whichever process writes a period
next takes that counter (atomically) and adds it to the database. What Redis does not answer for
(it is away, or stalled) `drain` hands back at once as `Activity.unsent`, for this process to add to
the database itself, so a process stopped before Redis returns has lost nothing; marks set in the
same transactions tell, once Redis answers again, whether it had applied such a call after all, and
that is undone (`_Batch`). A take whose answer was lost is recovered by the next the same way.

No Redis I/O happens under the lock: a request claims the tokens in hand, asks Redis outside the
lock for what it lacks, then applies the answer under the lock again. The daily chart's tally is kept
under the same lock, so an admitted request is counted and tallied in one go (`admit(tally=...)`).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from redis.exceptions import RedisError

from avtrz.lib.logs import OutageLog


log = logging.getLogger(__name__)

Clock = Callable[[], float]  # epoch seconds

LEASE_IDLE_S = 1.0  # unused tokens of a lease go back to the shared pool after this long idle
# A lease takes at most 1/16 of what is left and never more than LEASE_MAX tokens: large enough that a
# busy process asks Redis a few dozen times a second, small enough that idle leases hold back little.
LEASE_MAX = 512
LEASE_SHARE = 16
BATCH_MARK_TTL_S = 86400  # how long Redis keeps a drain's or a take's mark (see `_Batch`, `take_drained`)
APPLIED, SETTLED = b"applied", b"settled"
REDIS_RETRY_S = 1.0  # after a failed call, requests are decided in memory this long before Redis is asked again
OUTAGE_REPORT_S = 60.0  # while Redis is away, one log line this often (and one when it goes, one when it returns)

# KEYS: the workspace's rate bucket (a hash), the period's reserved counter.
# ARGV: rate, burst, take a rate lease (0/1), rate tokens given back, quota limit, reserved seed,
#       reserved ttl, take a quota lease (0/1), LEASE_MAX, LEASE_SHARE.
# Returns {rate tokens granted, thousandths of a token left in the bucket, quota tokens granted}; no quota
# is leased when the rate refuses.
_TAKE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local lease_max, share = tonumber(ARGV[9]), tonumber(ARGV[10])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000000 + tonumber(ARGV[4]))
local rate_grant, quota_grant = 0, 0
if ARGV[3] == '1' and tokens >= 1 then
  rate_grant = math.min(lease_max, math.max(1, math.floor(tokens / share)))
  tokens = tokens - rate_grant
end
if ARGV[8] == '1' and (ARGV[3] ~= '1' or rate_grant > 0) then
  redis.call('SET', KEYS[2], ARGV[6], 'NX', 'EX', ARGV[7])
  local room = tonumber(ARGV[5]) - tonumber(redis.call('GET', KEYS[2]))
  if room > 0 then
    quota_grant = math.min(lease_max, math.max(1, math.floor(room / share)))
    redis.call('INCRBY', KEYS[2], quota_grant)
  end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {rate_grant, math.floor(tokens * 1000), quota_grant}
"""

# Takes a period's drained counter: what every process counted that is not in the database yet.
# KEYS: the drained counter, this take's mark, the marks of this process's takes whose answer was lost
# (ARGV[2] of them), then the mark of its last answered take. A take leaves what it took under its mark
# until the next, so a take whose answer was lost is recovered by the next rather than lost.
_TAKE_DRAINED_SCRIPT = """
local taken = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('DEL', KEYS[1])
for i = 3, 2 + tonumber(ARGV[2]) do
  taken = taken + tonumber(redis.call('GET', KEYS[i]) or '0')
end
for i = 3, #KEYS do
  redis.call('DEL', KEYS[i])
end
redis.call('SET', KEYS[2], taken, 'EX', ARGV[1])
return taken
"""


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str = ""  # "rate_limited" or "quota_exceeded" when refused
    retry_after: int = 0  # when rate limited: whole seconds until the bucket holds a token (at least 1)
    # Tokens left in the workspace's rate bucket as this process knows it (the `RateLimit` header's
    # remaining), or None when not known.
    remaining: int | None = None


@functools.lru_cache(maxsize=4096)  # one frozen instance per figure: building one costs as much as the rest of admit
def _admitted(remaining: int) -> Admission:
    return Admission(True, remaining=remaining)


def _rate_limited(wait_s: float) -> Admission:
    return Admission(False, "rate_limited", max(1, math.ceil(wait_s)), remaining=0)


def _quota_exceeded(remaining: int) -> Admission:
    return Admission(False, "quota_exceeded", remaining=remaining)


@dataclass
class Activity:
    """What happened since the last drain."""

    periods: set[int] = field(default_factory=set)  # periods that counted requests
    keys: dict[int, float] = field(default_factory=dict)  # key id -> last used (epoch seconds)
    # Period id -> requests counted that no shared counter holds: the caller adds them to the database.
    unsent: Counter[int] = field(default_factory=Counter)
    # (workspace id, UTC day number, DailyUsage field) -> answers tallied for the daily chart.
    tally: Counter[tuple[int, int, str]] = field(default_factory=Counter)

    def merge(self, other: Activity) -> None:
        self.periods |= other.periods
        for key_id, used_at in other.keys.items():
            self.keys[key_id] = max(used_at, self.keys.get(key_id, 0.0))
        self.unsent.update(other.unsent)
        self.tally.update(other.tally)

    def add_tally(self, workspace_id: int, counter: str, now: float) -> None:
        self.tally[(workspace_id, int(now // 86400), counter)] += 1


def _key(name: str, *parts: object) -> str:
    return settings.AVTRZ_COUNTER_PREFIX + ":".join([name, *map(str, parts)])


def _rate(meter) -> int:
    return max(1, meter.requests_per_second)


@dataclass
class _MemoryBucket:
    """A token bucket in this process's memory."""

    tokens: float
    at: float  # when `tokens` was last brought up to date (epoch seconds)

    def take(self, rate: int, burst: int, now: float) -> float:
        """Take one token: 0.0 when taken, else the seconds until there is one."""
        self.tokens = min(burst, self.tokens + max(0.0, now - self.at) * rate)
        self.at = max(now, self.at)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / rate


class _Tallies:
    """`tally`, the same for both counters: under the counters' lock, into the activity `drain` hands over."""

    _clock: Clock
    _lock: threading.Lock
    _activity: Activity

    def tally(self, workspace_id: int, counter: str) -> None:
        """Tally one answer for the daily chart (a DailyUsage field name); `drain` hands it over."""
        now = self._clock()
        with self._lock:
            self._activity.add_tally(workspace_id, counter, now)


class LocalCounters(_Tallies):
    """Exact counts and buckets in this process's memory; every count is `unsent` (the caller stores it)."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._used: dict[int, int] = {}  # period -> requests counted (seeded from the meter)
        self._buckets: dict[int, _MemoryBucket] = {}  # workspace -> its bucket
        self._activity = Activity()

    redis_away = False

    def admit(self, meter, key_id: int | None, local_only: bool = False, tally: str | None = None) -> Admission:
        """Never needs I/O, so `local_only` changes nothing here. `tally`: as `LeasedCounters.admit`."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(meter.workspace_id)
            if bucket is None:
                bucket = self._buckets[meter.workspace_id] = _MemoryBucket(meter.rate_burst, now)
            wait = bucket.take(_rate(meter), meter.rate_burst, now)
            if wait:
                return _rate_limited(wait)
            used = self._used.get(meter.period_id, meter.requests_used)
            if used >= meter.requests_limit:
                return _quota_exceeded(int(bucket.tokens))
            self._used[meter.period_id] = used + 1
            self._activity.periods.add(meter.period_id)
            self._activity.unsent[meter.period_id] += 1
            if key_id:
                self._activity.keys[key_id] = now
            if tally:
                self._activity.add_tally(meter.workspace_id, tally, now)
            return _admitted(int(bucket.tokens))

    def not_stored(self, period_id: int) -> int:
        """Requests of the period counted but not drained yet."""
        with self._lock:
            return self._activity.unsent[period_id]

    def drain(self) -> Activity:
        with self._lock:
            activity, self._activity = self._activity, Activity()
        return activity

    def take_drained(self, period_id: int) -> int:
        return 0  # nothing is shared: every count came back from `drain` as unsent

    def note_stored(self, period_id: int, count: int) -> None:
        """Nothing to do: this process's counts are the truth, the database only adds them up."""


@dataclass
class _Lease:
    """This process's share of a period's request quota."""

    tokens: int = 0
    delta: int = 0  # counted here, not yet added to the shared drained counter
    seed: int = 0
    ttl: int = 60
    last_use: float = 0.0  # epoch seconds
    # Redis had no room left under this limit: refused from memory until then (tokens other processes'
    # idle leases give back return within LEASE_IDLE_S; a raised limit asks again at once).
    spent_until: float = 0.0
    spent_limit: int = 0


@dataclass
class _BucketLease:
    """This process's share of a workspace's rate bucket."""

    rate: int
    burst: int
    tokens: int = 0
    shared_milli: int = 0  # thousandths of a token the shared bucket held at our last call
    empty_until: float = 0.0  # the shared bucket has no whole token before then (epoch seconds)
    last_use: float = 0.0

    @property
    def remaining(self) -> int:
        return min(self.burst, self.tokens + self.shared_milli // 1000)


class LeasedCounters(_Tallies):
    """While Redis is unreachable, requests are admitted on what this process knows (its own bucket,
    the quota minus what it has counted): limits hold per process rather than overall, no request
    fails, and the counts kept meanwhile go to the database directly (`Activity.unsent`)."""

    def __init__(self, client, clock: Clock = time.time) -> None:
        self._client = client
        self._clock = clock
        self._take = client.register_script(_TAKE_SCRIPT)
        self._take_drained = client.register_script(_TAKE_DRAINED_SCRIPT)
        self._lock = threading.Lock()
        self._leases: dict[int, _Lease] = {}  # period -> lease
        self._buckets: dict[int, _BucketLease] = {}  # workspace -> lease
        self._activity = Activity()
        self._unsure: list[_Batch] = []  # drains sent without an answer: applied or not, Redis will say
        self._answered_batch: str | None = None  # the mark of the last drain Redis answered, deleted by the next
        self._unanswered_takes: dict[int, list[str]] = {}  # period -> marks of takes whose answer was lost
        self._answered_take: dict[int, str] = {}  # period -> mark of its last take, deleted by the next
        self._local = LocalCounters(clock)  # the limiter while Redis is away
        self._outage = OutageLog(
            log,
            "usage counters",
            "limits hold per process, counts go to the database directly until it is back",
            report_every_s=OUTAGE_REPORT_S,
            clock=clock,
        )
        self._retry_at = 0.0
        # The count last read from the database per period: the floor for re-seeding a reserved
        # counter that Redis lost (a restart without persistence), so leasing resumes where it was.
        self._stored: dict[int, int] = {}

    @property
    def redis_away(self) -> bool:
        return self._outage.since is not None

    def note_stored(self, period_id: int, count: int) -> None:
        with self._lock:
            self._stored[period_id] = max(count, self._stored.get(period_id, 0))

    def _failed(self, exc: Exception) -> None:
        self._retry_at = self._clock() + REDIS_RETRY_S
        self._outage.failed(exc)

    def admit(self, meter, key_id: int | None, local_only: bool = False, tally: str | None = None) -> Admission | None:
        """`local_only`: decide without I/O, or return None when that needs Redis. `tally`: the daily
        chart's counter (a DailyUsage field name) to add the request to if admitted, in the same lock."""
        now = self._clock()
        with self._lock:
            if now < self._retry_at:
                return self._local.admit(meter, key_id, tally=tally)
            rate = _rate(meter)
            bucket = self._buckets.get(meter.workspace_id)
            if bucket is None:
                bucket = self._buckets[meter.workspace_id] = _BucketLease(rate, meter.rate_burst)
            else:
                bucket.rate, bucket.burst = rate, meter.rate_burst  # a plan change applies at once
            if bucket.tokens <= 0 and now < bucket.empty_until:
                return _rate_limited(bucket.empty_until - now)
            lease = self._leases.get(meter.period_id)
            if lease is None:
                lease = self._leases[meter.period_id] = _Lease(seed=meter.requests_used, ttl=_ttl(meter, now))
            bucket.last_use = lease.last_use = now
            if lease.tokens <= 0 and now < lease.spent_until and meter.requests_limit == lease.spent_limit:
                return _quota_exceeded(bucket.remaining)
            if bucket.tokens > 0 and lease.tokens > 0:
                bucket.tokens -= 1
                lease.tokens -= 1
                return self._count(meter, key_id, tally, bucket, lease, now)
            if local_only:
                return None
            # Claim the tokens in hand for this request, then ask Redis for the rest outside the lock.
            take_rate, take_quota = bucket.tokens <= 0, lease.tokens <= 0
            if not take_rate:
                bucket.tokens -= 1
            if not take_quota:
                lease.tokens -= 1
            seed = max(lease.seed, self._stored.get(meter.period_id, 0))
        try:
            rate_grant, shared_milli, quota_grant = self._take(
                keys=[_key("bucket", meter.workspace_id), _key("reserved", meter.period_id)],
                args=[
                    *(bucket.rate, bucket.burst, int(take_rate), 0),
                    *(meter.requests_limit, seed, lease.ttl, int(take_quota), LEASE_MAX, LEASE_SHARE),
                ],
            )
        except RedisError as exc:
            with self._lock:
                self._failed(exc)
                bucket, lease = self._current(meter, bucket, lease)
                # The request is decided in memory instead: the tokens it claimed stay in the leases.
                bucket.tokens += not take_rate
                lease.tokens += not take_quota
                return self._local.admit(meter, key_id, tally=tally)
        with self._lock:
            self._outage.recovered()
            bucket, lease = self._current(meter, bucket, lease)
            bucket.shared_milli = shared_milli
            if take_rate and not rate_grant:
                wait = (1000 - shared_milli) / (1000 * bucket.rate)
                bucket.empty_until = now + wait
                lease.tokens += not take_quota  # not admitted: its quota token stays in the lease
                return _rate_limited(wait)
            bucket.tokens += rate_grant - take_rate
            if take_quota and not quota_grant:
                bucket.tokens += 1  # not admitted: its rate token stays in the lease
                lease.spent_until, lease.spent_limit = now + LEASE_IDLE_S, meter.requests_limit
                return _quota_exceeded(bucket.remaining)
            lease.tokens += quota_grant - take_quota
            return self._count(meter, key_id, tally, bucket, lease, now)

    def _current(self, meter, bucket: _BucketLease, lease: _Lease) -> tuple[_BucketLease, _Lease]:
        """The leases now in place: a drain may have dropped idle ones while Redis was being asked."""
        return self._buckets.setdefault(meter.workspace_id, bucket), self._leases.setdefault(meter.period_id, lease)

    def _count(
        self, meter, key_id: int | None, tally: str | None, bucket: _BucketLease, lease: _Lease, now: float
    ) -> Admission:
        lease.delta += 1
        self._activity.periods.add(meter.period_id)
        if key_id:
            self._activity.keys[key_id] = now
        if tally:
            self._activity.add_tally(meter.workspace_id, tally, now)
        return _admitted(bucket.remaining)

    def not_stored(self, period_id: int) -> int:
        """Requests of the period counted but not in the database yet: what every process drained
        into Redis plus what this process has not drained."""
        drained = 0
        if self._clock() >= self._retry_at:
            try:
                drained = int(self._client.get(_key("drained", period_id)) or 0)
            except RedisError as exc:
                with self._lock:
                    self._failed(exc)
        with self._lock:
            lease = self._leases.get(period_id)
            return drained + (lease.delta if lease else 0) + self._local.not_stored(period_id)

    def take_drained(self, period_id: int) -> int:
        """Take what every process drained for the period (to add it to the database), and what
        earlier takes got whose answer was lost; 0 when Redis is away."""
        if self._clock() < self._retry_at:
            return 0
        mark = uuid.uuid4().hex
        with self._lock:
            unanswered = self._unanswered_takes.pop(period_id, [])
            answered = self._answered_take.pop(period_id, None)
        marks = [mark, *unanswered, *([answered] if answered else [])]
        try:
            taken = self._take_drained(
                keys=[_key("drained", period_id), *(_key("take", each) for each in marks)],
                args=[BATCH_MARK_TTL_S, len(unanswered)],
            )
        except RedisError as exc:
            with self._lock:
                self._failed(exc)
                self._unanswered_takes[period_id] = [*unanswered, mark]
                if answered:
                    self._answered_take[period_id] = answered
            return 0
        with self._lock:
            self._answered_take[period_id] = mark
        return int(taken)

    def drain(self) -> Activity:
        """Add local counts to the shared drained counters and give idle leases' tokens back.

        Nothing is lost or counted twice when Redis does not answer: the counts come back at once as
        `unsent`, for the database. If Redis took them after all (it stalled instead of refusing),
        the batch's mark says so when it answers again, and they are taken back out of the drained
        counter; if it never did, the batch's tokens go back into the leases."""
        now = self._clock()
        with self._lock:
            # Counts and tokens leave the leases before Redis is asked, so no request can use tokens
            # that are on their way back.
            sends: list[_Send] = []
            for period_id, lease in list(self._leases.items()):
                idle = now - lease.last_use > LEASE_IDLE_S
                returned = lease.tokens if idle else 0
                if lease.delta or returned:
                    sends.append(_Send(period_id, lease, lease.delta, returned))
                    lease.delta, lease.tokens = 0, lease.tokens - returned
                if idle:
                    del self._leases[period_id]
            refunds: list[_Refund] = []
            for workspace_id, bucket in list(self._buckets.items()):
                if now - bucket.last_use > LEASE_IDLE_S:
                    del self._buckets[workspace_id]
                    if bucket.tokens > 0:
                        refunds.append(_Refund(workspace_id, bucket, bucket.tokens))
                        bucket.tokens = 0
            unsure, self._unsure = self._unsure, []
            fresh = _Batch(uuid.uuid4().hex, sends, refunds) if sends or refunds else None
            activity, self._activity = self._activity, Activity()
            activity.merge(self._local.drain())  # what was admitted while Redis was away
            if now < self._retry_at:  # Redis is not asked: the batch surely never reached it
                if fresh:
                    self._keep(fresh, activity, counts=True)
                self._unsure = unsure + self._unsure
                return activity
        if not unsure and not fresh:
            return activity
        with self._lock:
            answered, self._answered_batch = self._answered_batch, None
        try:
            never_applied = self._send(unsure, fresh, answered)
        except RedisError as exc:
            with self._lock:
                self._failed(exc)
                self._answered_batch = self._answered_batch or answered
                if fresh:  # sent, but did Redis apply it? Its counts go to the database now either way
                    for send in fresh.sends:
                        activity.unsent[send.period_id] += send.counted
                    unsure = [*unsure, fresh]
                self._unsure = unsure + self._unsure
            return activity
        with self._lock:
            self._outage.recovered()
            self._answered_batch = fresh.token if fresh else None
            for batch in never_applied:
                self._keep(batch, activity, counts=False)  # its counts went to the database already
        return activity

    def _send(self, unsure: list[_Batch], fresh: _Batch | None, answered: str | None) -> list[_Batch]:
        """Settle the unsure batches and apply the fresh one, in one MULTI/EXEC (all of it or none);
        the mark of the last answered batch goes. Returns the unsure batches Redis never applied."""
        marks = []
        if unsure:
            check = self._client.pipeline(transaction=False)
            for batch in unsure:
                check.get(_key("drain", batch.token))
            marks = check.execute()
        pipe = self._client.pipeline(transaction=True)
        if answered:
            pipe.delete(_key("drain", answered))
        for batch, mark in zip(unsure, marks, strict=True):
            if mark == APPLIED:  # and its counts were also stored directly: take them back out
                for send in batch.sends:
                    drained = _key("drained", send.period_id)
                    pipe.decrby(drained, send.counted)
                    pipe.expire(drained, send.lease.ttl)
                pipe.set(_key("drain", batch.token), SETTLED, ex=BATCH_MARK_TTL_S)
        if fresh:
            pipe.set(_key("drain", fresh.token), APPLIED, ex=BATCH_MARK_TTL_S)
            for send in fresh.sends:
                if send.counted:
                    drained = _key("drained", send.period_id)
                    pipe.incrby(drained, send.counted)
                    pipe.expire(drained, send.lease.ttl)
                if send.returned:
                    pipe.decrby(_key("reserved", send.period_id), send.returned)
            for refund in fresh.refunds:
                bucket = refund.bucket
                self._take(
                    keys=[_key("bucket", refund.workspace_id), _key("reserved", 0)],
                    args=[bucket.rate, bucket.burst, 0, refund.tokens, 0, 0, 1, 0, LEASE_MAX, LEASE_SHARE],
                    client=pipe,
                )
        pipe.execute()
        return [batch for batch, mark in zip(unsure, marks, strict=True) if mark is None]

    def _keep(self, batch: _Batch, activity: Activity, *, counts: bool) -> None:
        """Redis never took the batch: its tokens back into the leases, and (`counts`) its counts to the
        database directly."""
        for send in batch.sends:
            if counts:
                activity.unsent[send.period_id] += send.counted
            self._leases.setdefault(send.period_id, send.lease).tokens += send.returned
        for refund in batch.refunds:
            self._buckets.setdefault(refund.workspace_id, refund.bucket).tokens += refund.tokens


@dataclass(frozen=True)
class _Batch:
    """One drain's changes to Redis. A mark set by the same MULTI/EXEC that applies it (APPLIED, then
    SETTLED once its counts are taken back out) tells a batch whose answer was lost (Redis stalled
    after taking it) from one that never arrived."""

    token: str
    sends: list[_Send]
    refunds: list[_Refund]


@dataclass(frozen=True)
class _Send:
    period_id: int
    lease: _Lease
    counted: int  # requests to add to the drained counter
    returned: int  # quota tokens to give back to the reserved counter


@dataclass(frozen=True)
class _Refund:
    workspace_id: int
    bucket: _BucketLease
    tokens: int  # rate tokens to give back to the shared bucket


def _ttl(meter, now: float) -> int:
    return max(60, int(meter.period_ends_at - now) + 86400)
