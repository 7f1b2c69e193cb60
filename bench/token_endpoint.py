"""Benchmark: `/o/token/` refresh requests for a confidential and a public client.

Run: `.venv/bin/python bench/token_endpoint.py` (needs Redis on 127.0.0.1:6379, or REDIS_URL). One
uvicorn worker (uvloop + httptools, production settings, so PASSWORD_HASHERS and
OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] are the real ones) on loopback over a fresh SQLite database.
Each client gets a connection and one refresh token straight in the database, as the consent screen
would leave them; the benchmark then refreshes BENCH_REQUESTS times in a row, each time with the
refresh token the previous answer rotated in, and reports the latency of each request (ms) as the
client sees it. The confidential client authenticates with `client_secret_post`, so each of its requests
checks the stored secret once. The baseline, measured in the same run, is the public client (no secret);
beside it, one secret check with PBKDF2 (how client secrets were stored before) and with the keyed HMAC.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, manage, server_env, uvicorn  # noqa: E402


REQUESTS = int(os.environ.get("BENCH_REQUESTS", "40"))

# Run by `manage.py shell`: a user, a workspace, and per client a connection with one refresh token.
MINT_SCRIPT = """
import json
from datetime import timedelta
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, RefreshToken
from accounts.models import Connection, ConnectionLink, User
from accounts.oauth import mcp_resource_url
from workspaces import services
user = User.objects.create_user("bench@example.com", "bench-password-2026")
workspace = services.create_workspace(owner=user, name="Bench")
scope = "openid offline_access"
out = {}
for kind in ("confidential", "public"):
    confidential = kind == "confidential"
    app = Application.objects.create(
        name=f"bench {kind}", client_type=kind, authorization_grant_type="authorization-code",
        redirect_uris="https://claude.ai/api/mcp/auth_callback",
        client_secret="{secret}" if confidential else "", hash_client_secret=confidential,
    )
    connection = Connection.objects.create(user=user, workspace=workspace, application=app, scope=scope)
    access = AccessToken.objects.create(
        user=user, application=app, token=f"bench-access-{kind}", scope=scope,
        expires=timezone.now() + timedelta(hours=1), resource=[mcp_resource_url()],
    )
    refresh = RefreshToken.objects.create(
        user=user, application=app, token=f"bench-refresh-{kind}", access_token=access
    )
    ConnectionLink.objects.create(connection=connection, access_token=access)
    ConnectionLink.objects.create(connection=connection, refresh_token=refresh)
    stored = app.client_secret.split("$")[0] if confidential else "-"
    out[kind] = {"client_id": app.client_id, "refresh_token": f"bench-refresh-{kind}", "stored_secret": stored}
print("MINTED " + json.dumps(out))
"""


def refreshes(base: str, client: dict, secret: str | None) -> list[float]:
    token = client["refresh_token"]
    latencies = []
    with httpx.Client(timeout=30) as http:
        for _ in range(REQUESTS + 1):  # the first one warms the process up and is not counted
            data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client["client_id"]}
            if secret:
                data["client_secret"] = secret
            start = time.perf_counter()
            response = http.post(f"{base}/o/token/", data=data)
            latencies.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.text
            token = response.json()["refresh_token"]
    return latencies[1:]


# Run by `manage.py shell`: one secret check with the hasher before (PBKDF2) and the one now.
HASHER_SCRIPT = """
import json, time
from django.contrib.auth.hashers import check_password, make_password
secret = "{secret}"
out = {}
for name in ("pbkdf2_sha256", "avtrz_hmac_sha256"):
    stored = make_password(secret, hasher=name)
    check_password(secret, stored)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        assert check_password(secret, stored)
        times.append((time.perf_counter() - start) * 1000)
    out[name] = times
print("HASHERS " + json.dumps(out))
"""


def percentiles(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.9) - 1)]


def main() -> None:
    secret = "bench-" + os.urandom(40).hex()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = server_env(tmp, port)
        manage(env, "migrate", "-v0")
        out = manage(env, "shell", "-c", MINT_SCRIPT.replace("{secret}", secret))
        clients = json.loads(out.split("MINTED ", 1)[1])
        hashers = json.loads(
            manage(env, "shell", "-c", HASHER_SCRIPT.replace("{secret}", secret)).split("HASHERS ", 1)[1]
        )
        server = uvicorn("avtrz.asgi:application", port, env)
        try:
            base = f"http://127.0.0.1:{port}"
            public = refreshes(base, clients["public"], None)
            confidential = refreshes(base, clients["confidential"], secret)
        finally:
            server.terminate()
            server.wait()
    rows = [
        ("refresh, public client (baseline: no secret)", public),
        (f"refresh, confidential client (secret as {clients['confidential']['stored_secret']})", confidential),
        ("one secret check, PBKDF2 (how secrets were stored)", hashers["pbkdf2_sha256"]),
        ("one secret check, keyed HMAC-SHA256 (now)", hashers["avtrz_hmac_sha256"]),
    ]
    baseline = percentiles(public)[0]
    print(f"{'':<66} {'p50 ms':>9} {'p90 ms':>9} {'x baseline p50':>15}")
    for label, latencies in rows:
        p50, p90 = percentiles(latencies)
        print(f"{label:<66} {p50:9.3f} {p90:9.3f} {p50 / baseline:15.2f}")


if __name__ == "__main__":
    main()
