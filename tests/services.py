"""Finding the real services (Redis, PostgreSQL, Chromium) and starting real servers for tests.

In CI (CI=true) a missing service fails the test; elsewhere it skips and the summary says why.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests import zygote


ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"  # screenshots from browser tests, git-ignored
# Debian's chromium, headless, with the background networking this closed machine would refuse turned off.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/15"
SKIPPED_SERVICES: set[str] = set()
# `make test` runs the suite in parallel (pytest-xdist): worker N takes the Nth slice of the ports below
# Linux's ephemeral range (32768+), so its servers never get a port another worker, or a client socket,
# just used.
PORTS_FROM, PORTS_PER_WORKER = 20000, 1500
# A server process: forked by the zygote (uvicorn, Celery) or started as any other command.
Process = subprocess.Popen | zygote.ForkedProcess


def worker_index() -> int:
    """This pytest-xdist worker's number (gw0 is 0); 0 when the suite runs in one process."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))


def worker_redis_url(url: str, index: int) -> str:
    """`url` on a Redis database of worker `index`'s own: the configured number plus the index, counting
    down from below it once past 15 (Redis has 16), so parallel workers never share keys or queues."""
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    database = base + index if base + index <= 15 else base - (base + index - 15)
    if not 0 < database <= 15:
        raise ValueError(f"no Redis database left for worker {index} from {url}")
    return parts._replace(path=f"/{database}").geturl()


def require(service: str, available: bool, hint: str) -> None:
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{service} is required in CI but is not available: {hint}")
    SKIPPED_SERVICES.add(service)
    pytest.skip(f"{service} not available ({hint})")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def redis_url() -> str:
    """REDIS_URL when set (CI), else a local Redis on its default port if one is running."""
    url = os.environ.get("REDIS_URL") or worker_redis_url(LOCAL_REDIS_URL, worker_index())
    parts = urlsplit(url)
    require("Redis", _reachable(parts.hostname or "127.0.0.1", parts.port or 6379), f"nothing answers at {url}")
    return url


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or ""
    require("Chromium", bool(path) and Path(path).exists(), "apt-get install chromium")
    return path


def _worker_ports() -> Iterator[int]:
    start = PORTS_FROM + worker_index() * PORTS_PER_WORKER
    offset = random.randrange(PORTS_PER_WORKER)  # two runs at once start apart
    return itertools.cycle([*range(start + offset, start + PORTS_PER_WORKER), *range(start, start + offset)])


_ports = _worker_ports()


def free_port() -> int:
    """A port nothing listens on, from this worker's slice, each handed out once per lap of it."""
    for _ in range(PORTS_PER_WORKER):
        port = next(_ports)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port left in this worker's slice")


def live_database_url() -> str:
    """A URL for the database the test run is using, for servers started in subprocesses."""
    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    auth = conf["USER"] + (f":{conf['PASSWORD']}" if conf["PASSWORD"] else "")
    return f"postgres://{auth}@{conf['HOST'] or '127.0.0.1'}:{conf['PORT'] or 5432}/{conf['NAME']}"


