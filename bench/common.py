"""What the benchmarks share: a production-style server (DEBUG off, Redis, uvicorn with uvloop and
httptools) on loopback over a fresh SQLite database holding the demo directory.

A benchmark touches only what it made for itself, whatever the environment it is run from holds: its
servers get none of the caller's variables (a production DATABASE_URL, bucket or broker exported in the
shell stays out of them), PostgreSQL work happens in a database it creates under its own name
(`avtrz_bench_<random>`) and drops, and Redis keys live under its own random prefixes on
BENCH_REDIS_URL (default db 14 on loopback; REDIS_URL is never read). Services must be on loopback.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# The caller's variables a benchmark's subprocesses may see: where programs and the home are, the locale.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
# Every PostgreSQL database a benchmark creates is named so, and it drops no other.
SCRATCH_DATABASE_PREFIX = "avtrz_bench_"


class UnsafeTarget(SystemExit):
    """The benchmark was pointed at something it did not make for itself: it refuses, touching nothing."""

    def __init__(self, message: str) -> None:
        super().__init__(f"bench: refusing to run: {message}")


def on_loopback(url: str, variable: str) -> str:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise UnsafeTarget(f"{variable} points at {host or url!r}; benchmarks use services on this machine only")
    return url


def bench_redis_url() -> str:
    return on_loopback(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"), "BENCH_REDIS_URL")


@contextmanager
def scratch_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database on BENCH_POSTGRES_URL's server (default the local one as
    `postgres`), created for this run under a name no one else uses, and dropped afterwards.

    It is created, never dropped first, so an existing database of that name is an error, not a loss;
    BENCH_POSTGRES_URL names a server, and one naming a database is refused."""
    import psycopg
    from psycopg import sql

    default = "postgres://postgres@127.0.0.1:5432"
    server = on_loopback(os.environ.get("BENCH_POSTGRES_URL", default), "BENCH_POSTGRES_URL")
    parts = urlsplit(server)
    if parts.path.strip("/") not in ("", "postgres"):
        raise UnsafeTarget(
            f"BENCH_POSTGRES_URL names the database {parts.path.strip('/')!r}; give the server only "
            f"(postgres://user@127.0.0.1:5432): the benchmark creates its own {SCRATCH_DATABASE_PREFIX}… database"
        )
    name = f"{SCRATCH_DATABASE_PREFIX}{secrets.token_hex(6)}"
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(parts._replace(scheme="postgres", path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def subprocess_env(env: dict[str, str]) -> dict[str, str]:
    """`env` over the few inherited variables: nothing of a production environment reaches a benchmark's servers."""
    return {**{name: os.environ[name] for name in INHERITED if name in os.environ}, **env}


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
    process = subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(env))
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
        "REDIS_URL": bench_redis_url(),
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
        [PYTHON, "manage.py", *args], cwd=ROOT, env=subprocess_env(env), check=True, capture_output=True, text=True
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
