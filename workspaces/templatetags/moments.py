"""Times as the dashboard shows them: a date with hours, and how long ago, where under a minute is
"just now" rather than "0 minutes ago"."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.timesince import timesince


register = template.Library()


@register.filter
def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return ""
    now = now or timezone.now()
    if now - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, now, depth=1)} ago"


@register.filter
def at(moment: datetime | None) -> str:
    """``1 Dec 2026, 14:03 UTC`` in the site's time zone."""
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    return f"{date_format(local, 'j M Y, H:i')} {local.tzname()}"
