"""Hypothesis against the ASGI fast path (`avtrz.avatars.fastpath`), which schemathesis (WSGI) never reaches.

Its hand-written query parser must read any query string as Django's QueryDict does, or hand it to
Django; and the whole ASGI application must answer every `/v1/avatar` request exactly as Django alone
would, whether the fast path answered it from memory or passed it on.
"""

import asyncio
import json
import string
from urllib.parse import quote, quote_plus, urlencode

import pytest
from asgiref.sync import async_to_sync
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.http import QueryDict
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from avtrz.avatars.fastpath import _query
from workspaces import services
from workspaces.models import ApiKey


pytestmark = pytest.mark.django_db

# ----------------------------------------------------------------------------- the query parser

ESCAPES = st.integers(0, 255).map(lambda byte: f"%{byte:02X}")  # %C3%A9 and invalid UTF-8 (%FF) alike
AWKWARD = st.sampled_from(["%", "%2", "%zz", "%%", "+", "=", "==", "&", "&&", "%26", "%3D", "%2B", "%00", " ", ";"])
PLAIN = st.text(alphabet=string.ascii_letters + string.digits + "-_.~!$'()*,:@/?", max_size=8)
ASCII_QUERIES = st.lists(st.one_of(PLAIN, ESCAPES, AWKWARD), max_size=20).map("".join)
NAMES = st.sampled_from(["key", "username", "linkedin_url", "size", "format", "a b", "k+y", "x=y", "é", ""])
NON_ASCII = st.tuples(st.binary(max_size=20), st.integers(0x80, 0xFF), st.binary(max_size=20)).map(
    lambda parts: parts[0] + bytes([parts[1]]) + parts[2]
)


@given(ASCII_QUERIES)
@settings(max_examples=300, deadline=None)
@example("size=1&size=2&&=&size")  # repeated names, empty parts, a name without "="
@example("linkedin_url=https://linkedin.com/in/a?b=c&d")  # "=" inside a value
def test_the_parser_reads_any_ascii_query_as_django_does(query):
    assert _query(query.encode()) == QueryDict(query).dict()  # .dict(): the last value of each name


@given(st.lists(st.tuples(NAMES, st.text(max_size=12)), max_size=8), st.sampled_from([quote, quote_plus]))
@settings(max_examples=150, deadline=None)
def test_the_parser_gives_back_what_a_client_encoded_last_value_winning(pairs, quote_via):
    encoded = urlencode(pairs, quote_via=quote_via)  # spaces as %20 or +
    assert _query(encoded.encode()) == dict(pairs) == QueryDict(encoded).dict()


@given(NON_ASCII)
@settings(max_examples=100, deadline=None)
@example(b"username=\xc3\xa9ileen")  # UTF-8 sent raw
@example(b"username=\xe9ileen")  # Latin-1 sent raw
def test_raw_non_ascii_is_left_to_django(raw):
    # The fast path catches UnicodeDecodeError and passes the request on, untouched.
    with pytest.raises(UnicodeDecodeError):
        _query(raw)


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


# What a caller sees of an answer (RateLimit counts down between the two calls, request ids differ).
# Content-Type only where there is content: Django labels its empty redirects text/html, the fast path not.
COMPARED = (b"location", b"cache-control", b"etag", b"avtrz-profile-status", b"retry-after")

