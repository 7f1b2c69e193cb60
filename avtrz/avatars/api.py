"""`GET /v1/avatar`: the HTTP rules, written once and used by both the ASGI fast path and the view.

`answer()` turns a parsed request into a status, headers and body. Given `cached_only=True` it
either answers from the cache alone or raises `NeedsDatabase` before anything was counted, and the
request is handed to Django, which calls the same function with the database behind it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings

from avtrz.avatars.cards import image_url
from avtrz.avatars.monogram import monogram_svg
from avtrz.avatars.normalize import InvalidProfileInput, normalize_profile_input
from avtrz.avatars.services import NeedsDatabase, lookup, meter_lookup, record_answer
from workspaces import keys, usage


SIZES = (32, 64, 128, 256, 512)
DEFAULT_SIZE = 128
FORMATS = ("webp", "png")
REDIRECT_MAX_AGE = 86400

__all__ = ["Answer", "AvatarQuery", "NeedsDatabase", "answer", "parse"]


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

    card = lookup(handle, wait_s=0 if cached_only else settings.AVTRZ_ENRICH_WAIT_S, cached_only=cached_only)
    digest = card.rendition(size, fmt) if card.is_resolved else None
    if card.is_resolved and digest is None:
        if cached_only:
            raise NeedsDatabase  # PNG asked for and not made yet
        digest = _make_png(handle, size)
    etag = f'"{digest}"' if digest else None
    if etag and query.if_none_match and etag in _etags(query.if_none_match):
        return Answer(304, [("ETag", etag), ("Cache-Control", f"public, max-age={REDIRECT_MAX_AGE}")])

    refusal = meter_lookup(context.meter, handle, key_id=context.key_id, cached_only=cached_only)
    if refusal:
        status = 429 if refusal.code == "rate_limited" else 402
        extra = [("Retry-After", str(refusal.retry_after))] if refusal.retry_after else []
        return _error(query, status, refusal.code, refusal.message, card.label, size, extra)
    record_answer(context.meter, channel="api", with_photo=digest is not None)
    if digest:
        return Answer(
            302,
            [
                ("Location", image_url(digest, fmt)),
                ("Cache-Control", f"public, max-age={REDIRECT_MAX_AGE}"),
                ("ETag", etag),
            ],
            billed=True,
            meter=context.meter,
            key_id=context.key_id,
            key_expires_at=context.expires_at,
        )
    answer = _fallback(query, 200, card.label, size)
    answer.billed = True
    return answer


def _key_context(raw: str, cached_only: bool) -> keys.KeyContext | None:
    if not cached_only:
        return keys.load_context(raw)
    found = keys.cached_context(raw)
    if found is None:
        raise NeedsDatabase
    return None if found == keys.UNKNOWN else found


def _make_png(handle: str, size: int) -> str:
    from avtrz.avatars.enrichment import add_png_renditions
    from avtrz.avatars.models import Profile

    profile = Profile.objects.select_related("current_image").get(handle=handle)
    return add_png_renditions(profile.current_image).rendition(size, "png")


def _size(raw: str | None) -> int | None:
    if raw in (None, ""):
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
