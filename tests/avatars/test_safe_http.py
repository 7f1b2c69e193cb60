"""safe_http against a real server on 127.0.0.1. No test sends a packet beyond loopback:
non-loopback addresses only ever go through the pure classification function, or through a
resolver stub whose answer is refused before any connection is made."""

import gzip
import socket
import time

import pytest
import urllib3.util.connection

from avtrz.lib.hosts import host_matches
from avtrz.lib.safe_http import (
    BlockedAddress,
    FetchFailed,
    FetchResult,
    FetchTimeout,
    HostNotAllowed,
    TooLarge,
    TooManyRedirects,
    UnsupportedURL,
    blocked_address_reason,
    fetch,
)
from tests.fixture_server import FixtureServer, fixture_server
from tests.tls import self_signed


server = fixture_server()

LOOPBACK = {"127.0.0.1"}


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Belt and braces: even a broken check cannot make these tests connect beyond loopback."""
    real_connect = urllib3.util.connection.create_connection

    def loopback_connect(address, *args, **kwargs):
        assert address[0] in ("127.0.0.1", "::1"), f"test tried to connect to {address[0]}"
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", loopback_connect)


def get(url: str, **overrides) -> FetchResult:
    options = {
        "allowed_hosts": None,
        "allow_private_hosts": LOOPBACK,
        "max_bytes": 10_000,
        "connect_timeout": 1.0,
        "read_timeout": 1.0,
        "user_agent": "avtrz-test/1",
    }
    return fetch(url, **{**options, **overrides})


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (classified, never bound)
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "not globally routable"),
        ("240.0.0.1", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 wrapping 169.254.169.254
        ("2001:db8::1", "private"),  # documentation range
        ("8.8.8.8", None),
        ("151.101.1.69", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_address_classification(address, reason):
    assert blocked_address_reason(address) == reason


@pytest.mark.parametrize(
    ("host", "patterns", "expected"),
    [
        ("media.licdn.com", ["media.licdn.com"], True),
        ("MEDIA.licdn.com.", ["media.licdn.com"], True),
        ("media-exp1.licdn.com", ["*.licdn.com"], True),
        ("a.b.licdn.com", ["*.licdn.com"], True),
        ("licdn.com", ["*.licdn.com"], False),
        ("evillicdn.com", ["*.licdn.com"], False),
        ("licdn.com.evil.com", ["*.licdn.com", "licdn.com"], False),
        ("www.linkedin.com", ["linkedin.com"], False),
        ("anything.example", [], False),
    ],
)
def test_host_matching(host, patterns, expected):
    assert host_matches(host, patterns) is expected


def test_fetches_from_an_allow_listed_loopback_host(server):
    server.route("/page", body=b"<html>hi</html>", headers={"Content-Type": "text/html; charset=utf-8"})
    result = get(server.url("/page?x=1"), accept="text/html")
    assert (result.status, result.body, result.content_type) == (200, b"<html>hi</html>", "text/html")
    assert result.final_url == server.url("/page?x=1")
    sent = server.requests[-1].headers
    assert sent["User-Agent"] == "avtrz-test/1"
    assert sent["Accept"] == "text/html"
    assert sent["Host"] == f"127.0.0.1:{server.port}"


def test_non_2xx_statuses_are_returned_not_raised(server):
    server.route("/gone", status=999, body=b"Request denied")
    result = get(server.url("/gone"))
    assert (result.status, result.body) == (999, b"Request denied")
    assert get(server.url("/nowhere")).status == 404


def test_loopback_is_refused_without_the_allow_list(server):
    server.route("/", body=b"secret")
    with pytest.raises(BlockedAddress, match="loopback"):
        get(server.url("/"), allow_private_hosts=())
    assert server.requests == []


def test_a_name_resolving_to_loopback_needs_the_name_on_the_allow_list(server):
    """DNS-rebinding shape: an innocent name that resolves to a private address."""
    server.route("/", body=b"ok")
    with pytest.raises(BlockedAddress, match="localhost resolves to"):
        get(server.url("/", host="localhost"), allow_private_hosts={"127.0.0.1"})
    assert server.requests == []
    assert get(server.url("/", host="localhost"), allow_private_hosts={"localhost"}).body == b"ok"
    assert server.requests[-1].headers["Host"] == f"localhost:{server.port}"


def test_other_spellings_of_an_allowed_address_are_not_allowed(server):
    with pytest.raises(BlockedAddress):
        get(f"http://2130706433:{server.port}/")  # 127.0.0.1 as one integer


def test_connects_to_the_address_it_checked(server, monkeypatch):
    """The name is resolved once, by the check; the connection must not resolve it again
    (a second answer could be a rebinding attack). The stub answers once, then fails."""
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def one_answer(host, *args, **kwargs):
        if host == "pinned.test":
            lookups.append(host)
            if len(lookups) > 1:
                raise socket.gaierror(socket.EAI_NONAME, "second lookup")
            return real_getaddrinfo("127.0.0.1", *args, **kwargs)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", one_answer)
    server.route("/", body=b"pinned")
    result = get(f"http://pinned.test:{server.port}/", allow_private_hosts={"pinned.test"})
    assert result.body == b"pinned"
    assert lookups == ["pinned.test"]
    assert server.requests[-1].headers["Host"] == f"pinned.test:{server.port}"


def test_a_name_with_any_private_answer_is_refused(monkeypatch):
    """A name answering one public and one private address is refused before connecting."""

    def mixed(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", mixed)
    with pytest.raises(BlockedAddress, match="private"):
        get("http://mixed.test/", allow_private_hosts=())


def test_allowed_hosts_exact_and_wildcard(server, monkeypatch):
    server.route("/", body=b"ok")
    with pytest.raises(HostNotAllowed, match="127.0.0.1"):
        get(server.url("/"), allowed_hosts={"www.linkedin.com", "*.licdn.com"})
    assert get(server.url("/"), allowed_hosts={"127.0.0.1"}).body == b"ok"

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real_getaddrinfo("127.0.0.1", *a, **k))
    wildcard = {"*.licdn.test"}
    url = f"http://media-exp1.licdn.test:{server.port}/"
    assert get(url, allowed_hosts=wildcard, allow_private_hosts=wildcard).body == b"ok"
    with pytest.raises(HostNotAllowed):
        get(f"http://licdn.test:{server.port}/", allowed_hosts=wildcard, allow_private_hosts={"licdn.test"})


def test_redirects_are_followed_and_rechecked(server):
    server.redirect("/a", "/b", status=301)
    server.redirect("/b", server.url("/c?sig=1"), status=307)
    server.route("/c", body=b"done")
    result = get(server.url("/a"))
    assert (result.body, result.final_url) == (b"done", server.url("/c?sig=1"))


def test_redirect_to_a_disallowed_host_is_refused(server):
    server.redirect("/", "https://elsewhere.example/x")
    with pytest.raises(HostNotAllowed, match="elsewhere.example"):
        get(server.url("/"), allowed_hosts={"127.0.0.1"})


def test_redirect_to_a_private_address_is_refused(server):
    server.redirect("/", "http://169.254.169.254/latest/meta-data/")
    with pytest.raises(BlockedAddress, match="link-local"):
        get(server.url("/"))
    server.redirect("/", "http://localhost/admin")
    with pytest.raises(BlockedAddress, match="loopback"):
        get(server.url("/"))


def test_redirect_to_another_scheme_is_refused(server):
    server.redirect("/", "file:///etc/passwd")
    with pytest.raises(UnsupportedURL, match="file"):
        get(server.url("/"))


def test_too_many_redirects(server):
    for hop in range(5):
        server.redirect(f"/{hop}", f"/{hop + 1}")
    server.route("/5", body=b"end")
    with pytest.raises(TooManyRedirects, match="more than 3"):
        get(server.url("/0"), max_redirects=3)
    assert get(server.url("/0"), max_redirects=5).body == b"end"


def test_size_cap_by_content_length_reads_nothing(server):
    server.route("/big", body=b"x" * 20_000)
    with pytest.raises(TooLarge, match="20000 bytes"):
        get(server.url("/big"))


def test_size_cap_on_a_streamed_body_without_length(server):
    server.route("/chunked", chunks=(b"y" * 4000,) * 5)
    with pytest.raises(TooLarge):
        get(server.url("/chunked"))
    server.route("/eof", body=b"z" * 20_000, content_length=False)
    with pytest.raises(TooLarge):
        get(server.url("/eof"))
    assert get(server.url("/chunked"), max_bytes=20_000).body == b"y" * 20_000


def test_size_cap_applies_to_the_decoded_body(server):
    bomb = gzip.compress(b"\0" * 1_000_000)
    server.route("/gz", body=bomb, headers={"Content-Encoding": "gzip"})
    assert len(bomb) < 10_000
    with pytest.raises(TooLarge):
        get(server.url("/gz"))
    server.route("/small-gz", body=gzip.compress(b"hello"), headers={"Content-Encoding": "gzip"})
    assert get(server.url("/small-gz")).body == b"hello"


def test_read_timeout_on_a_slow_server(server):
    server.route("/slow", body=b"late", delay=0.5)
    started = time.monotonic()
    with pytest.raises(FetchTimeout) as caught:
        get(server.url("/slow"), read_timeout=0.2)
    assert time.monotonic() - started < 0.45
    assert caught.value.retryable


def test_total_deadline_stops_a_slow_drip(server):
    """Each chunk arrives well within the read timeout; the whole body does not."""
    server.route("/drip", chunks=(b"d",) * 20, chunk_delay=0.05)
    started = time.monotonic()
    with pytest.raises(FetchTimeout):
        get(server.url("/drip"), read_timeout=0.3, total_timeout=0.4)
    assert time.monotonic() - started < 0.75


def test_connection_failure_is_fetch_failed_without_the_query():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(FetchFailed) as caught:
        get(f"http://127.0.0.1:{port}/p?t=SECRET-SIGNATURE")
    assert "SECRET" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
    assert caught.value.retryable


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://127.0.0.1/file",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "/relative/path",
        "http://user:pass@127.0.0.1/",
        "http://[::1/",
        "http:///no-host",
    ],
)
def test_unsupported_urls(url):
    with pytest.raises(UnsupportedURL) as caught:
        get(url)
    assert not caught.value.retryable


# --- TLS: SNI and certificate verification use the hostname while we connect to the pinned IP ---


@pytest.fixture(scope="module")
def localhost_cert(tmp_path_factory):
    """A self-signed certificate for the name "localhost" only."""
    return self_signed(tmp_path_factory.mktemp("tls"), "localhost")


def test_https_verifies_the_hostname_not_the_pinned_ip(localhost_cert):
    certfile, keyfile = localhost_cert
    with FixtureServer(certfile=certfile, keyfile=keyfile) as tls:
        tls.route("/", body=b"over tls")
        result = get(tls.url("/", host="localhost"), allow_private_hosts={"localhost"}, ca_bundle=certfile)
        assert result.body == b"over tls"
        # Same server, addressed by IP: the certificate does not name 127.0.0.1, so it must fail.
        with pytest.raises(FetchFailed, match="(?i)certificate|hostname"):
            get(tls.url("/"), ca_bundle=certfile)
        # And an untrusted certificate fails too.
        with pytest.raises(FetchFailed, match="(?i)certificate"):
            get(tls.url("/", host="localhost"), allow_private_hosts={"localhost"})
