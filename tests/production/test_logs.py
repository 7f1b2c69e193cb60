"""Structured logs: JSON lines with a request id, and no keys or tokens in them."""

import asyncio
import io
import json
import logging
import os
import sys

import pytest
import requests

from avtrz.lib.logs import JsonFormatter, RequestIdApp, new_request_id, redact, request_id
from tests import services


SECRET = "sk_live_Q2hhbmdlTWVJbW1lZGlhdGVseV9zZWNyZXQ9Wx9z"


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        (f"GET /v1/avatar?key={SECRET}&size=64", "GET /v1/avatar?key=sk_live_…Wx9z&size=64"),
        ("key=pk_live_abcdefgh1234", "key=pk_live_…1234"),
        (f"refused {SECRET} in the query", "refused sk_live_…Wx9z in the query"),
        ("Authorization: Bearer eyJhbGciOi.J9x-y_z", "Authorization: Bearer [redacted]"),
        (
            "/o/token/?refresh_token=abc123&client_secret=s3cr3t",
            "/o/token/?refresh_token=[redacted]&client_secret=[redacted]",
        ),
        ("monkey=banana&size=64", "monkey=banana&size=64"),
    ],
)
def test_redact(raw, logged):
    assert redact(raw) == logged
    assert redact(logged) == logged  # a record may pass through twice


@pytest.fixture
def console():
    """The configured console handler (its filters and formatter), writing to a buffer, in JSON."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    # The test client runs requests in this thread's context, so an earlier test's request id lingers here.
    outside_requests = request_id.set("-")
    buffer = io.StringIO()
    formatter = handler.formatter
    stream = handler.setStream(buffer)
    handler.setFormatter(JsonFormatter())
    yield buffer
    handler.setStream(stream)
    handler.setFormatter(formatter)
    request_id.reset(outside_requests)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_access_log_lines_are_redacted_json(console):
    # The line uvicorn's access log writes for a refused request, arguments and all.
    access = logging.getLogger("uvicorn.access")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/v1/avatar?key={SECRET}", "1.1", 401)
    (entry,) = lines(console)
    assert entry["message"] == '127.0.0.1:5000 - "GET /v1/avatar?key=sk_live_…Wx9z HTTP/1.1" 401'
    assert entry["level"] == "INFO" and entry["logger"] == "uvicorn.access" and entry["request_id"] == "-"


def test_tracebacks_are_redacted(console):
    try:
        raise ValueError(f"bad key {SECRET}")
    except ValueError:
        logging.getLogger("avtrz.test").exception("lookup failed for %s", SECRET)
    (entry,) = lines(console)
    assert SECRET not in json.dumps(entry)
    assert entry["message"] == "lookup failed for sk_live_…Wx9z"
    assert "ValueError: bad key sk_live_…Wx9z" in entry["exception"]


@pytest.mark.django_db
def test_request_id_is_adopted_echoed_and_logged(client, console):
    response = client.get("/v1/usage", {"key": SECRET}, HTTP_X_REQUEST_ID="lb-7f3a.42")
    assert response.status_code == 401
    assert response["X-Request-ID"] == "lb-7f3a.42"
    (entry,) = [e for e in lines(console) if e["logger"] == "django.request"]
    assert entry["request_id"] == "lb-7f3a.42" and entry["status"] == 401


@pytest.mark.django_db
def test_an_insane_request_id_is_replaced(client):
    response = client.get("/healthz", HTTP_X_REQUEST_ID='x" forged=1\n')
    assert len(response["X-Request-ID"]) == 32 and response["X-Request-ID"].isalnum()
    assert client.get("/healthz")["X-Request-ID"] != response["X-Request-ID"]


def test_request_ids_are_unique_in_a_forked_process_too():
    """New ids come from a block of randomness read ahead: a forked worker must not hand out the same
    ones as its parent (two requests under one id in the logs)."""
    made = {new_request_id() for _ in range(1000)}  # more than one block
    assert len(made) == 1000 and all(len(rid) == 32 and rid.isalnum() for rid in made)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 64).decode() != new_request_id()


@pytest.mark.django_db(transaction=True)
def test_a_production_server_logs_json_without_keys(tmp_path):
    """uvicorn with its access log on, as the Procfile runs it: every line JSON, the key masked, the
    access line carrying the request id the response returned."""
    port = services.free_port()
    cmd = [sys.executable, "-m", "uvicorn", "avtrz.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "server.log"
    with services.running(cmd, env=services.server_env(LOG_FORMAT="json"), port=port, log=log):
        response = requests.get(f"http://127.0.0.1:{port}/v1/usage?key={SECRET}", timeout=10)
    assert response.status_code == 401
    text = log.read_text()
    assert SECRET not in text
    entries = [json.loads(line) for line in text.splitlines()]
    (access,) = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert "/v1/usage?key=sk_live_…Wx9z" in access["message"]
    assert access["request_id"] == response.headers["X-Request-ID"]


def test_an_app_that_fails_before_answering_still_returns_the_request_id():
    """uvicorn answers an exception with its own 500; the layer sends it first, with the id the traceback is
    logged under, and lets the exception through for uvicorn to log."""
    sent = []

    async def failing(scope, receive, send):
        raise RuntimeError("boom")

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "headers": [(b"x-request-id", b"lb-500")]}
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(RequestIdApp(failing)(scope, None, send))
    start, body = sent
    assert start["status"] == 500 and (b"x-request-id", b"lb-500") in start["headers"]
    assert body["body"] == b"Internal Server Error"
