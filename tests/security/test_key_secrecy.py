"""A secret key is stored only as a digest and never echoed, logged or put in a URL."""

import io
import logging
import re
from html.parser import HTMLParser

import pytest
from django.db import connection

from avtrz.lib.logs import RedactSecretsFilter
from workspaces.models import AuditEvent, key_digest


pytestmark = pytest.mark.django_db

URL_ATTRIBUTES = {"href", "src", "action", "formaction", "srcset", "poster", "data-url"}


def test_the_stored_row_never_contains_the_key(pk, sk):
    for raw in (pk, sk):
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM workspaces_apikey WHERE digest = %s", [key_digest(raw)])
            row = cursor.fetchone()
        assert row is not None
        stored = " ".join(map(str, row))
        assert raw not in stored
        # Only the display prefix (12 characters, no more than the kind and 4 random ones) and the last four.
        assert raw[12:-4] not in stored
    audit = " ".join(f"{event.summary} {event.data}" for event in AuditEvent.objects.all())
    assert pk not in audit and sk not in audit


@pytest.mark.parametrize("accept", ["application/json", "image/avif,image/webp,image/*"])
def test_a_secret_key_in_the_query_is_not_echoed(client, sk, eileen, accept):
    response = client.get("/v1/avatar", {"key": sk, "username": "eileen-collins"}, HTTP_ACCEPT=accept)
    assert response.status_code == 401
    assert sk not in response.content.decode()
    assert not any(sk in value for value in response.headers.values())
    if accept == "application/json":
        assert response.json()["error"]["code"] == "secret_key_in_query"


def test_a_secret_key_in_the_usage_query_is_not_echoed(client, sk):
    response = client.get("/v1/usage", {"key": sk})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "secret_key_in_query"
    assert sk not in response.content.decode()


class _UrlAttributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value or "" for name, value in attrs if name in URL_ATTRIBUTES]


def urls_in(html: str) -> list[str]:
    parser = _UrlAttributes()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("kind", ["secret", "publishable"])
def test_the_dashboard_shows_a_new_key_once_and_never_in_a_url(alice_client, acme, kind):
    created = alice_client.post("/w/acme/keys/new/", {"name": "Server", "kind": kind, "domains": ""})
    assert created.status_code == 302
    page = alice_client.get(created["Location"])
    raw = page.context["raw_key"]
    assert raw and raw in page.content.decode()  # the show-once page, taken from the session
    for response in (created, page):
        assert not any(raw in value for value in response.headers.values())
    urls = urls_in(page.content.decode())
    assert urls  # the page has links and forms; none of them carries the key
    assert not [url for url in urls if raw in url or raw[12:-4] in url]
    assert not re.search(r"[?&]key=[ps]k_live_", " ".join(urls))
    # Once shown, gone: neither the key page nor the list has it again.
    for path in (created["Location"], "/w/acme/keys/"):
        assert raw not in alice_client.get(path).content.decode()


@pytest.fixture
def log_output():
    """What the configured console handler (with its redaction filter) writes, captured."""
    handler = next(
        handler
        for handler in logging.getLogger().handlers
        if any(isinstance(f, RedactSecretsFilter) for f in handler.filters)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def test_the_request_log_of_a_refused_secret_key_does_not_hold_it(client, sk, eileen, log_output):
    url = f"/v1/avatar?key={sk}&username=eileen-collins"
    response = client.get(url)
    assert response.status_code == 401
    # The access log line a server writes for the same request (uvicorn's format).
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", url, "1.1", 401)
    written = log_output.getvalue()
    assert "Unauthorized: /v1/avatar" in written  # Django's own line for the 401
    assert "GET /v1/avatar?key=sk_live_…" in written
    assert sk not in written
    assert sk[12:-4] not in written
