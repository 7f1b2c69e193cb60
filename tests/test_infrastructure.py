"""The platform under the product: settings guards, the ASGI server, Redis and a real Celery worker."""

import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.cache.backends.redis import RedisCache

from tests import services


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=services.ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "AVTRZ_KEY_DERIVATION_SECRET": secrets.token_urlsafe(50),
    "PUBLIC_BASE_URL": "https://avtrz.example",
    "OIDC_RSA_PRIVATE_KEY": rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    .decode(),
    "EMAIL_HOST": "smtp.avtrz.example",
}


def test_refuses_to_start_in_production_with_the_development_secret():
    result = _manage("check", env={"DEBUG": "false", "PUBLIC_BASE_URL": "https://avtrz.example"})
    assert result.returncode != 0
    assert "SECRET_KEY is the development default" in result.stderr


def test_deploy_checks_are_clean_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_refuses_to_start_in_production_without_an_email_backend():
    """The console backend would write password reset links into the logs."""
    without = {name: value for name, value in PRODUCTION_ENV.items() if name != "EMAIL_HOST"}
    result = _manage("check", env=without)
    assert result.returncode != 0
    assert "No email backend while DEBUG is off" in result.stderr
    explicit = _manage("check", env={**without, "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend"})
    assert explicit.returncode == 0, explicit.stderr
    smtp = "from django.conf import settings; print(settings.EMAIL_BACKEND)"
    assert _manage("shell", "--no-imports", "-c", smtp, env=PRODUCTION_ENV).stdout.strip().endswith("smtp.EmailBackend")


def test_make_run_prints_urls_on_the_port_it_serves():
    """`PORT=9123 make run` printed a `Try:` URL on 8000: load_demo now gets the same base URL."""
    result = subprocess.run(
        ["make", "-n", "run", "HOST=127.0.0.1", "PORT=9123"],
        cwd=services.ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    demo = [line for line in result.stdout.splitlines() if "load_demo" in line]
    assert demo and "http://127.0.0.1:9123" in demo[0], result.stdout
    assert ":8000" not in result.stdout


def test_make_superuser_works_as_the_readme_writes_it(tmp_path):
    database = f"sqlite:///{tmp_path}/staff.sqlite3"
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": database}
    made = subprocess.run(
        ["make", "superuser"],
        cwd=services.ROOT,
        env={**env, "DJANGO_SUPERUSER_EMAIL": "staff@example.com", "DJANGO_SUPERUSER_PASSWORD": "staff sturdy 1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    assert "Traceback" not in made.stderr
    # The row itself, read from the file: a third Django start would cost more than the check.
    with closing(sqlite3.connect(tmp_path / "staff.sqlite3")) as db:
        rows = db.execute("SELECT is_superuser, is_staff FROM accounts_user WHERE email = ?", ["staff@example.com"])
        assert rows.fetchall() == [(1, 1)]


def test_bad_environment_values_are_named():
    result = _manage("check", env={**PRODUCTION_ENV, "DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG must be true or false" in result.stderr


def test_a_rotated_secret_key_keeps_oauth_client_secrets_working_while_it_is_a_fallback():
    old, new = secrets.token_urlsafe(50), secrets.token_urlsafe(50)
    make = (
        "from django.contrib.auth.hashers import make_password; "
        "print(make_password('s3cret', hasher='avtrz_hmac_sha256'))"
    )
    digest = _manage("shell", "--no-imports", "-c", make, env={**PRODUCTION_ENV, "SECRET_KEY": old}).stdout.strip()
    check = f"from django.contrib.auth.hashers import check_password; print(check_password('s3cret', {digest!r}))"
    rotated = {**PRODUCTION_ENV, "SECRET_KEY": new}
    assert (
        _manage("shell", "--no-imports", "-c", check, env={**rotated, "SECRET_KEY_FALLBACKS": old}).stdout.strip()
        == "True"
    )
    assert _manage("shell", "--no-imports", "-c", check, env=rotated).stdout.strip() == "False"


@pytest.mark.django_db(transaction=True)
def test_the_asgi_server_serves_pages_over_http(tmp_path):
    port = services.free_port()
    with services.running(
        services.uvicorn_cmd(port), env=services.server_env(), port=port, log=tmp_path / "uvicorn.log"
    ):
        landing = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        login = requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=10)
        css = requests.get(f"http://127.0.0.1:{port}/static/css/app.css", timeout=10)
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    assert landing.status_code == 200
    assert "durable, face-cropped photo URL" in landing.text
    assert login.status_code == 200
    assert 'name="csrfmiddlewaretoken"' in login.text
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    assert health.json()["status"] == "ok"


def test_a_stalled_redis_does_not_hold_the_throttles():
    """A Redis that accepts connections and never answers (a stalled server, not a refused one): the
    cache-backed throttles in front of sign-in and the token endpoint give up after REDIS_TIMEOUT_S
    and let the request through (the client library alone would wait 5 s per call)."""
    with socket.socket() as stalled:
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(8)
        url = f"redis://127.0.0.1:{stalled.getsockname()[1]}/0"
        count = (
            "import time; from avtrz.lib import throttle; started = time.monotonic(); "
            "print(throttle.hit('login-pair', 'a@example.com', 60).count, time.monotonic() - started)"
        )
        result = _manage(
            "shell", "--no-imports", "-c", count, env={"DEBUG": "true", "REDIS_URL": url, "REDIS_TIMEOUT_S": "0.5"}
        )
    assert result.returncode == 0, result.stderr
    counted, waited = result.stdout.split()
    assert counted == "0"  # failed open: nothing counted, nothing refused
    assert float(waited) < 2.5  # the configured timeout, not the library's 5 s


@pytest.mark.redis
def test_redis_counts_exactly_under_concurrency():
    cache = RedisCache(services.redis_url(), {"KEY_PREFIX": f"test-{secrets.token_hex(4)}"})
    cache.set("counter", 0)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: cache.incr("counter"), range(400)))
    assert cache.get("counter") == 400
    cache.delete("counter")


@pytest.mark.redis
@pytest.mark.celery_worker
def test_a_real_celery_worker_runs_a_task_from_redis(tmp_path):
    url = services.redis_url()
    mail_dir = tmp_path / "mail"
    queue = f"test-{secrets.token_hex(4)}"
    env = {
        "REDIS_URL": url,
        "DEBUG": "true",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
    }
    with services.running(services.celery_worker_cmd(queue), env=env, log=tmp_path / "worker.log"):
        sender = services.task_sender(url)
        sender.send_task("workspaces.tasks.send_email", args=["x@example.com", "Hello", "From a worker"], queue=queue)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (mail_dir.exists() and any(mail_dir.iterdir())):
            time.sleep(0.2)
    sent = [p.read_text() for p in mail_dir.iterdir()] if mail_dir.exists() else []
    assert sent, (tmp_path / "worker.log").read_text()[-3000:]
    assert "Subject: Hello" in sent[0]
    assert "From a worker" in sent[0]
