"""An ASGI layer in front of Django that answers `/v1/avatar` cache hits in one pass.

Django's request cycle costs about a millisecond; a warm hit needs no round trip at all (level-1
cache, leased counters). This layer runs on the event loop, so it never waits on Redis or the
database: it runs the same `api.answer` as the Django view with `cached_only=True`, which reads this
process's memory only. Anything memory cannot answer (a cold key, an unknown profile, a PNG not made
yet, a counter lease that needs refilling from Redis) raises `NeedsDatabase` before anything is
counted, and the request goes on to Django unchanged, where a thread may wait.

The rules' verdict for a request depends only on the request and on cached state, so a photo redirect
is remembered per identical request and replayed while no cached value has changed anywhere
(`hotcache.generation()`): a replay still passes the rate limit and the quota (from memory, under the
same rule) and is tallied, it only skips re-deriving the same answer.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from dataclasses import dataclass
from urllib.parse import unquote_plus

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent

from avtrz.avatars import api
from avtrz.avatars.services import answer_tally
from avtrz.lib import hotcache
from workspaces import usage


PATH = "/v1/avatar"
# Answers from here say so (X-Cache: HIT), which helps anyone debugging their cache layers.
EXTRA_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-cache", b"HIT")]


# The request headers the rules read (ASGI gives them lower-cased).
HEADERS = frozenset({b"x-api-key", b"accept", b"origin", b"referer", b"if-none-match"})
REPLAY_FOR_S = 60.0
REPLAY_MAX = 50_000
# What a replay (a photo redirect over the API) is tallied as for the daily chart, with its admission.
REPLAY_TALLY = answer_tally(channel="api", with_photo=True)


@dataclass(slots=True)
class _Replay:
    generation: int
    until: float
    meter: usage.Meter
    key_id: int | None
    headers: tuple[tuple[bytes, bytes], ...]  # as sent, EXTRA_HEADERS included, all but `RateLimit` (per admission)


_replays: dict[tuple, _Replay] = {}


def _query(raw: bytes) -> dict[str, str]:
    """The query string as a dict, last value winning like Django's QueryDict; a fraction of
    parse_qsl's cost for the plain ASCII strings an <img> sends. Raw non-ASCII goes to Django, and so
    does a query past DATA_UPLOAD_MAX_NUMBER_FIELDS (counted as parse_qsl counts), which Django refuses."""
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    if limit is not None and raw.count(b"&") >= limit:
        raise TooManyFieldsSent(f"More than {limit} query parameters.")
    params: dict[str, str] = {}
    for part in raw.decode("ascii").split("&"):
        if part:
            name, _, value = part.partition("=")
            if "%" in part or "+" in part:
                name, value = unquote_plus(name), unquote_plus(value)
            params[name] = value
    return params


class AvatarFastPath:
    def __init__(self, app) -> None:
        self.app = app
        # Each request handed to Django takes a thread and a database connection: a burst of cold ones
        # (a new site's page of 50 avatars, times a few sites) queues here, on the event loop, rather
        # than opening hundreds of connections at once and being refused by the database.
        self._to_django = asyncio.Semaphore(settings.AVTRZ_AVATAR_DJANGO_CONCURRENCY)

    async def _django(self, scope, receive, send) -> None:
        async with self._to_django:
            await self.app(scope, receive, send)

    def answer_now(self, scope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """A replayed photo redirect (status, headers, body), admitted and tallied from memory with no
        await, or None, and the ASGI call decides (no replay, leases to refill, or refused). The
        request-id layer asks this first (`RequestIdApp(answer_now=...)`): an answer from here skips
        the layers below it and the send wrapper, which cost a hit as much as the answer itself."""
        if not _is_avatar_request(scope):
            return None
        replay = _live_replay(_read(scope)[1])
        if replay is None:
            return None
        admission = usage.admit(replay.meter, key_id=replay.key_id, local_only=True, tally=REPLAY_TALLY)
        if admission is None or not admission.allowed:
            return None
        return 302, _replay_headers(replay, admission), b""

    async def __call__(self, scope, receive, send) -> None:
        if not _is_avatar_request(scope):
            return await self.app(scope, receive, send)
        headers, identity = _read(scope)
        replay = _live_replay(identity)
        if replay is not None:
            admission = usage.admit(replay.meter, key_id=replay.key_id, local_only=True, tally=REPLAY_TALLY)
            if admission is None:
                admission = await _refill_and_admit(replay.meter, replay.key_id)
            if admission.allowed:
                sent = _replay_headers(replay, admission)
                await send({"type": "http.response.start", "status": 302, "headers": sent})
                return await send({"type": "http.response.body", "body": b""})
            # Refused (rate or quota): the rules below say so in the documented shape.
        try:
            generation = hotcache.generation()
            params = _query(scope["query_string"])
            text_headers = {name.decode(): value.decode("latin-1") for name, value in headers.items()}
            result = api.answer(api.parse(params, text_headers, method=scope["method"]), cached_only=True)
        except (api.NeedsDatabase, UnicodeDecodeError, TooManyFieldsSent):
            return await self._django(scope, receive, send)
        encoded = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in result.headers]
        if not any(name == b"content-length" for name, _ in encoded):
            encoded.append((b"content-length", str(len(result.body)).encode()))
        if result.meter is not None and generation is not None:
            if len(_replays) >= REPLAY_MAX:
                _replays.clear()
            until = min(time.time() + REPLAY_FOR_S, result.meter.period_ends_at, result.key_expires_at or math.inf)
            static = tuple(header for header in [*encoded, *EXTRA_HEADERS] if header[0] != b"ratelimit")
            _replays[identity] = _Replay(generation, until, result.meter, result.key_id, static)
        await _send(send, result.status, encoded, result.body)


def _is_avatar_request(scope) -> bool:
    return scope["type"] == "http" and scope["path"] == PATH and scope["method"] in ("GET", "HEAD")


def _read(scope) -> tuple[dict[bytes, bytes], tuple]:
    """The request headers the rules read, and what identifies a replayable request."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in HEADERS:  # a header sent twice reads as Django reads it: the values joined by ","
            headers[name] = headers[name] + b"," + value if name in headers else value
    # Accept is left out: it only shapes error answers, and only redirects are replayed.
    identity = (
        scope["query_string"],
        scope["method"],
        headers.get(b"x-api-key"),
        headers.get(b"origin"),
        headers.get(b"referer"),
        headers.get(b"if-none-match"),
    )
    return headers, identity


