"""Tracing in production: every answer carries the request id (Django's, the avatar fast path's, `/mcp`'s),
every log line of the work it caused carries it (the Celery task it queued included), and every line the
web server, the worker and beat write is one JSON object, run as the Procfile runs them."""

import contextlib
import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from avtrz.avatars.models import Profile
from tests import services
from tests.faults.conftest import linkedin, upstream_env  # noqa: F401 (a fixture this test uses)
from tests.workspaces.conftest import make_connection  # noqa: F401 (a fixture this test uses)


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.celery_worker]

LOG_CONFIG = str(services.ROOT / "avtrz" / "uvicorn_logging.json")


def signing_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def json_lines(log: Path) -> list[dict]:
    """Every line of `log` as a JSON object; a line that is not one fails the test, shown."""
    entries = []
    for line in log.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"{log.name}: not a JSON line: {line!r}")
    return entries


def succeeded(log: Path) -> int:
    return log.read_text().count("] succeeded in")


def stop_together(*processes: subprocess.Popen) -> None:
    """SIGTERM to each, then wait for them all: the worker's and beat's shutdowns take seconds each, and
    one after another they would add up. (`services.running` kills whichever is still running.)"""
    for process in processes:
        process.terminate()
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def test_a_request_is_traced_through_the_web_and_the_task_it_queued(
    tmp_path,
    linkedin,  # noqa: F811
    pk,
    alice,
    acme,
    make_connection,  # noqa: F811
    settings,
):
    photo = linkedin.photo("face.jpg")
    linkedin.profile("trace-me", name="Tracy Ng", photo_url=photo)
    linkedin.profile("trace-mcp", name="Mac Pei", photo_url=photo)
    port, queue = services.free_port(), f"test-{secrets.token_hex(4)}"
    base = f"http://127.0.0.1:{port}"
    settings.PUBLIC_BASE_URL = base  # the AI connection's token is for this server's /mcp
    _connection, token = make_connection(alice, acme)
    env = services.server_env(
        **upstream_env(linkedin),
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        AVTRZ_KEY_DERIVATION_SECRET=secrets.token_urlsafe(50),
        OIDC_RSA_PRIVATE_KEY=signing_key(),
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        PUBLIC_BASE_URL=base,
        SECURE_SSL_REDIRECT="false",
        REDIS_URL=services.redis_url(),
        CELERY_TASK_DEFAULT_QUEUE=queue,
        MEDIA_ROOT=str(tmp_path / "media"),
        AVTRZ_ENRICH_WAIT_S="0",  # the request answers at once; the worker does the enrichment
    )
    web = [sys.executable, "-m", "uvicorn", "avtrz.asgi:application", "--port", str(port), "--workers", "2"]
    web += ["--no-proxy-headers", "--log-config", LOG_CONFIG]  # as the Procfile runs it, access log on
    celery = [sys.executable, "-m", "celery", "-A", "avtrz", "--quiet"]
    worker = [*celery, "worker", "--loglevel", "INFO", "--concurrency", "1", "-Q", queue, "--without-mingle"]
    beat = [*celery, "beat", "--loglevel", "INFO", "--schedule", str(tmp_path / "beat-schedule")]
    logs = {name: tmp_path / f"{name}.log" for name in ("web", "worker", "beat")}
    avatar = f"{base}/v1/avatar?key={pk}&username=trace-me&size=64"
    answers = {}
    with (
        services.running(worker, env=env, log=logs["worker"]) as worker_process,
        services.running(beat, env=env, log=logs["beat"]) as beat_process,
        services.running(web, env=env, log=logs["web"]) as server,
    ):
        services.wait_for_port(port, server, timeout=90)  # two workers start on a busy machine
        # An unknown profile: the monogram now, the enrichment queued for the worker.
        answers["enrich-1"] = requests.get(avatar, headers={"X-Request-ID": "enrich-1"}, timeout=10)
        services.wait_until(
            lambda: Profile.objects.filter(handle="trace-me", status=Profile.Status.RESOLVED).exists(),
            60,
            "the worker to enrich the profile",
        )
        services.wait_until(lambda: succeeded(logs["worker"]) == 1, 30, "the worker to log the task's end")
        # An AI assistant's lookup of another unknown profile: its enrichment is queued from the MCP server.
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
        headers |= {"MCP-Protocol-Version": "2025-11-25", "X-Request-ID": "mcp-call"}
        lookup = {"name": "get_profile_avatar", "arguments": {"username": "trace-mcp"}}
        tool_call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": lookup}
        answers["mcp-call"] = requests.post(f"{base}/mcp", json=tool_call, headers=headers, timeout=30)
        services.wait_until(lambda: succeeded(logs["worker"]) == 2, 60, "the worker to enrich the MCP lookup's profile")
        # The same request again until one of the two web processes answers it from its caches.
        for attempt in range(40):
            hit = requests.get(avatar, headers={"X-Request-ID": f"hit-{attempt}"}, allow_redirects=False, timeout=10)
            answers[f"hit-{attempt}"] = hit
            if hit.headers.get("X-Cache") == "HIT":
                break
        refused = requests.get(
            f"{base}/v1/avatar?username=trace-me&size=7", headers={"X-Request-ID": "bad-size"}, timeout=10
        )
        answers["bad-size"] = refused
        answers["mcp-anon"] = requests.post(f"{base}/mcp", json={}, headers={"X-Request-ID": "mcp-anon"}, timeout=10)
        answers["django"] = requests.get(f"{base}/healthz", headers={"X-Request-ID": "django"}, timeout=10)
        made_up = requests.get(f"{base}/healthz", headers={"X-Request-ID": "x" * 200}, timeout=10)
        stop_together(server, beat_process, worker_process)

    assert answers["enrich-1"].status_code == 200  # the monogram, while the worker enriches
    assert hit.status_code == 302 and hit.headers["X-Cache"] == "HIT", "no cache hit in 40 tries"
    assert refused.status_code == 400 and refused.headers["X-Cache"] == "HIT"  # refused by the fast path
    assert answers["mcp-anon"].status_code == 401
    assert answers["mcp-call"].status_code == 200 and not answers["mcp-call"].json()["result"].get("isError")
    for rid, response in answers.items():
        assert response.headers["X-Request-ID"] == rid, rid  # once: requests would join two with ", "
    assert made_up.headers["X-Request-ID"] != "x" * 200 and len(made_up.headers["X-Request-ID"]) == 32

    web_lines, worker_lines, beat_lines = (json_lines(logs[name]) for name in ("web", "worker", "beat"))
    access = {entry["request_id"]: entry["message"] for entry in web_lines if entry["logger"] == "uvicorn.access"}
    for rid in answers:
        assert rid in access, f"no access line for {rid}"
    assert "/mcp" in access["mcp-anon"] and "size=7" in access["bad-size"]
    assert str(pk) not in logs["web"].read_text()  # keys are cut to prefix and last four
    # Each enrichment's lines, from "received" to "succeeded", carry the id of the request that queued it.
    tasks: dict[str, list[str]] = {}
    for entry in worker_lines:
        if "enrich_profile" in entry["message"]:
            tasks.setdefault(entry["request_id"], []).append(entry["message"].split("] ")[1].split(" ")[0])
    assert tasks == {"enrich-1": ["received", "succeeded"], "mcp-call": ["received", "succeeded"]}, worker_lines
    assert {e["request_id"] for e in worker_lines if "enrich_profile" not in e["message"]} <= {"-", *tasks}
    assert {e["logger"] for e in web_lines} >= {"uvicorn.error", "uvicorn.access"}  # the parent's lines too
    assert any(e["message"].endswith(" ready.") for e in worker_lines)
    assert any(e["logger"] == "celery.beat" for e in beat_lines)
