"""Hypothesis against the ASGI fast path (`avtrz.avatars.fastpath`), which schemathesis (WSGI) never reaches.

Its hand-written query parser must read any query string as Django's QueryDict does, or hand it to
Django; and the whole ASGI application must answer every `/v1/avatar` request exactly as Django alone
would, whether the fast path answered it from memory or passed it on.
"""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from workspaces import services
from workspaces.models import ApiKey


pytestmark = pytest.mark.django_db

# ------------------------------------------------------------------ the application against Django


def _call(app, method: str, query: bytes, headers: list[tuple[bytes, bytes]]):
    """One request through an ASGI app, as a server would send it. Run from this thread by async_to_sync,
    so Django's views run here too, on the test's database connection."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/v1/avatar",
        "raw_path": b"/v1/avatar",
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    sent = []

    async def exchange():
        requested = False

        async def receive():
            nonlocal requested
            if requested:  # Django listens for a disconnect until it has answered: none comes
                await asyncio.Event().wait()
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)

    async_to_sync(exchange)()
    start = next(message for message in sent if message["type"] == "http.response.start")
    body = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return start["status"], {name.lower(): value for name, value in start["headers"]}, body


@pytest.fixture
def keys(pk, sk, eileen, acme, alice, settings):
    """The keys by name, the photo's ETag, and Django allowed to run on the test's connection."""
    # The view closes the database connection after each request; inside a test transaction that would
    # close the test's own connection, so detach it as Django's test client does.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    settings.AVTRZ_ENRICH_WAIT_S = 0  # an unknown profile: answered at once, as "being looked up"
    # The Django view limits invalid keys per address, on purpose only there (the fast path answers keys it
    # knows to be invalid from memory, which costs nothing): keep that limit out of the comparison.
    settings.AVTRZ_INVALID_KEY_LIMIT = 10_000
    revoked = services.create_api_key(actor=alice, workspace=acme, kind=ApiKey.Kind.PUBLISHABLE, name="Old")
    services.revoke_api_key(actor=alice, key=ApiKey.objects.get(name="Old"))
    named = {
        "publishable": pk,
        "secret": sk,
        "locked": services.create_api_key(
            actor=alice, workspace=acme, kind=ApiKey.Kind.PUBLISHABLE, name="Locked", domains=["a.com"]
        ),
        "revoked": revoked,
        "unknown": "pk_live_" + "a" * 32,
        "malformed": "not a key",
        "": "",
    }
    from avtrz.asgi import django_application

    status, headers, _ = _call(django_application, "GET", f"key={pk}&username=eileen-collins".encode(), [])
    assert status == 302
    yield named, headers[b"etag"].decode()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_application_answers_a_known_photo_from_the_fast_path(keys):
    from avtrz.asgi import application, django_application

    named, _etag = keys
    query = f"key={named['publishable']}&username=eileen-collins&size=64".encode()
    by_django = _call(django_application, "GET", query, [])
    by_application = _call(application, "GET", query, [])
    assert by_django[0] == by_application[0] == 302
    assert by_application[1][b"x-cache"] == b"HIT"  # the harness below reaches the fast path, not only Django
    assert by_application[1][b"location"] == by_django[1][b"location"]


def _warm_then_both(named, query: bytes, headers: list[tuple[bytes, bytes]]):
    """The photo in this process's memory (so the fast path could answer), then the request to Django
    alone and to the application."""
    from avtrz.asgi import application, django_application

    warm = f"key={named['publishable']}&username=eileen-collins".encode()
    assert _call(application, "GET", warm, [])[1][b"x-cache"] == b"HIT"
    return _call(django_application, "GET", query, headers), _call(application, "GET", query, headers)


def test_a_key_header_sent_twice_is_read_as_django_reads_it(keys):
    named, _etag = keys
    twice = [(b"x-api-key", named["publishable"].encode())] * 2
    by_django, by_application = _warm_then_both(named, b"username=eileen-collins", twice)
    # Django reads "pk_…,pk_…", not a key; the fast path once read the last value only and redirected.
    assert by_django[0] == by_application[0] == 401
    assert by_application[2] == by_django[2]
    assert json.loads(by_application[2])["error"]["code"] == "invalid_key"


def test_a_query_past_django_s_field_limit_is_refused_as_django_refuses_it(keys, settings):
    from avtrz.asgi import application

    named, _etag = keys
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    at_the_limit = f"key={named['publishable']}&username=eileen-collins".encode() + b"&" * 8  # 10 fields
    by_django, by_application = _warm_then_both(named, at_the_limit + b"&", [])
    # Django refuses the 11th field; the fast path once redirected such a request when the photo was warm.
    assert by_django[0] == by_application[0] == 400
    assert _call(application, "GET", at_the_limit, [])[0] == 302
