"""Enrichment: fetch a public profile, read its fields and photo, crop and store the avatar.

Runs in a Celery task (in-process on the embedded default). Every fetch goes through `safe_http`
with strict timeouts, size caps and host allow-lists; LinkedIn's anti-bot answers mark the profile
*blocked* and schedule a retry with backoff, they never turn into "no photo". A run of failed or
blocked fetches opens a circuit breaker (`breaker`) that pauses fetching for every worker.

A photo host that is slow, unreachable or failing (timeouts, connection errors, 5xx) is not LinkedIn
refusing us: on a worker the download gets a longer read budget (AVTRZ_PHOTO_TASK_READ_TIMEOUT_S) and,
if it still fails, `PhotoHostUnavailable` has the task try again within seconds
(PHOTO_RETRY_COUNTDOWNS_S) while the profile stays as it was; only when those tries are used up does
it back off like any failure.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import quote

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Field
from django.utils import timezone

from avtrz.avatars import breaker, crops, imaging, linkedin
from avtrz.avatars.cards import card_for, remember
from avtrz.avatars.models import AvatarImage, OptOut, Profile
from avtrz.lib import safe_http


log = logging.getLogger(__name__)

PAGE_MAX_BYTES = 3 * 1024 * 1024
PHOTO_MAX_BYTES = 10 * 1024 * 1024
NOT_FOUND_RECHECK = timedelta(days=30)
BACKOFF_START = timedelta(minutes=5)
BACKOFF_MAX = timedelta(days=1)
USER_AGENT = "AvtrzBot/1.0 (+https://avtrz.dev/bot)"
# Seconds before each quick retry of a photo host that was slow or unreachable (then: `_retry_later`).
PHOTO_RETRY_COUNTDOWNS_S = (5, 20, 60)
# Should the queued retry be lost, the refresh beat picks the profile up after this long.
PHOTO_RETRY_FALLBACK = timedelta(minutes=10)


class PhotoHostUnavailable(Exception):
    """The photo host timed out, was unreachable or failed (5xx): worth trying again within seconds."""


def profile_page_url(handle: str) -> str:
    return f"{settings.LINKEDIN_BASE_URL}/in/{quote(handle, safe='')}/"


def _fetch(
    url: str, *, allowed_hosts: list[str] | None, max_bytes: int, accept: str, read_timeout: float | None = None
) -> safe_http.FetchResult:
    return safe_http.fetch(
        url,
        allowed_hosts=allowed_hosts,
        allow_private_hosts=settings.AVTRZ_FETCH_ALLOW_PRIVATE,
        max_bytes=max_bytes,
        connect_timeout=settings.AVTRZ_FETCH_CONNECT_TIMEOUT_S,
        read_timeout=read_timeout or settings.AVTRZ_FETCH_READ_TIMEOUT_S,
        accept=accept,
        user_agent=USER_AGENT,
    )


def enrich(handle: str, *, on_worker: bool = False, photo_retries_left: int = 0) -> Profile | None:
    """Check one profile against the source and bring the directory and the cache up to date.
    None for a handle on the opt-out list: nothing is fetched (`avatars.removal`).

    `on_worker`: off the request path, so the photo download may take AVTRZ_PHOTO_TASK_READ_TIMEOUT_S.
    With `photo_retries_left`, a photo host that was slow or unreachable raises `PhotoHostUnavailable`
    (the profile keeps its status, its fields saved) for the caller to try again soon."""
    if OptOut.objects.filter(handle=handle).exists():
        log.info("profile %s opted out: not fetched", handle)
        return None
    profile, _ = Profile.objects.get_or_create(handle=handle)
    if breaker.is_open():
        return _retry_later(profile, "not fetched (the profile source's circuit is open)")
    page_url = profile_page_url(handle)
    try:
        page = _fetch(page_url, allowed_hosts=[settings.LINKEDIN_HOST], max_bytes=PAGE_MAX_BYTES, accept="text/html")
    except safe_http.FetchError as exc:
        log.warning("profile fetch failed for %s: %s", handle, exc)
        breaker.record(ok=False)
        return _retry_later(profile, "error")
    html = page.body.decode("utf-8", errors="replace")
    outcome = linkedin.classify_response(page.status, html, page.final_url)
    breaker.record(ok=outcome in (linkedin.Outcome.OK, linkedin.Outcome.NOT_FOUND))
    if outcome == linkedin.Outcome.NOT_FOUND:
        return _finish(profile, Profile.Status.NOT_FOUND, next_check=timezone.now() + NOT_FOUND_RECHECK)
    if outcome != linkedin.Outcome.OK:
        return _retry_later(profile, outcome)

    parsed = linkedin.parse_profile_page(html, page.final_url)
    for field in ("name", "headline", "summary", "industry", "location"):
        model_field = Profile._meta.get_field(field)
        assert isinstance(model_field, Field)
        setattr(profile, field, (getattr(parsed, field) or "")[: model_field.max_length or None])
    profile.open_to_work = parsed.open_to_work
    if parsed.photo_url:
        photo_url = linkedin.upgrade_photo_url(parsed.photo_url)
        version = linkedin.photo_version(photo_url)
        if version != profile.photo_version or profile.current_image is None:
            read_timeout = settings.AVTRZ_PHOTO_TASK_READ_TIMEOUT_S if on_worker else None
            try:
                profile.current_image = _store_photo(profile, photo_url, parsed.photo_url, version, read_timeout)
            except (safe_http.FetchError, imaging.ImageError) as exc:
                log.warning("photo of %s not stored: %s", handle, exc)
                if photo_retries_left and isinstance(exc, safe_http.FetchError) and exc.retryable:
                    _retry_soon(profile)
                    raise PhotoHostUnavailable(str(exc)) from exc
                return _retry_later(profile, "error")
        profile.source_photo_url = photo_url
        profile.photo_version = version
        profile.photo_expires_at = linkedin.photo_expiry(photo_url)
    return _finish(profile, Profile.Status.RESOLVED, next_check=_next_refresh(profile))


def _store_photo(
    profile: Profile, url: str, original_url: str, version: str, read_timeout: float | None
) -> AvatarImage:
    """Store the largest rendition, or the size the page linked if the largest is refused
    (LinkedIn's signature may cover the size in the path)."""
    try:
        data = fetch_photo(url, read_timeout=read_timeout)
    except PhotoRefused as exc:
        if url == original_url or exc.retryable:  # a failing host fails for every size
            raise
        data = fetch_photo(original_url, read_timeout=read_timeout)
    return store_image(profile, data, version)


class PhotoRefused(safe_http.FetchFailed):
    """The photo host answered, but not with the photo: a 4xx is a refusal (retry later), a 5xx a
    failing host (retry soon)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"photo answered HTTP {status}")
        self.retryable = status >= 500


def fetch_photo(url: str, *, read_timeout: float | None = None) -> bytes:
    """Download a photo from an allowed photo host, size-capped."""
    photo = _fetch(
        url,
        allowed_hosts=settings.AVTRZ_PHOTO_HOSTS,
        max_bytes=PHOTO_MAX_BYTES,
        accept="image/*",
        read_timeout=read_timeout,
    )
    if photo.status != 200:
        raise PhotoRefused(photo.status)
    return photo.body


def store_image(profile: Profile, data: bytes, version: str) -> AvatarImage:
    """Decode, frame and encode a photo, storing each rendition under its content hash (`crops`).

    Idempotent: a re-delivered task finds the image of this photo version and adds nothing, and a
    refresh that finds the same photo keeps its image, manual crop included."""
    source_hash = imaging.content_hash(data)
    existing = AvatarImage.objects.filter(profile=profile, photo_version=version, source_hash=source_hash).first()
    if existing:
        return existing
    rendered = crops.render_source(data)
    crops.save_blob(f"sources/{source_hash}", data)
    try:
        with transaction.atomic():
            return AvatarImage.objects.create(
                profile=profile,
                photo_version=version,
                source_hash=source_hash,
                source_format=rendered.source_format,
                face_detected=rendered.face_box is not None,
                renditions=rendered.renditions,
                source_width=rendered.width,
                source_height=rendered.height,
                face_box=rendered.face_box,
                crop_boxes=rendered.crop_boxes,
                framing_version=rendered.framing_version,
            )
    except IntegrityError:  # a concurrent delivery of the same task stored it first
        return AvatarImage.objects.get(profile=profile, photo_version=version, source_hash=source_hash)


def add_png_renditions(image: AvatarImage) -> AvatarImage:
    """PNG renditions of a photo first stored as WEBP only, made from the kept source photo and cut
    exactly as its WEBP renditions (framing rule or manual crop)."""
    return crops.add_formats(image, ("png",))


def _next_refresh(profile: Profile):
    """Before the source photo URL expires, and at least every AVTRZ_STALE_AFTER_DAYS."""
    stale = timezone.now() + timedelta(days=settings.AVTRZ_STALE_AFTER_DAYS)
    if profile.photo_expires_at:
        return min(stale, max(timezone.now() + BACKOFF_START, profile.photo_expires_at - timedelta(days=1)))
    return stale


def _retry_later(profile: Profile, reason: str) -> Profile:
    """Blocked or failed: keep what we had and try again later, backing off exponentially."""
    profile.failures = min(profile.failures + 1, 30)
    delay = min(BACKOFF_START * 2 ** (profile.failures - 1), BACKOFF_MAX)
    status = profile.status if profile.current_image_id else Profile.Status.BLOCKED
    log.info("profile %s %s; next try in %s", profile.handle, reason, delay)
    return _finish(profile, status, next_check=timezone.now() + delay, failures=profile.failures)


def _retry_soon(profile: Profile) -> None:
    """Keep the profile as it is (enriching, or the photo it had) while the task tries again within seconds."""
    _finish(profile, profile.status, next_check=timezone.now() + PHOTO_RETRY_FALLBACK, failures=profile.failures)


def _finish(profile: Profile, status: str, *, next_check, failures: int = 0) -> Profile:
    if OptOut.objects.filter(handle=profile.handle).exists():
        return profile  # removed while this check ran: neither the row nor the card comes back
    profile.status = status
    profile.failures = failures
    profile.next_check_at = next_check
    profile.checked_at = timezone.now()
    profile.save()
    remember(card_for(profile, profile.current_image))
    return profile
