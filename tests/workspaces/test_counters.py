"""The live counters: token buckets in memory and in Redis (real Redis, an injected clock, no sleeps),
what a failed drain or a failed database write keeps, and counts that survive Redis going away."""

import logging
import pickle
import socket
import threading
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import redis
from django.db import OperationalError, connection

from tests import services
from workspaces import counters, usage
from workspaces.counters import LeasedCounters, LocalCounters
from workspaces.models import DailyUsage, Plan, UsagePeriod, Workspace
from workspaces.services import roll_usage_periods


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def meter(*, rate: int = 5, burst: int = 60, limit: int = 1000, used: int = 0, workspace_id: int = 1, period_id=1):
    return usage.Meter(
        workspace_id=workspace_id,
        plan_name="Free",
        requests_per_second=rate,
        rate_burst=burst,
        period_id=period_id,
        period_ends_at=1_800_000_000.0 + 30 * 86400,
        requests_limit=limit,
        new_profiles_limit=100,
        requests_used=used,
    )


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(services.redis_url(), socket_timeout=2, socket_connect_timeout=2)
    yield client
    client.close()


@pytest.fixture(params=["memory", "redis"])
def any_counters(request, clock):
    if request.param == "memory":
        return LocalCounters(clock)
    return LeasedCounters(request.getfixturevalue("redis_client"), clock)


def admit_many(live, count: int, **meter_args) -> list[counters.Admission]:
    return [live.admit(meter(**meter_args), None) for _ in range(count)]


def age_shared_bucket(client, workspace_id: int, seconds: float) -> None:
    """Time passes for the Redis bucket (it reads Redis TIME): its last refill moves back."""
    client.hincrbyfloat(counters._key("bucket", workspace_id), "at", -seconds * 1_000_000)


def point_at(client, port: int) -> None:
    """New connections of the client go to `port` (its open ones are dropped)."""
    pool = client.connection_pool
    pool.disconnect()
    pool.reset()
    pool.connection_kwargs["port"] = port


