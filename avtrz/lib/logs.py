"""Structured logging: JSON lines, a request id on every record, and no secrets in any of it.

`RequestIdApp` (ASGI, in front of everything the server answers: the avatar fast path, `/mcp`,
Django) takes the proxy's `X-Request-ID` (or makes one), keeps it in a context variable for the rest
of the request and echoes it on the response; `RequestIdMiddleware` does the same for Django alone
(the test client, WSGI). Celery tasks queued meanwhile carry it in a message header and restore it
(`avtrz.celery`). `RequestIdFilter` stamps it on every record. `RedactSecretsFilter` masks API keys,
bearer tokens and credential query values before any handler formats a record; `scrub` does the same
to Sentry events.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast


if TYPE_CHECKING:  # settings import this module (Sentry's before_send) before Django is set up
    from django.http import HttpRequest, HttpResponse
    from sentry_sdk.types import Event, Hint
    from starlette.types import Message


request_id: ContextVar[str] = ContextVar("request_id", default="-")

# What we accept from a proxy: short, and nothing that could forge a log line or a header.
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class OutageLog:
    """One dependency's outage in the log: a WARNING when it goes, then at most every `report_every_s`
    a line with the count of failed calls since the last one, and a line when it is back. A worker that
    logged a traceback for every failed call would bury everything else during an outage."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        meanwhile: str,
        *,
        report_every_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._logger, self._what, self._meanwhile = logger, what, meanwhile
        self._report_every_s, self._clock = report_every_s, clock
        self._lock = threading.Lock()
        self.since: float | None = None
        self._failures = 0
        self._reported_at = 0.0

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            now = self._clock()
            if self.since is None:
                self.since, self._failures, self._reported_at = now, 0, now
                self._logger.warning("%s cannot reach Redis (%s): %s", self._what, exc, self._meanwhile)
                return
            self._failures += 1
            if now - self._reported_at >= self._report_every_s:
                self._logger.warning(
                    "%s still cannot reach Redis after %d s (%d failed calls since the last report): %s",
                    self._what,
                    round(now - self.since),
                    self._failures,
                    exc,
                )
                self._failures, self._reported_at = 0, now

    def recovered(self) -> None:
        with self._lock:
            if self.since is not None:
                self._logger.warning("%s reach Redis again after %d s", self._what, round(self._clock() - self.since))
                self.since = None


# New request ids, cut from one read of os.urandom per 256: a system call for each id cost more than
# the rest of the request-id layer on the avatar hit path, which makes one for every request the proxy
# sent none. A deque, so threads take from it without a lock (popleft is atomic; two threads refilling
# at once only add more); emptied in a forked child, which must not hand out its parent's next ids.
_request_ids: deque[str] = deque()
os.register_at_fork(after_in_child=_request_ids.clear)


def new_request_id() -> str:
    """32 random hex characters (uuid4's randomness)."""
    try:
        return _request_ids.popleft()
    except IndexError:
        block = os.urandom(16 * 256).hex()
        _request_ids.extend(block[start : start + 32] for start in range(32, len(block), 32))
        return block[:32]


