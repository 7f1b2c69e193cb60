"""Redis stops and the instance is stopped (a deploy, a scale-down) before it returns: every request it
answered is in the database, and the outage is one log line, not one per flush."""

import pytest
import requests

from avtrz.avatars.directory import import_profile
from tests import services
from tests.avatars.conftest import IMAGES
from workspaces import services as workspace_services
from workspaces.models import Plan, UsagePeriod


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def stored(acme) -> int:
    return sum(UsagePeriod.objects.filter(workspace=acme).values_list("avatar_requests", flat=True))


def test_an_instance_stopped_while_redis_is_away_has_stored_every_request(tmp_path, settings, acme, alice):
    settings.MEDIA_ROOT = tmp_path / "media"
    import_profile({"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "face.jpg"}, base_dir=IMAGES)
    Plan.objects.filter(code="free").update(requests_per_second=1000, burst=1000)
    pk = workspace_services.create_api_key(actor=alice, workspace=acme, kind="publishable", name="Web")
    port = services.free_port()
    url = f"http://127.0.0.1:{port}/v1/avatar"
    params = {"key": pk, "username": "eileen-collins"}
    server_log = tmp_path / "server.log"

    def fetch(count: int) -> list[int]:
        return [requests.get(url, params=params, allow_redirects=False, timeout=10).status_code for _ in range(count)]

    with services.private_redis(tmp_path) as redis:
        env = services.web_env(port, tmp_path, redis, CELERY_TASK_ALWAYS_EAGER="true")
        with services.running(services.uvicorn_cmd(port), env=env, port=port, log=server_log) as server:
            before = fetch(3)
            services.wait_until(lambda: stored(acme) == 3, 15, "the first requests stored through Redis")
            redis.stop()
            during = fetch(14)
            # Written to the database while Redis is away, by the flusher's passes.
            services.wait_until(lambda: stored(acme) == 17, 15, "counts stored while Redis is away")
            last = fetch(6)
            server.terminate()  # SIGTERM before Redis returns: the exit flush stores the last ones
            server.wait(timeout=20)
    assert before + during + last == [302] * 23
    assert stored(acme) == 23
    log = server_log.read_text()
    assert log.count("usage counters cannot reach Redis") == 1, log
    assert "usage flush failed" not in log and "still cannot reach Redis" not in log, log