def wait_until(condition: Callable[[], object], timeout: float, what: str | Callable[[], str]) -> object:
    """Poll `condition` until it is truthy and return what it returned; past `timeout` seconds, fail the test
    with `what` we waited for (a callable: worded when it fails, from the state then)."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what() if callable(what) else what}"
        time.sleep(0.05)
    return found


# A server's start is mostly Django's import; `make test` runs several at once on 2 cores.
def wait_for_port(port: int, process: Process, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        if _reachable("127.0.0.1", port):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


def listening(process: Process, port: int, timeout: float = 60.0) -> bool:
    """Wait until `process` itself listens on 127.0.0.1:`port` (True), or has exited (False). Unlike
    `wait_for_port`, a server of another test run that took the port while this one was starting (each
    run picks from the same slices) is not taken for it: the listening socket must be one of `process`'s
    (Linux: /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        listeners = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                listeners.add(f"socket:[{fields[9]}]")
        try:
            if listeners and any(os.readlink(fd) in listeners for fd in Path(f"/proc/{process.pid}/fd").iterdir()):
                return True
        except OSError:  # a descriptor closed while it was read, or the process just ended
            pass
        time.sleep(0.1)
    raise TimeoutError(f"process {process.pid} did not listen on port {port} within {timeout} s")


@contextmanager
def module_server(folder: Path, **env: str) -> Iterator[str]:
    """The app served by one uvicorn worker for a module's tests, on the test database (`server_env` with
    `env` over it), media under `folder`; yields its base URL. The server must itself listen on its port
    (`listening`): if one of another run took the port while it started, it starts again on another one,
    rather than every test of the module talking to a stranger."""
    for attempt in range(3):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        environment = server_env(PUBLIC_BASE_URL=base, MEDIA_ROOT=str(folder / "media"), **env)
        with running(uvicorn_cmd(port), env=environment, log=folder / f"server-{attempt}.log") as process:
            if listening(process, port):
                yield base
                return
    raise RuntimeError(f"the module's server never listened on a port of its own: see {folder}")


@contextmanager
def running(cmd: list[str], *, env: dict[str, str], port: int | None = None, log: Path) -> Iterator[Process]:
    """Run a server process for the duration of the block, its output kept in `log`."""
    with log.open("wb") as out:
        if zygote.can_fork(cmd):  # uvicorn and Celery: forked with their libraries already imported
            process = zygote.zygote().spawn(cmd, env={**os.environ, **env}, cwd=ROOT, log=log)
        else:
            process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        try:
            if port is not None:
                wait_for_port(port, process)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def server_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess serving the test database."""
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    return {
        "DATABASE_URL": live_database_url(),
        "DEBUG": "true",
        "PYTHONUNBUFFERED": "1",
        # The test database is recreated each run, ids repeat: a fresh cache namespace keeps old runs out.
        "CACHE_KEY_PREFIX": namespace,
        "AVTRZ_COUNTER_PREFIX": f"{namespace}:",
        **extra,
    }


def shared_cache_env() -> dict[str, str]:
    """`server_env` overrides that put a server subprocess in this test process's cache namespace and
    on its invalidation channel, so what the test revokes in-process leaves the server's caches too
    (with Redis; without it each process caches in its own memory)."""
    return {
        "CACHE_KEY_PREFIX": settings.CACHES["default"].get("KEY_PREFIX", ""),
        "AVTRZ_COUNTER_PREFIX": settings.AVTRZ_COUNTER_PREFIX,
    }


class PrivateRedis:
    """A redis-server of the test's own on a free port that keeps nothing on disk: `stop()` it for an
    outage, `start()` it again for its return (empty, as a Redis restarted without persistence)."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = log.open("ab")
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or ""
        require("redis-server", bool(binary), "apt-get install redis-server")
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self._process)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        self.stop()
        self._log.close()


@contextmanager
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path / "redis.log")
    try:
        redis.start()
        yield redis
    finally:
        redis.close()


def web_env(port: int, tmp_path: Path, redis: PrivateRedis, **extra: str) -> dict[str, str]:
    """A served instance on `port` with its media under `tmp_path` and the private Redis."""
    return server_env(
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", MEDIA_ROOT=str(tmp_path / "media"), REDIS_URL=redis.url, **extra
    )


def uvicorn_cmd(port: int, workers: int = 1) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "avtrz.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--no-proxy-headers",  # as the Procfile: the app decides whom to believe (TRUSTED_PROXY_IPS)
    ]


def with_server_password(user) -> None:
    """Give `user` the tests' PASSWORD hashed as a server process expects: servers started by tests run
    with the production password hashers, not the fast one the test process uses."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from tests.factories import PASSWORD

    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt())
    user.save(update_fields=["password"])


def sign_in(base: str, user) -> requests.Session:
    """`user` signed in to the server at `base` through the login form, as a browser session."""
    from tests.factories import PASSWORD
    from tests.oauth.oauthutil import form_fields

    with_server_password(user)
    session = requests.Session()
    page = session.get(f"{base}/accounts/login/", timeout=10)
    fields = dict(form_fields(page.text))
    fields.update(username=user.email, password=PASSWORD)
    response = session.post(f"{base}/accounts/login/", data=fields, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    return session


def celery_worker_cmd(queue: str) -> list[str]:
    """A real Celery worker of the project consuming only `queue`, one task at a time."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "avtrz",
        "worker",
        "--pool",
        "solo",
        "-Q",
        queue,
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]


def task_sender(broker: str):
    """A Celery app that only sends to `broker`; it must not become the current app, which the test
    process keeps eager for everything else."""
    from celery import Celery

    return Celery(broker=broker, set_as_current=False)
