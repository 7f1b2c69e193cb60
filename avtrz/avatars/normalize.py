"""Turn whatever a user pastes into one canonical LinkedIn profile handle.

The handle is the cache and directory key for a person, so two spellings of the same profile
(``https://uk.linkedin.com/in/Alex-Rivera/?trk=x`` and ``alex-rivera``) must map to the same
string, and anything that is not a person's profile must be refused *before* we fetch anything:
company pages, posts, lookalike hosts and odd schemes are caller errors (HTTP 400), not misses.

Nothing here touches the network: the handle is validated, and :func:`profile_url` rebuilds the
one URL we ever fetch, so a user-supplied URL is never requested as given.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Literal
from urllib.parse import quote, unquote, urlsplit


__all__ = ["MAX_INPUT_LENGTH", "InvalidProfileInput", "normalize_profile_input", "profile_url"]

MAX_INPUT_LENGTH = 2048
"""Longer input is refused outright: no real profile URL comes close, and it bounds our work."""

Field = Literal["linkedin_url", "username"]

_MIN_HANDLE, _MAX_HANDLE = 3, 100

# Hosts LinkedIn serves profiles on: the bare domain, www, the mobile site, and two-letter
# country subdomains (uk., de., ...). Anything else, including every lookalike, is refused.
_LINKEDIN_HOST = re.compile(r"(?:(?:www|m|[a-z]{2})\.)?linkedin\.com")

# "name:" at the start of the input. It is a scheme unless digits follow (then it is host:port).
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(?!\d)")

# Member URNs (linkedin.com/in/ACoAAB...) are case-sensitive ids, unlike vanity handles.
_MEMBER_URN = re.compile(r"ACoAA[A-Za-z0-9_\-]{20,}")

# First path segment -> what the page is, for a refusal message that tells the user what went wrong.
_NOT_A_PROFILE = {
    "company": "a company page",
    "school": "a school page",
    "showcase": "a showcase page",
    "posts": "a post",
    "feed": "a feed post",
    "pulse": "an article",
    "jobs": "a job listing",
    "groups": "a group",
    "events": "an event",
    "newsletters": "a newsletter",
    "learning": "a LinkedIn Learning page",
    "sales": "a Sales Navigator page",
    "talent": "a LinkedIn Recruiter page",
    "search": "a search page",
    "pub": "an old-style /pub/ profile URL; open the profile and copy its /in/ URL",
}


class InvalidProfileInput(ValueError):
    """The input does not name a LinkedIn profile. ``str(exc)`` is a message fit for the user.

    ``field`` names the offending parameter ("linkedin_url" or "username"), or is None when the
    problem is the combination (neither or both given).
    """

    def __init__(self, message: str, field: Field | None = None) -> None:
        super().__init__(message)
        self.field = field


@functools.lru_cache(maxsize=8192)  # the same few inputs arrive again and again on the hot path
def normalize_profile_input(linkedin_url: str | None, username: str | None) -> str:
    """Return the canonical handle for exactly one of ``linkedin_url`` or ``username``.

    The canonical handle is percent-decoded, NFC-normalised and lower-cased (LinkedIn vanity
    handles are case-insensitive), without slashes. Member URNs (``ACoAA...``) keep their case,
    because they are case-sensitive ids.

    Handle rule (LinkedIn allows 3-100 characters, "no spaces, symbols or special characters";
    its generated handles for non-Latin names are in the person's script): 3 to 100 characters,
    each a Unicode letter, combining mark (needed by Devanagari, Thai, ...), decimal digit,
    hyphen or underscore.

    URL rule: http(s) or no scheme; host ``linkedin.com``, ``www.``, ``m.`` or a two-letter
    country subdomain; default port only; no ``user@`` part; path ``/in/<handle>/...`` (anything
    after the handle, the query and the fragment are ignored; ``/mwlite/in/`` is LinkedIn Lite).

    A ``username`` that is really a URL is refused with a hint to pass it as ``linkedin_url``,
    rather than guessed at: the two parameters have different contracts in the public API.

    Raises :class:`InvalidProfileInput`.
    """
    url = (linkedin_url or "").strip()
    name = (username or "").strip()
    if url and name:
        raise InvalidProfileInput("Give either linkedin_url or username, not both.")
    if not url and not name:
        raise InvalidProfileInput("Give a linkedin_url or a username.")
    if url:
        return _handle_from_url(url)
    return _handle_from_username(name)


def profile_url(handle: str) -> str:
    """The public profile URL for a canonical handle: the only profile URL Avtrz ever fetches."""
    if _canonical_handle(handle, "username") != handle:
        raise ValueError(f"not a canonical handle: {handle!r}")
    return f"https://www.linkedin.com/in/{quote(handle, safe='')}/"


def _handle_from_url(text: str) -> str:
    field: Field = "linkedin_url"
    if len(text) > MAX_INPUT_LENGTH:
        raise InvalidProfileInput(f"linkedin_url is too long (over {MAX_INPUT_LENGTH} characters).", field)
    scheme = _SCHEME.match(text)
    if scheme:
        if scheme.group(1).lower() not in ("http", "https"):
            raise InvalidProfileInput("linkedin_url must be an http(s) link to a LinkedIn profile.", field)
    else:
        text = "https:" + text if text.startswith("//") else "https://" + text

    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unbalanced "[" in the host
        raise InvalidProfileInput("linkedin_url is not a valid URL.", field) from None
    if "@" in parts.netloc:
        raise InvalidProfileInput("linkedin_url must not contain a user name or '@' before the host.", field)
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidProfileInput("linkedin_url has no host; expected linkedin.com/in/<handle>.", field)
    if host == "lnkd.in":
        raise InvalidProfileInput(
            "linkedin_url is a lnkd.in short link; open it and paste the linkedin.com/in/ URL.", field
        )
    if not _LINKEDIN_HOST.fullmatch(host):
        raise InvalidProfileInput(f"linkedin_url must be on linkedin.com, not {host[:100]!r}.", field)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port not in (None, 80, 443):
        raise InvalidProfileInput("linkedin_url must not name a port.", field)

    # Split before decoding, so an encoded "/" (%2F) cannot forge an extra path segment.
    segments = [s for s in parts.path.split("/") if s]
    if segments and segments[0].lower() == "mwlite":
        segments = segments[1:]
    if not segments:
        raise InvalidProfileInput("linkedin_url is not a profile URL; expected linkedin.com/in/<handle>.", field)
    kind = segments[0].lower()
    if kind != "in":
        what = _NOT_A_PROFILE.get(kind, "not a profile URL")
        raise InvalidProfileInput(
            f"linkedin_url is {what}, not a person's profile (expected linkedin.com/in/<handle>).", field
        )
    if len(segments) < 2:
        raise InvalidProfileInput("linkedin_url has no handle after /in/.", field)
    return _canonical_handle(segments[1], field)


def _handle_from_username(text: str) -> str:
    field: Field = "username"
    if len(text) > MAX_INPUT_LENGTH:
        raise InvalidProfileInput(f"username is too long (over {MAX_INPUT_LENGTH} characters).", field)
    text = text.rstrip("/")
    if "/" in text or "linkedin.com" in text.lower() or _SCHEME.match(text):
        raise InvalidProfileInput(
            "username looks like a URL; pass it as linkedin_url, or give only the part after /in/.", field
        )
    return _canonical_handle(text, field)


def _canonical_handle(raw: str, field: Field) -> str:
    """Decode, normalise and validate one handle segment (see the rule in the public docstring)."""
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise InvalidProfileInput(f"{field} has percent-encoding that is not valid UTF-8.", field) from None
    handle = unicodedata.normalize("NFC", decoded)
    if not _MEMBER_URN.fullmatch(handle):
        # Lower-casing can leave a string that NFC composes further; normalise again.
        handle = unicodedata.normalize("NFC", handle.lower())
    if not _MIN_HANDLE <= len(handle) <= _MAX_HANDLE:
        raise InvalidProfileInput(f"{field} must name a handle of {_MIN_HANDLE} to {_MAX_HANDLE} characters.", field)
    bad = next((c for c in handle if not _handle_char(c)), None)
    if bad is not None:
        raise InvalidProfileInput(
            f"{field} contains {bad!r}; a LinkedIn handle has only letters, digits, '-' and '_'.", field
        )
    return handle


def _handle_char(char: str) -> bool:
    return char in "-_" or unicodedata.category(char)[0] in "LM" or unicodedata.category(char) == "Nd"
