from datetime import datetime

from celery import shared_task
from django.core.mail import send_mail


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_email(to: str, subject: str, body: str) -> None:
    """Send one plain-text email; SMTP hiccups are retried with backoff, never lost silently."""
    send_mail(subject, body, None, [to])


@shared_task
def send_quota_warning(recipients: list[str], subject: str, body: str, period_id: int, fields: list[str], stamp: str):
    """Send a quota warning to the owners. A warning is marked when claimed; if sending fails the
    claim is released (no retry here, which could then send it twice) and the next check, the
    flusher's or the hourly roll's, claims and sends it again."""
    from workspaces import services

    try:
        for to in recipients:
            send_mail(subject, body, None, [to])
    except Exception:
        services.release_quota_warning(period_id, fields, datetime.fromisoformat(stamp))
        raise


@shared_task
def roll_usage_periods() -> int:
    """Hourly (CELERY_BEAT_SCHEDULE): open new quota cycles on their anchor day; idempotent."""
    from workspaces import services  # here, not at the top: services imports this module for send_email

    return services.roll_usage_periods()


@shared_task
def retire_rotated_keys() -> int:
    """Every 5 minutes (CELERY_BEAT_SCHEDULE), and at the end of each rotation's grace period."""
    from workspaces import services

    return services.retire_rotated_keys()
