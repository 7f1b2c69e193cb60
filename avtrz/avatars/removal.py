"""Removing a person's photo and data for good, and keeping them out (the opt-out list).

Anyone may ask on the public removal page (`request_removal`); the request counts only once
confirmed from the link mailed to the address given (`confirm_request`), and then waits for support.
Support removes a profile in one step (`remove_profile`), from a request or on their own: the
profile and its images leave the database, the handle goes on the opt-out list, its card becomes an
opted-out card on every worker at once (a hotcache set, which also ends the fast path's replayed
redirects), its durable image URLs answer 410 Gone (`RemovedImage`), and a task deletes the stored
files (`purge.purge`), retried until storage has answered. An opted-out handle is never enriched, imported
or shown again until support lifts the opt-out (`restore`); every step is audited in `OptOutChange`.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from avtrz.avatars import tasks
from avtrz.avatars.cards import OPTED_OUT, Card, card_key, remember
from avtrz.avatars.models import AvatarImage, OptOut, OptOutChange, Profile, RemovalRequest, RemovedImage
from avtrz.lib import hotcache, throttle


if TYPE_CHECKING:  # who acted, for annotations: the engine depends on no app
    from accounts.models import User


log = logging.getLogger(__name__)

CONFIRM_WITHIN = timedelta(days=3)
# Requests a day: per client address (one sender cannot mail many), per email address (nor flood
# one mailbox) and per profile.
REQUESTS_PER_CLIENT = 20
REQUESTS_PER_ADDRESS = 3
REQUESTS_PER_PROFILE = 5
REQUEST_WINDOW_S = 24 * 3600
LIMITED = {
    "removal-client": "from your network",
    "removal-address": "for this email address",
    "removal-profile": "for this profile",
}
# What support promises on the privacy page: a confirmed request is handled within this many days.
HANDLED_WITHIN_DAYS = 3


class RequestRefused(Exception):
    """Too many removal requests for this address or profile; ``str(exc)`` says when to retry."""


def is_opted_out(handle: str) -> bool:
    return OptOut.objects.filter(handle=handle).exists()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _address_ident(email: str) -> str:
    # Cache keys end up in monitoring tools: the address itself stays out of them.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def request_removal(handle: str, email: str, reason: str, *, client_ip: str) -> RemovalRequest:
    """Record an unconfirmed request and mail its confirmation link to `email`."""
    for scope, ident, limit in (
        ("removal-client", client_ip, REQUESTS_PER_CLIENT),
        ("removal-address", _address_ident(email), REQUESTS_PER_ADDRESS),
        ("removal-profile", handle, REQUESTS_PER_PROFILE),
    ):
        window = throttle.hit(scope, ident, REQUEST_WINDOW_S)
        if window.count > limit:
            hours = max(1, round(window.retry_after / 3600))
            raise RequestRefused(
                f"Too many removal requests {LIMITED[scope]} today. Try again in about {hours} "
                f"hour{'s' if hours > 1 else ''}, or write to {settings.AVTRZ_SUPPORT_EMAIL}."
            )
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        found = RemovalRequest.objects.create(handle=handle, email=email, reason=reason, token_hash=_token_hash(token))
        transaction.on_commit(partial(_send_confirmation, found, token))
    return found


def _send_confirmation(found: RemovalRequest, token: str) -> None:
    url = settings.PUBLIC_BASE_URL + reverse("removal-confirm", kwargs={"token": token})
    body = render_to_string(
        "emails/removal_confirm.txt",
        {
            "request": found,
            "url": url,
            "days": CONFIRM_WITHIN.days,
            "handled_within_days": HANDLED_WITHIN_DAYS,
            "support_email": settings.AVTRZ_SUPPORT_EMAIL,
        },
    )
    send_mail(f"Confirm the removal of {found.handle} from Avtrz", body, None, [found.email])


def pending_request(token: str) -> RemovalRequest | None:
    """The unconfirmed, unexpired request this token confirms, if any."""
    return RemovalRequest.objects.filter(
        token_hash=_token_hash(token),
        status=RemovalRequest.Status.UNCONFIRMED,
        created_at__gte=timezone.now() - CONFIRM_WITHIN,
    ).first()


def confirm_request(token: str) -> RemovalRequest | None:
    """Move the request to support's queue; None if the token is unknown, used or expired."""
    found = pending_request(token)
    if found is None:
        return None
    updated = RemovalRequest.objects.filter(pk=found.pk, status=RemovalRequest.Status.UNCONFIRMED).update(
        status=RemovalRequest.Status.CONFIRMED, confirmed_at=timezone.now()
    )
    return found if updated else None


