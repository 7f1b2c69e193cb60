"""Reading LinkedIn's public profile pages and photo URLs, with no network and no framework.

A guest profile page carries the data twice: a schema.org JSON-LD ``Person`` (structured, the
better source) and Open Graph tags (``og:image``, ``og:title``, ``og:description``). We take each
field from JSON-LD and fall back to Open Graph. LinkedIn answers crawlers with HTTP 999, 429 or
a sign-in wall; :func:`classify_response` reports those as *blocked* (retry later), never as
"this person has no photo", because caching that would be wrong for weeks.

Photo URLs on ``media.licdn.com`` are signed and expire (``e=`` epoch seconds): the helpers below
pick the largest rendition, read the expiry, and derive a version key that only changes when the
member uploads a new photo, so a refresh re-encodes only when the photo really changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, unquote, urljoin, urlsplit, urlunsplit


__all__ = [
    "Outcome",
    "ParsedProfile",
    "classify_response",
    "parse_profile_page",
    "photo_expiry",
    "photo_version",
    "upgrade_photo_url",
]

_LARGEST = 800
_MEDIA_HOST = re.compile(r"media(?:-exp\d+)?\.licdn\.com")
_STATIC_HOST = re.compile(r"static(?:-exp\d+)?\.licdn\.com")
_RENDITION = re.compile(r"(profile-(?:display|framed)photo-(?:shrink|scale))_(\d+)_(\d+)")
_WALL_PATH = frozenset({"authwall", "login", "checkpoint", "uas", "signup"})
_WALL_TITLE = re.compile(
    r"\s*(?:sign ?up|sign ?in|log ?in|linkedin login|join linkedin|security verification)\b", re.IGNORECASE
)
_REFRESH_URL = re.compile(r"url\s*=\s*['\"]?([^'\"\s]+)", re.IGNORECASE)
_TITLE_SUFFIX = re.compile(r"\s*[|\-\u2013\u2014]\s*LinkedIn\s*$", re.IGNORECASE)
_TITLE_SEPARATOR = re.compile(r"\s+[-\u2013\u2014]\s+")
_DESCRIPTION_FIELD = re.compile(r"(Experience|Education|Location):\s*(.+)", re.DOTALL)
_BOILERPLATE = re.compile(r"\d[\d,.]*\+? (?:connections|followers)\b|View .{0,200}profile on LinkedIn", re.IGNORECASE)
_OPEN_TO_WORK = re.compile(r"#opentowork|\bopen_to_work\b", re.IGNORECASE)
_MAX_JSON_NODES = 5000


class Outcome(StrEnum):
    """What a profile fetch means for the pipeline (values are plain strings)."""

    OK = "ok"  # a profile page: parse it
    NOT_FOUND = "not_found"  # no such profile: serve the monogram
    BLOCKED = "blocked"  # anti-bot answer or sign-in wall: retry later, keep what we had
    ERROR = "error"  # LinkedIn or the network failed: retry later


@dataclass(frozen=True)
class ParsedProfile:
    """Fields read from a public profile page; None means "not on the page".

    ``open_to_work`` is True when the page carries an Open-to-Work marker and None otherwise:
    a guest page that lacks the marker does not prove the member is not looking.
    ``photo_url`` is absolute and never LinkedIn's generic placeholder; it is the URL as found
    (see :func:`upgrade_photo_url`).
    """

    name: str | None = None
    headline: str | None = None
    summary: str | None = None
    industry: str | None = None
    location: str | None = None
    company: str | None = None
    open_to_work: bool | None = None
    photo_url: str | None = None


def parse_profile_page(html: str, page_url: str) -> ParsedProfile:
    """Read a profile page: JSON-LD ``Person`` first, Open Graph for whatever it lacks."""
    page = _scan(html)
    person = _pick_person(page.json_ld, page_url)
    og = _open_graph_fields(page.meta)
    ld: dict[str, str | None] = {}
    if person is not None:
        ld = {
            "name": _text(person.get("name"))
            or _text(" ".join(filter(None, (_text(person.get(k)) for k in ("givenName", "familyName"))))),
            "headline": _text(person.get("headline")) or _joined(person.get("jobTitle")),
            "summary": _text(person.get("description")),
            "industry": _text(person.get("industry")),
            "location": _location(person.get("address")) or _location(person.get("homeLocation")),
            "company": _organization(person.get("worksFor")),
            "photo_url": next(_image_urls(person.get("image")), None),
        }

    def pick(key: str) -> str | None:
        return ld.get(key) or og.get(key)

    return ParsedProfile(
        name=pick("name"),
        headline=pick("headline"),
        summary=pick("summary"),
        industry=pick("industry"),
        location=pick("location"),
        company=pick("company"),
        open_to_work=True if _OPEN_TO_WORK.search(html) else None,
        photo_url=_photo(ld.get("photo_url"), page_url) or _photo(og.get("photo_url"), page_url),
    )


def classify_response(status: int, html: str, final_url: str) -> Outcome:
    """Tell a profile page from a missing profile, an anti-bot answer and a failure.

    Blocked: 999 (LinkedIn's crawler refusal), 429, 403, 401, a final URL on the sign-in wall
    (``/authwall``, ``/login``, ``/checkpoint``, ``/uas/...``, ``/signup``), a page titled like the
    sign-in wall, or a 2xx page with no profile data at all (JS challenges look like that).
    Not found: 404, 410, or LinkedIn's ``/in/unavailable`` page. Error: 5xx and anything else.
    """
    if status in (999, 429, 403, 401):
        return Outcome.BLOCKED
    if status in (404, 410):
        return Outcome.NOT_FOUND
    if not 200 <= status < 300:
        return Outcome.ERROR
    if _path_segments(final_url)[:2] == ["in", "unavailable"]:
        return Outcome.NOT_FOUND
    if _on_wall(final_url):
        return Outcome.BLOCKED
    page = _scan(html)
    if _pick_person(page.json_ld, final_url) is not None:
        return Outcome.OK
    title = page.meta.get("og:title") or page.title
    page_key = page.meta.get("pagekey", "").lower()
    refresh = _REFRESH_URL.search(page.meta.get("refresh", ""))
    if (
        _WALL_TITLE.match(title)
        or any(marker in page_key for marker in ("authwall", "login", "checkpoint"))
        or (refresh is not None and _on_wall(refresh[1]))
    ):
        return Outcome.BLOCKED
    if page.meta.get("og:title") or page.meta.get("og:image"):
        return Outcome.OK
    return Outcome.BLOCKED


def upgrade_photo_url(url: str) -> str:
    """Rewrite a LinkedIn profile photo URL to the largest rendition (800x800).

    ``profile-displayphoto-shrink_100_100`` (and ``scale_``, and the ``framedphoto`` variants)
    becomes ``..._800_800`` everywhere in the path; other URLs come back unchanged. LinkedIn's
    signature may cover the path, so callers should fall back to the original URL when the
    upgraded one is refused (403/404).
    """
    parts = urlsplit(url)
    # Recognised by LinkedIn's media path rather than its host: which hosts photos may come from is
    # the fetcher's allow-list (AVTRZ_PHOTO_HOSTS), and tests serve the same paths from 127.0.0.1.
    if not (_MEDIA_HOST.fullmatch(parts.hostname or "") or parts.path.startswith("/dms/image/")):
        return url

    def largest(match: re.Match[str]) -> str:
        if min(int(match[2]), int(match[3])) >= _LARGEST:
            return match[0]
        return f"{match[1]}_{_LARGEST}_{_LARGEST}"

    path = _RENDITION.sub(largest, parts.path)
    return url if path == parts.path else urlunsplit(parts._replace(path=path))


def photo_expiry(url: str) -> datetime | None:
    """When a signed licdn URL stops working: its ``e=`` query parameter, as an aware UTC datetime."""
    value = parse_qs(urlsplit(url).query).get("e", [""])[0]
    if not value.isdigit():
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def photo_version(url: str) -> str:
    """A key that changes when the member uploads a new photo, and only then.

    For ``/dms/image/[v2/]<id>/<rendition>/.../0/<upload-ms>`` it is ``licdn:<id>:<upload-ms>``
    (size, expiry and signature do not enter it). Any other URL gets ``sha256:<hex>`` of the URL
    without query and fragment, which at least ignores rotating signatures.
    """
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if segments[:2] == ["dms", "image"]:  # LinkedIn's media path, whichever allowed host serves it
        rest = segments[3:] if segments[2:3] == ["v2"] else segments[2:]
        if len(rest) >= 2 and "0" in rest[1:]:
            after_zero = rest[rest.index("0", 1) + 1 :]
            upload = after_zero[0] if after_zero and after_zero[0].isdigit() else None
            return f"licdn:{rest[0]}" + (f":{upload}" if upload else "")
    bare = urlunsplit((parts.scheme.lower(), (parts.hostname or "").lower(), parts.path, "", ""))
    return "sha256:" + hashlib.sha256(bare.encode()).hexdigest()


@dataclass
class _Page:
    meta: dict[str, str]
    json_ld: list[Any]
    title: str


class _Scanner(HTMLParser):
    """Collects ``<meta>`` (by property, name or http-equiv), JSON-LD blocks and the ``<title>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.scripts: list[str] = []
        self.title = ""
        self._buffer: list[str] | None = None
        self._buffer_tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        if tag == "meta":
            key = attributes.get("property") or attributes.get("name") or attributes.get("http-equiv") or ""
            if key.strip() and "content" in attributes:
                self.meta.setdefault(key.strip().lower(), attributes["content"].strip())
        elif (tag == "script" and attributes.get("type", "").strip().lower() == "application/ld+json") or (
            tag == "title" and not self.title and self._buffer is None
        ):
            self._buffer, self._buffer_tag = [], tag

    def handle_data(self, data: str) -> None:
        if self._buffer is not None:
            self._buffer.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._buffer is None or tag != self._buffer_tag:
            return
        text = "".join(self._buffer)
        if tag == "script":
            self.scripts.append(text)
        else:
            self.title = " ".join(text.split())
        self._buffer = None


def _scan(html: str) -> _Page:
    scanner = _Scanner()
    try:
        scanner.feed(html)
        scanner.close()
    except AssertionError:  # HTMLParser gives up on some malformed markup ("<![1"): keep what it read before
        pass
    blocks = []
    for script in scanner.scripts:
        try:
            blocks.append(json.loads(script))
        except ValueError:  # a broken block must not hide the others (nor the Open Graph tags)
            continue
    return _Page(meta=scanner.meta, json_ld=blocks, title=scanner.title)


def _pick_person(blocks: list[Any], page_url: str) -> dict[str, Any] | None:
    """The page's ``Person``: the one whose url/sameAs is this page, else the shallowest one.

    Nodes are walked breadth-first (through lists, ``@graph`` and nested objects such as
    ``mainEntity``), so a colleague nested deep inside ``worksFor`` never wins over the subject.
    """
    people = [node for node in _walk(blocks) if "person" in _types(node)]
    if not people:
        return None
    here = _path_segments(page_url)[:2]
    for person in people:
        links = [person.get("url"), *_as_list(person.get("sameAs"))]
        if here and any(isinstance(link, str) and _path_segments(link)[:2] == here for link in links):
            return person
    return people[0]


def _walk(root: Any) -> Iterator[dict[str, Any]]:
    queue: deque[Any] = deque([root])
    visited = 0
    while queue and visited < _MAX_JSON_NODES:
        node = queue.popleft()
        visited += 1
        if isinstance(node, dict):
            yield node
            queue.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            queue.extend(v for v in node if isinstance(v, dict | list))


def _types(node: dict[str, Any]) -> set[str]:
    """``@type`` values reduced to bare lower-case names ("schema:Person", ".../Person" -> "person")."""
    return {re.split(r"[/:#]", t)[-1].lower() for t in _as_list(node.get("@type")) if isinstance(t, str)}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str | None:
    """A trimmed, whitespace-collapsed string, or None for anything empty or not a string."""
    if isinstance(value, list):
        return next(filter(None, map(_text, value)), None)
    if isinstance(value, str):
        return " ".join(value.split()) or None
    return None


def _joined(value: Any) -> str | None:
    """jobTitle may be one title or a list of current titles: keep them all, in order."""
    titles = [t for t in map(_text, _as_list(value)) if t]
    return " · ".join(dict.fromkeys(titles)) or None


def _location(value: Any) -> str | None:
    """A PostalAddress (or Place, or plain string) as "Locality, Region, Country".

    Parts already contained in an earlier part are dropped (LinkedIn often puts "San Francisco,
    California, United States" in addressLocality), and a bare two-letter country code is
    dropped when there is anything more readable.
    """
    if isinstance(value, list):
        return next(filter(None, map(_location, value)), None)
    if not isinstance(value, dict):
        return _text(value)
    if "address" in value:
        return _location(value["address"]) or _text(value.get("name"))
    country = value.get("addressCountry")
    country = _text(country.get("name")) if isinstance(country, dict) else _text(country)
    parts: list[str] = []
    for part in (_text(value.get("addressLocality")), _text(value.get("addressRegion")), country):
        if part and not any(part.lower() in seen.lower() for seen in parts):
            parts.append(part)
    if len(parts) > 1 and len(parts[-1]) == 2 and parts[-1].isupper():
        parts.pop()
    return ", ".join(parts) or _text(value.get("name"))


def _organization(value: Any) -> str | None:
    for org in _as_list(value):
        name = _text(org.get("name")) if isinstance(org, dict) else _text(org)
        if name:
            return name
    return None


def _image_urls(value: Any) -> Iterator[str]:
    for image in _as_list(value):
        if isinstance(image, dict):
            image = image.get("contentUrl") or image.get("url")
        if isinstance(image, str) and image.strip():
            yield image.strip()


def _open_graph_fields(meta: dict[str, str]) -> dict[str, str | None]:
    """Profile fields recoverable from Open Graph tags, which are looser than JSON-LD.

    og:title is "Name - Current Company | LinkedIn"; og:description is "<about> · Experience:
    <company> · Education: ... · Location: <place> · 500+ connections on LinkedIn. View ...".
    There is no headline in Open Graph.
    """
    fields: dict[str, str | None] = {}
    title = _TITLE_SUFFIX.sub("", meta.get("og:title", ""))
    if title and not _WALL_TITLE.match(title):
        name, *rest = _TITLE_SEPARATOR.split(title)
        fields["name"] = _text(name)
        fields["company"] = _text(" - ".join(rest))
    first, last = _text(meta.get("profile:first_name")), _text(meta.get("profile:last_name"))
    if first or last:
        fields["name"] = " ".join(filter(None, (first, last)))
    for index, segment in enumerate(re.split(r"\s+·\s+", meta.get("og:description", ""))):
        match = _DESCRIPTION_FIELD.match(segment.strip())
        if match:
            key = {"Experience": "company", "Location": "location"}.get(match[1])
            if key:
                fields[key] = _text(_BOILERPLATE.split(match[2])[0])
        elif index == 0 and not _BOILERPLATE.match(segment):
            fields["summary"] = _text(_BOILERPLATE.split(segment)[0])
    fields["photo_url"] = meta.get("og:image") or meta.get("og:image:secure_url") or meta.get("twitter:image")
    return fields


def _photo(url: str | None, page_url: str) -> str | None:
    """An absolute http(s) photo URL, or None for LinkedIn's static ghost/placeholder images."""
    if not url:
        return None
    absolute = urljoin(page_url, url)
    parts = urlsplit(absolute)
    if parts.scheme not in ("http", "https") or not parts.hostname or _STATIC_HOST.fullmatch(parts.hostname):
        return None
    return absolute


def _on_wall(url: str) -> bool:
    segments = _path_segments(url)
    return bool(segments) and segments[0] in _WALL_PATH


def _path_segments(url: str) -> list[str]:
    try:
        path = urlsplit(url.strip()).path
    except ValueError:
        return []
    return [unquote(s).lower() for s in path.split("/") if s]
