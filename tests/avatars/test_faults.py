"""Redis stopped mid-run: `/v1/avatar` keeps answering from the database, and counts are reconciled."""

import pytest
import requests
from redis import Redis

from avtrz.avatars.directory import import_profile
from tests import services
from tests.avatars.conftest import IMAGES
from workspaces import services as workspace_services
from workspaces.models import Plan


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def test_redis_outage_keeps_answering_and_loses_no_count(tmp_path, settings, acme, alice):
    settings.MEDIA_ROOT = tmp_path / "media"
    import_profile({"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "face.jpg"}, base_dir=IMAGES)
    Plan.objects.filter(code="free").update(requests_per_second=1000)
    pk = workspace_services.create_api_key(actor=alice, workspace=acme, kind="publishable", name="Web")
    sk = workspace_services.create_api_key(actor=alice, workspace=acme, kind="secret", name="Server")
    port = services.free_port()
    url = f"http://127.0.0.1:{port}/v1/avatar"
    params = {"key": pk, "username": "eileen-collins"}
    with services.private_redis(tmp_path) as redis:
        env = services.web_env(port, tmp_path, redis, CELERY_TASK_ALWAYS_EAGER="true")
        with services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "server.log"):

            def used() -> int:
                meters = requests.get(f"http://127.0.0.1:{port}/v1/usage", headers={"x-api-key": sk}, timeout=10)
                return meters.json()["meters"]["avatar_requests"]["used"]

            before = [requests.get(url, params=params, allow_redirects=False, timeout=10) for _ in range(3)]
            services.wait_until(lambda: used() == 3, 15, "the flusher to count the first requests")
            redis.stop()
            during = [requests.get(url, params=params, allow_redirects=False, timeout=10) for _ in range(5)]
            redis.start()  # back, and empty: it kept nothing on disk
            client = Redis.from_url(redis.url)
            services.wait_until(
                lambda: client.pubsub_channels(), 15, "the server to listen on the restarted Redis again"
            )
            after = [requests.get(url, params=params, allow_redirects=False, timeout=10) for _ in range(2)]
            services.wait_until(lambda: used() >= 10, 15, "every request to be counted")
            total = used()
    assert [r.status_code for r in before + during + after] == [302] * 10
    assert before[-1].headers.get("X-Cache") == "HIT"
    assert total == 10
