"""Emailing a workspace's owners when a quota meter passes 80% and 100% of its limit.

Checked where usage is written (`usage.flush_now`) and at the hourly roll (`services.roll_usage_periods`);
the email is queued once the check's transaction commits."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from avtrz.lib.validators import one_line
from workspaces.emails import release_quota_warning, send_quota_warning
from workspaces.models import UsagePeriod


logger = logging.getLogger(__name__)

QUOTA_METERS = {
    "requests": ("avatar requests", "requests_limit"),
    "new_profiles": ("new profiles", "new_profiles_limit"),
}
QUOTA_THRESHOLDS = (80, 100)


def warn_quota_thresholds(period: UsagePeriod, *, requests_used: int) -> list[tuple[str, int]]:
    """Email the owners when a meter passes 80% and 100% of its limit: once per period and threshold.

    Each warning is claimed by a conditional UPDATE, so of several workers noticing the same
    crossing exactly one sends it. Passing both thresholds at once sends only the 100% email.
    Returns the (meter, threshold) warnings sent."""
    used_by_meter = {"requests": requests_used, "new_profiles": period.avatar_new_profiles}
    sent = []
    for meter, (label, limit_field) in QUOTA_METERS.items():
        limit = getattr(period, limit_field)
        used = used_by_meter[meter]
        crossed = [
            threshold
            for threshold in QUOTA_THRESHOLDS
            if limit and used * 100 >= limit * threshold and getattr(period, f"{meter}_warned_{threshold}_at") is None
        ]
        stamp = timezone.now()
        claimed = [
            threshold
            for threshold in crossed
            if UsagePeriod.objects.filter(pk=period.pk, **{f"{meter}_warned_{threshold}_at__isnull": True}).update(
                **{f"{meter}_warned_{threshold}_at": stamp}
            )
        ]
        if claimed:
            fields = [f"{meter}_warned_{threshold}_at" for threshold in claimed]
            _email_quota_warning(period, label, used, limit, max(claimed), fields=fields, stamp=stamp)
            sent.append((meter, max(claimed)))
    return sent


def _email_quota_warning(
    period: UsagePeriod, label: str, used: int, limit: int, threshold: int, *, fields: list[str], stamp: datetime
) -> None:
    """Queue the warning to the owners. The claim counts as sent only once the mail went out: if it
    cannot be queued or sent, `send_quota_warning` releases it and a later check sends it again."""
    workspace = period.workspace
    context = {
        "workspace": workspace,
        "label": label,
        "used": used,
        "limit": limit,
        "threshold": threshold,
        "resets_at": period.ends_at,
        "billing_url": f"{settings.PUBLIC_BASE_URL}/w/{workspace.slug}/billing/",
    }
    if threshold >= 100:
        subject = f"{workspace.name} has used all of its {label} for this cycle"
    else:
        subject = f"{workspace.name} has used {threshold}% of its {label} for this cycle"
    subject = one_line(subject)
    body = render_to_string("emails/quota_warning.txt", context)
    recipients = list(workspace.owners().values_list("user__email", flat=True))
    claim = (period.pk, fields, stamp.isoformat())

    def queue() -> None:
        try:
            send_quota_warning.delay(recipients, subject, body, *claim)
        except Exception:
            logger.exception("quota warning not sent; the next check sends it again")
            release_quota_warning(period.pk, fields, stamp)

    transaction.on_commit(queue)
