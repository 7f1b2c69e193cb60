"""The avatar API served by the real ASGI server: the fast path, and exact metering under concurrency."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.core.management import call_command

from avtrz.avatars.directory import import_profile
from tests import services
from tests.avatars.conftest import IMAGES
from tests.factories import WorkspaceFactory
from tests.fixture_server import FixtureServer
from workspaces import services as workspace_services
from workspaces.models import Plan


pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def directory(db):
    import_profile({"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "face.jpg"}, base_dir=IMAGES)


def serve(tmp_path, port, *, workers=1, **env):
    base = f"http://127.0.0.1:{port}"
    return services.running(
        services.uvicorn_cmd(port, workers=workers),
        env=services.server_env(
            PUBLIC_BASE_URL=base,
            MEDIA_ROOT=str(tmp_path / "media"),
            CELERY_TASK_ALWAYS_EAGER="true",
            **env,
        ),
        port=port,
        log=tmp_path / "server.log",
    )


def test_hits_are_answered_by_the_fast_path_and_images_are_served(tmp_path, settings, directory, acme, alice):
    settings.MEDIA_ROOT = tmp_path / "media"
    call_command("import_profiles", str(IMAGES.parent.parent.parent / "avtrz" / "avatars" / "demo" / "profiles.jsonl"))
    pk = workspace_services.create_api_key(actor=alice, workspace=acme, kind="publishable", name="Web")
    port = services.free_port()
    with serve(tmp_path, port):
        url = f"http://127.0.0.1:{port}/v1/avatar"
        params = {"key": pk, "linkedin_url": "linkedin.com/in/eileen-collins", "size": "256"}
        first = requests.get(url, params=params, allow_redirects=False, timeout=10)
        second = requests.get(url, params=params, allow_redirects=False, timeout=10)
        image = requests.get(second.headers["Location"], timeout=10)
    assert first.status_code == second.status_code == 302
    assert "X-Cache" not in first.headers  # cold: answered by Django, which warmed the cache
    assert second.headers["X-Cache"] == "HIT"
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["Cache-Control"] == "public, max-age=86400"
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/webp"
    assert image.content[:4] == b"RIFF"


@pytest.mark.redis
def test_fifty_concurrent_requests_never_pass_the_quota(tmp_path, settings, directory, acme, alice):
    """Two server processes share the Redis counters; the database is the test database."""
    redis_url = services.redis_url()
    settings.MEDIA_ROOT = tmp_path / "media"
    Plan.objects.filter(code="free").update(monthly_requests=30, monthly_new_profiles=100, requests_per_second=1000)
    tight = Plan.objects.create(
        code="tight", name="Tight", monthly_requests=1000, monthly_new_profiles=10, requests_per_second=1000, burst=1000
    )
    beta = WorkspaceFactory(name="Beta", slug="beta", plan=tight)
    keys = {
        workspace.slug: (
            workspace_services.create_api_key(actor=alice, workspace=workspace, kind="publishable", name="Web"),
            workspace_services.create_api_key(actor=alice, workspace=workspace, kind="secret", name="Server"),
        )
        for workspace in (acme, beta)
    }
    port = services.free_port()
    with (
        FixtureServer() as linkedin,
        serve(
            tmp_path,
            port,
            workers=2,
            REDIS_URL=redis_url,
            LINKEDIN_BASE_URL=linkedin.url("").rstrip("/"),
            AVTRZ_FETCH_ALLOW_PRIVATE="127.0.0.1",
            AVTRZ_ENRICH_WAIT_S="0",
        ),
    ):
        base = f"http://127.0.0.1:{port}"

        def fetch(slug, username):
            params = {"key": keys[slug][0], "username": username}
            return requests.get(f"{base}/v1/avatar", params=params, allow_redirects=False, timeout=30).status_code

        def meters(slug):
            headers = {"x-api-key": keys[slug][1]}
            return requests.get(f"{base}/v1/usage", headers=headers, timeout=10).json()["meters"]

        with ThreadPoolExecutor(max_workers=25) as pool:
            known = list(pool.map(lambda _: fetch("acme", "eileen-collins"), range(50)))
            new = list(pool.map(lambda n: fetch("beta", f"new-person-{n}"), range(25)))
        # Each server process adds its counts to Redis twice a second: wait for every count to arrive.
        deadline = time.monotonic() + 15
        while True:
            acme_meters, beta_meters = meters("acme"), meters("beta")
            counted = acme_meters["avatar_requests"]["used"] >= 30 and beta_meters["avatar_requests"]["used"] >= 10
            if counted or time.monotonic() > deadline:
                break
            time.sleep(0.1)

    assert known.count(302) == 30 and known.count(402) == 20
    assert acme_meters["avatar_requests"]["used"] == 30
    assert acme_meters["avatar_new_profiles"]["used"] == 1
    assert new.count(200) == 10 and new.count(402) == 15  # monograms: the source knows none of them
    assert beta_meters["avatar_new_profiles"]["used"] == 10
    assert beta_meters["avatar_requests"]["used"] == 10  # refused lookups are not billed


@pytest.mark.redis
def test_revoking_a_key_stops_it_on_every_worker_at_once(tmp_path, settings, directory, acme, alice):
    """Each worker answers warm hits from its own memory; revocation must reach all of them."""
    settings.MEDIA_ROOT = tmp_path / "media"
    raw = workspace_services.create_api_key(actor=alice, workspace=acme, kind="publishable", name="Web")
    key = acme.api_keys.get()
    port = services.free_port()
    with serve(tmp_path, port, workers=2, REDIS_URL=services.redis_url()):
        base = f"http://127.0.0.1:{port}"
        params = {"key": raw, "username": "eileen-collins"}

        def statuses(n):
            return [
                requests.get(f"{base}/v1/avatar", params=params, timeout=10, allow_redirects=False).status_code
                for _ in range(n)
            ]

        warm = statuses(30)
        owner = services.sign_in(base, alice)
        revoke = owner.post(
            f"{base}/w/acme/keys/{key.uid}/revoke/",
            data={"csrfmiddlewaretoken": owner.cookies["csrftoken"]},
            allow_redirects=False,
            timeout=10,
        )
        after = statuses(30)
    assert warm == [302] * 30
    assert revoke.status_code == 302
    assert after == [401] * 30


def test_development_enriches_from_its_own_stand_in_for_linkedin(tmp_path, settings, acme, alice):
    """`make run` never reaches the internet: unknown handles are looked up on the app's demo source."""
    settings.MEDIA_ROOT = tmp_path / "media"
    raw = workspace_services.create_api_key(actor=alice, workspace=acme, kind="publishable", name="Web")
    port = services.free_port()
    base = f"http://127.0.0.1:{port}"
    source = dict(LINKEDIN_BASE_URL=f"{base}/demo-linkedin", AVTRZ_PHOTO_HOSTS="127.0.0.1")
    with serve(tmp_path, port, AVTRZ_FETCH_ALLOW_PRIVATE="127.0.0.1", **source):
        known = requests.get(
            f"{base}/v1/avatar", params={"key": raw, "username": "ada-demo"}, timeout=30, allow_redirects=False
        )
        unknown = requests.get(
            f"{base}/v1/avatar", params={"key": raw, "username": "nobody-demo"}, timeout=30, allow_redirects=False
        )
    assert known.status_code == 302
    assert unknown.status_code == 200
    assert unknown.headers["Content-Type"] == "image/svg+xml"
