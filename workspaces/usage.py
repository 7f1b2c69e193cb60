"""Usage meters and limits: exact under concurrency, never admitting past a quota.

`avatar_requests` is counted on the request path by live counters (`workspaces.counters`: Redis
leases in production, process memory on the embedded default) and added to the database by a flusher
thread in each process, so a cache hit costs no query. Each count is added exactly once: from Redis's
drained counter by whichever process writes the period next, or, what Redis did not take (it was
away), by the process that counted it, at the latest when it exits.
`avatar_new_profiles` is rarer (once per profile per workspace per cycle) and is counted in the
database directly, by a conditional UPDATE that is itself the quota check.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from avtrz.lib import redisclient
from workspaces import quota_warnings
from workspaces.counters import Admission, LeasedCounters, LocalCounters
from workspaces.models import ApiKey, DailyUsage, UsagePeriod, Workspace, WorkspaceProfile
from workspaces.signals import usage_changed


log = logging.getLogger(__name__)


FLUSH_INTERVAL_S = 0.5  # how often the flusher thread drains the counters
DB_FLUSH_INTERVAL_S = 5  # how often a period's count is written to the database
TOUCH_INTERVAL_S = 60  # how often a key's last_used_at is written


def current_period(workspace: Workspace, at: datetime | None = None) -> UsagePeriod:
    """The workspace's usage period containing `at` (now), created with the plan's limits if new."""
    starts_at, ends_at = workspace.cycle_bounds(at or timezone.now())
    plan = workspace.plan
    defaults = {
        "ends_at": ends_at,
        "plan": plan,
        "requests_limit": plan.monthly_requests,
        "new_profiles_limit": plan.monthly_new_profiles,
    }
    try:
        with transaction.atomic():
            period, _ = UsagePeriod.objects.get_or_create(workspace=workspace, starts_at=starts_at, defaults=defaults)
    except IntegrityError:  # another worker created it first
        period = UsagePeriod.objects.get(workspace=workspace, starts_at=starts_at)
    return period


@dataclass(frozen=True)
class Meter:
    """What metering a workspace's request needs, without touching the database."""

    workspace_id: int
    plan_name: str
    requests_per_second: int
    rate_burst: int  # the rate bucket's size: requests at once
    period_id: int
    period_ends_at: float  # epoch seconds
    requests_limit: int
    new_profiles_limit: int
    requests_used: int  # when loaded: the seed of the live counter

    def __setstate__(self, state: dict) -> None:
        # A meter pickled by the release before plans had bursts (key contexts stay in Redis up to an
        # hour after a deploy) keeps that release's limit, a bucket of one second's requests, until reloaded.
        state.setdefault("rate_burst", state["requests_per_second"])
        self.__dict__.update(state)

    @property
    def resets_at(self) -> datetime:
        return datetime.fromtimestamp(self.period_ends_at, tz=UTC)


def meter_for(workspace: Workspace) -> Meter:
    return meter_for_period(current_period(workspace))


def meter_for_period(period: UsagePeriod) -> Meter:
    workspace = period.workspace
    return Meter(
        workspace_id=workspace.pk,
        plan_name=workspace.plan.name,
        requests_per_second=workspace.plan.requests_per_second,
        rate_burst=workspace.plan.burst,
        period_id=period.pk,
        period_ends_at=period.ends_at.timestamp(),
        requests_limit=period.requests_limit,
        new_profiles_limit=period.new_profiles_limit,
        requests_used=period.avatar_requests,
    )


def count_new_profile(period_id: int, handle: str) -> bool | None:
    """Record a workspace's first lookup of `handle` this cycle.

    True: newly counted; False: already counted this cycle; None: the new-profile quota is spent.
    """
    with transaction.atomic():
        if WorkspaceProfile.objects.filter(period_id=period_id, handle=handle).exists():
            return False
        admitted = UsagePeriod.objects.filter(pk=period_id, avatar_new_profiles__lt=F("new_profiles_limit")).update(
            avatar_new_profiles=F("avatar_new_profiles") + 1
        )
        if not admitted:
            return None
        try:
            with transaction.atomic():
                WorkspaceProfile.objects.create(period_id=period_id, handle=handle)
        except IntegrityError:
            # A concurrent request counted it first: give our increment back.
            UsagePeriod.objects.filter(pk=period_id).update(avatar_new_profiles=F("avatar_new_profiles") - 1)
            return False
    return True


