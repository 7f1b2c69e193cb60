"""The avatar pipeline as the API and the MCP tools both use it: one set of rules, one meter.

Both channels meter first and look up second, so a refused request does no work: `count_lookup` (and
`meter_lookup`, its MCP-shaped wrapper) counts the request against the workspace's rate limit and
quotas, including `avatar_new_profiles` the first time a workspace asks for a profile in a cycle;
`lookup` then answers "what do we have for this handle", starting enrichment for a profile never
seen and waiting a short budget for it. With `local_only=True` the meter refuses anything that
needs a network round trip or the database (raising `NeedsDatabase`), which is how the ASGI fast
path answers cache hits on the event loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from kombu.exceptions import OperationalError

from avtrz.avatars import tasks
from avtrz.avatars.cards import OPTED_OUT, Card, cached_card, load_card, remember
from avtrz.avatars.models import Profile
from avtrz.lib import hotcache
from workspaces import usage


log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1
SEEN_TTL = 40 * 24 * 3600


class NeedsDatabase(Exception):
    """The cache alone cannot answer; the caller must take the full path."""


@dataclass(frozen=True)
class Refusal:
    code: str  # "rate_limited" or "quota_exceeded"
    message: str
    retry_after: int = 0


@dataclass(frozen=True)
class Metered:
    """The meter's verdict on one lookup: `refusal` is None when admitted. `admission` is the token
    bucket's answer (None when the new-profile quota refused the lookup before the bucket was asked)."""

    refusal: Refusal | None
    admission: usage.Admission | None


# What a lookup tells its caller about a profile, the same on both channels: `blocked` (LinkedIn refused
# us for now, retried with backoff) is still `enriching` to a caller, never "no photo".
PUBLIC_STATUS = {
    Profile.Status.RESOLVED: "resolved",
    Profile.Status.ENRICHING: "enriching",
    Profile.Status.BLOCKED: "enriching",
    OPTED_OUT: OPTED_OUT,
}


def public_status(card: Card) -> str:
    """`resolved`, `enriching`, `opted_out` or `not_found`: the status `/v1/avatar` and the MCP tools both report."""
    return PUBLIC_STATUS.get(card.status, "not_found")


def lookup(handle: str, *, wait_s: float) -> Card:
    """The profile's card; an unknown handle starts enrichment and waits up to `wait_s` for it."""
    card = cached_card(handle) or load_card(handle) or request_enrichment(handle)
    if card.status == Profile.Status.ENRICHING and wait_s > 0:
        card = _wait_for(handle, card, wait_s)
    return card


def request_enrichment(handle: str) -> Card:
    """Add the handle to the directory as `enriching` and queue its enrichment once committed."""
    try:
        with transaction.atomic():
            profile = Profile.objects.create(handle=handle, status=Profile.Status.ENRICHING)
            transaction.on_commit(lambda: _queue_enrichment(handle))
    except IntegrityError:  # a concurrent request added it first and queued the work
        # None only if that profile was removed and its opt-out lifted since: then it is new again.
        return load_card(handle) or request_enrichment(handle)
    return cached_card(handle) or remember(Card(handle=handle, status=profile.status))


def _queue_enrichment(handle: str) -> None:
    try:
        tasks.enrich_profile.delay(handle)
    except OperationalError as exc:
        # The broker is away: the profile stays `enriching` and the refresh beat queues it again later.
        log.warning("could not queue enrichment of %s: %s", handle, exc)


def _wait_for(handle: str, card: Card, wait_s: float) -> Card:
    deadline = time.monotonic() + wait_s
    while card.status == Profile.Status.ENRICHING and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
        card = cached_card(handle) or card
    return card


def _seen_key(meter: usage.Meter, handle: str) -> str:
    return f"seen:{meter.period_id}:{handle}"


def meter_lookup(meter: usage.Meter, handle: str, *, key_id: int | None = None) -> Refusal | None:
    """Count one lookup of `handle` for the workspace, or say why it is refused (see `count_lookup`)."""
    return count_lookup(meter, handle, key_id=key_id).refusal


def count_lookup(meter: usage.Meter, handle: str, *, key_id: int | None = None, local_only: bool = False) -> Metered:
    """Count one lookup of `handle` for the workspace, or say why it is refused (refusals are tallied).

    A profile new to the workspace this cycle is counted first (in the database, where the count is
    its own quota check), so the request counter only ever goes up; if the request is then refused,
    the new-profile count is taken back. `local_only` raises `NeedsDatabase`, before anything is
    counted, when the answer needs more than this process's memory."""
    seen_key = _seen_key(meter, handle)
    seen = hotcache.get(seen_key, local_only=local_only) is not None
    if local_only and not seen:
        raise NeedsDatabase
    counted: bool | None = False
    if not seen:
        counted = usage.count_new_profile(meter.period_id, handle)
        if counted is None:
            usage.record(meter.workspace_id, "refused_402")
            return Metered(_quota_refusal(meter, "new profiles", meter.new_profiles_limit), None)
    admission = usage.admit(meter, key_id=key_id, local_only=local_only)
    if admission is None:  # the lease needs refilling from Redis: not on the event loop
        raise NeedsDatabase
    if not admission.allowed:
        if counted:
            usage.uncount_new_profile(meter.period_id, handle)
        usage.record(meter.workspace_id, "refused_429" if admission.reason == "rate_limited" else "refused_402")
        if admission.reason == "rate_limited":
            refusal = Refusal(
                "rate_limited",
                f"Rate limit of {meter.requests_per_second} requests per second (bursts of {meter.rate_burst}) "
                f"exceeded. Retry in {admission.retry_after} s.",
                admission.retry_after,
            )
        else:
            refusal = _quota_refusal(meter, "requests", meter.requests_limit)
        return Metered(refusal, admission)
    if not seen:
        hotcache.set(seen_key, 1, SEEN_TTL)
    return Metered(None, admission)


def record_answer(meter: usage.Meter, *, channel: str, with_photo: bool) -> None:
    """Tally an admitted lookup for the daily chart: `channel` is "api" or "mcp"."""
    usage.record(meter.workspace_id, answer_tally(channel=channel, with_photo=with_photo))


def answer_tally(*, channel: str, with_photo: bool) -> str:
    """The daily chart's counter (a DailyUsage field) an admitted lookup is tallied under."""
    return f"{channel}_{'hits' if with_photo else 'misses'}"


def _quota_refusal(meter: usage.Meter, what: str, limit: int) -> Refusal:
    return Refusal(
        "quota_exceeded",
        f"Quota exceeded for this workspace: {limit} {what} a month on the {meter.plan_name} plan. "
        f"It resets on {meter.resets_at:%Y-%m-%d %H:%M} UTC; upgrade the plan for more.",
    )
