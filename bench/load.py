"""Load test: a mixed load on a production-style server, then an exact check of the usage meter.

Run: `.venv/bin/python bench/load.py` (needs PostgreSQL and Redis on loopback: it creates its own
database, `avtrz_bench_<random>`, on BENCH_POSTGRES_URL's server and drops it afterwards, and uses
BENCH_REDIS_URL; DATABASE_URL and REDIS_URL are never read, see bench/common.py).
Two uvicorn workers serve the demo directory; a fixture LinkedIn server on 127.0.0.1 answers the
profiles nobody has looked up yet. For BENCH_DURATION seconds (default 20) BENCH_CONCURRENCY requests
(default 32) stay in flight, each picked at random: `/v1/avatar` cache hits (some revalidating with
If-None-Match), `/v1/avatar` for new profiles (enriched on the spot), MCP `tools/call
get_profile_avatar`, and dashboard pages of a signed-in user. Everything stays on loopback and stops
by itself; like a deploy, it collects static files into `staticfiles/` first.

Afterwards the workspace's `avatar_requests` meter must equal, exactly, the billable answers the
client saw: 302 and monogram 200 from `/v1/avatar` and successful MCP tool calls (304s are not billed).
Both `/v1/usage` and the database row are read once the flushers had time to write; exit 1 on a mismatch.

Then the burst scenario: BENCH_BURST_CLIENTS sites (default 12), each its own workspace on the Free
plan as seeded (5 requests/s, bursts of 60), load a team page of 50 `<img>` avatars at the same instant.
Every avatar must come back as a billed photo redirect (none refused: a page fits in the burst), and
each workspace's `avatar_requests` in the database must equal its admitted answers exactly.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import psycopg
import requests


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, manage, prepare, scratch_database, server_env, uvicorn  # noqa: E402
from bench.mcp import avatar_call, mint_token  # noqa: E402
from tests.fixture_server import FixtureServer  # noqa: E402


DURATION_S = float(os.environ.get("BENCH_DURATION", "20").removesuffix("s"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
WORKERS = 2
# What share of the requests each kind gets.
MIX = {"hit": 0.80, "revalidate": 0.05, "miss": 0.05, "mcp": 0.06, "dashboard": 0.04}
# The demo directory's profiles (resolved before the load starts, so every lookup of them is a hit).
KNOWN = ("eileen-collins", "alex-rivera", "sam-okafor", "jordan-lee")
NEW_PROFILES = 5000  # more than a run can ask for: every miss is a profile never seen before
PHOTO_PATH = "/dms/image/v2/LOAD/face.jpg"
DEMO_LOGIN = {"username": "demo@avtrz.local", "password": "avtrz-demo-2026"}
BURST_CLIENTS = int(os.environ.get("BENCH_BURST_CLIENTS", "12"))
TEAM_PAGE = 50  # avatars on one page, loaded at once
IMG_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"  # what a browser's <img> sends
# The sites of the burst: Free workspaces (the plan as seeded, after `prepare` lifted every limit) and
# a team of profiles that share the demo photo. Prints each site's publishable key on a "site key:" line.
BURST_SETUP = f"""
from avtrz.avatars.models import Profile
from workspaces.models import Plan, Workspace
from workspaces.services import create_api_key
Plan.objects.filter(code="free").update(
    requests_per_second=5, burst=60, monthly_requests=1000, monthly_new_profiles=100
)
image = Profile.objects.get(handle="eileen-collins").current_image
Profile.objects.bulk_create(
    Profile(handle=f"team-member-{{n}}", name=f"Team Member {{n}}", status="resolved", current_image=image)
    for n in range({TEAM_PAGE})
)
for n in range({BURST_CLIENTS}):
    site = Workspace.objects.create(name=f"Site {{n}}", slug=f"burst-site-{{n}}", plan=Plan.objects.get(code="free"))
    print("site key:", create_api_key(actor=None, workspace=site, kind="publishable", name="site"))
