from celery import shared_task
from oauth2_provider.models import clear_expired

from accounts import connections


@shared_task
def clear_abandoned_registrations() -> int:
    """Delete dynamically registered OAuth clients nobody authorized within a day."""
    return connections.clear_abandoned_registrations()


@shared_task
def clear_expired_tokens() -> None:
    """DOT's sweep of expired grants, access, refresh and ID tokens (idempotent)."""
    clear_expired()
