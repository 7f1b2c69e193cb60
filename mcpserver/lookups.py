"""What the MCP tools do, in plain synchronous Django: translate arguments to the avatar engine's
calls (the same ones `GET /v1/avatar` makes, with the same meter) and its answers to tool results.

Every function returns the structured content and the content blocks of a result, or raises
`ToolFailure` with a message meant for the model and the user.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from mcp_types import ContentBlock, ImageContent, TextContent

from avtrz.avatars import cards
from avtrz.avatars.api import DEFAULT_SIZE, SIZES
from avtrz.avatars.cards import OPTED_OUT, Card
from avtrz.avatars.models import Profile
from avtrz.avatars.normalize import InvalidProfileInput, normalize_profile_input, profile_url
from avtrz.avatars.services import (
    NeedsDatabase,
    Refusal,
    count_lookup,
    lookup,
    meter_lookup,
    public_status,
    record_answer,
)
from avtrz.lib import hotcache
from mcpserver import images
from workspaces import keys
from workspaces.models import Workspace
from workspaces.services import connector_publishable_key
from workspaces.usage import Meter, meter_for


logger = logging.getLogger(__name__)

# The connector key's clear value, so a call finds its cached key context without a query.
# It is a publishable key: it is meant to appear in URLs.
KEY_CACHE_TTL = 3600
# get_profile's picture URL: the size the avatar tool defaults to, sharp in chat and documents alike.
PICTURE_SIZE = 256
# Both tools' whole answer for a handle on the opt-out list (`avatars.removal`): no image, no data.
OPTED_OUT_TEXT = "This person has asked not to be shown."


class ToolFailure(Exception):
    """A tool call that cannot be answered; ``str(exc)`` is shown to the model."""


@dataclass(frozen=True)
class Connector:
    """The workspace's AI-connector key (None if it cannot be had) and the meter calls count on."""

    key: str | None
    key_id: int | None
    meter: Meter


@dataclass(frozen=True)
class Result:
    structured: dict[str, Any]
    content: list[ContentBlock]


def connector(workspace: Workspace) -> Connector:
    cache_key = keys.connector_cache_key(workspace.pk)
    raw = hotcache.get(cache_key)
    context = keys.load_context(raw) if raw else None
    if context is None or context.expires_at is not None:
        # First use, or the key was revoked in the dashboard, or rotated: a rotated key still answers
        # the URLs already handed out, but new answers carry the key that replaced it.
        try:
            raw = connector_publishable_key(workspace)
        except Exception:
            # The lookup itself can still be answered, just without a durable URL.
            logger.exception("No AI connector key for workspace %s", workspace.pk)
            return Connector(key=None, key_id=None, meter=meter_for(workspace))
        hotcache.set(cache_key, raw, KEY_CACHE_TTL)
        context = keys.load_context(raw)
        if context is None:  # revoked in the dashboard a moment ago: answered without a durable URL
            return Connector(key=None, key_id=None, meter=meter_for(workspace))
    return Connector(key=raw, key_id=context.key_id, meter=context.meter)


def _cached_connector(workspace: Workspace, *, local_only: bool) -> Connector | None:
    """`connector` from the caches alone (`local_only`: this process's memory), or None when the key
    or its current context is not there."""
    raw = hotcache.get(keys.connector_cache_key(workspace.pk), local_only=local_only)
    context = keys.cached_context(raw, local_only=local_only) if raw else None
    if not isinstance(context, keys.KeyContext) or context.expires_at is not None:
        return None
    return Connector(key=raw, key_id=context.key_id, meter=context.meter)


def key_answerable_from_cache(workspace: Workspace) -> bool:
    """Whether the connector key and its current context are cached: `connector` needs no query."""
    return _cached_connector(workspace, local_only=False) is not None


def avatar_answerable_from_cache(
    workspace: Workspace, linkedin_url: str | None, username: str | None, size: int
) -> bool:
    """Whether `profile_avatar` can answer from caches alone, without waiting for enrichment (see
    `mcpserver.lanes`). A wrong argument can: its answer needs nothing."""
    try:
        handle = normalize_profile_input(linkedin_url or None, username or None)
    except InvalidProfileInput:
        return True
    card = cards.cached_card(handle)
    return card is not None and card.status != Profile.Status.ENRICHING and key_answerable_from_cache(workspace)


