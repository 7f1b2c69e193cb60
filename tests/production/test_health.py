"""`/healthz` checks the database, the cache and the broker, each within a short timeout."""

import time

import pytest
import requests
from django.core.cache.backends.redis import RedisCache

from avtrz.celery import app as celery_app
from avtrz.site import views
from tests import services


pytestmark = pytest.mark.django_db


def closed_port() -> int:
    return services.free_port()  # bound and released: nothing listens there


def test_healthy_embedded(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok" and body["checks"]["cache"] == "ok"
    assert body["checks"]["broker"] == "eager"  # the tests run tasks in-process


@pytest.fixture
def broker(monkeypatch):
    """Tasks go to a broker (as in production) at the URL the test sets."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)

    def use(url: str) -> None:
        monkeypatch.setitem(celery_app.conf, "broker_url", url)
        monkeypatch.setitem(celery_app.conf, "broker_write_url", url)

    return use


def use_cache(monkeypatch, url: str) -> None:
    # Patched where the check reads it, not in settings: the suite's teardown clears the configured cache.
    monkeypatch.setattr(views, "cache", RedisCache(url, {"KEY_PREFIX": "test-healthz"}))


@pytest.mark.redis
def test_healthy_with_redis(client, monkeypatch, broker):
    url = services.redis_url()
    use_cache(monkeypatch, url)
    broker(url)
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "broker": "ok"}}


def test_a_dead_broker_fails_quickly(client, broker):
    broker(f"redis://127.0.0.1:{closed_port()}/0")
    started = time.monotonic()
    response = client.get("/healthz")
    assert time.monotonic() - started < 1.5
    assert response.status_code == 503
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {"status": "error", "checks": {"database": "ok", "cache": "ok", "broker": "error"}}


def test_a_dead_cache_is_named(client, monkeypatch):
    use_cache(monkeypatch, f"redis://127.0.0.1:{closed_port()}/0")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "cache": "error", "broker": "eager"}


def test_a_hung_check_times_out(client, settings, monkeypatch):
    settings.HEALTH_CHECK_TIMEOUT_S = 0.2
    monkeypatch.setitem(views.CHECKS, "cache", lambda: time.sleep(1) or "ok")
    started = time.monotonic()
    response = client.get("/healthz")
    assert time.monotonic() - started < 0.8
    assert response.status_code == 503
    assert response.json()["checks"]["cache"] == "timeout"


@pytest.mark.django_db(transaction=True)
def test_a_dead_database_is_named(tmp_path):
    port = services.free_port()
    env = services.server_env(DATABASE_URL=f"postgres://avtrz@127.0.0.1:{closed_port()}/avtrz")
    with services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "server.log"):
        response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "error"
