from celery import shared_task

from avtrz.avatars import enrichment, refresh, removal


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
    return refresh.queue_due_profiles()


@shared_task(acks_late=True)
def rerender_avatars(force: bool = False) -> list[int]:
    """Re-render current avatars made with an older framing rule (see `crops.rerender_outdated`).

    Idempotent: a re-delivered task finds them up to date and renders nothing."""
    from avtrz.avatars import crops

    return list(crops.rerender_outdated(force=force))


@shared_task(
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=removal.PURGE_RETRY_MAX_S,
    max_retries=8,
)
def purge_removed_images(change_pk: int) -> bool:
    """Delete a removal's stored files (`removal.purge`); idempotent, retried while storage fails.
    After the last retry the beat's `retry_unfinished_purges` takes over."""
    return removal.purge(change_pk)


@shared_task
def retry_unfinished_purges() -> int:
    return removal.retry_unfinished_purges()