def cached_profile_avatar(workspace: Workspace, linkedin_url: str | None, username: str | None, size: int) -> Result:
    """`profile_avatar` from this process's memory alone, for the event loop: the connector key's
    context, the card, the photo's bytes and a meter lease all in memory, else `NeedsDatabase`,
    raised before anything is counted."""
    handle = _handle(linkedin_url, username)
    found = _cached_connector(workspace, local_only=True)
    card = cards.cached_card(handle, local_only=True)
    if found is None or card is None or card.status == Profile.Status.ENRICHING:
        raise NeedsDatabase
    digest = card.rendition(size, "webp")
    if card.is_resolved and (digest is None or images.cached_rendition(digest, "webp") is None):
        raise NeedsDatabase
    refusal = count_lookup(found.meter, handle, key_id=found.key_id, local_only=True).refusal
    if refusal:
        raise ToolFailure(_refusal_text(refusal))
    record_answer(found.meter, channel="mcp", with_photo=card.is_resolved)
    return _avatar_result(handle, card, found.key, size)


def avatar_url(key: str, handle: str, size: int) -> str:
    """The durable image URL: `/v1/avatar` with the connector key, which redirects to the current photo."""
    query = urlencode({"key": key, "linkedin_url": profile_url(handle), "size": size})
    return f"{settings.PUBLIC_BASE_URL}/v1/avatar?{query}"


def profile_avatar(workspace: Workspace, linkedin_url: str | None, username: str | None, size: int) -> Result:
    handle, card, key = _look_up(workspace, linkedin_url, username)
    return _avatar_result(handle, card, key, size)


def _avatar_result(handle: str, card: Card, key: str | None, size: int) -> Result:
    status = public_status(card)
    structured: dict[str, Any] = {
        "status": status,
        "handle": handle,
        "profileUrl": profile_url(handle),
        "name": card.name,
        "size": size,
    }
    if status == OPTED_OUT:
        return Result(structured, [TextContent(type="text", text=OPTED_OUT_TEXT)])
    if key:
        structured["imageUrl"] = avatar_url(key, handle, size)
    # A resolved card has a WEBP rendition at every size.
    digest = card.rendition(size, "webp") if card.is_resolved else None
    if digest is not None:
        image = ImageContent(type="image", data=_b64(images.rendition(digest, "webp")), mime_type="image/webp")
    else:
        image = ImageContent(type="image", data=_b64(images.monogram_png(card.label, size)), mime_type="image/png")
    structured["mimeType"] = image.mime_type
    return Result(structured, [TextContent(type="text", text=_avatar_text(structured, card)), image])


def profile(workspace: Workspace, linkedin_url: str | None, username: str | None) -> Result:
    handle, card, key = _look_up(workspace, linkedin_url, username)
    status = public_status(card)
    found = Profile.objects.filter(handle=handle).first() if status not in ("not_found", OPTED_OUT) else None
    structured: dict[str, Any] = {
        "status": status,
        "handle": handle,
        "profileUrl": profile_url(handle),
        "name": found.name if found else "",
        "headline": found.headline if found else "",
        "summary": found.summary if found else "",
        "industry": found.industry if found else "",
        "location": found.location if found else "",
        "openToWork": found.open_to_work if found else None,
    }
    if status == OPTED_OUT:
        return Result(structured, [TextContent(type="text", text=OPTED_OUT_TEXT)])
    if key and status != "not_found":
        structured["pictureUrl"] = avatar_url(key, handle, PICTURE_SIZE)
    return Result(structured, [TextContent(type="text", text=_profile_markdown(structured))])


