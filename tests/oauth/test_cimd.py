"""Fetching Client ID Metadata Documents: the same safe-HTTP rules as every outbound fetch, and a
refused document explained on the authorization error page in plain words."""

import html
import json
import re

import pytest
from django.test import Client
from oauth2_provider.cimd import CIMDError

from accounts.cimd import SafeHTTPMetadataFetcher, failure_reason
from tests import services
from tests.oauth.oauthutil import authorize_params, authorize_path, pkce


pytestmark = pytest.mark.django_db


def _document(client_id: str, **fields) -> bytes:
    return json.dumps(
        {"client_id": client_id, "client_name": "Doc", "redirect_uris": ["https://app.example/cb"], **fields}
    ).encode()


@pytest.fixture
def trusted(settings, tls_files):
    settings.AVTRZ_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
    settings.OAUTH_CIMD_CA_BUNDLE = tls_files[0]


def test_a_document_is_fetched_with_its_cache_lifetime(trusted, cimd_host):
    url = cimd_host.url("/client.json")
    cimd_host.route(
        "/client.json",
        body=_document(url),
        headers={"Content-Type": "application/json", "Cache-Control": "max-age=900"},
    )
    metadata, max_age = SafeHTTPMetadataFetcher().fetch(url)
    assert metadata["client_name"] == "Doc"
    assert max_age == 900


def test_private_addresses_are_refused_unless_allow_listed(settings, tls_files, cimd_host):
    settings.OAUTH_CIMD_CA_BUNDLE = tls_files[0]
    url = cimd_host.url("/client.json")
    cimd_host.route("/client.json", body=_document(url), headers={"Content-Type": "application/json"})
    seen = len(cimd_host.requests)
    with pytest.raises(CIMDError, match="loopback"):
        SafeHTTPMetadataFetcher().fetch(url)
    assert len(cimd_host.requests) == seen  # refused before connecting


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"status": 302, "headers": {"Location": "/elsewhere.json"}}, "redirects"),
        ({"status": 404, "body": b"{}", "headers": {"Content-Type": "application/json"}}, "HTTP 404"),
        ({"body": b"<html>", "headers": {"Content-Type": "text/html"}}, "not JSON"),
        ({"body": b"[" * 20_000, "headers": {"Content-Type": "application/json"}}, "limit"),
    ],
)
def test_bad_answers_are_refused(trusted, cimd_host, route, message):
    cimd_host.route("/client.json", **route)
    with pytest.raises(CIMDError, match=message):
        SafeHTTPMetadataFetcher().fetch(cimd_host.url("/client.json"))


def test_a_document_with_a_non_loopback_http_redirect_uri_is_refused(trusted, cimd_host):
    url = cimd_host.url("/client.json")
    body = _document(url, redirect_uris=["http://app.example/cb"])
    cimd_host.route("/client.json", body=body, headers={"Content-Type": "application/json"})
    with pytest.raises(CIMDError, match="non-loopback"):
        SafeHTTPMetadataFetcher().fetch(url)


@pytest.mark.parametrize("client_id", ["http://127.0.0.1/client.json", "https://127.0.0.1", "https://a.example/x#y"])
def test_client_ids_must_be_https_urls_with_a_path(trusted, client_id):
    with pytest.raises(CIMDError):
        SafeHTTPMetadataFetcher().fetch(client_id)


# ------------------------------------------------------------------ why, on the error page

JSON = {"Content-Type": "application/json"}
# What must never reach the page: exception names, resolver or TLS internals.
INTERNALS = ("Error:", "Traceback", "CIMDError", "errno", "getaddrinfo", "SSLCert", "resolves to")


@pytest.fixture
def user(alice, acme) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def _authorize(client: Client, client_id: str, redirect_uri: str = "https://app.example/cb"):
    _verifier, challenge = pkce()
    return client.get(authorize_path(authorize_params(client_id, redirect_uri, challenge)))


def _reason(response) -> str:
    assert response.status_code == 400, response.content
    assert "Location" not in response
    page = response.content.decode()
    assert "This connection can't be completed" in page
    assert "Go back to the app you were connecting" in page
    for internal in INTERNALS:
        assert internal not in page, internal
    match = re.search(r'<p id="cimd-reason"><strong>(.*?)</strong></p>', page, re.S)
    assert match, page
    return html.unescape(match.group(1))


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (
            {"status": 404, "body": b"{}", "headers": JSON},
            "answered HTTP 404 (Not Found) instead of sending the document",
        ),
        ({"status": 500, "body": b"oops"}, "answered HTTP 500 (Internal Server Error)"),
        (
            {"body": b"<html>", "headers": {"Content-Type": "text/html"}},
            "The document is not JSON: 127.0.0.1 served it as text/html",
        ),
        ({"body": b"{not json", "headers": JSON}, "The document is not valid JSON."),
        ({"body": b"[1, 2]", "headers": JSON}, "not an object of client metadata"),
        ({"body": b" " * 20_000 + b"{}", "headers": JSON}, "larger than the 16 KB Avtrz accepts"),
        ({"body": b"[" * 5_000 + b"]" * 5_000, "headers": JSON}, "The document is not valid JSON."),
        ({"status": 302, "headers": {"Location": "/elsewhere.json"}}, "redirects the document elsewhere"),
    ],
    ids=["404", "500", "html", "bad-json", "array", "too-large", "too-deep", "redirect"],
)
def test_a_document_that_cannot_be_read_is_explained(trusted, cimd_host, user, route, reason, request):
    path = f"/{request.node.callspec.id}.json"
    cimd_host.route(path, **route)
    assert reason in _reason(_authorize(user, cimd_host.url(path)))


