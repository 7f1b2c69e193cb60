"""What the benchmarks share: a production-style server (DEBUG off, Redis, uvicorn with uvloop and
httptools) on loopback over a fresh SQLite database holding the demo directory."""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on {port} did not start")


def uvicorn(app: str, port: int, env: dict[str, str], workers: int = 1) -> subprocess.Popen:
    cmd = [
        PYTHON,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env})
    wait_for(port)
    return process


def signing_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def server_env(tmp: str, port: int) -> dict[str, str]:
    """Production settings for a server on `port`, with its data under `tmp` and its own Redis namespace."""
    return {
        "OIDC_RSA_PRIVATE_KEY": signing_key(),
        "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "AVTRZ_KEY_DERIVATION_SECRET": secrets.token_urlsafe(40),
        "SECURE_SSL_REDIRECT": "false",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "MEDIA_ROOT": f"{tmp}/media",
        "CACHE_KEY_PREFIX": f"bench-{secrets.token_hex(4)}",
        "AVTRZ_COUNTER_PREFIX": f"bench:{secrets.token_hex(4)}:",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    }


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True, text=True
    ).stdout


def prepare(env: dict[str, str]) -> str:
    """Migrate, load the demo directory, lift the plan limits (the benchmarks measure serving, not
    quotas) and return the demo publishable key."""
    manage(env, "migrate", "-v0")
    out = manage(env, "load_demo", "--force")
    manage(
        env,
        "shell",
        "-c",
        "from workspaces.models import Plan; Plan.objects.update("
        "monthly_requests=10**9, monthly_new_profiles=10**6, requests_per_second=10**6, burst=10**6)",
    )
    return re.search(r"Demo publishable key:\s+(\S+)", out).group(1)
