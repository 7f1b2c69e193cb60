"""Deleting a removed profile's stored files (see `removal.remove_profile`), the work behind the
`purge_removed_images` task. Imports no task module: `removal` queues the task, `tasks` wraps this."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.utils import timezone

from avtrz.avatars.models import OptOutChange


# Purge retries back off exponentially up to this; a purge still failing is retried by the beat.
PURGE_RETRY_MAX_S = 3600


def purge(change_pk: int) -> bool:
    """Delete the removal's stored files; idempotent (a missing file is already gone).

    Records each failed attempt on the change (the admin shows it) and raises, so the task retries."""
    change = OptOutChange.objects.get(pk=change_pk)
    if change.purge != OptOutChange.Purge.PENDING and change.purge != OptOutChange.Purge.RETRYING:
        return False
    try:
        for name in change.stored_names:
            default_storage.delete(name)
    except Exception as exc:
        OptOutChange.objects.filter(pk=change_pk).update(
            purge=OptOutChange.Purge.RETRYING,
            purge_attempts=change.purge_attempts + 1,
            purge_error=f"{type(exc).__name__}: {exc}"[:1000],
        )
        raise
    OptOutChange.objects.filter(pk=change_pk).update(
        purge=OptOutChange.Purge.DONE,
        purge_attempts=change.purge_attempts + 1,
        purge_error="",
        purged_at=timezone.now(),
    )
    return True


def unfinished_purges():
    return OptOutChange.objects.filter(purge__in=[OptOutChange.Purge.PENDING, OptOutChange.Purge.RETRYING])
