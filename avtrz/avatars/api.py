"""`GET /v1/avatar`: the HTTP rules, written once and used by both the ASGI fast path and the view.

`answer()` turns a parsed request into a status, headers and body, in this order: parameters, key,
the meter, then the lookup (so a refused request creates no profile and waits for nothing). Given
`cached_only=True` it answers from this process's memory alone (it runs on the event loop: no Redis,
no database) or raises `NeedsDatabase` before anything was counted, and the request is handed to
Django, which calls the same function in a thread with the cache and the database behind it.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings

from avtrz.avatars.cards import Card, cached_card, image_url, load_card
from avtrz.avatars.models import Profile
from avtrz.avatars.monogram import monogram_svg
from avtrz.avatars.normalize import InvalidProfileInput, normalize_profile_input
from avtrz.avatars.services import NeedsDatabase, count_lookup, lookup, public_status, record_answer
from workspaces import keys, usage


SIZES = (32, 64, 128, 256, 512)
DEFAULT_SIZE = 128
FORMATS = ("webp", "png")
REDIRECT_MAX_AGE = 86400
# The redirect an <img> gets over the rate limit: right, but not billed, so not worth keeping long.
RATE_LIMITED_CACHE = "private, max-age=60"
# On a monogram answer: why there is no photo, in the words the MCP tools use (services.public_status).
STATUS_HEADER = "Avtrz-Profile-Status"

__all__ = ["Answer", "AvatarQuery", "NeedsDatabase", "answer", "parse", "rate_limit", "rate_limit_headers"]


@dataclass(frozen=True)
class AvatarQuery:
    key: str
    key_in_query: bool
    linkedin_url: str | None
    username: str | None
    size_param: str | None
    format_param: str | None
    origin: str | None
    referer: str | None
    if_none_match: str | None
    wants_image: bool
    head: bool


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    billed: bool = False
    # For a redirect to a photo: whose meter it counted on, so an identical request can be replayed.
    meter: usage.Meter | None = None
    key_id: int | None = None
    key_expires_at: float | None = None  # a rotated key's end: no replay past it


def parse(params: Mapping[str, str], headers: Mapping[str, str], *, method: str) -> AvatarQuery:
    """Read the query string and the (lower-case) headers the rules need."""
    header_key = headers.get("x-api-key", "")
    accept = headers.get("accept", "")
    return AvatarQuery(
        key=header_key or params.get("key", ""),
        key_in_query=not header_key and bool(params.get("key")),
        linkedin_url=params.get("linkedin_url"),
        username=params.get("username"),
        size_param=params.get("size"),
        format_param=params.get("format"),
        origin=headers.get("origin"),
        referer=headers.get("referer"),
        if_none_match=headers.get("if-none-match"),
        # A browser <img> asks for images first; such a caller gets a picture, even for errors.
        wants_image=accept.startswith("image/") or ("image/" in accept and "application/json" not in accept),
        head=method == "HEAD",
    )


def answer(query: AvatarQuery, *, cached_only: bool = False, client_ip: str | None = None) -> Answer:
    """The answer to `query`. The Django view passes `client_ip`, which limits invalid keys per address:
    only keys the cache does not know reach the view, so that is where guessing keys costs us."""
    # Parameters first: a malformed request is the caller's bug whatever the key.
    try:
        handle = normalize_profile_input(query.linkedin_url, query.username)
    except InvalidProfileInput as exc:
        return _error(query, 400, "invalid_request", str(exc), label="?")
    size = _size(query.size_param)
    if size is None:
        return _error(query, 400, "invalid_request", f"size must be one of {', '.join(map(str, SIZES))}.", label=handle)
    fmt = (query.format_param or "webp").lower()
    if fmt not in FORMATS:
        return _error(query, 400, "invalid_request", "format must be webp or png.", label=handle, size=size)

    if not query.key:
        return _error(query, 401, "missing_key", "Pass a key: ?key=pk_live_… or the x-api-key header.", handle, size)
    if query.key_in_query and query.key.startswith("sk_"):
        # Query strings end up in logs and browser history; a secret key there is as good as leaked.
        return _error(
            query,
            401,
            "secret_key_in_query",
            "Secret keys must be sent in the x-api-key header, never in the URL. Rotate this key.",
            handle,
            size,
        )
    if client_ip is not None:
        retry_after = keys.guessing_retry_after(client_ip, query.key)
        if retry_after:
            message = f"Too many invalid API keys from this address. Retry in {retry_after} s."
            return _error(query, 429, "rate_limited", message, handle, size, [("Retry-After", str(retry_after))])
    context = _key_context(query.key, cached_only)
    if context is None:
        if client_ip is not None:
            keys.note_invalid_key(client_ip)
        return _error(query, 401, "invalid_key", "This API key is not valid or was revoked.", handle, size)
    if not context.allows(query.origin, query.referer):
        usage.record(context.meter.workspace_id, "refused_401")
        return _error(
            query,
            401,
            "domain_not_allowed",
            "This publishable key is not allowed on this site. Add the domain to the key's allowed domains.",
            handle,
            size,
        )

    # The photo we already know, read without creating anything: it answers If-None-Match, and an
    # <img> over the rate limit is sent to it.
    known = _known_card(handle, cached_only)
    known_digest = known.rendition(size, fmt) if known is not None and known.is_resolved else None
    etag = f'"{known_digest}"' if known_digest else None
    if etag and query.if_none_match and etag in _etags(query.if_none_match):
        return Answer(304, [("ETag", etag), ("Cache-Control", f"public, max-age={REDIRECT_MAX_AGE}")])
    if cached_only and (known is None or known.status == Profile.Status.ENRICHING or (known.is_resolved and not etag)):
        raise NeedsDatabase  # unknown here, being enriched (worth the wait), or a PNG not made yet

    # The meter before the lookup: a refused request creates no profile, queues nothing, waits for nothing.
    metered = count_lookup(context.meter, handle, key_id=context.key_id, local_only=cached_only)
    limits = rate_limit_headers(context.meter, metered.admission) if metered.admission else []
    if metered.refusal:
        refusal = metered.refusal
        if refusal.code == "rate_limited" and query.wants_image and known_digest:
            # Over the sustained rate an <img> still shows the photo it asked for: the same redirect,
            # not billed (the refusal is tallied), cached only briefly so the page asks again soon.
            headers = [
                ("Location", image_url(known_digest, fmt)),
                ("Cache-Control", RATE_LIMITED_CACHE),
                ("ETag", f'"{known_digest}"'),
            ]
            return Answer(302, headers + limits)
        status = 429 if refusal.code == "rate_limited" else 402
        extra = [("Retry-After", str(refusal.retry_after))] if refusal.retry_after else []
        return _error(
            query, status, refusal.code, refusal.message, known.label if known else handle, size, extra + limits
        )

    card = known if known is not None and known.status != Profile.Status.ENRICHING else None
    card = card or lookup(handle, wait_s=settings.AVTRZ_ENRICH_WAIT_S)
    digest = card.rendition(size, fmt) if card.is_resolved else None
    if card.is_resolved and digest is None:
        digest = _make_png(handle, size)
    record_answer(context.meter, channel="api", with_photo=digest is not None)
    if digest:
        return Answer(
            302,
            [
                ("Location", image_url(digest, fmt)),
                ("Cache-Control", f"public, max-age={REDIRECT_MAX_AGE}"),
                ("ETag", f'"{digest}"'),
                *limits,
            ],
            billed=True,
            meter=context.meter,
            key_id=context.key_id,
            key_expires_at=context.expires_at,
        )
    answer = _fallback(query, 200, card.label, size)
    answer.headers += [(STATUS_HEADER, public_status(card)), *limits]
    answer.billed = True
    return answer


def rate_limit_headers(meter: usage.Meter, admission: usage.Admission) -> list[tuple[str, str]]:
    """`RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers, structured fields) for
    the workspace's token bucket; `RateLimit` only when the counters know what is left."""
    policy = ("RateLimit-Policy", _policy(meter.rate_burst, meter.requests_per_second))
    left = rate_limit(admission)
    return [policy] if left is None else [policy, ("RateLimit", left)]


def rate_limit(admission: usage.Admission) -> str | None:
    """`r` tokens left in the bucket; `t` seconds until the next one when none is left, else 0."""
    if admission.remaining is None:
        return None
    wait = 0 if admission.allowed and admission.remaining else max(1, admission.retry_after)
    return f'"burst";r={admission.remaining};t={wait}'


@functools.lru_cache(maxsize=64)
def _policy(burst: int, per_second: int) -> str:
    """A bucket of `burst` tokens refilled at `per_second`: `burst` requests in the seconds a refill takes."""
    return f'"burst";q={burst};w={max(1, math.ceil(burst / per_second))}'


def _known_card(handle: str, cached_only: bool) -> Card | None:
    if cached_only:
        return cached_card(handle, local_only=True)
    return load_card(handle)


def _key_context(raw: str, cached_only: bool) -> keys.KeyContext | None:
    if not cached_only:
        return keys.load_context(raw)
    found = keys.cached_context(raw, local_only=True)
    if found is None:
        raise NeedsDatabase
    return None if isinstance(found, str) else found  # the one string cached is keys.UNKNOWN


def _make_png(handle: str, size: int) -> str | None:
    from avtrz.avatars.enrichment import add_png_renditions
    from avtrz.avatars.models import Profile

    profile = Profile.objects.select_related("current_image").get(handle=handle)
    if profile.current_image is None:  # the photo was removed since the card was read
        return None
    return add_png_renditions(profile.current_image).rendition(size, "png")


def _size(raw: str | None) -> int | None:
    if not raw:
        return DEFAULT_SIZE
    return int(raw) if raw.isdigit() and int(raw) in SIZES else None


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def _fallback(query: AvatarQuery, status: int, label: str, size: int) -> Answer:
    svg = monogram_svg(label, size).encode()
    headers = [("Content-Type", "image/svg+xml"), ("Cache-Control", "no-store"), ("Content-Length", str(len(svg)))]
    return Answer(status, headers, b"" if query.head else svg)


def _error(
    query: AvatarQuery,
    status: int,
    code: str,
    message: str,
    label: str,
    size: int = DEFAULT_SIZE,
    extra: list[tuple[str, str]] | None = None,
) -> Answer:
    """A JSON error, or the monogram with the same status when the caller wants an image."""
    if query.wants_image:
        answer = _fallback(query, status, label, size)
    else:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        answer = Answer(
            status,
            [("Content-Type", "application/json"), ("Cache-Control", "no-store"), ("Content-Length", str(len(body)))],
            b"" if query.head else body,
        )
    answer.headers.extend(extra or [])
    return answer
