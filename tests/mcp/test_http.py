"""The endpoint's HTTP door over real HTTP with a valid token: POST only and no endless streams,
short JSON-RPC errors for malformed messages and unknown protocol versions, routing headers with
whitespace around their values, and every protocol era still served."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.mcp.conftest import access_token
from tests.services import sign_in


pytestmark = pytest.mark.django_db(transaction=True)

MODERN = "2026-07-28"
LEGACY = ("2025-03-26", "2025-06-18", "2025-11-25")
ACCEPT = "application/json, text/event-stream"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


def headers(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": ACCEPT, "Content-Type": "application/json", **extra}


def post(base: str, token: str, body: bytes | str, **extra: str) -> requests.Response:
    data = body.encode() if isinstance(body, str) else body
    return requests.post(f"{base}/mcp", data=data, headers=headers(token, **extra), timeout=10)


def modern(base: str, token: str, method: str, params: dict | None = None, **extra: str) -> requests.Response:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**(params or {}), "_meta": META}}
    extra = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method, **extra}
    return requests.post(f"{base}/mcp", json=body, headers=headers(token, **extra), timeout=10)


def test_only_post_carries_messages_and_nothing_holds_a_stream(live, alice, acme):
    token = access_token(live, sign_in(live, alice))
    started = time.monotonic()
    # Before the fix a GET opened an SSE stream that never ended: bounded reads prove it closes.
    gets = [
        requests.get(f"{live}{path}", headers=headers(token), timeout=5, stream=False) for path in ("/mcp", "/mcp/")
    ]
    delete = requests.delete(f"{live}/mcp", headers=headers(token, **{"Mcp-Session-Id": "abc"}), timeout=5)
    head = requests.head(f"{live}/mcp", headers=headers(token), timeout=5)
    anonymous_get = requests.get(f"{live}/mcp", headers={"Accept": "text/event-stream"}, timeout=5)
    preflights = [
        requests.options(
            f"{live}/mcp",
            headers={
                "Origin": "http://localhost:6274",
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization, content-type, mcp-protocol-version, mcp-method",
            },
            timeout=5,
        )
        for method in ("POST", "GET")
    ]
    options = requests.options(f"{live}/mcp", headers=headers(token), timeout=5)
    browser_get = requests.get(f"{live}/mcp", headers=headers(token, Origin="http://localhost:6274"), timeout=5)
    # 2026-07-28's long-lived stream: not served, since the tool list never changes.
    listen = modern(live, token, "subscriptions/listen", {"notifications": {"toolsListChanged": True}})
    discover = modern(live, token, "server/discover")
    elapsed = time.monotonic() - started

    for response in (*gets, delete, head):
        assert response.status_code == 405, response.text
        assert response.headers["Allow"] == "POST, OPTIONS"
    for response in (*gets, delete):
        assert response.headers["Content-Type"] == "application/json"
        error = response.json()["error"]
        assert error["code"] == -32600 and "POST" in error["message"] and len(response.content) < 300
    assert anonymous_get.status_code == 401  # the challenge first, whatever the method
    assert "resource_metadata=" in anonymous_get.headers["WWW-Authenticate"]
    for preflight in preflights:
        assert preflight.status_code == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert "mcp-method" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert options.status_code == 204 and options.headers["Allow"] == "POST, OPTIONS"
    assert browser_get.status_code == 405 and browser_get.headers["Access-Control-Allow-Origin"] == "*"
    assert listen.status_code == 404 and listen.json()["error"]["code"] == -32601
    assert listen.headers["Content-Type"] == "application/json"
    capabilities = discover.json()["result"]["capabilities"]
    assert not any(capability.get("listChanged") for capability in capabilities.values())
    assert elapsed < 30


def test_malformed_messages_get_short_accurate_errors(live, alice, acme):
    ping = '{"jsonrpc": "2.0", "id": 3, "method": "ping"}'
    cases = {
        # name: (body, extra headers, HTTP status, JSON-RPC code, id, words in the message)
        "not json": ("{nope", {}, 400, -32700, None, "not valid JSON"),
        "not utf-8": (b'{"jsonrpc": "2.0", "id": 1, "method": "\xff"}', {}, 400, -32700, None, "not valid JSON"),
        "batch": (f"[{ping}, {ping}]", {}, 400, -32600, None, "Batches are not supported"),
        "empty batch": ("[]", {}, 400, -32600, None, "Batches are not supported"),
        "a string": ('"ping"', {}, 400, -32600, None, "JSON-RPC message object"),
        "no jsonrpc": ('{"id": 3, "method": "ping"}', {}, 400, -32600, 3, '"jsonrpc" must be "2.0"'),
        "jsonrpc 1.0": ('{"jsonrpc": "1.0", "id": 3, "method": "ping"}', {}, 400, -32600, 3, '"jsonrpc" must be'),
        "no method": ('{"jsonrpc": "2.0", "id": 3}', {}, 400, -32600, 3, '"method" is missing'),
        "method not a string": ('{"jsonrpc": "2.0", "id": 3, "method": 5}', {}, 400, -32600, 3, '"method" must be'),
        "id an object": ('{"jsonrpc": "2.0", "id": {}, "method": "ping"}', {}, 400, -32600, None, '"id" must be'),
        "params a list": (
            '{"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": [1]}',
            {},
            400,
            -32602,
            3,
            '"params" must be an object',
        ),
        "params a string": (
            '{"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": "x"}',
            {},
            400,
            -32600,
            3,
            '"params" must be an object',
        ),
        "unknown protocol version": (ping, {"MCP-Protocol-Version": "1999-01-01"}, 400, -32022, 3, "2025-11-25"),
    }
    token = access_token(live, sign_in(live, alice))
    answers = {name: post(live, token, body, **extra) for name, (body, extra, *_) in cases.items()}
    modern_version = modern(live, token, "tools/list", **{"MCP-Protocol-Version": "v999.0.0"})
    # Every era still answers a well-formed message.
    legacy = [post(live, token, ping, **{"MCP-Protocol-Version": version}) for version in LEGACY]
    unversioned = post(live, token, ping)
    notification = post(live, token, '{"jsonrpc": "2.0", "method": "notifications/initialized"}')
    tools = modern(live, token, "tools/list")

    for name, (_body, _extra, status, code, request_id, words) in cases.items():
        response = answers[name]
        assert response.status_code == status, (name, response.text)
        assert response.headers["Content-Type"] == "application/json", name
        document = response.json()
        assert document["jsonrpc"] == "2.0" and document["id"] == request_id, (name, document)
        assert document["error"]["code"] == code, (name, document)
        assert words in document["error"]["message"], (name, document)
        assert len(response.content) < 400, (name, response.text)  # a sentence, not a pydantic dump
        assert "_meta" not in response.text and "pydantic" not in response.text, name

    version = answers["unknown protocol version"].json()["error"]
    assert "2026-07-28" in version["message"] and "2025-03-26" in version["message"]
    assert version["data"] == {
        "supported": ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"],
        "requested": "1999-01-01",
    }
    # A per-request (2026-07-28) client is offered what it can switch to without initialize.
    assert modern_version.status_code == 400
    assert modern_version.json()["id"] == 7
    assert modern_version.json()["error"]["data"] == {"supported": ["2026-07-28"], "requested": "v999.0.0"}

    for response in (*legacy, unversioned):
        assert response.status_code == 200, response.text
        assert response.json() == {"jsonrpc": "2.0", "id": 3, "result": {}}
    assert notification.status_code == 202
    assert tools.status_code == 200 and len(tools.json()["result"]["tools"]) == 3


def raw_modern(base: str, token: str, method: str, params: dict | None = None, **extra: str) -> tuple[int, dict]:
    """`modern` through http.client, which sends header values as given (requests refuses edge whitespace)."""
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": {**(params or {}), "_meta": META}}
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    try:
        connection.request(
            "POST",
            "/mcp",
            body=json.dumps(body),
            headers=headers(token, **{"MCP-Protocol-Version": MODERN, "Mcp-Method": method, **extra}),
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_whitespace_around_routing_header_values_is_not_part_of_them(live, alice, acme):
    token = access_token(live, sign_in(live, alice))
    padded = raw_modern(
        live,
        token,
        "tools/call",
        {"name": "get_publishable_key", "arguments": {}},
        **{"Mcp-Method": " tools/call\t", "Mcp-Name": "  get_publishable_key  "},
    )
    listed = raw_modern(
        live, token, "tools/list", **{"Mcp-Method": "  tools/list ", "MCP-Protocol-Version": f" {MODERN}\t"}
    )
    # Values still have to match: trimming is not leniency.
    wrong = raw_modern(
        live,
        token,
        "tools/call",
        {"name": "get_publishable_key", "arguments": {}},
        **{"Mcp-Method": "tools/call", "Mcp-Name": " get_profile "},
    )

    assert padded[0] == 200, padded
    result = padded[1]["result"]
    assert not result.get("isError") and result["structuredContent"]["publishableKey"].startswith("pk_")
    assert listed[0] == 200 and len(listed[1]["result"]["tools"]) == 3, listed
    assert wrong[0] == 400 and wrong[1]["error"]["code"] == -32020, wrong


def test_only_tools_are_advertised_in_every_era(live, alice, acme):
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    token = access_token(live, sign_in(live, alice))
    legacy = {
        version: post(
            live, token, json.dumps({**initialize, "params": {**initialize["params"], "protocolVersion": version}})
        )
        for version in LEGACY
    }
    discover = modern(live, token, "server/discover")
    prompts = modern(live, token, "prompts/list")
    resources = post(live, token, '{"jsonrpc": "2.0", "id": 4, "method": "resources/list"}')

    for version, response in legacy.items():
        assert response.status_code == 200, response.text
        assert response.json()["result"]["capabilities"] == {"tools": {"listChanged": False}}, version
    assert discover.status_code == 200, discover.text
    assert discover.json()["result"]["capabilities"] == {"tools": {"listChanged": False}}
    # Nothing is served under those names either: a client that asks anyway is told so.
    assert prompts.json()["error"]["code"] == -32601
    assert resources.json()["error"]["code"] == -32601


def test_an_unknown_tool_is_an_invalid_params_error_in_every_era(live, alice, acme):
    """The spec lists an unknown tool among the protocol errors (-32602), not the tool results a
    model reads and retries: the client learns its tool list is stale."""
    call = {"name": "get_avatar", "arguments": {"username": "eileen-collins"}}
    body = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": call})
    token = access_token(live, sign_in(live, alice))
    answers = {version: post(live, token, body, **{"MCP-Protocol-Version": version}) for version in LEGACY}
    answers["2024-11-05"] = post(live, token, body, **{"MCP-Protocol-Version": "2024-11-05"})
    answers["unversioned"] = post(live, token, body)
    answers[MODERN] = modern(live, token, "tools/call", call, **{"Mcp-Name": "get_avatar"})

    for era, response in answers.items():
        document = response.json()
        assert "result" not in document, (era, document)
        assert document["error"]["code"] == -32602, (era, document)
        assert document["error"]["message"] == "Unknown tool: get_avatar", (era, document)
