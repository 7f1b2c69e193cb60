"""Redis stalls (accepts, then answers nothing) under a live worker: bounded waits, the fault table's
fail-open answers, and recovery when it answers again.

A stopped Redis refuses connections at once (tests/avatars/test_faults.py); a stalled one leaves
every call waiting for its timeout, so this is where a missing timeout, a retry loop or Redis I/O
on the event loop shows. The worker reaches the test's Redis through `BlackHole`, which forwards
until `stall()` and again after `flow()`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from avtrz.avatars.directory import import_profile
from tests import services
from tests.avatars.conftest import IMAGES
from tests.blackhole import BlackHole
from tests.factories import PASSWORD
from tests.mcp.conftest import call
from tests.workspaces.conftest import make_connection  # noqa: F401 (fixture)
from workspaces import services as workspace_services
from workspaces.models import Plan


# Alone in the parallel suite: the bounds are a few tenths of a second above Redis's timeout.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.serial]

REDIS_TIMEOUT_S = 0.5
# What Redis may add to one request while it stalls: a timed-out call or two (after one times out,
# calls to it fail at once for a moment: avtrz.lib.redisclient), never a hang or a retry loop.
BOUND_S = 3 * REDIS_TIMEOUT_S


@dataclass
class Worker:
    base: str
    hole: BlackHole
    keys: dict[str, str]
    token: str
    email: str
    handle: str  # the test's own profile: nothing a previous test left in the server's caches answers for it
    billed: int = 0  # billable answers received: 302s and successful tool calls

    def avatar(self, key: str = "warm") -> requests.Response:
        params = {"key": self.keys[key], "username": self.handle}
        response = requests.get(f"{self.base}/v1/avatar", params=params, allow_redirects=False, timeout=30)
        self.billed += response.status_code == 302
        return response

    def tool_call(self) -> requests.Response:
        arguments = {"name": "get_profile_avatar", "arguments": {"username": self.handle}}
        response = call(self.base, self.token, "tools/call", arguments)
        self.billed += response.status_code == 200 and not _is_error(response)
        return response

    def sign_in(self) -> requests.Response:
        session = requests.Session()
        page = session.get(f"{self.base}/accounts/login/", timeout=30)
        fields = {"csrfmiddlewaretoken": session.cookies["csrftoken"], "username": self.email, "password": PASSWORD}
        url = f"{self.base}/accounts/login/"
        return session.post(url, data=fields, allow_redirects=False, timeout=30, headers={"Referer": page.url})

    def used(self) -> int:
        headers = {"x-api-key": self.keys["secret"]}
        meters = requests.get(f"{self.base}/v1/usage", headers=headers, timeout=30).json()
        return meters["meters"]["avatar_requests"]["used"]


def _is_error(response: requests.Response) -> bool:
    return response.json().get("result", {}).get("isError", True)


def _timed(send) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = send()
    return response, time.monotonic() - started


@dataclass
class Server:
    base: str
    hole: BlackHole
    media: Path


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory) -> Iterator[Server]:
    """One uvicorn worker in production's shape (Redis, level-1 cache, leased counters) for the module's
    tests, its Redis behind a black hole that forwards for now. Started before a test takes the serial
    turn (module fixtures come first), so its boot does not hold the other workers back."""
    folder = tmp_path_factory.mktemp("redis-stall")
    redis = urlsplit(services.redis_url())
    with (
        BlackHole(redis.hostname or "127.0.0.1", redis.port or 6379) as hole,
        services.module_server(
            folder,
            REDIS_URL=f"redis://127.0.0.1:{hole.port}{redis.path or '/0'}",
            REDIS_TIMEOUT_S=str(REDIS_TIMEOUT_S),
            CELERY_TASK_ALWAYS_EAGER="true",
        ) as base,
    ):
        yield Server(base, hole, folder / "media")


@pytest.fixture
def worker(server, settings, acme, alice, make_connection) -> Iterator[Worker]:  # noqa: F811
    """The module's server, warm for this test's own workspace, keys and profile: the key context and
    the card are cached. Redis flows again when the test ends."""
    settings.MEDIA_ROOT = server.media
    handle = f"eileen-collins-{secrets.token_hex(3)}"
    import_profile({"handle": handle, "name": "Eileen Collins", "photo_file": "face.jpg"}, base_dir=IMAGES)
    Plan.objects.filter(code="free").update(requests_per_second=1000, burst=1000)
    keys = {
        "warm": workspace_services.create_api_key(actor=alice, workspace=acme, kind="publishable", name="Web"),
        "cold": workspace_services.create_api_key(actor=alice, workspace=acme, kind="publishable", name="Cold"),
        "secret": workspace_services.create_api_key(actor=alice, workspace=acme, kind="secret", name="Server"),
    }
    settings.PUBLIC_BASE_URL = server.base  # the access token's audience
    _, token = make_connection(alice, acme)
    services.with_server_password(alice)
    worker = Worker(server.base, server.hole, keys, token, alice.email, handle)
    try:
        services.wait_until(lambda: worker.avatar().headers.get("X-Cache") == "HIT", 15, "a fast-path hit")
        yield worker
    finally:
        server.hole.flow()


def test_a_stalled_redis_keeps_avatars_and_sign_in_answering_in_bounded_time_and_recovers(worker):
    sign_in, normal_sign_in = _timed(worker.sign_in)
    assert sign_in.status_code == 302

    worker.hole.stall()
    warm = [_timed(worker.avatar) for _ in range(5)]
    cold = [_timed(lambda: worker.avatar("cold"))]  # its key context is not cached anywhere
    sign_in, stalled_sign_in = _timed(worker.sign_in)
    timings = {"warm": [round(t, 2) for _, t in warm], "cold": [round(t, 2) for _, t in cold]}
    timings["sign-in"] = [round(normal_sign_in, 2), round(stalled_sign_in, 2)]
    print("while Redis stalls:", timings)

    assert [r.status_code for r, _ in warm + cold] == [302] * 6  # fail open: answered from the database
    assert all(took < BOUND_S for _, took in warm + cold), timings
    assert sign_in.status_code == 302  # the sign-in limits fail open
    assert stalled_sign_in < normal_sign_in + BOUND_S, timings

    worker.hole.flow()
    services.wait_until(lambda: worker.avatar().headers.get("X-Cache") == "HIT", 15, "level 1 trusted again")
    assert worker.avatar("cold").status_code == 302
    # No count lost: what was counted while Redis stalled reaches the meters too.
    services.wait_until(lambda: worker.used() == worker.billed, 15, "the meter to reach what was billed")


def test_a_stalled_redis_keeps_mcp_tool_calls_answering_in_bounded_time(worker):
    """The bearer token, the bound workspace and the connector key come from the caches (failing open
    to the database), so a tool call answers as `/v1/avatar` does."""
    assert worker.tool_call().status_code == 200
    worker.hole.stall()
    calls = [_timed(worker.tool_call) for _ in range(3)]
    assert all(took < BOUND_S for _, took in calls), [round(t, 2) for _, t in calls]
    assert not any(_is_error(response) for response, _ in calls), calls[0][0].text
