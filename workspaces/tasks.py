from celery import shared_task
from django.core.mail import send_mail


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_email(to: str, subject: str, body: str) -> None:
    """Send one plain-text email; SMTP hiccups are retried with backoff, never lost silently."""
    send_mail(subject, body, None, [to])


@shared_task
def roll_usage_periods() -> int:
    """Hourly (CELERY_BEAT_SCHEDULE): open new quota cycles on their anchor day; idempotent."""
    from workspaces import services  # here, not at the top: services imports this module for send_email

    return services.roll_usage_periods()