PROFILES = st.sampled_from(
    [
        {"username": "eileen-collins"},
        {"username": "Eileen-Collins"},
        {"username": " eileen-collins "},
        {"username": "nobody-here"},
        {"username": "x"},
        {"username": "eileen collins"},
        {"username": "linkedin.com/in/eileen-collins"},
        {"username": ""},
        {"username": "eileen\x00collins"},
        {"linkedin_url": "https://www.linkedin.com/in/eileen-collins/"},
        {"linkedin_url": "https://uk.linkedin.com/in/Eileen-Collins/?trk=x"},
        {"linkedin_url": "linkedin.com/in/eileen-collins"},
        {"linkedin_url": "https://www.linkedin.com/company/avtrz/"},
        {"linkedin_url": "https://example.com/in/eileen-collins"},
        {"linkedin_url": "not a url"},
        {"username": "eileen-collins", "linkedin_url": "linkedin.com/in/eileen-collins"},
        {},
    ]
)
OPTIONAL = {
    "size": st.sampled_from([None, "", "32", "64", "128", "256", "512", "100", "0128", "-1", "abc"]),
    "format": st.sampled_from([None, "", "webp", "png", "PNG", "gif"]),
}
HEADER_VALUES = {
    b"accept": [
        "image/avif,image/webp,image/*,*/*;q=0.8",
        "application/json",
        "*/*",
        "text/html,application/json,image/*",
        "image/png, application/json",
    ],
    b"origin": ["https://a.com", "https://b.com", "null"],
    b"referer": ["https://a.com/page", "https://b.com/"],
    b"if-none-match": ["ETAG", "W/ETAG", '"nope"', '"nope", ETAG', "*"],
}
KEYS = ["publishable", "secret", "locked", "revoked", "unknown", "malformed", ""]


@st.composite
def avatar_requests(draw):
    """A `/v1/avatar` request: (method, query parts, header pairs, a raw tail), with keys and the photo's
    ETag as names filled in by the test."""
    params = [(name, value) for name, value in draw(PROFILES).items()]
    params += [(name, value) for name, choice in OPTIONAL.items() if (value := draw(choice)) is not None]
    key, key_place = draw(st.sampled_from(KEYS)), draw(st.sampled_from(["query", "header", "both", "none"]))
    if key_place in ("query", "both"):
        params.append(("key", key))
    params = draw(st.permutations(params))
    # A name given twice: the first value is a decoy, the last one counts (in both paths).
    decoys = draw(st.lists(st.sampled_from(["key", "username", "size", "format"]), max_size=2))
    params = [(name, "decoy") for name in decoys] + params
    headers = [(b"x-api-key", key)] if key_place in ("header", "both") else []
    for name, values in HEADER_VALUES.items():
        if draw(st.booleans()):
            headers.append((name, draw(st.sampled_from(values))))
    # A header sent twice: Django reads the values joined by ","; the fast path must not read only one.
    if headers and draw(st.integers(0, 4)) == 0:
        headers.insert(0, draw(st.sampled_from(headers)))
    encoding = draw(st.sampled_from(["plus", "percent", "raw"]))
    tail = draw(st.sampled_from([b"", b"", b"&&=&", b"&x=\xc3\xa9", b"&username=\xc3\xa9ileen", b"&x=\xff"]))
    return draw(st.sampled_from(["GET", "GET", "HEAD"])), params, headers, encoding, tail


def _encode(params: list[tuple[str, str]], encoding: str) -> bytes:
    if encoding == "raw":  # what a careless client sends: only what would break the URL escaped
        return "&".join(f"{name}={value}" for name, value in params).replace(" ", "%20").encode("utf-8")
    return urlencode(params, quote_via=quote if encoding == "percent" else quote_plus).encode("ascii")


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


@given(request=avatar_requests())
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_fast_path_answers_every_request_as_django_does(keys, request):
    from avtrz.asgi import application, django_application

    named, etag = keys
    method, params, headers, encoding, tail = request
    params = [(name, named.get(value, value) if name == "key" else value) for name, value in params]
    headers = [
        (name, (named[value] if name == b"x-api-key" else value.replace("ETAG", etag)).encode("latin-1"))
        for name, value in headers
    ]
    query = _encode(params, encoding) + tail
    # Django first: it fills the cache, so the application's fast path can answer from memory.
    by_django = _call(django_application, method, query, headers)
    by_application = _call(application, method, query, headers)

    event("answered by the fast path" if by_application[1].get(b"x-cache") == b"HIT" else "handed to Django")
    assert by_django[0] < 500 and by_application[0] < 500
    assert by_application[0] == by_django[0], (query, headers, by_application, by_django)
    compared = COMPARED if by_django[0] in (302, 304) else (*COMPARED, b"content-type")
    for name in compared:
        assert by_application[1].get(name) == by_django[1].get(name), (name, query, headers)
    assert by_application[2] == by_django[2], (query, headers)


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
