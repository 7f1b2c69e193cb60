"""A small HTTP GET that is safe to point at URLs we did not choose (SSRF-hardened).

Profile pages link to photo URLs, and photo hosts redirect; either could point at our own
network. So every hop of a fetch is checked the same way:

1. the scheme is http or https and the URL carries no credentials;
2. the host is on the caller's allow-list (exact names, or ``*.suffix`` for subdomains);
3. the host is resolved once, and *every* address it resolves to must be public (not private,
   loopback, link-local, multicast, reserved or unspecified, IPv4 or IPv6, including IPv4
   embedded in IPv6) unless the host is in ``allow_private_hosts``;
4. the connection goes to the address we just checked: the request URL carries the IP and the
   ``Host`` header, TLS SNI and certificate verification carry the hostname, so a DNS answer
   that changes between the check and the connect (DNS rebinding) cannot redirect us.

Redirects are followed by hand so each hop repeats 1-4. The body is streamed and cut at
``max_bytes`` (decoded size, so a gzip bomb is cut too), and one deadline covers DNS, connects,
redirects and the body. Proxy environment variables and ``.netrc`` are ignored on purpose: a
proxy would resolve the name itself and undo the pinning.

Error messages name the host only, never the path or query, which may carry signatures.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import idna
import requests
import urllib3
from requests.adapters import HTTPAdapter

from avtrz.lib.hosts import host_matches


if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs


__all__ = [
    "BlockedAddress",
    "FetchError",
    "FetchFailed",
    "FetchResult",
    "FetchTimeout",
    "HostNotAllowed",
    "TooLarge",
    "TooManyRedirects",
    "UnsupportedURL",
    "blocked_address_reason",
    "fetch",
]

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# getaddrinfo() has no timeout of its own; running it on a worker thread lets the deadline hold
# even when a resolver hangs. A stuck lookup keeps its thread, so the pool is bounded.
_RESOLVER = ThreadPoolExecutor(max_workers=8, thread_name_prefix="safe-http-dns")


class FetchError(Exception):
    """Base class of every refusal or failure of :func:`fetch`.

    ``retryable`` tells a caller whether trying the same URL later may succeed (timeouts,
    connection failures) or not (policy refusals, oversize bodies).
    """

    retryable = False


class UnsupportedURL(FetchError):
    """Not an http(s) URL with a host, or it carries credentials."""


class HostNotAllowed(FetchError):
    """The host is not on the allow-list."""


class BlockedAddress(FetchError):
    """The host resolves to a private, loopback or otherwise non-public address."""


class TooLarge(FetchError):
    """The body is larger than ``max_bytes``."""


class TooManyRedirects(FetchError):
    """More than ``max_redirects`` redirects."""


class FetchTimeout(FetchError):
    """A connect, a read or the whole fetch took too long."""

    retryable = True


class FetchFailed(FetchError):
    """DNS, connection, TLS or protocol failure."""

    retryable = True


@dataclass(frozen=True)
class FetchResult:
    """The final (non-redirect) response. Any status is returned: the caller interprets it."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    final_url: str
    content_type: str
    """Media type from Content-Type, lower-cased, without parameters; "" when absent."""