# Our keys and Stripe's share the shape `sk_live_…`; the prefix and last four identify one safely.
API_KEY = re.compile(r"\b((?:sk|pk|rk)_(?:live|test)_)[A-Za-z0-9_-]+")
BEARER = re.compile(r"\b(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
CREDENTIAL_PARAM = re.compile(
    r"(?<![A-Za-z0-9_])((?:key|api_key|token|access_token|refresh_token|client_secret|password)=)([^&\s\"'#]+)"
)

# Links that carry a one-time secret in their path: password reset, sign-up activation, sign-in
# unlock, invitations.
TOKEN_PATH = re.compile(
    r"(/(?:accounts/(?:password/reset|activate)/[A-Za-z0-9_-]+|accounts/unlock|invitations)/)"
    r"(?!set-password/|\[redacted\])[A-Za-z0-9._~:-]+"
)


def _mask_key(match: re.Match) -> str:
    prefix, rest = match.group(1), match.group(0)[len(match.group(1)) :]
    return f"{prefix}…{rest[-4:]}" if len(rest) > 4 else f"{prefix}…"


def _mask_param(match: re.Match) -> str:
    name, value = match.groups()
    if "…" in value:  # already redacted (a record can pass through this twice)
        return match.group(0)
    key = API_KEY.fullmatch(value)
    return name + (_mask_key(key) if key else "[redacted]")


def redact(text: str) -> str:
    """`text` with API keys cut to prefix and last four; bearer tokens, credential parameters and the tokens
    of reset, unlock and invitation links removed."""
    text = CREDENTIAL_PARAM.sub(_mask_param, text)
    text = TOKEN_PATH.sub(r"\1[redacted]", text)
    text = API_KEY.sub(_mask_key, text)
    return BEARER.sub(r"\1[redacted]", text)


def scrub(value: object) -> object:
    """`value` (a Sentry event, or any JSON-like structure) with `redact` applied to every string."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    return value


def sentry_before_send(event: Event, hint: Hint) -> Event:
    return cast("Event", scrub(event))  # scrub keeps the event's shape, only its strings change


def configure(config: dict[str, Any]) -> None:
    """Django's LOGGING_CONFIG (and Celery's, `avtrz.celery`): LOGGING, with Python's warnings logged
    through it (as `py.warnings`) instead of printed to stderr in their own format."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)


class RedactSecretsFilter(logging.Filter):
    """Formats the message once, redacted, so no handler can print the raw arguments."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if status := getattr(record, "status_code", None):
            entry["status"] = status
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def adopt_request_id(given: str) -> str:
    """The proxy's request id when it is a sane token, else a new one; made current for this context."""
    rid = given if given and SANE_REQUEST_ID.match(given) else new_request_id()
    request_id.set(rid)
    return rid


SERVER_ERROR_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")]


class RequestIdApp:
    """ASGI layer: adopt or make the request id before the layers below run and add it to the response.

    The context variable is not reset after the response: uvicorn's access log line for the request
    is written after the app answers, and each request runs in its own asyncio task (its own context),
    so the value cannot leak into another request. `scope["request_id"]` tells Django's middleware.

    `answer_now(scope)` (the avatar fast path's replays) may answer a request outright from memory,
    with no await: (status, headers, body), sent here with the id added to `headers` (a list made
    for this response) and no send wrapper, or None."""

    # Any ASGI app: uvicorn's middleware types its scope as TypedDicts, Starlette's as a plain mapping.
    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        answer_now: Callable[..., tuple[int, list[tuple[bytes, bytes]], bytes] | None] | None = None,
    ) -> None:
        self.app = app
        self.answer_now = answer_now

    # Scope, receive and send untyped: the layers around this one type them each their own way (uvicorn's
    # middleware as TypedDicts, Starlette's as plain mappings), and neither accepts the other's.
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value
                break
        rid = adopt_request_id(given.decode("latin-1"))
        scope["request_id"] = rid
        header = (b"x-request-id", rid.encode())
        try:
            answer = None if self.answer_now is None else self.answer_now(scope)
        except Exception:
            await _server_error(send, header)
            raise
        if answer is None:
            return await self._app_with_request_id(scope, receive, send, header)
        status, headers, body = answer
        headers.append(header)
        # Started: whatever fails from here (the client gone) is past the point of a 500.
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _app_with_request_id(self, scope: Any, receive: Any, send: Any, header: tuple[bytes, bytes]) -> None:
        """The layers below answer; the id goes on their response."""
        started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            if not started:
                await _server_error(send, header)
            raise


async def _server_error(send: Any, header: tuple[bytes, bytes]) -> None:
    """A 500 with the request id: uvicorn's own would leave out the id its traceback line is logged under."""
    await send({"type": "http.response.start", "status": 500, "headers": [*SERVER_ERROR_HEADERS, header]})
    await send({"type": "http.response.body", "body": b"Internal Server Error"})


class RequestIdMiddleware:
    """The same for Django alone (the test client, WSGI): behind `RequestIdApp` there is nothing left to do."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "request_id" in getattr(request, "scope", {}):
            return self.get_response(request)
        rid = adopt_request_id(request.headers.get("X-Request-ID", ""))
        response = self.get_response(request)
        response["X-Request-ID"] = rid
        return response