def _live_replay(identity: tuple) -> _Replay | None:
    replay = _replays.get(identity)
    if replay is not None and replay.generation == hotcache.generation() and time.time() < replay.until:
        return replay
    return None


def _replay_headers(replay: _Replay, admission: usage.Admission) -> list[tuple[bytes, bytes]]:
    """The headers of an admitted (and so tallied) replay: a new list, which the request-id layer extends."""
    return [*replay.headers, *_rate_limit(admission.remaining, admission.retry_after)]


_refills: dict[tuple[int, int], asyncio.Future] = {}  # (workspace, period) -> the lease refill in flight


async def _refill_and_admit(meter: usage.Meter, key_id: int | None) -> usage.Admission:
    """A replay's `usage.admit` once the leases memory holds are spent: a worker thread asks Redis to refill
    them (a whole Django request for it would cost a hundred replays) and the event loop goes on. One refill
    per meter at a time: the requests that find the leases empty meanwhile wait for it, then take from them."""
    key = (meter.workspace_id, meter.period_id)
    while (admission := usage.admit(meter, key_id=key_id, local_only=True, tally=REPLAY_TALLY)) is None:
        refill = _refills.get(key)
        if refill is None or refill.done():
            admit = asyncio.to_thread(usage.admit, meter, key_id=key_id, tally=REPLAY_TALLY)
            refill = _refills[key] = asyncio.ensure_future(admit)
            refill.add_done_callback(lambda done: _refills.pop(key) if _refills.get(key) is done else None)
            return await asyncio.shield(refill)  # decides this request; not cancelled with it (others wait)
        await asyncio.shield(refill)
    return admission


@functools.lru_cache(maxsize=1024)
def _rate_limit(remaining: int | None, retry_after: int) -> tuple[tuple[bytes, bytes], ...]:
    """The `RateLimit` header of an admitted replay (none when the counters do not know what is left):
    a few values, over and over."""
    left = api.rate_limit(usage.Admission(True, retry_after=retry_after, remaining=remaining))
    return () if left is None else ((b"ratelimit", left.encode()),)


async def _send(send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers + EXTRA_HEADERS})
    await send({"type": "http.response.body", "body": body})
