"""Beat tasks: thin wrappers over `services` (mail is queued through `workspaces.emails`)."""

from celery import shared_task

from workspaces import services


@shared_task
def roll_usage_periods() -> int:
    """Hourly (CELERY_BEAT_SCHEDULE): open new quota cycles on their anchor day; idempotent."""
    return services.roll_usage_periods()


@shared_task
def retire_rotated_keys() -> int:
    """Every 5 minutes (CELERY_BEAT_SCHEDULE), and at the end of each rotation's grace period."""
    return services.retire_rotated_keys()
