"""Outgoing mail, sent by Celery workers. Services import this module to queue mail once their
transaction commits; it imports no service (`workspaces.tasks` wraps the services instead)."""

from datetime import datetime

from celery import shared_task
from django.core.mail import send_mail

from workspaces.models import UsagePeriod


# The tasks keep the names they had in workspaces.tasks, so mail queued before a deploy is still sent.
@shared_task(name="workspaces.tasks.send_email", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_email(to: str, subject: str, body: str) -> None:
    """Send one plain-text email; SMTP hiccups are retried with backoff, never lost silently."""
    send_mail(subject, body, None, [to])


@shared_task(name="workspaces.tasks.send_quota_warning")
def send_quota_warning(recipients: list[str], subject: str, body: str, period_id: int, fields: list[str], stamp: str):
    """Send a quota warning to the owners. A warning is marked when claimed; if sending fails the
    claim is released (no retry here, which could then send it twice) and the next check, the
    flusher's or the hourly roll's, claims and sends it again."""
    try:
        for to in recipients:
            send_mail(subject, body, None, [to])
    except Exception:
        release_quota_warning(period_id, fields, datetime.fromisoformat(stamp))
        raise


def release_quota_warning(period_id: int, fields: list[str], stamp: datetime) -> None:
    """Unmark warnings whose email could not be sent, so the next check (the flusher, or the hourly
    roll at the latest) claims and sends them again. Only our own claim is released."""
    for field in fields:
        UsagePeriod.objects.filter(pk=period_id, **{field: stamp}).update(**{field: None})