"""


def fake_linkedin(server: FixtureServer) -> None:
    """Profile pages shaped like LinkedIn's public ones (Open Graph, JSON-LD Person); every fourth has no photo."""
    photo = (ROOT / "tests" / "fixtures" / "images" / "face.jpg").read_bytes()
    server.route(PHOTO_PATH, body=photo, headers={"Content-Type": "image/jpeg"})
    for n in range(NEW_PROFILES):
        name = f"Load Person {n}"
        person = {"@context": "http://schema.org", "@type": "Person", "name": name, "jobTitle": "Tester"}
        meta = f'<meta property="og:title" content="{name} | LinkedIn">'
        if n % 4:
            person["image"] = {"@type": "ImageObject", "contentUrl": server.url(PHOTO_PATH)}
            meta += f'<meta property="og:image" content="{server.url(PHOTO_PATH)}">'
        html = (
            f"<!doctype html><html><head><title>{name} | LinkedIn</title>{meta}"
            f'<script type="application/ld+json">{json.dumps(person)}</script></head><body></body></html>'
        )
        server.route(f"/in/load-person-{n}/", body=html.encode(), headers={"Content-Type": "text/html"})


def sign_in(base: str) -> dict[str, str]:
    """The demo user's session cookies, signed in through the login form."""
    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=10)
    data = {**DEMO_LOGIN, "csrfmiddlewaretoken": session.cookies["csrftoken"]}
    response = session.post(f"{base}/accounts/login/", data=data, allow_redirects=False, timeout=10)
    if response.status_code != 302:
        raise SystemExit(f"sign-in failed: {response.status_code}")
    return session.cookies.get_dict()


class Load:
    def __init__(self, client: httpx.AsyncClient, key: str, token: str, etags: dict[str, str]) -> None:
        self.client, self.key, self.etags = client, key, etags
        self.mcp_headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        }
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.outcomes: dict[str, Counter[str]] = defaultdict(Counter)
        self.billed = 0
        self.new_profiles = iter(range(NEW_PROFILES))
        self.mcp_ids = iter(range(10**9))

    async def avatar(self, username: str, etag: str | None = None) -> tuple[str, bool]:
        headers = {"If-None-Match": etag} if etag else {}
        params = {"key": self.key, "username": username, "size": "256"}
        response = await self.client.get("/v1/avatar", params=params, headers=headers)
        billed = response.status_code == 302 or (
            response.status_code == 200 and response.headers.get("content-type") == "image/svg+xml"
        )
        return str(response.status_code), billed

    async def hit(self) -> tuple[str, bool]:
        return await self.avatar(random.choice(KNOWN))

    async def revalidate(self) -> tuple[str, bool]:
        username = random.choice(list(self.etags))
        return await self.avatar(username, self.etags[username])

    async def miss(self) -> tuple[str, bool]:
        return await self.avatar(f"load-person-{next(self.new_profiles)}")

    async def mcp(self) -> tuple[str, bool]:
        call = avatar_call(next(self.mcp_ids))
        call["params"]["arguments"]["username"] = random.choice(KNOWN)
        response = await self.client.post("/mcp", json=call, headers=self.mcp_headers)
        if response.status_code != 200:
            return str(response.status_code), False
        if response.json()["result"].get("isError"):
            return "tool error", False
        return "200", True

    async def dashboard(self) -> tuple[str, bool]:
        response = await self.client.get(random.choice(("/w/demo/", "/w/demo/usage/")))
        return str(response.status_code), False

    async def worker(self, deadline: float) -> None:
        kinds, weights = list(MIX), list(MIX.values())
        while time.monotonic() < deadline:
            kind = random.choices(kinds, weights)[0]
            start = time.perf_counter()
            try:
                outcome, billed = await getattr(self, kind)()
            except httpx.HTTPError as exc:
                outcome, billed = type(exc).__name__, False
            self.latencies[kind].append((time.perf_counter() - start) * 1000)
            self.outcomes[kind][outcome] += 1
            self.billed += billed

    async def run(self, duration: float) -> float:
        deadline = time.monotonic() + duration
        start = time.perf_counter()
        await asyncio.gather(*(self.worker(deadline) for _ in range(CONCURRENCY)))
        return time.perf_counter() - start


