"""Fetching Client ID Metadata Documents with the project's SSRF-hardened HTTP client.

DOT resolves a ``https://`` client_id by calling the fetcher named in ``CIMD_METADATA_FETCHER``;
this one applies the same rules as every other outbound fetch in Avtrz (``avtrz.avatars.safe_http``:
pinned, public-only addresses unless allow-listed in ``AVTRZ_FETCH_ALLOW_PRIVATE``, timeouts,
size cap) instead of DOT's own, which has no allow-list, and refuses documents whose redirect
URIs break our registration policy.
"""

from __future__ import annotations

import json

from django.conf import settings
from oauth2_provider.cimd import CIMDError, _effective_max_age, _validate_client_id_url
from oauth2_provider.settings import oauth2_settings

from accounts.oauth import redirect_uri_problem
from avtrz.avatars import safe_http


USER_AGENT = "Avtrz-OAuth/1.0 (client metadata fetcher)"


class SafeHTTPMetadataFetcher:
    def fetch(self, client_id: str) -> tuple[dict, int]:
        # DOT's URL rules (https, a path, no userinfo, fragment or dot segments) are the spec's.
        _validate_client_id_url(client_id)
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
            raise CIMDError(f"could not fetch client_id document: {exc}") from exc
        if result.status != 200:
            raise CIMDError(f"client_id document returned HTTP {result.status}")
        if result.content_type != "application/json" and not (
            result.content_type.startswith("application/") and result.content_type.endswith("+json")
        ):
            raise CIMDError(f"client_id document is not JSON ({result.content_type or 'no content type'})")
        try:
            metadata = json.loads(result.body)
        except ValueError as exc:
            raise CIMDError("client_id document is not valid JSON") from exc
        if not isinstance(metadata, dict):
            raise CIMDError("client_id document must be a JSON object")
        redirect_uris = metadata.get("redirect_uris")
        for uri in redirect_uris if isinstance(redirect_uris, list) else []:
            problem = isinstance(uri, str) and redirect_uri_problem(uri)
            if problem:
                raise CIMDError(problem)
        return metadata, _effective_max_age(result.headers.get("Cache-Control"))
