"""Deterministic initials art: the image served while a profile has no photo (yet).

Same label in, byte-identical SVG out, so the fallback can carry a stable ETag and a browser
never sees it flicker between colours. The colour comes from SHA-256 of the label (never
Python's salted ``hash()``) into a fixed palette whose every colour has at least 4.5:1 contrast
with white text (WCAG AA). The SVG is self-contained: no external references, no script, no
random ids, and the label is XML-escaped wherever it appears.
"""

from __future__ import annotations

import hashlib
import unicodedata
from xml.sax.saxutils import escape


__all__ = ["PALETTE", "initials", "monogram_colour", "monogram_svg"]

# Material 800-900 shades, each >= 4.5:1 against white (the tests check the ratio).
PALETTE = (
    "#C62828",  # red
    "#AD1457",  # pink
    "#6A1B9A",  # purple
    "#4527A0",  # deep purple
    "#283593",  # indigo
    "#1565C0",  # blue
    "#0277BD",  # light blue
    "#00695C",  # teal
    "#2E7D32",  # green
    "#33691E",  # olive
    "#BF360C",  # deep orange
    "#4E342E",  # brown
    "#37474F",  # blue grey
)
_TEXT_COLOUR = "#FFFFFF"
_FONT = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_MAX_LABEL = 128  # bounds the work per request; no name or handle is longer
_MAX_SIZE = 4096
_APOSTROPHES = "'\u2019\u02bc"  # O'Brien is one word, not "O" and "Brien"


def monogram_svg(label: str, size: int) -> str:
    """An SVG square of ``size`` px with the initials of ``label`` on a colour derived from it.

    ``label`` is a display name ("Alex Rivera") or a handle ("alex-rivera-1a2b3c"); both give
    "AR". Raises ValueError for a size outside 1..4096.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= _MAX_SIZE:
        raise ValueError(f"size must be an integer from 1 to {_MAX_SIZE}, got {size!r}")
    clean = _clean(label)
    text = initials(clean)
    colour = monogram_colour(clean)
    font_size = _number(size * (0.42 if len(text) > 1 else 0.5))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" role="img">'
        f"<title>{escape(clean or 'Avatar')}</title>"
        f'<rect width="{size}" height="{size}" fill="{colour}"/>'
        f'<text x="50%" y="50%" dy=".35em" fill="{_TEXT_COLOUR}" font-family="{_FONT}" '
        f'font-size="{font_size}" font-weight="600" text-anchor="middle">{escape(text)}</text>'
        "</svg>"
    )


def monogram_colour(label: str) -> str:
    """The background colour of ``label``'s monogram, for renderers of other formats (the MCP tools' PNG)."""
    digest = hashlib.sha256(_clean(label).casefold().encode("utf-8")).digest()
    return PALETTE[int.from_bytes(digest[:8], "big") % len(PALETTE)]


def initials(label: str) -> str:
    """Up to two upper-case initials: the first letters of the first and last words, or "?".

    Words are runs of letters, marks and digits (so any script works, accents included);
    words containing a digit are skipped, which drops the hash suffix of LinkedIn handles
    ("alex-rivera-1a2b3c" -> "AR"). A word's initial keeps its combining marks (Devanagari,
    Thai, ...).
    """
    words = [w for w in _words(_clean(label)) if w[0].isalpha() and not any(c.isdigit() for c in w)]
    if not words:
        return "?"
    chosen = words[:1] + words[-1:] if len(words) > 1 else words
    return "".join(_first_grapheme(w).upper() for w in chosen)


def _clean(label: str) -> str:
    """NFC, without characters XML 1.0 cannot carry, whitespace collapsed, length bounded."""
    text = unicodedata.normalize("NFC", label[: _MAX_LABEL * 4])
    text = "".join(c for c in text if _xml_char(c))
    return " ".join(text.split())[:_MAX_LABEL]


def _xml_char(char: str) -> bool:
    code = ord(char)
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


def _words(text: str) -> list[str]:
    words: list[str] = []
    current: list[str] = []
    for char in text:
        if char in _APOSTROPHES:
            continue
        if unicodedata.category(char)[0] in "LMN":
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def _first_grapheme(word: str) -> str:
    end = 1
    while end < len(word) and unicodedata.category(word[end]).startswith("M"):
        end += 1
    return word[:end]


def _number(value: float) -> str:
    """Shortest stable decimal text (two places at most), so output is byte-identical."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
