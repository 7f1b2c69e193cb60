"""The production shape for the worker fault tests: a uvicorn server and real Celery workers sharing a
private Redis (cache and counters) and a broker, each test on a queue of its own.

The broker is this machine's RabbitMQ (`RABBITMQ_URL`, default guest on 127.0.0.1:5672, as in
production) or, for deployments that only set `REDIS_URL`, the private Redis itself.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from kombu import Connection

from tests import services
from tests.faults.conftest import FakeLinkedIn, upstream_env


RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
SUCCEEDED = "] succeeded in"


def require_rabbitmq() -> str:
    """RABBITMQ_URL if a broker answers there; CI fails without one, elsewhere the test skips."""
    try:
        with Connection(RABBITMQ_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        available = True
    except Exception:  # kombu raises the transport's own errors (socket, AMQP access refused, ...)
        available = False
    host = RABBITMQ_URL.rsplit("@", 1)[-1]
    services.require("RabbitMQ", available, f"nothing answers at {host}: apt-get install rabbitmq-server")
    return RABBITMQ_URL


@dataclass
class Stack:
    tmp_path: Path
    env: dict[str, str]
    web_url: str
    queue: str
    web: subprocess.Popen
    _web_up: bool = False

    @contextmanager
    def worker(self, name: str, **env: str):
        """A Celery worker of the project on this stack's queue, its output in `<tmp_path>/<name>.log`.

        Its node name is its own: workers sharing a node name on one RabbitMQ fight over its control queue."""
        cmd = [*services.celery_worker_cmd(self.queue), "--hostname", f"{name}-{self.queue}@%h"]
        with services.running(cmd, env={**self.env, **env}, log=self.log(name)) as process:
            yield process

    def log(self, name: str) -> Path:
        return self.tmp_path / f"{name}.log"

    def wait_for_web(self) -> None:
        """The web server listens: it boots while the test starts its workers, and is waited for here, once."""
        if not self._web_up:
            services.wait_for_port(int(urlsplit(self.web_url).port or 0), self.web)
            self._web_up = True

    def avatar(self, key: str, username: str) -> requests.Response:
        self.wait_for_web()
        return requests.get(
            f"{self.web_url}/v1/avatar", params={"key": key, "username": username}, allow_redirects=False, timeout=30
        )

    def seconds_to_302(self, key: str, username: str, *, since: float, timeout: float) -> float:
        """Ask for the avatar until it redirects to the photo; seconds from `since` (a monotonic time)."""
        services.wait_until(lambda: self.avatar(key, username).status_code == 302, timeout, f"a 302 for {username}")
        return time.monotonic() - since


@contextmanager
def production_stack(tmp_path: Path, linkedin: FakeLinkedIn, *, broker: str, **env: str) -> Iterator[Stack]:
    """`broker` is "rabbitmq" or "redis" (the private Redis, for deployments with only REDIS_URL).

    The web server is started, not waited for: the test's workers boot beside it (`Stack.avatar` waits for
    it)."""
    amqp_url = require_rabbitmq() if broker == "rabbitmq" else None
    web_port = services.free_port()
    queue = f"test-{secrets.token_hex(4)}"
    try:
        with services.private_redis(tmp_path) as redis:
            stack_env = services.web_env(
                web_port,
                tmp_path,
                redis,
                **upstream_env(linkedin),
                CELERY_TASK_DEFAULT_QUEUE=queue,
                **({"CELERY_BROKER_URL": amqp_url} if amqp_url else {}),
                **env,
            )
            web_log = tmp_path / "web.log"
            with services.running(services.uvicorn_cmd(web_port), env=stack_env, log=web_log) as web:
                yield Stack(tmp_path, stack_env, f"http://127.0.0.1:{web_port}", queue, web)
    finally:
        if amqp_url:  # the queue (and any retry still waiting in it) must not outlive the test
            with Connection(amqp_url) as conn:
                conn.default_channel.queue_delete(queue)