@contextmanager
def redis_away(client):
    """Redis refuses connections, as a stopped Redis does, until the block ends."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    real_port = client.connection_pool.connection_kwargs["port"]
    point_at(client, port)
    try:
        yield
    finally:
        point_at(client, real_port)


# ---------------------------------------------------------------- buckets


def test_a_page_of_50_avatars_on_free_is_admitted_whole(any_counters):
    page = admit_many(any_counters, 50)
    assert all(admission.allowed for admission in page)


def test_the_bucket_holds_the_burst_then_refuses_until_a_token_is_back(any_counters):
    admissions = admit_many(any_counters, 61, rate=1)  # 1/s: Redis's clock adds no token during the test
    assert [a.allowed for a in admissions].count(True) == 60
    refused = admissions[-1]
    assert (refused.reason, refused.retry_after, refused.remaining) == ("rate_limited", 1, 0)


def test_remaining_counts_down_in_memory(clock):
    live = LocalCounters(clock)
    assert [a.remaining for a in admit_many(live, 3)] == [59, 58, 57]
    clock.advance(0.4)  # two tokens back at 5/s
    assert live.admit(meter(), None).remaining == 58


def test_a_sustained_flood_gets_the_rate_in_memory(clock):
    live = LocalCounters(clock)
    admit_many(live, 60)
    admitted = 0
    for _ in range(10):  # ten seconds of 20 requests a second
        clock.advance(1)
        admitted += sum(a.allowed for a in admit_many(live, 20))
    assert admitted == 50


def test_a_sustained_flood_gets_the_rate_in_redis(clock, redis_client):
    live = LeasedCounters(redis_client, clock)
    admit_many(live, 5, rate=1, burst=5)
    admitted = 0
    for _ in range(5):  # 5 s at a time (Redis's own clock also runs on, by the test's fraction of a second)
        age_shared_bucket(redis_client, 1, 5)
        clock.advance(1)  # the refusal the process remembers ends with the next token
        admitted += sum(a.allowed for a in admit_many(live, 20, rate=1, burst=5))
    assert admitted in (25, 26)


def test_processes_sharing_redis_never_pass_the_bucket_and_admit_a_page_whole(clock, redis_client):
    first, second = LeasedCounters(redis_client, clock), LeasedCounters(redis_client, clock)
    page = [process.admit(meter(rate=1), None).allowed for _ in range(25) for process in (first, second)]
    assert all(page)
    more = [process.admit(meter(rate=1), None).allowed for _ in range(20) for process in (first, second)]
    assert 50 + sum(more) <= 60


def test_retry_after_is_whole_seconds_until_one_token(any_counters):
    refused = admit_many(any_counters, 2, rate=1, burst=1)[-1]
    assert (refused.allowed, refused.retry_after) == (False, 1)


def test_quota_refusals_still_say_what_the_bucket_holds(any_counters):
    admissions = admit_many(any_counters, 3, limit=2)
    assert [a.allowed for a in admissions] == [True, True, False]
    assert admissions[-1].reason == "quota_exceeded" and admissions[-1].remaining is not None


# ---------------------------------------------------------------- the event loop's call


def test_local_only_decides_from_the_lease_or_says_it_needs_redis(clock, redis_client):
    live = LeasedCounters(redis_client, clock)
    with redis_away(redis_client):
        assert live.admit(meter(), None, local_only=True) is None  # nothing leased: Redis needed
        assert not live.redis_away  # and it was not asked
    assert live.admit(meter(), None).allowed  # a thread's call leases tokens
    with redis_away(redis_client):
        assert live.admit(meter(), None, local_only=True).allowed  # from the lease, no I/O
        assert not live.redis_away


def test_local_only_refuses_from_memory_once_redis_said_the_bucket_is_empty(clock, redis_client):
    live = LeasedCounters(redis_client, clock)
    admit_many(live, 2, rate=1, burst=1)
    with redis_away(redis_client):
        refused = live.admit(meter(rate=1, burst=1), None, local_only=True)
    assert refused is not None and refused.reason == "rate_limited"


def test_local_only_refuses_from_memory_once_redis_said_the_quota_is_spent(clock, redis_client):
    live = LeasedCounters(redis_client, clock)
    admit_many(live, 2, limit=1)
    with redis_away(redis_client):
        refused = live.admit(meter(limit=1), None, local_only=True)
        assert live.admit(meter(limit=2), None, local_only=True) is None  # a raised limit asks Redis again
    assert refused is not None and refused.reason == "quota_exceeded"


def test_a_meter_cached_before_plans_had_bursts_keeps_a_one_second_bucket():
    old = pickle.dumps(meter(rate=5, burst=60))
    old = old.replace(b"rate_burst", b"gone_burst")  # as the previous release pickled it: no burst
    assert pickle.loads(old).rate_burst == 5  # noqa: S301 (our own bytes)


def test_no_redis_call_happens_under_the_lock(clock, redis_client):
    """While one request waits on a Redis that accepts and never answers, another is admitted from
    its lease at once."""
    live = LeasedCounters(redis_client, clock)
    assert live.admit(meter(workspace_id=2, period_id=2), None).allowed  # workspace 2 holds a lease
    accepted = threading.Event()
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen()

        held = []

        def accept_and_say_nothing():
            held.append(black_hole.accept()[0])  # kept open, never read from nor answered
            accepted.set()

        threading.Thread(target=accept_and_say_nothing, daemon=True).start()
        point_at(redis_client, black_hole.getsockname()[1])
        stalled_answers = []
        stalled = threading.Thread(
            target=lambda: stalled_answers.append(live.admit(meter(workspace_id=3, period_id=3), None))
        )
        stalled.start()
        assert accepted.wait(5)
        admission = live.admit(meter(workspace_id=2, period_id=2), None, local_only=True)
        still_waiting = stalled.is_alive()
        stalled.join(10)
        for peer in held:
            peer.close()
    assert admission.allowed and still_waiting
    # The stalled request gave up after the client's read timeout and was decided in memory.
    assert stalled_answers[0].allowed and live.redis_away


# ---------------------------------------------------------------- drains and writes that fail


def test_a_failed_drain_loses_no_count_and_reserves_no_quota(clock, redis_client):
    live = LeasedCounters(redis_client, clock)
    assert live.admit(meter(), None).allowed  # leases a block of the quota
    reserved, drained = counters._key("reserved", 1), counters._key("drained", 1)
    assert int(redis_client.get(reserved)) > 1
    clock.advance(2)  # the lease is idle: its unused tokens go back at the next drain
    with redis_away(redis_client):
        assert live.drain().unsent == {1: 1}  # the count comes back at once, for the database
    for _ in range(2):  # Redis says it never got that drain: its tokens go back to the lease, then to Redis
        clock.advance(2)
        assert not live.drain().unsent
    assert int(redis_client.get(reserved)) == 1  # only the request admitted holds quota
    assert int(redis_client.get(drained) or 0) == 0  # counted once, in the database


def test_redis_keeps_one_mark_per_process_not_one_per_drain(clock, redis_client):
    live = LeasedCounters(redis_client, clock)
    for _ in range(5):
        assert live.admit(meter(), None).allowed
        live.drain()
        live.take_drained(1)
    assert len(redis_client.keys(counters._key("drain", "*"))) == 1
    assert len(redis_client.keys(counters._key("take", "*"))) == 1


@contextmanager
def answers_lost(client):
    """Redis gets every command and carries it out, but once the connection is up its answers stop
    coming back (a stall)."""
    real_port = client.connection_pool.connection_kwargs["port"]
    listener = socket.create_server(("127.0.0.1", 0))
    silent = threading.Event()
    sockets = [listener]

    def proxy():
        while True:
            try:
                peer, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", real_port))
            sockets.extend([peer, upstream])
            threading.Thread(target=_forward, args=(peer, upstream, None), daemon=True).start()
            threading.Thread(target=_forward, args=(upstream, peer, silent), daemon=True).start()

    threading.Thread(target=proxy, daemon=True).start()
    point_at(client, listener.getsockname()[1])
    client.ping()  # the connection and its handshake, answered
    silent.set()
    try:
        yield
    finally:
        for sock in sockets:
            sock.close()
        point_at(client, real_port)


def _forward(source, target, silent: threading.Event | None) -> None:
    try:
        while data := source.recv(65536):
            if silent is None or not silent.is_set():
                target.sendall(data)
    except OSError:
        pass


def test_a_drain_redis_took_without_answering_counts_once(clock):
    client = redis.Redis.from_url(services.redis_url(), socket_timeout=1, socket_connect_timeout=1)
    live = LeasedCounters(client, clock)
    for _ in range(3):
        assert live.admit(meter(), None).allowed
    drained = counters._key("drained", 1)
    with answers_lost(client):
        assert live.drain().unsent == {1: 3}  # no answer: stored directly, whatever Redis did
    assert int(client.get(drained)) == 3  # Redis did take it
    clock.advance(2)
    for _ in range(2):
        assert not live.drain().unsent
    assert int(client.get(drained)) == 0  # taken back out once, when Redis answered again
    client.close()


def test_a_take_whose_answer_was_lost_is_recovered_by_the_next(clock):
    client = redis.Redis.from_url(services.redis_url(), socket_timeout=1, socket_connect_timeout=1)
    live = LeasedCounters(client, clock)
    for _ in range(3):
        assert live.admit(meter(), None).allowed
    live.drain()  # 3 in the drained counter
    with answers_lost(client):
        assert live.take_drained(1) == 0  # Redis took them; the answer never came
    assert client.get(counters._key("drained", 1)) is None
    clock.advance(2)
    assert live.take_drained(1) == 3
    assert live.take_drained(1) == 0  # once
    client.close()


@contextmanager
def database_away():
    """The database refuses connections until the block ends."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent/avtrz-test.sqlite3"
    else:
        connection.settings_dict["PORT"] = "1"
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)


