"""The HTTP door of the stateless MCP endpoint, between bearer authentication and the SDK's transport.

The SDK answers well-formed requests of every protocol era; this layer answers what it should not
have to, in a few words a developer can act on:

- Only POST carries messages. There is no GET stream to hold open (2026-07-28 dropped it, and a
  stateless server has nothing to push) and no session to DELETE: both get 405, at once.
- HTTP excludes the whitespace around a header value (RFC 9110 §5.5), so `Mcp-Method: " tools/call "`
  names `tools/call`; the SDK compares the raw value with the body, so the routing headers are
  trimmed before it sees them.
- An `MCP-Protocol-Version` nobody released gets 400 naming the versions this server speaks, rather
  than a complaint about `_meta`.
- A body that is not JSON, a batch (JSON-RPC batching was removed from MCP in 2025-06-18), or an
  envelope that is not a JSON-RPC 2.0 message gets a one-line JSON-RPC error instead of a pydantic
  dump.

The body is read once (within the SDK's size limit) and handed on to the SDK unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mcp.server.transport_security import (
    DEFAULT_MAX_REQUEST_BODY_SIZE,
    TransportSecurityMiddleware,
    TransportSecuritySettings,
)
from mcp_types import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, UNSUPPORTED_PROTOCOL_VERSION
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send


ALLOW = "POST, OPTIONS"
PROTOCOL_VERSION_HEADER = b"mcp-protocol-version"
PROTOCOL_META_KEY = "io.modelcontextprotocol/protocolVersion"
# Newest first: what a client should try.
SUPPORTED_VERSIONS = (*reversed(MODERN_PROTOCOL_VERSIONS), *reversed(HANDSHAKE_PROTOCOL_VERSIONS))
OWS = b" \t"
# RFC 9110 §5.6.3 optional whitespace, stripped from the MCP routing headers: Mcp-Method, Mcp-Name,
# MCP-Protocol-Version and the Mcp-Param-* headers (their values never end in whitespace: the
# client base64-wraps such values).
STRIPPED_PREFIX = b"mcp-"


class StatelessHttp:
    def __init__(
        self,
        app: ASGIApp,
        *,
        security: TransportSecuritySettings | None,
        max_body_size: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
    ) -> None:
        self.app = app
        self.security = TransportSecurityMiddleware(security)
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        scope = {**scope, "headers": [_trimmed(name, value) for name, value in scope["headers"]]}
        method = scope["method"]
        # Host and Origin first (DNS rebinding), as the SDK does, whatever the method.
        refused = await self.security.validate_request(Request(scope), is_post=method == "POST")
        if refused is not None:
            return await refused(scope, receive, send)
        if method == "OPTIONS":  # not a CORS preflight (the CORS layer answers those)
            return await _respond(send, 204, None, headers=[(b"allow", ALLOW.encode())])
        if method != "POST":
            return await _respond(
                send,
                405,
                _error(
                    None,
                    INVALID_REQUEST,
                    "Method not allowed: this stateless MCP endpoint takes each JSON-RPC message in a POST "
                    "(there is no GET stream and no session to delete).",
                ),
                headers=[(b"allow", ALLOW.encode())],
            )

        body, trailing = await self._read_body(scope, receive)
        if body is None:
            mib, rest = divmod(self.max_body_size, 1024 * 1024)
            limit = f"{mib} MiB" if mib and not rest else f"{self.max_body_size} bytes"
            return await _respond(send, 413, _error(None, INVALID_REQUEST, f"Request body too large (limit {limit})."))
        if trailing is None:  # the client went away before its body arrived
            rejection = _check(body, _header(scope, PROTOCOL_VERSION_HEADER))
            if rejection is not None:
                status, payload = rejection
                return await _respond(send, status, payload)
        await self.app(scope, _replay(body, trailing, receive), send)

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes | None, Message | None]:
        """The whole body (None past the size limit), and a non-body message received instead of its end."""
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_size:
            return None, None
        chunks = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return bytes(chunks), message
            chunks.extend(message.get("body", b""))
            if len(chunks) > self.max_body_size:
                return None, None
            if not message.get("more_body", False):
                return bytes(chunks), None


def _check(body: bytes, protocol_version: str | None) -> tuple[int, dict[str, Any]] | None:
    """(HTTP status, JSON-RPC error) for a message the SDK should not see, or None to pass it on."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, absurdly deep or an oversized number
        return 400, _error(None, PARSE_ERROR, "Parse error: the body is not valid JSON.")
    if isinstance(message, list):
        return 400, _error(None, INVALID_REQUEST, "Batches are not supported: send one JSON-RPC message per POST.")
    if not isinstance(message, dict):
        return 400, _error(None, INVALID_REQUEST, "Invalid Request: the body must be a JSON-RPC message object.")

    request_id = message.get("id")
    if "id" in message and (isinstance(request_id, bool) or not isinstance(request_id, str | int)):
        return 400, _error(None, INVALID_REQUEST, 'Invalid Request: "id" must be a string or an integer.')
    if message.get("jsonrpc") != "2.0":
        return 400, _error(request_id, INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0".')
    if "method" not in message:
        if "id" in message and ("result" in message or "error" in message):
            return None  # a client's response; the SDK decides what to make of it
        return 400, _error(request_id, INVALID_REQUEST, 'Invalid Request: "method" is missing.')
    if not isinstance(message["method"], str):
        return 400, _error(request_id, INVALID_REQUEST, 'Invalid Request: "method" must be a string.')
    params = message.get("params")
    if isinstance(params, list):
        return 400, _error(request_id, INVALID_PARAMS, 'Invalid params: "params" must be an object.')
    if params is not None and not isinstance(params, dict):
        return 400, _error(request_id, INVALID_REQUEST, 'Invalid Request: "params" must be an object.')

    if protocol_version is not None and protocol_version not in SUPPORTED_VERSIONS:
        return 400, _unsupported_version(request_id, protocol_version, params)
    return None


def _unsupported_version(request_id: Any, requested: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """2026-07-28's UnsupportedProtocolVersionError. Its data lists the versions a client of the same
    kind can switch to: per-request (`_meta`) clients the 2026-07-28 family, `initialize` clients the
    earlier ones. The message names them all."""
    meta = (params or {}).get("_meta")
    per_request = isinstance(meta, Mapping) and PROTOCOL_META_KEY in meta
    supported = list(reversed(MODERN_PROTOCOL_VERSIONS if per_request else HANDSHAKE_PROTOCOL_VERSIONS))
    text = f"Unsupported MCP-Protocol-Version {requested!r}: this server supports {', '.join(SUPPORTED_VERSIONS)}."
    return _error(request_id, UNSUPPORTED_PROTOCOL_VERSION, text, data={"supported": supported, "requested": requested})


def _error(request_id: Any, code: int, message: str, *, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


async def _respond(
    send: Send, status: int, payload: dict[str, Any] | None, *, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
    head = [*headers, (b"content-length", str(len(body)).encode())]
    if payload is not None:
        head.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, trailing: Message | None, receive: Receive) -> Receive:
    """A receive that hands the SDK the body already read, then whatever the client sends next."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": trailing is not None}]
    if trailing is not None:
        pending.append(trailing)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def _trimmed(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    return (name, value.strip(OWS)) if name.startswith(STRIPPED_PREFIX) else (name, value)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
