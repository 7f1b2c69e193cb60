"""Fetching Client ID Metadata Documents with the project's SSRF-hardened HTTP client.

DOT resolves a ``https://`` client_id by calling the fetcher named in ``CIMD_METADATA_FETCHER``;
this one applies the same rules as every other outbound fetch in Avtrz (``avtrz.lib.safe_http``:
pinned, public-only addresses unless allow-listed in ``AVTRZ_FETCH_ALLOW_PRIVATE``, timeouts,
size cap) instead of DOT's own, which has no allow-list, and refuses documents whose redirect
URIs break our registration policy.

DOT turns any failure into "unknown client" and backs the URL off for a while, so the person on
the authorization page would only learn that the client is invalid. The fetcher therefore checks
everything DOT checks after it (the document's own ``client_id``, public client, redirect URIs,
grant types) itself, and remembers why a document was refused, in plain words and without our
internals (no addresses it resolved to, no exception text), for as long as DOT's backoff lasts:
``failure_reason`` gives it to the error page.
"""

from __future__ import annotations

import hashlib
import json
from http import HTTPStatus
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from oauth2_provider.cimd import CIMDError
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.validators import AllowedURIValidator

from accounts import dot
from accounts.oauth import redirect_uri_problem
from accounts.redirects import malformed
from avtrz.lib import safe_http


USER_AGENT = "Avtrz-OAuth/1.0 (client metadata fetcher)"
_FAILURE_PREFIX = "avtrz:cimd:failure:"
# Quoted values from the document are cut to this length on the page.
_SHOWN = 120