def fetch(
    url: str,
    *,
    allowed_hosts: Collection[str] | None,
    allow_private_hosts: Collection[str],
    max_bytes: int,
    connect_timeout: float,
    read_timeout: float,
    max_redirects: int = 3,
    accept: str | None = None,
    user_agent: str,
    total_timeout: float | None = None,
    ca_bundle: str | None = None,
) -> FetchResult:
    """GET ``url`` under the rules in the module docstring and return the final response.

    ``allowed_hosts`` of None allows any host (the address rules still apply);
    ``allow_private_hosts`` lists hosts (same syntax) that may resolve to non-public addresses,
    e.g. ``{"127.0.0.1"}`` or ``{"localhost"}`` in development. Hosts are compared as written
    in the URL (lower-cased, IDNA-encoded, without a trailing dot), so allowing ``127.0.0.1``
    does not allow ``localhost``, and neither allows ``2130706433``.

    ``total_timeout`` bounds the whole fetch; by default ``connect_timeout + read_timeout``.
    It is checked between reads, so it can be overrun by at most one ``read_timeout``.
    ``ca_bundle`` is a PEM file to trust instead of the default store (test servers, egress CAs);
    a missing file raises OSError, as the configuration error it is.

    Raises a :class:`FetchError` subclass; ``retryable`` says whether a later retry may help.
    """
    deadline = time.monotonic() + (connect_timeout + read_timeout if total_timeout is None else total_timeout)
    headers = {"User-Agent": user_agent, "Accept-Encoding": "gzip, deflate"}
    if accept:
        headers["Accept"] = accept
    for _hop in range(max_redirects + 1):
        response, host = _open(
            url,
            headers=headers,
            allowed_hosts=allowed_hosts,
            allow_private_hosts=allow_private_hosts,
            timeouts=(connect_timeout, read_timeout),
            deadline=deadline,
            ca_bundle=ca_bundle,
        )
        try:
            location = response.headers.get("Location")
            if response.status_code in _REDIRECT_STATUSES and location:
                # Header values arrive as latin-1; UTF-8 is what servers actually send.
                location = location.encode("latin-1").decode("utf-8", errors="replace")
                url = urljoin(url, location).split("#", 1)[0]
                continue
            body = _read_body(response, host=host, max_bytes=max_bytes, deadline=deadline)
            content_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            return FetchResult(
                status=response.status_code,
                headers=response.headers,
                body=body,
                final_url=url,
                content_type=content_type,
            )
        finally:
            response.close()
    raise TooManyRedirects(f"more than {max_redirects} redirects (last hop to {urlsplit(url).hostname})")


def blocked_address_reason(address: str) -> str | None:
    """Why we refuse to connect to ``address`` ("loopback", "private", ...), or None if public.

    IPv6 addresses that embed an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``,
    NAT64 ``64:ff9b::/96``) are judged by the IPv4 address, which is where the packets end up.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return blocked_address_reason(str(embedded))
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("not globally routable", not ip.is_global),
    )
    return next((reason for reason, hit in checks if hit), None)


class _PinnedAdapter(HTTPAdapter):
    """Sends to whatever IP the request URL carries, with TLS SNI and verification for ``hostname``."""

    def __init__(self, hostname: str) -> None:
        self._hostname = hostname
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: str | tuple[str, str] | None = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https":
            # types-requests lists only the keys requests itself sets; urllib3's pools take server_hostname.
            pool_kwargs["server_hostname"] = self._hostname  # type: ignore[typeddict-unknown-key]
        return host_params, pool_kwargs


def _open(
    url: str,
    *,
    headers: dict[str, str],
    allowed_hosts: Collection[str] | None,
    allow_private_hosts: Collection[str],
    timeouts: tuple[float, float],
    deadline: float,
    ca_bundle: str | None,
) -> tuple[requests.Response, str]:
    """Check one hop against every rule and send the request to the vetted address."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsupportedURL("malformed URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsupportedURL(f"only http and https URLs are fetched, not {scheme or 'a relative URL'!r}")
    if parts.username is not None or parts.password is not None:
        raise UnsupportedURL("URLs with credentials are not fetched")
    host = _ascii_host(parts.hostname)
    if allowed_hosts is not None and not host_matches(host, allowed_hosts):
        raise HostNotAllowed(f"host {host} is not allowed")
    port = port or (443 if scheme == "https" else 80)
    ip = _resolve(host, port, deadline, allow_private=host_matches(host, allow_private_hosts))

    netloc_ip = f"[{ip}]" if ":" in ip else ip
    target = f"{scheme}://{netloc_ip}:{port}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
    default_port = port == (443 if scheme == "https" else 80)
    host_header = host if default_port else f"{host}:{port}"
    if ":" in host:
        host_header = f"[{host}]" if default_port else f"[{host}]:{port}"
    try:
        request = requests.Request("GET", target, headers={**headers, "Host": host_header}).prepare()
    except requests.exceptions.InvalidURL:
        raise UnsupportedURL("malformed URL") from None

    # One adapter (and pool) per hop: the pinned address is per hop, and nothing is reused
    # across fetches. Closing the response closes its connection; the pool is then garbage.
    connect_timeout, read_timeout = timeouts
    remaining = _remaining(deadline, host)
    try:
        response = _PinnedAdapter(host).send(
            request,
            stream=True,
            timeout=(min(connect_timeout, remaining), min(read_timeout, remaining)),
            verify=ca_bundle or True,
        )
    except requests.Timeout:
        raise FetchTimeout(f"{host}: timed out") from None
    except requests.RequestException as exc:
        raise FetchFailed(f"{host}: {_describe(exc)}") from None
    return response, host


