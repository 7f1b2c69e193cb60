"""Real traffic shapes against the real ASGI server: a page of <img> avatars loaded at once, and warm
hits while Redis stops answering."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from avtrz.avatars.directory import import_profile
from avtrz.avatars.models import Profile
from avtrz.lib import hotcache
from tests import services
from tests.avatars.conftest import IMAGES
from tests.avatars.test_live import serve
from tests.blackhole import BlackHole
from tests.factories import WorkspaceFactory
from workspaces import services as workspace_services
from workspaces.models import Plan


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

IMG_ACCEPT = {"Accept": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"}


def team(size: int) -> list[str]:
    """`size` profiles with a photo (they share one stored image: the point is the requests)."""
    first = import_profile({"handle": "member-0", "name": "Member Zero", "photo_file": "face.jpg"}, base_dir=IMAGES)
    handles = [f"member-{n}" for n in range(size)]
    Profile.objects.bulk_create(
        Profile(handle=handle, name=handle, status=Profile.Status.RESOLVED, current_image=first.current_image)
        for handle in handles[1:]
    )
    return handles


def free_plan() -> Plan:
    """The Free plan as seeded (the avatars conftest raises its rate for the other tests)."""
    Plan.objects.filter(code="free").update(requests_per_second=5, burst=60)
    return Plan.objects.get(code="free")


def test_a_page_of_avatars_on_free_gets_every_photo_billed(tmp_path, settings, alice):
    """A 24-avatar page and a 50-avatar page, each loaded at once by a browser, on two Free workspaces."""
    settings.MEDIA_ROOT = tmp_path / "media"
    free = free_plan()
    handles = team(50)
    pages = {}
    for slug, size in (("small-team", 24), ("large-team", 50)):
        workspace = WorkspaceFactory(name=slug, slug=slug, plan=free)
        pages[slug] = (
            workspace_services.create_api_key(actor=alice, workspace=workspace, kind="publishable", name="Web"),
            workspace_services.create_api_key(actor=alice, workspace=workspace, kind="secret", name="Server"),
            handles[:size],
        )
    port = services.free_port()
    with serve(tmp_path, port, workers=2, REDIS_URL=services.redis_url(), AVTRZ_ENRICH_WAIT_S="0"):
        base = f"http://127.0.0.1:{port}"

        def load(slug: str, handle: str) -> requests.Response:
            params = {"key": pages[slug][0], "username": handle, "size": "64"}
            return requests.get(
                f"{base}/v1/avatar", params=params, headers=IMG_ACCEPT, allow_redirects=False, timeout=30
            )

        def used(slug: str) -> int:
            meters = requests.get(f"{base}/v1/usage", headers={"x-api-key": pages[slug][1]}, timeout=10).json()[
                "meters"
            ]
            return meters["avatar_requests"]["used"]

        with ThreadPoolExecutor(max_workers=74) as pool:
            answers = {
                slug: list(pool.map(lambda handle, slug=slug: load(slug, handle), pages[slug][2])) for slug in pages
            }
        # Each server process adds its counts to Redis twice a second; a loaded machine runs them late. The
        # reading that matched is the one kept: a read that lands while a flush moves counts from Redis to the
        # database (a few milliseconds) sees them in neither, so reading once more could be short.
        deadline = time.monotonic() + 30
        while (counted := (used("small-team"), used("large-team"))) != (24, 50) and time.monotonic() < deadline:
            time.sleep(0.2)

    for slug, responses in answers.items():
        assert [r.status_code for r in responses] == [302] * len(responses), slug
        # Billed answers, not the short-lived redirect an <img> over the rate limit gets.
        assert {r.headers["Cache-Control"] for r in responses} == {"public, max-age=86400"}, slug
        assert all(r.headers["RateLimit-Policy"] == '"burst";q=60;w=12' for r in responses)
    assert counted == (24, 50)  # the meters are exact: every admitted request counted once


@pytest.mark.serial  # level 1 is trusted for half a second past the stall: a busy machine eats that margin
def test_warm_hits_keep_answering_while_redis_stalls(tmp_path, settings, acme, alice):
    """The fast path reads this process's memory only: a Redis that accepts and then says nothing
    (packets dropped, a failover) does not hold up the event loop. While level 1 may still be trusted
    (until hotcache.LIVENESS_S after the last answered ping), warm hits answer from memory; the few
    that need a counter lease refilled wait for Redis's timeout in a worker thread, and the others
    keep being answered meanwhile. When Redis answers again, so does level 1."""
    settings.MEDIA_ROOT = tmp_path / "media"
    Plan.objects.filter(code="free").update(requests_per_second=1000, burst=1000)
    handles = team(5)
    pk = workspace_services.create_api_key(actor=alice, workspace=acme, kind="publishable", name="Web")
    host, _, rest = services.redis_url().removeprefix("redis://").partition(":")
    redis_port, _, db = rest.partition("/")
    port = services.free_port()
    with BlackHole(host, int(redis_port)) as hole:
        with serve(tmp_path, port, REDIS_URL=f"redis://127.0.0.1:{hole.port}/{db or 0}", AVTRZ_ENRICH_WAIT_S="0"):
            url = f"http://127.0.0.1:{port}/v1/avatar"

            def hits(until: float = 0.0, etags: dict | None = None) -> list[tuple[requests.Response, float, float]]:
                """Every handle once, then again until `until`: (answer, started, finished) in monotonic
                seconds. With `etags`, conditional requests: 304s, answered before the meter."""
                answers, session = [], requests.Session()
                while not answers or time.monotonic() < until:
                    for handle in handles:
                        started = time.monotonic()
                        params = {"key": pk, "username": handle}
                        headers = {"If-None-Match": etags[handle]} if etags else {}
                        response = session.get(url, params=params, headers=headers, allow_redirects=False, timeout=10)
                        answers.append((response, started, time.monotonic()))
                return answers

            def all_fast_path(answers) -> bool:
                return all(response.headers.get("X-Cache") == "HIT" for response, *_ in answers)

            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not all_fast_path(warm := hits()):
                pass  # warming: Django fills the caches, the invalidation channel is heard
            etags = {handle: response.headers["ETag"] for handle, (response, *_) in zip(handles, warm, strict=True)}
            hole.stall()
            # The last ping may have been answered up to a ping interval before the stall.
            until = time.monotonic() + hotcache.LIVENESS_S - hotcache.PING_INTERVAL_S - 0.5
            with ThreadPoolExecutor(max_workers=4) as pool:
                hitting = [pool.submit(hits, until) for _ in range(3)]
                probing = pool.submit(hits, until, etags)
                stalled = [answer for future in hitting for answer in future.result()]
                probes = probing.result()
            hole.flow()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not all_fast_path(hits()):
                time.sleep(0.2)  # Redis answers again: the channel is heard, level 1 trusted again
            recovered = hits()

    assert {response.status_code for response, *_ in stalled} == {302}
    assert {response.status_code for response, *_ in probes} == {304}
    assert all_fast_path(stalled) and all_fast_path(probes)
    assert max(finished - started for _, started, finished in stalled) < 2.5  # bounded by Redis's timeout
    # Those that waited for Redis (half a second or more; a loaded machine alone makes some 0.2 s): the
    # event loop kept answering others meanwhile.
    waits = [(started, finished) for _, started, finished in stalled if finished - started >= 0.5]
    for waiting_from, waiting_until in waits:
        assert any(waiting_from < started and finished < waiting_until for _, started, finished in probes)
    assert all_fast_path(recovered) and {response.status_code for response, *_ in recovered} == {302}
