"""The HTTP door (`mcpserver.envelope`) on its own, in process, in front of a stand-in for the SDK:
what it lets through reaches the SDK unchanged, what it refuses never does."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from mcp.server.transport_security import TransportSecuritySettings

from mcpserver.envelope import StatelessHttp


PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class Sdk:
    """Records what reaches it and answers 200 with the body it read."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[bytes, bytes], bytes]] = []

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.seen.append((dict(scope["headers"]), body))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def exchange(door: StatelessHttp, method: str, *, content: bytes = b"", headers: dict[str, str] | None = None):
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=door)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            return await client.request(method, "/mcp", content=content, headers=headers or {})

    return asyncio.run(main())


def test_a_valid_message_reaches_the_sdk_byte_for_byte_with_trimmed_routing_headers():
    sdk = Sdk()
    body = json.dumps({**PING, "params": {"_meta": {"x": "é"}}}, ensure_ascii=False).encode()
    response = exchange(
        StatelessHttp(sdk, security=None),
        "POST",
        content=body,
        headers={**JSON, "Mcp-Method": "  ping\t", "Mcp-Name": " x ", "X-Other": " kept "},
    )
    assert response.status_code == 200 and response.content == body
    ((seen_headers, seen_body),) = sdk.seen
    assert seen_body == body
    assert seen_headers[b"mcp-method"] == b"ping" and seen_headers[b"mcp-name"] == b"x"
    assert seen_headers[b"x-other"] == b" kept "  # only the MCP headers are the door's business


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{", 400, -32700),
        (b"[" * 100_000 + b"]" * 100_000, 400, -32700),  # nesting deeper than the parser goes
        (b"[]", 400, -32600),
        (b"null", 400, -32600),
        (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', 400, -32600),
        (b'{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}', 400, -32600),
    ],
)
def test_refused_messages_never_reach_the_sdk(body, status, code):
    sdk = Sdk()
    response = exchange(StatelessHttp(sdk, security=None), "POST", content=body, headers=JSON)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["id"] is None
    assert sdk.seen == []


def test_a_body_past_the_limit_is_refused_without_reading_it_all():
    sdk = Sdk()
    door = StatelessHttp(sdk, security=None, max_body_size=1024)
    large = json.dumps({**PING, "params": {"pad": "x" * 2048}}).encode()
    declared = exchange(door, "POST", content=large, headers=JSON)

    async def chunks():
        for _ in range(4):
            yield b" " * 400

    async def undeclared_request() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=door), base_url="http://127.0.0.1") as client:
            return await client.post("/mcp", content=chunks(), headers=JSON)

    undeclared = asyncio.run(undeclared_request())
    for response in (declared, undeclared):
        assert response.status_code == 413
        assert response.json()["error"]["message"] == "Request body too large (limit 1024 bytes)."
    assert sdk.seen == []


def test_client_responses_and_notifications_are_left_to_the_sdk():
    sdk = Sdk()
    door = StatelessHttp(sdk, security=None)
    for message in (
        {"jsonrpc": "2.0", "id": 4, "result": {}},
        {"jsonrpc": "2.0", "id": 4, "error": {"code": -1, "message": "no"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "a", "method": "tools/list", "params": None},
    ):
        assert exchange(door, "POST", content=json.dumps(message).encode(), headers=JSON).status_code == 200
    assert len(sdk.seen) == 4


def test_host_and_origin_are_checked_before_anything_else():
    sdk = Sdk()
    security = TransportSecuritySettings(allowed_hosts=["127.0.0.1:*"], allowed_origins=["http://127.0.0.1:*"])
    door = StatelessHttp(sdk, security=security)
    rebound = exchange(door, "GET", headers={"Host": "evil.example"})
    foreign = exchange(door, "POST", content=b"[]", headers={**JSON, "Origin": "http://evil.example"})
    not_json = exchange(door, "POST", content=b"[]", headers={"Content-Type": "text/plain"})
    assert rebound.status_code == 421
    assert foreign.status_code == 403
    assert not_json.status_code == 400 and "Content-Type" in not_json.text
    assert sdk.seen == []
