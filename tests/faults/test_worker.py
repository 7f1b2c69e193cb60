"""A Celery worker killed in the middle of an enrichment: the task is delivered again (acks_late) to the next
worker and finishes once, storing one image and no duplicate files."""

import secrets
import signal
import time

import pytest

from avtrz.avatars.models import AvatarImage, Profile
from tests import services
from tests.avatars.test_faults import redis_server
from tests.faults.conftest import upstream_env


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.celery_worker]

VISIBILITY_TIMEOUT_S = 2
SUCCEEDED = "] succeeded in"


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_worker_killed_mid_enrichment_is_replaced_and_the_task_finishes_once(tmp_path, linkedin):
    media = tmp_path / "media"
    slow_photo = linkedin.photo("face.jpg", delay=60)
    linkedin.profile("kill-me", name="Kim Ill", photo_url=slow_photo)
    Profile.objects.create(handle="kill-me", status=Profile.Status.ENRICHING)
    redis_port, queue = services.free_port(), f"test-{secrets.token_hex(4)}"
    redis_log = (tmp_path / "redis.log").open("wb")
    redis = redis_server(redis_port, redis_log)
    broker = f"redis://127.0.0.1:{redis_port}/0"
    env = services.server_env(
        **upstream_env(linkedin),
        REDIS_URL=broker,
        MEDIA_ROOT=str(media),
        CELERY_VISIBILITY_TIMEOUT_S=str(VISIBILITY_TIMEOUT_S),
    )

    def photo_requests() -> list:
        return [r for r in linkedin.server.requests if "shrink_800_800" in r.path]

    try:
        with services.running(services.celery_worker_cmd(queue), env=env, log=tmp_path / "worker1.log") as first:
            services.task_sender(broker).send_task("avtrz.avatars.tasks.enrich_profile", args=["kill-me"], queue=queue)
            wait_until(photo_requests, 60, "the first worker to start downloading the photo")
            first.send_signal(signal.SIGKILL)
            first.wait()
        assert Profile.objects.get(handle="kill-me").status == Profile.Status.ENRICHING
        assert not AvatarImage.objects.exists()

        linkedin.photo("face.jpg")  # the photo host answers promptly now
        time.sleep(VISIBILITY_TIMEOUT_S + 0.5)  # the unacknowledged message is due again
        with services.running(services.celery_worker_cmd(queue), env=env, log=tmp_path / "worker2.log"):
            wait_until(
                lambda: Profile.objects.get(handle="kill-me").status == Profile.Status.RESOLVED,
                60,
                "the task to be delivered again and finish",
            )
            time.sleep(VISIBILITY_TIMEOUT_S + 1)  # room for a duplicate delivery, were there one
    finally:
        redis.terminate()
        redis.wait()
        redis_log.close()

    second_log = (tmp_path / "worker2.log").read_text()
    assert second_log.count(SUCCEEDED) == 1, second_log[-3000:]
    assert len(photo_requests()) == 2  # the killed download and the one that finished
    profile = Profile.objects.get(handle="kill-me")
    image = AvatarImage.objects.get(profile=profile)
    assert profile.current_image_id == image.pk and profile.failures == 0
    stored = sorted(p.name for p in (media / "avatars").iterdir())
    assert stored == sorted(f"{digest}.webp" for digest in image.renditions["webp"].values())
    assert [p.name for p in (media / "sources").iterdir()] == [image.source_hash]
