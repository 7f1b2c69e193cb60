"""The profile source hanging, slow, answering garbage or 999: bounded, circuit-broken, never on the hit path.

(Timeouts of a slow source are tested in tests/avatars/test_enrichment.py.)
"""

import os
import threading
import time

import pytest
import requests

from avtrz.avatars import enrichment
from avtrz.avatars.directory import import_profile
from avtrz.avatars.models import Profile
from tests import services
from tests.avatars.conftest import IMAGES
from tests.faults.conftest import upstream_env
from workspaces import services as workspace_services
from workspaces.models import Plan


def page_requests(linkedin) -> int:
    return sum(1 for r in linkedin.server.requests if r.path.startswith("/in/"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "options"),
    [
        (200, {"headers": {"Content-Type": "text/html; charset=utf-8"}}),
        (200, {}),
        (500, {"headers": {"Content-Type": "text/html"}}),
        (200, {"content_length": False}),
    ],
)
def test_garbage_from_the_source_leaves_the_profile_retryable(linkedin, status, options):
    linkedin.answer("garbage", status, os.urandom(64 * 1024), **options)
    profile = enrichment.enrich("garbage")
    assert profile.status == Profile.Status.BLOCKED  # "try again later", never "no photo"
    assert profile.failures == 1 and profile.next_check_at is not None
    assert profile.current_image is None


@pytest.mark.django_db
def test_the_circuit_opens_after_repeated_failures_and_half_opens_after_the_pause(linkedin, settings):
    settings.AVTRZ_UPSTREAM_BREAKER_FAILURES = 3
    settings.AVTRZ_UPSTREAM_BREAKER_OPEN_S = 1
    for handle in ("a", "b", "c", "d", "e"):
        linkedin.answer(handle, 999)
    for handle in ("a", "b", "c"):
        enrichment.enrich(handle)
    assert page_requests(linkedin) == 3

    skipped = enrichment.enrich("d")  # open: LinkedIn is not asked
    assert page_requests(linkedin) == 3
    assert skipped.status == Profile.Status.BLOCKED and skipped.next_check_at is not None

    time.sleep(1.2)  # half-open: one trial fetch, which fails and opens the circuit again at once
    enrichment.enrich("d")
    enrichment.enrich("e")
    assert page_requests(linkedin) == 4

    time.sleep(1.2)
    linkedin.profile("d", name="Dana Back", photo_url=linkedin.photo("face.jpg"))
    assert enrichment.enrich("d").status == Profile.Status.RESOLVED  # the trial succeeds: closed
    enrichment.enrich("e")
    enrichment.enrich("a")
    assert page_requests(linkedin) == 7


@pytest.mark.django_db
def test_a_profile_known_to_be_missing_does_not_count_as_a_failure(linkedin, settings):
    settings.AVTRZ_UPSTREAM_BREAKER_FAILURES = 2
    linkedin.answer("gone", 404)
    linkedin.answer("walled", 999)
    for handle in ("walled", "gone", "walled", "gone", "walled"):
        enrichment.enrich(handle)
    assert page_requests(linkedin) == 5


@pytest.mark.django_db(transaction=True)
def test_a_cache_hit_does_not_wait_for_a_hanging_source(tmp_path, linkedin, acme, alice):
    import_profile({"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "face.jpg"}, base_dir=IMAGES)
    Plan.objects.filter(code="free").update(requests_per_second=1000)
    pk = workspace_services.create_api_key(actor=alice, workspace=acme, kind="publishable", name="Web")
    # A hit held behind the hanging source would take about hang_s; one that is not, milliseconds (the
    # bound leaves a loaded machine room). The request that hangs is waited for at the end: hang_s is kept
    # short for that.
    hang_s, bound_s = 5.0, 2.0
    linkedin.answer("hanging", 200, b"<html></html>", delay=hang_s)
    port = services.free_port()
    env = services.server_env(
        **upstream_env(linkedin),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        MEDIA_ROOT=str(tmp_path / "media"),
        REDIS_URL="",  # in-process cache, enrichment in the request: the worst case for blocking
        AVTRZ_FETCH_READ_TIMEOUT_S=str(hang_s + 2),
    )
    url = f"http://127.0.0.1:{port}/v1/avatar"
    with services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "server.log"):
        warm = requests.get(url, params={"key": pk, "username": "eileen-collins"}, allow_redirects=False, timeout=10)
        stuck = threading.Thread(
            target=requests.get, args=(url,), kwargs={"params": {"key": pk, "username": "hanging"}, "timeout": 30}
        )
        stuck.start()
        deadline = time.monotonic() + 10
        while not any(r.path.startswith("/in/hanging/") for r in linkedin.server.requests):
            assert time.monotonic() < deadline, "the source was never asked"
            time.sleep(0.05)
        started = time.monotonic()
        hit = requests.get(url, params={"key": pk, "username": "eileen-collins"}, allow_redirects=False, timeout=10)
        elapsed = time.monotonic() - started
        stuck.join()
    assert warm.status_code == 302
    assert hit.status_code == 302 and hit.headers["X-Cache"] == "HIT"
    assert elapsed < bound_s, f"the hit waited {elapsed:.1f} s on the hanging source"