def _ascii_host(hostname: str | None) -> str:
    if not hostname:
        raise UnsupportedURL("URL has no host")
    host = hostname.rstrip(".")
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError:  # idna.IDNAError is one
        raise UnsupportedURL("URL has an invalid international host name") from None


def _resolve(host: str, port: int, deadline: float, *, allow_private: bool) -> str:
    """Resolve ``host`` once and return the address to connect to, refusing non-public ones.

    Every address is checked (a name that resolves to one public and one private address is
    refused), then the first IPv4 address is preferred, since many servers lack IPv6 routes.
    """
    lookup = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = lookup.result(timeout=_remaining(deadline, host))
    except FutureTimeout:
        raise FetchTimeout(f"{host}: DNS lookup timed out") from None
    except (OSError, UnicodeError) as exc:
        raise FetchFailed(f"{host}: DNS lookup failed ({exc.__class__.__name__})") from None
    addresses = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if not addresses:
        raise FetchFailed(f"{host}: DNS lookup returned no address")
    if not allow_private:
        for address in addresses:
            reason = blocked_address_reason(address)
            if reason:
                where = "is" if address == host else f"resolves to ({address}),"
                raise BlockedAddress(f"{host} {where} a {reason} address")
    return next((a for a in addresses if ":" not in a), addresses[0])


def _read_body(response: requests.Response, *, host: str, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"{host}: body of {declared} bytes exceeds the {max_bytes}-byte limit")
    raw: urllib3.HTTPResponse = response.raw
    body = bytearray()
    try:
        while True:
            _remaining(deadline, host)
            # read1 returns after at most one socket read, so a slow drip cannot outlast the deadline.
            chunk = raw.read1(_CHUNK, decode_content=True)
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > max_bytes:
                raise TooLarge(f"{host}: body exceeds the {max_bytes}-byte limit")
    except urllib3.exceptions.ReadTimeoutError:
        raise FetchTimeout(f"{host}: timed out reading the body") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise FetchFailed(f"{host}: {_describe(exc)}") from None


def _remaining(deadline: float, host: str) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchTimeout(f"{host}: the fetch took longer than allowed")
    return remaining


def _describe(exc: BaseException) -> str:
    """The root cause's class and OS/TLS message, without the URL that requests and urllib3
    put into their own messages (the query may hold signatures)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and not isinstance(cause, requests.RequestException):
            detail = cause.strerror or (str(cause.args[0]) if cause.args else "")
            if detail and "://" not in detail and "url:" not in detail:
                return f"{cause.__class__.__name__}: {detail}"
        nested = getattr(cause, "reason", None)
        if not isinstance(nested, BaseException):
            nested = next((a for a in cause.args if isinstance(a, BaseException)), None)
        cause = nested or cause.__cause__ or cause.__context__
    return exc.__class__.__name__