@transaction.atomic
def uncount_new_profile(period_id: int, handle: str) -> None:
    """Take back `count_new_profile` for a lookup that was refused after all (rate or request quota)."""
    if WorkspaceProfile.objects.filter(period_id=period_id, handle=handle).delete()[0]:
        UsagePeriod.objects.filter(pk=period_id).update(avatar_new_profiles=F("avatar_new_profiles") - 1)


def admit(
    meter: Meter, *, key_id: int | None = None, local_only: bool = False, tally: str | None = None
) -> Admission | None:
    """Count one billable request against the rate limit and the request quota, or refuse it.

    `local_only` (the ASGI fast path, on the event loop): decide without any I/O, or return None
    when the decision needs Redis, so the caller hands the request to a thread. `tally`: what `record`
    would tally for the answer, counted with the admission if it is admitted (one lock, not two)."""
    if _flusher is None:  # the hit path: a global read, not a call, once it runs
        _ensure_flusher()
    return (_counters or counters()).admit(meter, key_id, local_only, tally)


def requests_used(period_id: int) -> int:
    """The period's request count: what the database stores and what is counted but not stored yet.

    Read as `store_period` writes, under this process's flush lock and the period row's lock: a flush
    moving counts from Redis (or this process) into the database at that moment, here or in another
    process, is seen wholly before or wholly after it, never half-way (a count that went down)."""
    with _flush_lock, transaction.atomic():
        stored = _locked_period(period_id) or 0
        return stored + counters().not_stored(period_id) + _unstored[period_id]


def _locked_period(period_id: int) -> int | None:
    """The period's stored request count, its row locked until the transaction ends (on PostgreSQL;
    SQLite, one writer at a time, ignores the lock)."""
    return (
        UsagePeriod.objects.select_for_update(no_key=True)
        .filter(pk=period_id)
        .values_list("avatar_requests", flat=True)
        .first()
    )


_counters: LocalCounters | LeasedCounters | None = None
_lock = threading.Lock()


def counters() -> LocalCounters | LeasedCounters:
    global _counters
    if _counters is None:
        # The shared client: REDIS_TIMEOUT_S on every connect and read, no retries, no waiting twice on a stall.
        made = LeasedCounters(redisclient.client()) if settings.REDIS_URL else LocalCounters()
        with _lock:
            _counters = _counters or made
    return _counters


# (workspace id, UTC day number, counter) -> count drained from the counters and not written yet; only
# `flush_now` touches it, under `_flush_lock`.
_tally: Counter[tuple[int, int, str]] = Counter()


def record(workspace_id: int, counter: str) -> None:
    """Tally one answer for the daily chart (a DailyUsage field name); written by `flush_now`. The
    counters keep the tally until then, beside the admissions (`admit(tally=...)`)."""
    (_counters or counters()).tally(workspace_id, counter)


def _write_tally() -> set[int]:
    """Add the tally to the daily rows; counts leave the tally only once their row is written, so
    a failed write keeps them for the next pass."""
    rows: dict[tuple[int, int], dict[str, int]] = {}
    for (workspace_id, day_number, counter), count in _tally.items():
        rows.setdefault((workspace_id, day_number), {})[counter] = count
    for (workspace_id, day_number), counts in rows.items():
        day = date.fromordinal(EPOCH_ORDINAL + day_number)
        try:
            with transaction.atomic():
                DailyUsage.objects.get_or_create(workspace_id=workspace_id, day=day)
                DailyUsage.objects.filter(workspace_id=workspace_id, day=day).update(
                    **{counter: F(counter) + count for counter, count in counts.items()}
                )
        except IntegrityError:  # the workspace was deleted: nowhere to write them, ever
            log.warning("daily usage of deleted workspace %s dropped", workspace_id)
        for counter in counts:
            del _tally[(workspace_id, day_number, counter)]
    return {workspace_id for workspace_id, _day in rows}


EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_flushed_at: dict[int, float] = {}  # period id -> when its count was last written
_touched_at: dict[int, float] = {}  # key id -> when its last_used_at was last written
_dirty: set[int] = set()  # periods counted since their last write
_unstored: Counter[int] = Counter()  # period id -> requests counted here that only this process will store
_flush_lock = threading.RLock()  # the flusher thread, the exit hook and the period rollover flush in turn
_flusher: threading.Thread | None = None


def flush_now(*, force: bool = False) -> None:
    """Write what the counters saw to the database: request counts every DB_FLUSH_INTERVAL_S (every
    pass while Redis is away, so a process stopped meanwhile loses nothing), last-used times every
    TOUCH_INTERVAL_S; `force` writes everything now."""
    with _flush_lock:
        activity = counters().drain()
        _tally.update(activity.tally)
        _unstored.update(activity.unsent)
        _dirty.update(activity.periods, _unstored)
        changed = _write_tally()
        now = time.monotonic()
        urgent = force or counters().redis_away
        for period_id in list(_dirty):
            if urgent or now - _flushed_at.get(period_id, 0) >= DB_FLUSH_INTERVAL_S:
                _flushed_at[period_id] = now
                store_period(period_id)
        for key_id, used_at in activity.keys.items():
            if force or now - _touched_at.get(key_id, 0) >= TOUCH_INTERVAL_S:
                _touched_at[key_id] = now
                ApiKey.objects.filter(pk=key_id).update(last_used_at=datetime.fromtimestamp(used_at, tz=UTC))
    for workspace in Workspace.objects.select_related("plan").filter(pk__in=changed):
        # Here, where the fresh counts were just written: warn the owners of a quota nearly spent, then
        # tell the dashboard (one load of the workspace and its period for both).
        period = current_period(workspace)
        quota_warnings.warn_quota_thresholds(period, requests_used=requests_used(period.pk))
        usage_changed.send(sender=Workspace, workspace=workspace, period=period)


def store_period(period_id: int) -> None:
    """Add the period's requests counted but not stored to the database: what every process drained
    into Redis, and what this process kept itself. A failed write keeps them all for the next pass."""
    with _flush_lock:
        _dirty.discard(period_id)
        count = 0
        try:
            with transaction.atomic():
                # Locked before the counts leave Redis: `requests_used` elsewhere waits for the commit.
                stored = _locked_period(period_id)
                count = _unstored.pop(period_id, 0) + counters().take_drained(period_id)
                if count:
                    UsagePeriod.objects.filter(pk=period_id).update(avatar_requests=F("avatar_requests") + count)
        except Exception:
            _unstored[period_id] += count  # taken from Redis too: this process stores them now
            _dirty.add(period_id)
            raise
    if stored is not None:  # None: the workspace was deleted, its counts with it
        counters().note_stored(period_id, stored + count)


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_INTERVAL_S)
        try:
            flush_now()
        except Exception:  # keep counting; what was not written is written on a later pass
            log.exception("usage flush failed")
        finally:
            close_old_connections()


def flush_at_shutdown() -> None:
    """Store everything counted before the process ends. uvicorn calls it through the ASGI lifespan
    (`avtrz.asgi`) once a SIGTERM (a deploy, a scale-down) has drained the requests in flight, as it
    ends the process by that signal, where exit hooks never run; other processes at their exit."""
    try:
        flush_now(force=True)
    except Exception:
        log.exception("usage flush at shutdown failed: requests counted since the last flush are lost")
    finally:
        close_old_connections()


def _ensure_flusher() -> None:
    """Start this process's flusher thread and exit hook on first use (tests flush explicitly instead)."""
    global _flusher
    if _flusher is None and settings.AVTRZ_BACKGROUND_FLUSH:
        with _lock:
            if _flusher is None:
                _flusher = threading.Thread(target=_flush_forever, name="avtrz-usage-flush", daemon=True)
                _flusher.start()
                atexit.register(flush_at_shutdown)