class CIMDProblem(CIMDError):
    """A refused document: ``reason`` is for the person authorizing, the message for the log."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason


def failure_reason(client_id: str) -> str | None:
    """Why the document at ``client_id`` was last refused, while DOT still treats it as unknown."""
    return cache.get(_failure_key(client_id))


def _failure_key(client_id: str) -> str:
    return _FAILURE_PREFIX + hashlib.sha256(client_id.encode("utf-8", "surrogatepass")).hexdigest()


def _shown(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


class SafeHTTPMetadataFetcher:
    def fetch(self, client_id: str) -> tuple[dict, int]:
        try:
            metadata, max_age = self._fetch(client_id)
            self._check(client_id, metadata)
        except CIMDProblem as problem:
            # A little longer than DOT's backoff, which starts just after this: while it lasts,
            # DOT answers "unknown client" without calling us, and the page still knows why.
            cache.set(_failure_key(client_id), problem.reason, oauth2_settings.CIMD_FAILURE_BACKOFF_SECONDS + 5)
            raise
        cache.delete(_failure_key(client_id))
        return metadata, max_age

    def _fetch(self, client_id: str) -> tuple[dict, int]:
        # DOT's URL rules (https, a path, no userinfo, fragment or dot segments) are the spec's.
        try:
            dot.validate_cimd_client_id(client_id)
        except CIMDError as exc:
            raise CIMDProblem(
                f"The app's client ID is not a valid address for a client metadata document: {exc}."
            ) from exc
        except ValueError as exc:
            raise CIMDProblem("The app's client ID is not a valid address.", f"malformed client_id URL: {exc}") from exc
        host = urlsplit(client_id).hostname
        assert host is not None  # validate_cimd_client_id refuses a client_id without a host
        try:
            result = safe_http.fetch(
                client_id,
                allowed_hosts=None,
                allow_private_hosts=settings.AVTRZ_FETCH_ALLOW_PRIVATE,
                max_bytes=oauth2_settings.CIMD_MAX_DOCUMENT_SIZE,
                connect_timeout=settings.AVTRZ_FETCH_CONNECT_TIMEOUT_S,
                read_timeout=settings.AVTRZ_FETCH_READ_TIMEOUT_S,
                total_timeout=oauth2_settings.CIMD_FETCH_TIMEOUT_SECONDS,
                # The document must live at the client_id URL itself.
                max_redirects=0,
                accept="application/json",
                user_agent=USER_AGENT,
                ca_bundle=settings.OAUTH_CIMD_CA_BUNDLE or None,
            )
        except safe_http.FetchError as exc:
            raise CIMDProblem(_fetch_failure(host, exc), f"could not fetch client_id document: {exc}") from exc
        if result.status != 200:
            try:
                phrase = f" ({HTTPStatus(result.status).phrase})"
            except ValueError:
                phrase = ""
            raise CIMDProblem(
                f"{host} answered HTTP {result.status}{phrase} instead of sending the document.",
                f"client_id document returned HTTP {result.status}",
            )
        if result.content_type != "application/json" and not (
            result.content_type.startswith("application/") and result.content_type.endswith("+json")
        ):
            served = _shown(result.content_type) if result.content_type else "no content type"
            raise CIMDProblem(
                f"The document is not JSON: {host} served it as {served}.",
                f"client_id document is not JSON ({result.content_type or 'no content type'})",
            )
        try:
            metadata = json.loads(result.body)
        except (ValueError, RecursionError) as exc:
            raise CIMDProblem("The document is not valid JSON.", "client_id document is not valid JSON") from exc
        if not isinstance(metadata, dict):
            raise CIMDProblem(
                "The document is JSON, but not an object of client metadata.",
                "client_id document must be a JSON object",
            )
        return metadata, dot.cimd_max_age(result.headers.get("Cache-Control"))

    def _check(self, client_id: str, metadata: dict) -> None:
        """What DOT checks after the fetch, and our redirect URI policy, each with its reason."""
        if metadata.get("client_id") != client_id:
            found = metadata.get("client_id")
            said = f'says its client_id is "{_shown(found)}"' if found is not None else "has no client_id"
            raise CIMDProblem(
                f"The document {said}, but it must be exactly the address it was fetched from.",
                "document client_id does not match the client_id URL",
            )
        if "client_secret" in metadata or "client_secret_expires_at" in metadata:
            raise CIMDProblem("The document contains a client secret; a client metadata document must not.")
        method = metadata.get("token_endpoint_auth_method", "none")
        if method != "none":
            raise CIMDProblem(
                f'The document asks for token_endpoint_auth_method "{_shown(method)}"; an app identified by '
                'its metadata document has no secret, so it must be "none".'
            )
        if not isinstance(metadata.get("client_name", ""), str):
            raise CIMDProblem("The document's client_name is not text.")
        uris = metadata.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(isinstance(uri, str) for uri in uris):
            raise CIMDProblem("The document lists no redirect URIs (redirect_uris must be a list of addresses).")
        validator = AllowedURIValidator(
            {scheme.lower() for scheme in oauth2_settings.ALLOWED_REDIRECT_URI_SCHEMES},
            name="redirect uri",
            allow_path=True,
            allow_query=True,
        )
        for uri in uris:
            if malformed(uri):
                raise CIMDProblem(f'The document lists "{_shown(uri)}", which is not a valid redirect URI.')
            try:
                validator(uri)
            except ValidationError as exc:
                raise CIMDProblem(
                    f'The document lists "{_shown(uri)}", which Avtrz does not accept as a redirect URI.'
                ) from exc
            problem = redirect_uri_problem(uri)
            if problem:
                raise CIMDProblem(
                    f'The document lists "{_shown(uri)}": plain http is only accepted for addresses on your own '
                    "computer (localhost, 127.0.0.1); any other redirect URI must use https.",
                    problem,
                )
        grant_types = metadata.get("grant_types", ["authorization_code"])
        try:
            if not isinstance(grant_types, list) or not all(isinstance(grant, str) for grant in grant_types):
                raise CIMDError("grant_types must be a list of strings")
            dot.check_cimd_grant_types(grant_types)
        except CIMDError as exc:
            raise CIMDProblem(
                "The document's grant_types must be authorization_code (and may add refresh_token).", str(exc)
            ) from exc
        # Anything DOT refuses that the checks above missed still gets a plain, if vaguer, reason.
        try:
            dot.check_cimd_application(metadata)
        except CIMDError as exc:
            raise CIMDProblem(f"The document is not valid client metadata: {exc}.") from exc


def _fetch_failure(host: str, exc: safe_http.FetchError) -> str:
    """What went wrong fetching from ``host``, for a person: never the addresses it resolved to."""
    message = str(exc)
    if isinstance(exc, safe_http.BlockedAddress):
        return f"{host} is not on the public internet, so Avtrz does not fetch from it."
    if isinstance(exc, safe_http.TooManyRedirects):
        return (
            f"{host} redirects the document elsewhere; it must be served at the client ID address itself, "
            "without a redirect."
        )
    if isinstance(exc, safe_http.TooLarge):
        return f"The document is larger than the {oauth2_settings.CIMD_MAX_DOCUMENT_SIZE // 1024} KB Avtrz accepts."
    if isinstance(exc, safe_http.FetchTimeout):
        return f"{host} did not answer in time (the host is unreachable or too slow)."
    if isinstance(exc, safe_http.FetchFailed):
        if "DNS lookup" in message:
            return f"Avtrz could not find the host {host} (its name does not resolve)."
        if "SSL" in message or "certificate" in message.lower():
            return f"{host} did not present a valid HTTPS certificate."
        return f"Avtrz could not connect to {host} (the host is unreachable or refused the connection)."
    return "The app's client ID is not an address Avtrz can fetch."
