"""A photo host slower than the worker's read budget: the task tries again within seconds (not the 5-minute
backoff of a block), the profile is never marked blocked, and the next try that gets the photo redirects."""

import threading
import time

import pytest
from django.db import connection

from avtrz.avatars import enrichment
from avtrz.avatars.models import AvatarImage, Profile
from tests import services
from tests.faults.stack import SUCCEEDED, production_stack


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.celery_worker]

TASK_READ_BUDGET_S = 1
RECOVERY_BOUND_S = 30


def test_a_stalled_photo_host_is_retried_in_seconds_and_the_profile_is_never_blocked(tmp_path, linkedin, pk):
    linkedin.profile("slow-cdn", name="Cy Dean", photo_url=linkedin.photo("face.jpg", delay=60))

    def photo_requests() -> list:
        return [r for r in linkedin.server.requests if "shrink_800_800" in r.path]

    statuses: set[str] = set()
    watching = threading.Event()

    def watch_status() -> None:  # every status the profile passes through while the test waits
        try:
            while not watching.wait(0.05):
                statuses.update(Profile.objects.filter(handle="slow-cdn").values_list("status", flat=True))
        finally:
            connection.close()

    watcher = threading.Thread(target=watch_status)
    with production_stack(
        tmp_path, linkedin, broker="rabbitmq", AVTRZ_PHOTO_TASK_READ_TIMEOUT_S=str(TASK_READ_BUDGET_S)
    ) as stack:
        with stack.worker("worker"):
            first = stack.avatar(pk, "slow-cdn")
            services.wait_until(photo_requests, 30, "the worker to start downloading the photo")
            stalled_at = time.monotonic()
            watcher.start()
            linkedin.photo("face.jpg")  # the download in progress stays stalled; the next one is prompt
            try:
                recovery_s = stack.seconds_to_302(pk, "slow-cdn", since=stalled_at, timeout=RECOVERY_BOUND_S)
            finally:
                watching.set()
                watcher.join()
            print(f"\nstalled photo host: a 302 {recovery_s:.1f} s after the download began")

    assert first.status_code == 200  # the monogram while the photo is on its way
    assert Profile.Status.BLOCKED not in statuses, statuses
    # The first try waited out its budget, the retry came after the first countdown (timed at the photo host:
    # the test's own view of when the download began lags it by a poll and a loaded machine's scheduling).
    first_try, retry = photo_requests()
    assert retry.at - first_try.at >= TASK_READ_BUDGET_S + enrichment.PHOTO_RETRY_COUNTDOWNS_S[0]
    worker_log = stack.log("worker").read_text()
    assert worker_log.count("retry: Retry in 5s") == 1 and worker_log.count(SUCCEEDED) == 1, worker_log[-3000:]
    profile = Profile.objects.get(handle="slow-cdn")
    assert profile.status == Profile.Status.RESOLVED and profile.failures == 0
    assert AvatarImage.objects.filter(profile=profile).count() == 1
