"""Reading usage while a flush moves counts from Redis into the database, in another process.

A flush takes what every process drained into Redis and adds it to the period's row. A reader that
caught the moment in between (the counts gone from Redis, not yet committed to the row) saw a count
that went down, until the commit. The reader now waits for that commit on the row's lock."""

import threading

import psycopg
import pytest
import redis
import requests
from django.db import connection

from tests import services
from workspaces import services as workspace_services
from workspaces import usage
from workspaces.counters import LeasedCounters
from workspaces.models import UsagePeriod


pytestmark = pytest.mark.django_db(transaction=True)


def _lock_waiters(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as watcher:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        return watcher.execute(query).fetchone()[0]


def _store(period_id: int) -> None:
    try:
        usage.store_period(period_id)
    finally:
        connection.close()  # this thread's own


def test_a_usage_read_while_a_flush_is_writing_sees_every_request(tmp_path, settings, alice, acme):
    services.require("PostgreSQL", connection.vendor == "postgresql", "DATABASE_URL=postgres://... (row locks)")
    redis_url = services.redis_url()
    settings.REDIS_URL = redis_url
    database_url = services.live_database_url()
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    secret = workspace_services.create_api_key(actor=alice, workspace=acme, kind="secret", name="Server")
    period = usage.current_period(acme)
    # Five requests another web process counted and drained into Redis: not in the database yet.
    other = LeasedCounters(client)
    for _ in range(5):
        assert other.admit(usage.meter_for_period(period), None).allowed
    assert not other.drain().unsent
    usage._counters = LeasedCounters(client)  # this process flushes them, through the same Redis

    port = services.free_port()
    base = f"http://127.0.0.1:{port}"
    env = services.server_env(
        PUBLIC_BASE_URL=base, MEDIA_ROOT=str(tmp_path / "media"), REDIS_URL=redis_url, **services.shared_cache_env()
    )

    def used() -> int:
        answer = requests.get(f"{base}/v1/usage", headers={"x-api-key": secret}, timeout=30)
        return answer.json()["meters"]["avatar_requests"]["used"]

    with services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "server.log"):
        assert used() == 5
        # Something else holds the period's row (a roll, a new-profile count): the flush waits on it,
        # the moment in between stretched from microseconds to as long as this test likes.
        with psycopg.connect(database_url) as holder:
            holder.execute(f"SELECT 1 FROM {UsagePeriod._meta.db_table} WHERE id = %s FOR UPDATE", [period.pk])  # noqa: S608 (our table)
            flush = threading.Thread(target=_store, args=[period.pk])
            flush.start()
            services.wait_until(lambda: _lock_waiters(database_url) >= 1, 10, "the flush to wait on the row")
            readings: list[int] = []
            reader = threading.Thread(target=lambda: readings.append(used()))
            reader.start()
            # The reader either answered at once (what it used to do) or waits behind the flush.
            services.wait_until(
                lambda: readings or _lock_waiters(database_url) >= 2, 10, "the read to answer or wait behind the flush"
            )
            holder.rollback()
        flush.join(30)
        reader.join(30)
        assert readings == [5]
        assert used() == 5
    assert UsagePeriod.objects.get(pk=period.pk).avatar_requests == 5
    client.close()