@pytest.mark.parametrize(
    ("fields", "redirect_uri", "reason"),
    [
        (
            {"client_id": "https://other.example/client.json"},
            None,
            'says its client_id is "https://other.example/client.json"',
        ),
        ({"client_id": None}, None, "has no client_id"),
        ({"redirect_uris": ["http://app.example/cb"]}, "http://app.example/cb", "plain http is only accepted"),
        ({"redirect_uris": []}, None, "lists no redirect URIs"),
        ({"redirect_uris": ["javascript:alert(1)"]}, None, "does not accept as a redirect URI"),
        ({"redirect_uris": ["http://127.0.0.1:99999/cb"]}, None, "is not a valid redirect URI"),
        ({"token_endpoint_auth_method": "client_secret_post"}, None, 'it must be "none"'),
        ({"client_secret": "s"}, None, "contains a client secret"),
        ({"grant_types": ["client_credentials"]}, None, "grant_types must be authorization_code"),
        ({"client_name": 5}, None, "client_name is not text"),
    ],
    ids=[
        "other-id",
        "no-id",
        "http-redirect",
        "no-redirects",
        "bad-scheme",
        "bad-port",
        "secret-method",
        "secret",
        "grants",
        "name",
    ],
)
def test_an_invalid_document_is_explained(trusted, cimd_host, user, fields, redirect_uri, reason, request):
    path = f"/invalid-{request.node.callspec.id}.json"
    url = cimd_host.url(path)
    document = {"client_id": url, "client_name": "Doc", "redirect_uris": ["https://app.example/cb"], **fields}
    cimd_host.route(path, body=json.dumps({k: v for k, v in document.items() if v is not None}).encode(), headers=JSON)
    assert reason in _reason(_authorize(user, url, redirect_uri or "https://app.example/cb"))


def test_an_unreachable_host_is_explained(trusted, user):
    url = f"https://127.0.0.1:{services.free_port()}/client.json"
    assert "could not connect to 127.0.0.1" in _reason(_authorize(user, url))


def test_a_host_that_does_not_answer_in_time_is_explained(trusted, cimd_host, user, settings):
    settings.AVTRZ_FETCH_READ_TIMEOUT_S = 0.3
    cimd_host.route("/slow.json", body=b"{}", headers=JSON, delay=2)
    assert "did not answer in time" in _reason(_authorize(user, cimd_host.url("/slow.json")))


def test_an_untrusted_certificate_is_explained(settings, cimd_host, user):
    settings.AVTRZ_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]  # but the test certificate is not trusted
    cimd_host.route("/tls.json", body=b"{}", headers=JSON)
    assert "did not present a valid HTTPS certificate" in _reason(_authorize(user, cimd_host.url("/tls.json")))


def test_a_private_address_is_explained_without_naming_what_it_resolved_to(tls_files, settings, cimd_host, user):
    settings.OAUTH_CIMD_CA_BUNDLE = tls_files[0]
    cimd_host.route("/private.json", body=b"{}", headers=JSON)
    assert "is not on the public internet" in _reason(_authorize(user, cimd_host.url("/private.json")))


def test_a_malformed_client_id_url_is_explained(user):
    assert "not a valid address" in _reason(_authorize(user, "https://[::1/client.json"))
    assert "must not contain dot path segments" in _reason(_authorize(user, "https://a.example/x/../client.json"))


def test_the_reason_is_still_given_while_the_document_is_backed_off(trusted, cimd_host, user):
    cimd_host.route("/backoff.json", status=404, body=b"{}", headers=JSON)
    url = cimd_host.url("/backoff.json")
    seen = len(cimd_host.requests)
    first = _reason(_authorize(user, url))
    assert len(cimd_host.requests) == seen + 1
    # DOT does not fetch again for a minute, and says only "unknown client": the page still knows why.
    assert _reason(_authorize(user, url)) == first
    assert len(cimd_host.requests) == seen + 1


def test_a_redirect_uri_the_document_does_not_list_is_explained(trusted, cimd_host, user):
    url = cimd_host.url("/listed.json")
    cimd_host.route("/listed.json", body=_document(url), headers=JSON)
    response = _authorize(user, url, "https://elsewhere.example/cb")
    assert response.status_code == 400
    assert "Location" not in response
    page = html.unescape(response.content.decode())
    assert f"https://elsewhere.example/cb, which is not listed in its client metadata document ({url})" in page
    assert "Go back to the app you were connecting" in page


def test_a_valid_document_leads_to_the_consent_screen_and_clears_the_reason(trusted, cimd_host, user):
    url = cimd_host.url("/good.json")
    cimd_host.route("/good.json", body=_document(url), headers=JSON)
    response = _authorize(user, url)
    assert response.status_code == 200
    assert b'name="allow"' in response.content
    assert failure_reason(url) is None


def test_a_portless_loopback_redirect_in_a_document_matches_any_port_and_name(trusted, cimd_host, user):
    # Claude Code's metadata document lists a loopback callback without a port.
    url = cimd_host.url("/claude-code.json")
    cimd_host.route("/claude-code.json", body=_document(url, redirect_uris=["http://localhost/callback"]), headers=JSON)
    assert _authorize(user, url, "http://127.0.0.1:53123/callback").status_code == 200
    assert _authorize(user, url, "http://localhost:53124/callback").status_code == 200
    assert _authorize(user, url, "http://localhost:53124/other").status_code == 400
