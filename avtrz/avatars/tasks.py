"""Celery tasks: thin wrappers over plain functions. Services import this module to queue work;
this module imports no service that queues it (`refresh` and `purge` only find and do the work)."""

import logging

from celery import shared_task

from avtrz.avatars import crops, enrichment, purge, refresh


log = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, max_retries=len(enrichment.PHOTO_RETRY_COUNTDOWNS_S))
def enrich_profile(self, handle: str) -> None:
    """Idempotent: a re-delivered or duplicate task finds the stored image and adds nothing.

    On a worker, a photo host that was slow or unreachable is tried again after each of
    PHOTO_RETRY_COUNTDOWNS_S; run eagerly (in the request) it backs off like any failure instead."""
    on_worker = not self.request.is_eager
    try:
        enrichment.enrich(
            handle, on_worker=on_worker, photo_retries_left=self.max_retries - self.request.retries if on_worker else 0
        )
    except enrichment.PhotoHostUnavailable as exc:
        raise self.retry(exc=exc, countdown=enrichment.PHOTO_RETRY_COUNTDOWNS_S[self.request.retries]) from exc


@shared_task
def refresh_due_profiles() -> int:
    """Queue a check of each profile whose check is due (`refresh.claim_due_profiles`)."""
    queued = 0
    for handle in refresh.claim_due_profiles():
        enrich_profile.delay(handle)
        queued += 1
    return queued


@shared_task(acks_late=True)
def rerender_avatars(force: bool = False) -> list[int]:
    """Re-render current avatars made with an older framing rule (see `crops.rerender_outdated`).

    Idempotent: a re-delivered task finds them up to date and renders nothing."""
    return list(crops.rerender_outdated(force=force))


@shared_task(
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=purge.PURGE_RETRY_MAX_S,
    max_retries=8,
)
def purge_removed_images(change_pk: int) -> bool:
    """Delete a removal's stored files (`purge.purge`); idempotent, retried while storage fails.
    After the last retry the beat's `retry_unfinished_purges` takes over."""
    return purge.purge(change_pk)


def queue_purge(change_pk: int) -> None:
    try:
        purge_removed_images.delay(change_pk)
    except Exception:
        # The broker is away, or (tasks run in-process) storage failed: the change shows it and
        # the beat's `retry_unfinished_purges` tries again.
        log.exception("purge of removal %s not finished; it will be retried", change_pk)


@shared_task
def retry_unfinished_purges() -> int:
    """Queue again every purge that has not finished (the beat runs this)."""
    pks = list(purge.unfinished_purges().values_list("pk", flat=True))
    for pk in pks:
        queue_purge(pk)
    return len(pks)