@pytest.mark.django_db(transaction=True)
def test_a_failed_tally_write_keeps_the_chart_counts(acme):
    usage.record(acme.pk, "api_hits")
    usage.record(acme.pk, "api_hits")
    with database_away(), pytest.raises(OperationalError):
        usage.flush_now(force=True)
    usage.record(acme.pk, "api_hits")
    usage.flush_now(force=True)
    assert DailyUsage.objects.get(workspace=acme).api_hits == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_the_chart_and_the_meter_count_every_request_once_under_threads(acme, kind, request):
    """Replays tally with their admission (`admit(tally=...)`), the Django view tallies on its own (`record`),
    from several threads at once while the flusher drains: each reaches the chart and the meter exactly once."""
    usage._counters = LocalCounters() if kind == "memory" else LeasedCounters(request.getfixturevalue("redis_client"))
    Plan.objects.filter(pk=acme.plan_id).update(requests_per_second=10**6, burst=10**6, monthly_requests=10**6)
    acme.refresh_from_db()
    meter = usage.meter_for(acme)
    threads, per_thread = 4, 300
    admitted: list[int] = []

    def serve() -> None:
        allowed = 0
        for _ in range(per_thread):
            allowed += usage.admit(meter, key_id=None, tally="api_hits").allowed
            usage.record(acme.pk, "api_misses")
        admitted.append(allowed)

    workers = [threading.Thread(target=serve) for _ in range(threads)]
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        usage.flush_now()  # drains meanwhile, as the flusher thread does
    for worker in workers:
        worker.join()
    usage.flush_now(force=True)
    days = DailyUsage.objects.filter(workspace=acme)
    assert sum(admitted) == threads * per_thread  # nothing refused: every admission was tallied
    assert sum(day.api_hits for day in days) == threads * per_thread
    assert sum(day.api_misses for day in days) == threads * per_thread
    assert UsagePeriod.objects.get(pk=meter.period_id).avatar_requests == threads * per_thread