EXPECTED = {"hit": {"302", "200"}, "revalidate": {"304"}, "miss": {"302", "200"}, "mcp": {"200"}, "dashboard": {"200"}}


def percentile(values: list[float], share: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * share))]


async def drive(base: str, key: str, token: str, cookies: dict[str, str]) -> tuple[Load, float, int]:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30, cookies=cookies) as client:
        # Warm every worker's caches: a hit is a hit whichever worker the connection landed on.
        etags: dict[str, str] = {}
        warm = Load(client, key, token, etags)
        for _ in range(4 * WORKERS):
            for username in KNOWN:
                response = await client.get("/v1/avatar", params={"key": key, "username": username, "size": "256"})
                warm.billed += response.status_code in (200, 302)
                if "etag" in response.headers:
                    etags[username] = response.headers["etag"]
            warm.billed += (await warm.mcp())[1]
        load = Load(client, key, token, etags)
        elapsed = await load.run(DURATION_S)
        return load, elapsed, warm.billed


def meters(base: str, secret: str, database_url: str) -> tuple[int, int]:
    """`avatar_requests` as `/v1/usage` reports it and as the database row holds it."""
    response = requests.get(f"{base}/v1/usage", headers={"x-api-key": secret}, timeout=10)
    api = response.json()["meters"]["avatar_requests"]["used"]
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as conn:
        (stored,) = conn.execute(
            "SELECT p.avatar_requests FROM workspaces_usageperiod p JOIN workspaces_workspace w"
            " ON w.id = p.workspace_id WHERE w.slug = 'demo' ORDER BY p.starts_at DESC LIMIT 1"
        ).fetchone()
    return api, stored


def report(load: Load, elapsed: float, base_billed: int, api: int, stored: int) -> bool:
    total = sum(len(v) for v in load.latencies.values())
    errors = sum(n for kind, c in load.outcomes.items() for outcome, n in c.items() if outcome not in EXPECTED[kind])
    print(f"\n{WORKERS} uvicorn workers, PostgreSQL + Redis, {CONCURRENCY} in flight for {elapsed:.1f} s, httpx client")
    print(f"{'':12} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  answers")
    for kind in MIX:
        values = load.latencies[kind]
        if not values:
            continue
        answers = ", ".join(f"{outcome}: {n}" for outcome, n in load.outcomes[kind].most_common())
        print(
            f"{kind:12} {len(values):9} {len(values) / elapsed:8.0f} {percentile(values, 0.5):8.2f}"
            f" {percentile(values, 0.99):8.2f}  {answers}"
        )
    print(f"{'all':12} {total:9} {total / elapsed:8.0f}")
    print(f"error rate: {errors}/{total} = {errors / total:.4%}")
    expected = base_billed + load.billed
    print(f"billable answers seen by the client: {expected} (warm-up {base_billed} + load {load.billed})")
    print(f"avatar_requests: /v1/usage {api}, database {stored}")
    ok = api == stored == expected
    print("PASS: the meter equals the billable answers exactly" if ok else "FAIL: the meter is off")
    return ok


