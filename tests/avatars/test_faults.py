"""Redis stopped mid-run: `/v1/avatar` keeps answering from the database, and counts are reconciled."""

import shutil
import subprocess
import time

import pytest
import requests

from avtrz.avatars.directory import import_profile
from tests import services
from tests.avatars.conftest import IMAGES
from workspaces import services as workspace_services
from workspaces.models import Plan


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


def redis_server(port: int, log) -> subprocess.Popen:
    binary = shutil.which("redis-server") or ""
    services.require("redis-server", bool(binary), "apt-get install redis-server")
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    services.wait_for_port(port, process)
    return process


def test_redis_outage_keeps_answering_and_loses_no_count(tmp_path, settings, acme, alice):
    settings.MEDIA_ROOT = tmp_path / "media"
    import_profile({"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "face.jpg"}, base_dir=IMAGES)
    Plan.objects.filter(code="free").update(requests_per_second=1000)
    pk = workspace_services.create_api_key(actor=alice, workspace=acme, kind="publishable", name="Web")
    sk = workspace_services.create_api_key(actor=alice, workspace=acme, kind="secret", name="Server")
    redis_port, port = services.free_port(), services.free_port()
    redis_log = (tmp_path / "redis.log").open("wb")
    redis = redis_server(redis_port, redis_log)
    env = services.server_env(
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        MEDIA_ROOT=str(tmp_path / "media"),
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        CELERY_TASK_ALWAYS_EAGER="true",
    )
    url = f"http://127.0.0.1:{port}/v1/avatar"
    params = {"key": pk, "username": "eileen-collins"}
    try:
        with services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "server.log"):
            before = [requests.get(url, params=params, allow_redirects=False, timeout=10) for _ in range(3)]
            time.sleep(1)  # counted in Redis and written to the database by the flusher
            redis.terminate()
            redis.wait()
            during = [requests.get(url, params=params, allow_redirects=False, timeout=10) for _ in range(5)]
            redis = redis_server(redis_port, redis_log)  # back, and empty: it kept nothing on disk
            time.sleep(1.5)
            after = [requests.get(url, params=params, allow_redirects=False, timeout=10) for _ in range(2)]
            time.sleep(1.5)
            meters = requests.get(f"http://127.0.0.1:{port}/v1/usage", headers={"x-api-key": sk}, timeout=10).json()
    finally:
        redis.terminate()
        redis.wait()
        redis_log.close()
    assert [r.status_code for r in before + during + after] == [302] * 10
    assert before[-1].headers.get("X-Cache") == "HIT"
    assert meters["meters"]["avatar_requests"]["used"] == 10
