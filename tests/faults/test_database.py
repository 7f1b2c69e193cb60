"""PostgreSQL restarted under a running server: cache hits keep answering, what needs the database gets a
clean 503, and the server recovers by itself when the database is back.

The test runs its own PostgreSQL cluster (the machine's is shared), as the `postgres` user when run as root:
initdb refuses root.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from django.db import OperationalError

from avtrz.avatars import services as services_module
from tests import services
from tests.avatars.test_openapi import check
from tests.oauth.oauthutil import form_fields


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    services.require("PostgreSQL server binaries", bool(found), "apt-get install postgresql")
    return Path(found[-1]).parent


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Cluster:
    def __init__(self, bin_dir: Path, data: Path, port: int) -> None:
        self.bin_dir, self.data, self.port = bin_dir, data, port
        self.url = f"postgres://postgres@127.0.0.1:{port}/avtrz"

    def run(self, tool: str, *args: str) -> None:
        subprocess.run(_as_postgres([str(self.bin_dir / tool), *args]), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "server.log"), "-w", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    bin_dir = _postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="avtrz-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = Cluster(bin_dir, root / "data", services.free_port())
    try:
        cluster.run("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres", "--no-sync")
        cluster.start()
        cluster.run("createdb", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "avtrz")
        yield cluster
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _manage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=services.ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_a_database_restart_is_answered_cleanly_and_recovered_from(tmp_path):
    with private_cluster() as db:
        port = services.free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            "DATABASE_URL": db.url,
            "DEBUG": "true",
            "PYTHONUNBUFFERED": "1",
            "PUBLIC_BASE_URL": base,
            "MEDIA_ROOT": str(tmp_path / "media"),
            "REDIS_URL": "",  # this test is about the database alone
            "DB_CONN_MAX_AGE": "0",
        }
        # The schema and the demo in one process: one Django start, not two.
        prepare = "from django.core.management import call_command as run; run('migrate', interactive=False); "
        prepare += "run('load_demo')"
        key = re.search(r"pk_live_\w+", _manage("shell", "--no-imports", "-c", prepare, env=env))[0]
        with services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "server.log"):
            browser = requests.Session()
            login = form_fields(browser.get(f"{base}/accounts/login/", timeout=10).text)
            fields = {**dict(login), "username": "demo@avtrz.local", "password": "avtrz-demo-2026"}
            assert browser.post(f"{base}/accounts/login/", data=fields, timeout=10).status_code == 200

            def avatar(username: str) -> requests.Response:
                params = {"key": key, "username": username}
                return requests.get(f"{base}/v1/avatar", params=params, allow_redirects=False, timeout=10)

            assert avatar("eileen-collins").status_code == 302  # now cached
            assert browser.get(f"{base}/w/demo/", timeout=10).status_code == 200

            db.stop()
            hit = avatar("eileen-collins")
            cold = avatar("alex-rivera")
            page = browser.get(f"{base}/w/demo/", timeout=10)

            db.start()
            after = [avatar("alex-rivera"), browser.get(f"{base}/w/demo/", timeout=10)]
        log = (tmp_path / "server.log").read_text()

    assert hit.status_code == 302 and hit.headers["X-Cache"] == "HIT"
    assert cold.status_code == 503, cold.text
    assert cold.headers["Content-Type"] == "application/json"
    assert cold.json()["error"]["code"] == "unavailable"
    assert int(cold.headers["Retry-After"]) > 0
    assert page.status_code == 503
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Briefly unavailable" in page.text and "Traceback" not in page.text
    assert [r.status_code for r in after] == [302, 200]
    assert "Internal Server Error" not in log


@pytest.mark.django_db
def test_the_503_is_documented(client, monkeypatch, pk):
    def unreachable(handle):
        raise OperationalError("connection refused")

    monkeypatch.setattr(services_module, "load_card", unreachable)
    response = client.get("/v1/avatar", {"key": pk, "username": "someone-new"})
    assert response.status_code == 503
    check(client.get("/v1/openapi.json").json(), "/v1/avatar", response)