async def burst(base: str, site_keys: list[str]) -> tuple[Counter[str], list[float]]:
    """Every site loads its team page at once: the answers by kind, and each page's load time (ms)."""
    answers: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=len(site_keys) * TEAM_PAGE)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def avatar(key: str, n: int) -> None:
            params = {"key": key, "username": f"team-member-{n}", "size": "64"}
            response = await client.get("/v1/avatar", params=params, headers={"Accept": IMG_ACCEPT})
            billed = response.status_code == 302 and response.headers["cache-control"] == "public, max-age=86400"
            answers["photo" if billed else f"refused ({response.status_code})"] += 1

        async def page(key: str) -> float:
            start = time.perf_counter()
            await asyncio.gather(*(avatar(key, n) for n in range(TEAM_PAGE)))
            return (time.perf_counter() - start) * 1000

        pages = await asyncio.gather(*(page(key) for key in site_keys))
    return answers, list(pages)


def burst_meters(database_url: str) -> list[int]:
    """Each burst site's `avatar_requests` as the database holds it."""
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as conn:
        rows = conn.execute(
            "SELECT p.avatar_requests FROM workspaces_usageperiod p JOIN workspaces_workspace w"
            " ON w.id = p.workspace_id WHERE w.slug LIKE 'burst-site-%' ORDER BY w.slug"
        ).fetchall()
    return [count for (count,) in rows]


def report_burst(answers: Counter[str], pages: list[float], stored: list[int]) -> bool:
    print(f"\nBurst: {len(pages)} Free sites each load a {TEAM_PAGE}-avatar page at once (<img>, Accept: image/*)")
    print(f"answers: {', '.join(f'{kind}: {n}' for kind, n in answers.most_common())}")
    print(f"page load ms: p50 {percentile(pages, 0.5):.0f}, max {max(pages):.0f}")
    print(f"avatar_requests in the database: {sum(stored)} over {len(stored)} sites (admitted {answers['photo']})")
    ok = answers["photo"] == len(pages) * TEAM_PAGE and stored == [TEAM_PAGE] * len(pages)
    print("PASS: every avatar shown and billed once" if ok else "FAIL: refused avatars or inexact meters")
    return ok


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, scratch_database() as database_url, FixtureServer() as linkedin:
        fake_linkedin(linkedin)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **server_env(tmp, port),
            "DATABASE_URL": database_url,
            "LINKEDIN_BASE_URL": linkedin.url("").rstrip("/"),
            "AVTRZ_PHOTO_HOSTS": "127.0.0.1",
            "AVTRZ_FETCH_ALLOW_PRIVATE": "127.0.0.1",
            # Plain http on loopback: the session and CSRF cookies must travel without TLS.
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "LOG_LEVEL": "WARNING",  # Celery logs every enrichment at INFO
        }
        key = prepare(env)
        manage(env, "collectstatic", "--noinput", "-v0")  # the dashboard's pages need the hashed static files
        secret = manage(env, "create_api_key", "--workspace", "demo", "--kind", "secret", "--name", "load").strip()
        token = mint_token(env)
        server = uvicorn("avtrz.asgi:application", port, env, workers=WORKERS)
        try:
            load, elapsed, base_billed = asyncio.run(drive(base, key, token, sign_in(base)))
            # The flushers write counts to Redis twice a second and to the database every 5 s; a loaded
            # machine may run them late, so look again for a few seconds before calling it a mismatch.
            time.sleep(6)
            api, stored = meters(base, secret, database_url)
            for _ in range(4):
                if api == stored == base_billed + load.billed:
                    break
                time.sleep(1)
                api, stored = meters(base, secret, database_url)
            setup = manage(env, "shell", "-c", BURST_SETUP).splitlines()
            site_keys = [line.removeprefix("site key: ") for line in setup if line.startswith("site key: ")]
            answers, pages = asyncio.run(burst(base, site_keys))
            time.sleep(6)  # the flushers' database write, as above
            site_meters = burst_meters(database_url)
            for _ in range(4):
                if site_meters == [TEAM_PAGE] * len(site_keys):
                    break
                time.sleep(1)
                site_meters = burst_meters(database_url)
        finally:
            server.terminate()
            server.wait()
    mixed_ok = report(load, elapsed, base_billed, api, stored)
    if not (report_burst(answers, pages, site_meters) and mixed_ok):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