def stored_names(images) -> tuple[list[str], set[str]]:
    """The storage names of every file of these images (sources, current and replaced renditions),
    and the content hashes of their renditions."""
    names: set[str] = set()
    hashes: set[str] = set()
    for image in images:
        names.add(f"sources/{image.source_hash}")
        sets = [image.renditions] + [entry.get("renditions", {}) for entry in image.previous_renditions]
        for renditions in sets:
            for fmt, sizes in renditions.items():
                for digest in sizes.values():
                    names.add(f"avatars/{digest}.{fmt}")
                    hashes.add(digest)
    return sorted(names), hashes


def remove_profile(
    handle: str, *, actor: User | None, reason: str, request: RemovalRequest | None = None
) -> OptOutChange:
    """Remove the profile's data and images and opt the handle out, in one transaction; the card
    changes and the file purge is queued once it is committed. Removing an already opted-out handle
    with nothing left to delete only records the request as handled."""
    now = timezone.now()
    with transaction.atomic():
        images = list(AvatarImage.objects.filter(profile__handle=handle))
        names, hashes = stored_names(images)
        OptOut.objects.get_or_create(handle=handle)
        change = OptOutChange.objects.create(
            handle=handle,
            action=OptOutChange.Action.REMOVED,
            actor=actor,
            reason=reason,
            request=request,
            stored_names=names,
            purge=OptOutChange.Purge.PENDING if names else OptOutChange.Purge.NONE,
        )
        RemovedImage.objects.bulk_create(
            [RemovedImage(content_hash=digest, change=change) for digest in sorted(hashes)], ignore_conflicts=True
        )
        Profile.objects.filter(handle=handle).delete()
        # Every confirmed request for the handle is answered by this removal.
        handled = RemovalRequest.objects.filter(handle=handle, status=RemovalRequest.Status.CONFIRMED)
        if request is not None:
            handled = handled | RemovalRequest.objects.filter(pk=request.pk)
        handled.update(status=RemovalRequest.Status.REMOVED, handled_at=now, handled_by=actor)
        transaction.on_commit(partial(remember, Card(handle=handle, status=OPTED_OUT)))
        if names:
            transaction.on_commit(partial(tasks.queue_purge, change.pk))
    log.info("profile %s removed and opted out (change %s)", handle, change.pk)
    return change


def restore(handle: str, *, actor: User | None, reason: str) -> OptOutChange:
    """Lift the opt-out: the next request for the handle enriches it again like any new profile."""
    with transaction.atomic():
        OptOut.objects.filter(handle=handle).delete()
        # A photo found again after this is stored again under the same hashes: serve it.
        RemovedImage.objects.filter(change__handle=handle).delete()
        change = OptOutChange.objects.create(
            handle=handle, action=OptOutChange.Action.RESTORED, actor=actor, reason=reason
        )
        transaction.on_commit(partial(hotcache.delete, card_key(handle)))
    log.info("opt-out of %s lifted (change %s)", handle, change.pk)
    return change


def dismiss(requests, *, actor: User | None) -> int:
    """Close confirmed requests without removing anything (not a real profile, a mistake, abuse)."""
    return requests.filter(status=RemovalRequest.Status.CONFIRMED).update(
        status=RemovalRequest.Status.DISMISSED, handled_at=timezone.now(), handled_by=actor
    )