@pytest.mark.django_db(transaction=True)
def test_a_failed_count_write_keeps_the_counts(acme):
    period = usage.current_period(acme)
    for _ in range(4):
        assert usage.admit(usage.meter_for_period(period)).allowed
    with database_away(), pytest.raises(OperationalError):
        usage.flush_now(force=True)
    usage.flush_now(force=True)
    assert UsagePeriod.objects.get(pk=period.pk).avatar_requests == 4


# ---------------------------------------------------------------- Redis away


@pytest.fixture
def leased(settings, clock, redis_client):
    """This process's counters on Redis, with the injected clock."""
    usage._counters = LeasedCounters(redis_client, clock)
    return usage._counters


@pytest.mark.django_db(transaction=True)
def test_counts_made_while_redis_is_away_go_to_the_database(acme, leased, redis_client):
    period = usage.current_period(acme)
    with redis_away(redis_client):
        for _ in range(3):
            assert usage.admit(usage.meter_for_period(period), tally="api_hits").allowed
        usage.flush_now()  # no force: while Redis is away every pass writes
        assert UsagePeriod.objects.get(pk=period.pk).avatar_requests == 3
    assert DailyUsage.objects.get(workspace=acme).api_hits == 3  # and the chart tallied them


@pytest.mark.django_db(transaction=True)
def test_nothing_is_counted_twice_when_redis_returns(acme, leased, clock, redis_client):
    """One process counts through Redis, another while Redis is away from it; both flush."""
    period = usage.current_period(acme)
    other = LeasedCounters(redis_client, clock)
    for _ in range(5):
        assert other.admit(usage.meter_for_period(period), None).allowed
    assert not other.drain().unsent  # in Redis's drained counter now
    with redis_away(redis_client):
        for _ in range(3):
            assert usage.admit(usage.meter_for_period(period)).allowed
        usage.flush_now(force=True)  # this process's 3 (decided in memory), directly
    clock.advance(2)
    for _ in range(2):
        assert usage.admit(usage.meter_for_period(period)).allowed
    usage.flush_now(force=True)  # the other process's 5 and this one's 2, from Redis
    usage.flush_now(force=True)
    assert UsagePeriod.objects.get(pk=period.pk).avatar_requests == 10
    assert usage.requests_used(period.pk) == 10


@pytest.mark.django_db(transaction=True)
def test_the_roll_stores_what_a_stopped_process_left_in_redis_for_the_last_cycle(acme, leased, clock, redis_client):
    """A process drained its counts into Redis and stopped before any write of that period."""
    Workspace.objects.filter(pk=acme.pk).update(billing_anchor_day=15)
    acme.refresh_from_db()
    february = usage.current_period(acme, datetime(2026, 3, 1, tzinfo=UTC))
    stopped = LeasedCounters(redis_client, clock)
    for _ in range(4):
        assert stopped.admit(usage.meter_for_period(february), None).allowed
    stopped.drain()
    roll_usage_periods(datetime(2026, 3, 15, 0, 30, tzinfo=UTC))
    assert UsagePeriod.objects.get(pk=february.pk).avatar_requests == 4


def test_an_outage_is_logged_once_then_once_a_minute_and_its_end_once(clock, redis_client, caplog):
    live = LeasedCounters(redis_client, clock)
    caplog.set_level(logging.WARNING, logger="workspaces.counters")
    with redis_away(redis_client):
        for _ in range(100):  # 50 s of requests and drains, a call to Redis each second
            live.admit(meter(), None)
            live.drain()
            clock.advance(0.5)
        assert len(caplog.records) == 1 and "cannot reach Redis" in caplog.records[0].getMessage()
        clock.advance(15)
        live.admit(meter(), None)
        assert len(caplog.records) == 2 and "still cannot reach Redis after 65 s" in caplog.messages[1]
    clock.advance(2)
    live.admit(meter(), None)
    live.admit(meter(), None)
    assert len(caplog.records) == 3 and "reach Redis again" in caplog.messages[2]
    assert all(record.exc_info is None for record in caplog.records)