def publishable_key(workspace: Workspace) -> Result:
    key = connector(workspace).key
    if key is None:
        raise ToolFailure("The workspace's publishable key is not available right now; try again shortly.")
    base = f"{settings.PUBLIC_BASE_URL}/v1/avatar?key={key}"
    structured = {
        "workspace": workspace.name,
        "publishableKey": key,
        "urlTemplate": f"{base}&linkedin_url={{linkedin_url}}&size={{size}}",
        "usernameUrlTemplate": f"{base}&username={{username}}&size={{size}}",
        "sizes": list(SIZES),
        "defaultSize": DEFAULT_SIZE,
    }
    text = (
        f"Publishable key of {workspace.name}: {key}\n"
        f"Durable avatar URL: {structured['urlTemplate']}\n"
        f"or by username: {structured['usernameUrlTemplate']}\n"
        "URL-encode the LinkedIn profile URL when you substitute it. "
        f"Sizes: {', '.join(map(str, SIZES))} (default {DEFAULT_SIZE}). The URL redirects to the current photo, "
        "or shows initials until one is found; each load counts as one request of the workspace."
    )
    return Result(structured, [TextContent(type="text", text=text)])


def _look_up(workspace: Workspace, linkedin_url: str | None, username: str | None) -> tuple[str, Card, str | None]:
    """Validate, meter, then look up: a refused call does no work (no enrichment, no wait)."""
    handle = _handle(linkedin_url, username)
    found = connector(workspace)
    refusal = meter_lookup(found.meter, handle, key_id=found.key_id)
    if refusal:
        raise ToolFailure(_refusal_text(refusal))
    card = lookup(handle, wait_s=settings.AVTRZ_ENRICH_WAIT_S)
    record_answer(found.meter, channel="mcp", with_photo=card.is_resolved)
    return handle, card, found.key


def _handle(linkedin_url: str | None, username: str | None) -> str:
    try:
        return normalize_profile_input(linkedin_url or None, username or None)
    except InvalidProfileInput as exc:
        raise ToolFailure(str(exc)) from None


def _refusal_text(refusal: Refusal) -> str:
    if refusal.code == "quota_exceeded":
        # The meter's message starts "Quota exceeded for this workspace: …" and names the plan and reset date.
        message = refusal.message[0].lower() + refusal.message[1:]
        return f"Avtrz {message} The connection stays valid: no need to reconnect."
    return refusal.message


def _avatar_text(structured: dict[str, Any], card: Card) -> str:
    who = f"{structured['name']} ({structured['profileUrl']})" if structured["name"] else structured["profileUrl"]
    url = structured.get("imageUrl")
    if structured["status"] == "enriching":
        text = f"Avtrz is still fetching the photo of {who}; these are placeholder initials."
        return text + (f" The photo will appear at {url} once it is ready." if url else "")
    if structured["status"] == "not_found":
        text = f"No LinkedIn profile was found at {structured['profileUrl']}; these are placeholder initials."
    elif not card.is_resolved:
        text = f"{who} has no profile photo; these are placeholder initials."
    else:
        text = f"Profile photo of {who}, {structured['size']} px."
    return text + (f" Durable image URL (for documents, CRMs, <img>): {url}" if url else "")


def _profile_markdown(data: dict[str, Any]) -> str:
    if data["status"] == "not_found":
        return f"No LinkedIn profile was found at {data['profileUrl']}."

    def line(text: str) -> str:
        return " ".join(text.split())  # profile text must not break the Markdown structure

    lines = [f"### {line(data['name']) or data['handle']}"]
    if data["status"] == "enriching":
        lines.append("_Avtrz is still fetching this profile; ask again in a few seconds for the full details._")
    for label, field in (("Headline", "headline"), ("Industry", "industry"), ("Location", "location")):
        if data[field]:
            lines.append(f"- **{label}:** {line(data[field])}")
    if data["openToWork"] is not None:
        lines.append(f"- **Open to work:** {'yes' if data['openToWork'] else 'no'}")
    lines.append(f"- **LinkedIn:** {data['profileUrl']}")
    if data.get("pictureUrl"):
        lines.append(f"- **Picture:** {data['pictureUrl']}")
    if data["summary"]:
        lines += ["", data["summary"].strip()]
    return "\n".join(lines)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
