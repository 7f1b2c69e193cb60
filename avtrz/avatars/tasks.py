from celery import shared_task

from avtrz.avatars import enrichment, refresh


@shared_task(acks_late=True)
def enrich_profile(handle: str) -> None:
    """Idempotent: a re-delivered or duplicate task finds the stored image and adds nothing."""
    enrichment.enrich(handle)


@shared_task
def refresh_due_profiles() -> int:
    return refresh.queue_due_profiles()


@shared_task(acks_late=True)
def rerender_avatars(force: bool = False) -> list[int]:
    """Re-render current avatars made with an older framing rule (see `crops.rerender_outdated`).

    Idempotent: a re-delivered task finds them up to date and renders nothing."""
    from avtrz.avatars import crops

    return list(crops.rerender_outdated(force=force))
