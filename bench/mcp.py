"""Benchmark: `tools/call get_profile_avatar` on a cached profile, beside `/v1/avatar` on the same profile.

Run: `.venv/bin/python bench/mcp.py` (needs Redis on 127.0.0.1:6379, or REDIS_URL). One uvicorn worker
(uvloop + httptools) on loopback serves the demo directory from a fresh SQLite database; an access
token for the MCP endpoint is minted straight in the database, as the consent screen would leave it.
Each request is timed end to end by an httpx client: sequentially (latency) and with CONCURRENCY
requests in flight (throughput). Target: MCP p50 <= 15 ms.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, manage, prepare, server_env, uvicorn  # noqa: E402


REQUESTS = int(os.environ.get("BENCH_REQUESTS", "500"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))

# Run by `manage.py shell`: a connection of the demo user to the demo workspace, with one access token.
MINT_SCRIPT = """
from datetime import timedelta
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application
from accounts.models import Connection, ConnectionLink, User
from accounts.oauth import mcp_resource_url
from workspaces.models import Membership
membership = Membership.objects.select_related("user", "workspace").get(workspace__slug="demo")
app = Application.objects.create(
    name="bench", client_type="public", authorization_grant_type="authorization-code",
    redirect_uris="http://127.0.0.1/callback",
)
connection = Connection.objects.create(user=membership.user, workspace=membership.workspace, application=app)
token = AccessToken.objects.create(
    user=membership.user, application=app, token="{token}", scope="openid",
    expires=timezone.now() + timedelta(hours=1), resource=[mcp_resource_url()],
)
ConnectionLink.objects.create(connection=connection, access_token=token)
"""


def mint_token(env: dict[str, str]) -> str:
    token = secrets.token_urlsafe(30)
    manage(env, "shell", "-c", MINT_SCRIPT.replace("{token}", token))
    return token


def tool_call(request_id: int) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "get_profile_avatar", "arguments": {"username": "eileen-collins", "size": 256}},
    }


async def measure(send, n: int, concurrency: int) -> dict[str, float]:
    """`send(i)` n times with `concurrency` in flight; latency percentiles (ms) and requests/s."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            start = time.perf_counter()
            await send(i)
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "rps": n / elapsed,
    }


async def run(base: str, token: str, key: str) -> dict[str, dict[str, float]]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def mcp(i: int) -> None:
            response = await client.post("/mcp", json=tool_call(i), headers=headers)
            result = response.json()["result"]
            if response.status_code != 200 or result.get("isError"):
                raise SystemExit(f"MCP call failed: {response.status_code} {response.text[:500]}")

        async def avatar(_i: int) -> None:
            params = {"key": key, "username": "eileen-collins", "size": "256"}
            response = await client.get("/v1/avatar", params=params)
            if response.status_code != 302:
                raise SystemExit(f"/v1/avatar failed: {response.status_code} {response.text[:500]}")

        for send in (mcp, avatar):  # warm both paths' caches and connections
            await measure(send, 20, 1)
        return {
            "mcp": await measure(mcp, REQUESTS, 1),
            "mcp_concurrent": await measure(mcp, REQUESTS, CONCURRENCY),
            "avatar": await measure(avatar, REQUESTS, 1),
            "avatar_concurrent": await measure(avatar, REQUESTS, CONCURRENCY),
        }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = server_env(tmp, port)
        key = prepare(env)
        token = mint_token(env)
        server = uvicorn("avtrz.asgi:application", port, env)
        try:
            figures = asyncio.run(run(f"http://127.0.0.1:{port}", token, key))
        finally:
            server.terminate()
            server.wait()

    print(f"\nHTTP on loopback, one uvicorn worker, {REQUESTS} requests per row, httpx client, SQLite + Redis")
    print(f"{'':44} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    rows = [
        ("/v1/avatar cache hit (302), sequential", figures["avatar"]),
        ("MCP tools/call get_profile_avatar, sequential", figures["mcp"]),
        (f"/v1/avatar cache hit (302), {CONCURRENCY} in flight", figures["avatar_concurrent"]),
        (f"MCP tools/call get_profile_avatar, {CONCURRENCY} in flight", figures["mcp_concurrent"]),
    ]
    for name, row in rows:
        print(f"{name:44} {row['p50']:8.2f} {row['p99']:8.2f} {row['rps']:8.0f}")
    ratio = figures["mcp"]["p50"] / figures["avatar"]["p50"]
    verdict = "met" if figures["mcp"]["p50"] <= 15 else "MISSED"
    print(f"\nMCP p50 / avatar p50: {ratio:.1f}x; target MCP p50 <= 15 ms: {verdict}")


if __name__ == "__main__":
    main()
