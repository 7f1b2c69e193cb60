"""The one door to django-oauth-toolkit's private API: every underscore name of DOT we use, and the
one attribute DOT keeps on an oauthlib request for itself that we read, are used here and only here.

Read from django-oauth-toolkit 3.4.1 (oauthlib 3.3.1). DOT's public settings, views, mixins and
validator methods are used directly everywhere else; what they cannot do is done here, each use
with what it relies on, and ``tests/oauth/test_dot_adapter.py`` holds one test per use that
exercises DOT's real behaviour and names the function below when it changes. Upgrading DOT: run
that file first, re-read each function's DOT source, then move ``DOT_VERSION`` on.

Nothing else in the project names a DOT underscore name (the adapter tests check it): the views, the
validator, the client authentication and the CIMD fetcher call these functions, and
``AvtrzOAuth2Validator`` extends DOT's private validator hooks through the public names that
``OAuth2ValidatorHooks`` gives them.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import unquote_plus

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from oauth2_provider import cimd as dot_cimd
from oauth2_provider.oauth2_backends import _add_iss_to_redirect
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.views.dynamic_client_registration import _parse_metadata


DOT_VERSION = "3.4.1"


# ---------------------------------------------------------------- authorization endpoint


def add_iss_to_redirect(uri: str, issuer: str) -> str:
    """``uri`` with the RFC 9207 ``iss`` parameter set to ``issuer``, exactly as DOT sets it on the
    successful authorization responses (``OAuthLibCore.create_authorization_response``).

    Relies on ``oauth2_backends._add_iss_to_redirect``: any ``iss`` already in the query or the
    fragment is dropped and one is appended to the query (to the fragment when there is one).
    """
    return _add_iss_to_redirect(uri, issuer)


# ---------------------------------------------------------------- dynamic client registration


def parse_registration_metadata(body: bytes) -> tuple[dict | None, JsonResponse | None]:
    """The registration request's JSON object as DOT's RFC 7591/7592 views parse it, or DOT's
    ``400 invalid_client_metadata`` refusal of it: ``(metadata, None)`` or ``(None, response)``.

    Relies on ``views.dynamic_client_registration._parse_metadata``, which both views call on
    ``request.body``; a body nested too deeply for ``json`` raises ``RecursionError`` through it.
    """
    return _parse_metadata(body)


def replace_registration_body(request: HttpRequest, metadata: dict) -> None:
    """Make DOT's registration views register ``metadata`` instead of the body the client sent.

    Relies on DOT's views reading the metadata from ``request.body`` only (never ``request.POST``
    or the stream), and on Django's ``HttpRequest.body`` returning its cached ``_body``.
    """
    request._body = json.dumps(metadata).encode()


# ---------------------------------------------------------------- client metadata documents (CIMD)


def validate_cimd_client_id(client_id: str) -> None:
    """Refuse, with ``oauth2_provider.cimd.CIMDError``, a client_id URL the CIMD draft forbids
    (not https, no host or path, userinfo, a fragment, dot segments, an invalid port).

    Relies on ``cimd._validate_client_id_url``, DOT's own first check of every CIMD client_id.
    """
    dot_cimd._validate_client_id_url(client_id)


def cimd_max_age(cache_control: str | None) -> int:
    """How long DOT keeps a fetched document, in seconds, for its ``Cache-Control`` header: its
    ``max-age``, the ``CIMD_METADATA_MIN_AGE_SECONDS`` floor for ``no-store``/``no-cache``, else
    the ``CIMD_METADATA_MAX_AGE_SECONDS`` ceiling, always clamped between the two.

    Relies on ``cimd._effective_max_age``, which DOT's own fetcher returns with the document.
    """
    return dot_cimd._effective_max_age(cache_control)


def check_cimd_grant_types(grant_types: list[str]) -> None:
    """Refuse, with ``CIMDError``, grant types DOT will not register for a CIMD client: exactly
    one besides ``refresh_token``, and that one ``authorization_code`` or ``implicit``.

    Relies on ``cimd._resolve_grant_type``, which DOT applies after the fetch.
    """
    dot_cimd._resolve_grant_type(grant_types)


def check_cimd_application(metadata: dict) -> None:
    """Refuse, with ``CIMDError``, a document DOT would not turn into a public Application.

    Relies on ``cimd._build_application_kwargs``, which DOT applies after the fetch (public
    client, no secret, redirect URIs and grant types as lists of strings, text client_name).
    """
    dot_cimd._build_application_kwargs(metadata)


# ---------------------------------------------------------------- client authentication


def basic_auth_credentials(validator: OAuth2Validator, request) -> tuple[str, str] | None:
    """``(client_id, secret)`` from the token request's HTTP Basic header, decoded as DOT decodes
    it (base64, the request's encoding, ``application/x-www-form-urlencoded`` halves); None when
    there is no Basic header or it does not decode.

    Relies on ``OAuth2Validator._extract_basic_auth`` finding the header, and on
    ``_authenticate_basic_auth`` decoding it this way, so the client id we count failures
    against is the one DOT checked.
    """
    auth = validator._extract_basic_auth(request)
    if not auth:
        return None
    try:
        decoded = base64.b64decode(auth).decode(getattr(request, "encoding", None) or settings.DEFAULT_CHARSET)
        client_id, secret = map(unquote_plus, decoded.split(":", 1))
    except (TypeError, ValueError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    return client_id, secret


def authenticate_client_basic(validator: OAuth2Validator, request) -> bool:
    """DOT's HTTP Basic client authentication (the first half of ``authenticate_client``); on
    success ``request.client`` is the Application.

    Relies on ``OAuth2Validator._authenticate_basic_auth``.
    """
    return validator._authenticate_basic_auth(request)


def authenticate_client_body(validator: OAuth2Validator, request) -> bool:
    """DOT's client authentication by ``client_id``/``client_secret`` body parameters (the second
    half of ``authenticate_client``); on success ``request.client`` is the Application.

    Relies on ``OAuth2Validator._authenticate_request_body``.
    """
    return validator._authenticate_request_body(request)


# ---------------------------------------------------------------- the request validator's hooks


def presented_refresh_token(request):
    """The RefreshToken row a refresh request presented, as DOT's ``validate_refresh_token`` loaded
    it before the token is saved; None for other grants.

    Relies on ``validate_refresh_token`` keeping it on ``request.refresh_token_instance``: the live
    row, or a row a rotation revoked less than ``REFRESH_TOKEN_GRACE_PERIOD_SECONDS`` ago (DOT's
    check E001, silenced in settings, warns that hashed token storage cannot hand back the pair
    such a rotation issued; ``AvtrzOAuth2Validator`` issues a new pair instead).
    """
    return getattr(request, "refresh_token_instance", None)


class OAuth2ValidatorHooks(OAuth2Validator):
    """DOT's request validator with the private methods we extend under public names.

    DOT's public entry points do their work through private methods (its docstring for
    ``save_bearer_token`` says to override ``_save_bearer_token``). Each is routed here to a public
    method of the same signature, which a subclass overrides and extends with ``super()``:

    - ``check_and_set_resource``: ``_check_and_set_request_resource``, called first thing by
      ``_save_bearer_token``; normalises ``request.resource`` to a list and refuses a resource
      beyond the grant's or the refresh token's (``invalid_target``).
    - ``store_bearer_token``: ``_save_bearer_token``, called by ``save_bearer_token`` inside a
      transaction on the token database; saves the pair, rotating a presented refresh token.
    - ``create_access_token`` and ``create_refresh_token``: ``_create_access_token`` and
      ``_create_refresh_token``, called by ``_save_bearer_token``; save and return one token. A
      refresh token created with a ``previous_refresh_token`` joins its ``token_family``.

    The authorization code needs no hook: DOT's public ``save_authorization_code`` saves the Grant
    under ``code["code"]`` with ``request.resource`` as its audience, and is extended as it is.
    """

    def _check_and_set_request_resource(self, request):
        return self.check_and_set_resource(request)

    def check_and_set_resource(self, request):
        return super()._check_and_set_request_resource(request)

    def _save_bearer_token(self, token, request, *args, **kwargs):
        return self.store_bearer_token(token, request, *args, **kwargs)

    def store_bearer_token(self, token, request, *args, **kwargs):
        return super()._save_bearer_token(token, request, *args, **kwargs)

    def _create_access_token(self, expires, request, token, source_refresh_token=None):
        return self.create_access_token(expires, request, token, source_refresh_token)

    def create_access_token(self, expires, request, token, source_refresh_token=None):
        return super()._create_access_token(expires, request, token, source_refresh_token)

    def _create_refresh_token(self, request, refresh_token_code, access_token, previous_refresh_token):
        return self.create_refresh_token(request, refresh_token_code, access_token, previous_refresh_token)

    def create_refresh_token(self, request, refresh_token_code, access_token, previous_refresh_token):
        return super()._create_refresh_token(request, refresh_token_code, access_token, previous_refresh_token)
