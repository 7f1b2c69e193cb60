"""Fetching Client ID Metadata Documents: the same safe-HTTP rules as every outbound fetch."""

import json

import pytest
from oauth2_provider.cimd import CIMDError

from accounts.cimd import SafeHTTPMetadataFetcher


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
