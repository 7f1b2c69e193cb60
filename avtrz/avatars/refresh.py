"""Keeping photos fresh: re-check profiles whose check is due (photo URL about to expire, stale,
blocked earlier, or stuck enriching). Re-encoding happens only when the photo version changed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from avtrz.avatars.models import Profile


BATCH = 200
# An enrichment that has not finished in this long was lost (worker died): queue it again.
STUCK_AFTER = timedelta(minutes=10)
# Claimed profiles are not claimed again for this long, so overlapping beats queue each once.
CLAIM_FOR = timedelta(minutes=15)


def claim_due_profiles(batch: int = BATCH) -> Iterator[str]:
    """Yield the handle of each due profile as it is claimed; the caller queues its check
    (`tasks.refresh_due_profiles`)."""
    now = timezone.now()
    due = Profile.objects.filter(
        Q(next_check_at__lte=now)
        | Q(status=Profile.Status.ENRICHING, updated_at__lte=now - STUCK_AFTER, next_check_at__isnull=True)
    ).values_list("pk", "handle", "next_check_at")[:batch]
    for pk, handle, next_check_at in due:
        # Compare-and-set: only the worker that moves next_check_at queues the check.
        if Profile.objects.filter(pk=pk, next_check_at=next_check_at).update(next_check_at=now + CLAIM_FOR):
            yield handle
