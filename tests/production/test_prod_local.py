"""`bin/prod-local` (`make prod-local`): the production shape on PostgreSQL and Redis, started and stopped together."""

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import connection

from tests import services


SCRIPT = str(services.ROOT / "bin" / "prod-local")


def test_refuses_to_start_without_its_services():
    env = {"PATH": os.environ["PATH"], "BIN": str(Path(sys.executable).parent)}
    result = subprocess.run([SCRIPT], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "set DATABASE_URL REDIS_URL SECRET_KEY AVTRZ_KEY_DERIVATION_SECRET OIDC_RSA_PRIVATE_KEY" in result.stderr


def test_refuses_sqlite():
    env = {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": "sqlite:///db.sqlite3",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "SECRET_KEY": "x" * 50,
        "AVTRZ_KEY_DERIVATION_SECRET": "y" * 50,
        "OIDC_RSA_PRIVATE_KEY": "pem",
    }
    result = subprocess.run([SCRIPT], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "DATABASE_URL must be a PostgreSQL URL" in result.stderr


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.django_db(transaction=True)
def test_serves_and_stops_every_process(tmp_path):
    services.require(
        "PostgreSQL", connection.vendor == "postgresql", "DATABASE_URL=postgres://... (prod-local refuses SQLite)"
    )
    port = services.free_port()
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    env = {
        **os.environ,
        "BIN": str(Path(sys.executable).parent),
        "DATABASE_URL": services.live_database_url(),
        "REDIS_URL": services.redis_url(),
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "AVTRZ_KEY_DERIVATION_SECRET": uuid.uuid4().hex * 2,
        "OIDC_RSA_PRIVATE_KEY": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "PORT": str(port),
        "VAR_DIR": str(tmp_path),
        "CACHE_KEY_PREFIX": namespace,
        "AVTRZ_COUNTER_PREFIX": f"{namespace}:",
    }
    with (tmp_path / "out.log").open("wb") as out:
        script = subprocess.Popen([SCRIPT], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            services.wait_for_port(port, script, timeout=90)
            base = f"http://127.0.0.1:{port}"
            health = requests.get(f"{base}/healthz", timeout=10)
            landing = requests.get(f"{base}/", timeout=10)
            css = re.search(r'href="/(static/css/app\.[0-9a-f]{12}\.css)"', landing.text)
            static = requests.get(f"{base}/{css.group(1)}", timeout=10) if css else None
        finally:
            script.send_signal(signal.SIGTERM)
            returncode = script.wait(timeout=60)
    output = (tmp_path / "out.log").read_text()
    assert health.status_code == 200, output
    assert health.json()["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}
    assert landing.status_code == 200
    assert css, "collectstatic's manifest names the stylesheet by its hash"
    assert static.status_code == 200 and "immutable" in static.headers["Cache-Control"]
    assert returncode == 143
    deadline = time.monotonic() + 10
    while _group_alive(script.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(script.pid), "a process outlived prod-local"
    for name in ("web", "worker", "beat"):
        assert (tmp_path / "log" / f"{name}.log").stat().st_size > 0
    assert "celery@" in (tmp_path / "log" / "worker.log").read_text()  # "celery@<host> ready."
