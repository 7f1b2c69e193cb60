"""The pictures the MCP tools put inline in a result.

A resolved profile's photo is the stored WEBP rendition, sent as is: Claude, ChatGPT and the MCP
Inspector all show image/webp, and it is a fifth of the PNG's bytes. The initials art shown while a
profile has no photo is drawn as a PNG here, because the product's monogram is an SVG and chat
clients refuse SVG image content; it uses the same initials and colour as that SVG.
"""

from __future__ import annotations

import io
import threading
import unicodedata
from collections import OrderedDict
from functools import lru_cache

from django.core.files.storage import default_storage
from PIL import Image, ImageDraw, ImageFont

from avtrz.avatars.monogram import initials, monogram_colour


# Renditions are content-addressed, so a copy in memory never goes stale: a warm tool call reads no file.
RENDITIONS_KEPT = 256
_renditions: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_renditions_lock = threading.Lock()


def cached_rendition(content_hash: str, fmt: str) -> bytes | None:
    """The rendition's bytes if this process holds them (no I/O: for the event loop)."""
    with _renditions_lock:
        found = _renditions.get((content_hash, fmt))
        if found is not None:
            _renditions.move_to_end((content_hash, fmt))
        return found


def rendition(content_hash: str, fmt: str) -> bytes:
    found = cached_rendition(content_hash, fmt)
    if found is not None:
        return found
    with default_storage.open(f"avatars/{content_hash}.{fmt}") as blob:
        data = blob.read()
    with _renditions_lock:
        _renditions[(content_hash, fmt)] = data
        while len(_renditions) > RENDITIONS_KEPT:
            _renditions.popitem(last=False)
    return data


@lru_cache(maxsize=256)
def monogram_png(label: str, size: int) -> bytes:
    """A ``size`` px PNG square with ``label``'s initials, white on its monogram colour."""
    image = Image.new("RGB", (size, size), monogram_colour(label))
    text = initials(label)
    # Pillow's built-in font only has Latin glyphs; other scripts get the plain colour square
    # rather than boxes standing in for missing glyphs.
    if all(unicodedata.name(char, "").startswith("LATIN") or char == "?" for char in text):
        font = ImageFont.load_default(size=round(size * (0.42 if len(text) > 1 else 0.5)))
        ImageDraw.Draw(image).text((size / 2, size / 2), text, fill="#FFFFFF", font=font, anchor="mm")
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()
