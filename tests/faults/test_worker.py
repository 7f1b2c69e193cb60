"""A Celery worker killed (SIGKILL) while it downloads a photo: the task is delivered again to the next worker
and finishes once, storing one image and no duplicate files; the figure is the time from the kill to a 302.

With RabbitMQ (production) the broker re-delivers a dead consumer's messages at once, so that time is the
new worker's start plus one enrichment. With Redis as the broker (only REDIS_URL set) the message waits
out CELERY_VISIBILITY_TIMEOUT_S first: 2 s here, 3600 s by default.
"""

import signal
import time

import pytest
import redis

from avtrz.avatars.models import AvatarImage, Profile
from tests import services
from tests.faults.stack import SUCCEEDED, production_stack


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.celery_worker]

REDIS_VISIBILITY_TIMEOUT_S = 2
READY = " ready."
RECEIVED = "avtrz.avatars.tasks.enrich_profile["
# Far below what it replaces: a 3600 s visibility timeout, or the refresh beat's sweep of stuck profiles
# (10-15 minutes).
RECOVERY_BOUND_S = 30


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_a_worker_killed_mid_download_is_replaced_and_the_profile_redirects_within_seconds(
    tmp_path, linkedin, pk, broker
):
    linkedin.profile("kill-me", name="Kim Ill", photo_url=linkedin.photo("face.jpg", delay=60))

    def photo_requests() -> list:
        return [r for r in linkedin.server.requests if "shrink_800_800" in r.path]

    with production_stack(
        tmp_path, linkedin, broker=broker, CELERY_VISIBILITY_TIMEOUT_S=str(REDIS_VISIBILITY_TIMEOUT_S)
    ) as stack:
        with stack.worker("worker1") as first:
            waiting = stack.avatar(pk, "kill-me")  # queues the enrichment, waits its budget, gets the monogram
            services.wait_until(photo_requests, 30, "the worker to start downloading the photo")
            first.send_signal(signal.SIGKILL)
            first.wait()
            killed_at = time.monotonic()
        assert waiting.status_code == 200 and waiting.headers["Content-Type"].startswith("image/svg")
        assert Profile.objects.get(handle="kill-me").status == Profile.Status.ENRICHING
        assert not AvatarImage.objects.exists()

        linkedin.photo("face.jpg")  # the photo host answers promptly now
        with stack.worker("worker2"):
            recovery_s = stack.seconds_to_302(pk, "kill-me", since=killed_at, timeout=RECOVERY_BOUND_S)
            print(f"\n{broker}: a 302 {recovery_s:.1f} s after the worker was killed")
            services.wait_until(lambda: SUCCEEDED in stack.log("worker2").read_text(), 30, "worker2 to finish the task")
        if broker == "redis":
            # Stopped, the worker has put back what it held unacknowledged: with nothing in the queue and
            # nothing unacknowledged, the message can never be delivered a second time.
            assert redis_broker_holds(stack) == (0, 0)

    second_log = stack.log("worker2").read_text()
    assert ("Redis is the Celery broker" in second_log) == (broker == "redis")  # the operator is told the cost
    assert_finished_once("kill-me", second_log, photo_requests(), tmp_path / "media")


def test_with_rabbitmq_a_running_worker_takes_over_the_task_of_a_killed_one_at_once(tmp_path, linkedin, pk):
    linkedin.profile("take-over", name="Tay Cover", photo_url=linkedin.photo("face.jpg", delay=60))

    def photo_requests() -> list:
        return [r for r in linkedin.server.requests if "shrink_800_800" in r.path]

    with production_stack(tmp_path, linkedin, broker="rabbitmq") as stack:
        with stack.worker("worker1") as first, stack.worker("worker2") as second:
            stack.avatar(pk, "take-over")  # queued while they start; it waits its budget meanwhile
            for name in ("worker1", "worker2"):
                services.wait_until(lambda name=name: READY in stack.log(name).read_text(), 60, f"{name} to be ready")
            services.wait_until(photo_requests, 30, "a worker to start downloading the photo")
            first_took_it = RECEIVED in stack.log("worker1").read_text()
            doomed, standby = (first, "worker2") if first_took_it else (second, "worker1")
            linkedin.photo("face.jpg")  # the photo host answers promptly now
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
            recovery_s = stack.seconds_to_302(pk, "take-over", since=time.monotonic(), timeout=RECOVERY_BOUND_S)
            print(f"\nrabbitmq, a second worker running: a 302 {recovery_s:.1f} s after the kill")
    assert_finished_once("take-over", stack.log(standby).read_text(), photo_requests(), tmp_path / "media")


def redis_broker_holds(stack) -> tuple[int, int]:
    """Messages of the stack's queue in the Redis broker: waiting in the queue, and delivered but not
    acknowledged (kombu's `unacked` hash, which its visibility timeout delivers again from)."""
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        queued = sum(client.llen(key) for key in client.scan_iter(match=f"{stack.queue}*", _type="list"))
        return queued, client.hlen("unacked")
    finally:
        client.close()


def assert_finished_once(handle: str, worker_log: str, photo_requests: list, media) -> None:
    """The task finished once on the worker that took it over: one image, its files and nothing more."""
    assert worker_log.count(SUCCEEDED) == 1, worker_log[-3000:]
    assert len(photo_requests) == 2  # the killed download and the one that finished
    profile = Profile.objects.get(handle=handle)
    image = AvatarImage.objects.get(profile=profile)
    assert profile.current_image_id == image.pk and profile.failures == 0
    stored = sorted(p.name for p in (media / "avatars").iterdir())
    assert stored == sorted(f"{digest}.webp" for digest in image.renditions["webp"].values())
    assert [p.name for p in (media / "sources").iterdir()] == [image.source_hash]
