"""Client authentication at the token, revocation and introspection endpoints (and ``/token``).

Wrapped around DOT's check by ``AvtrzOAuth2Validator.authenticate_client``:

- **Failures are limited.** A failed client authentication counts against the client id it named
  (``OAUTH_CLIENT_AUTH_FAILURE_LIMIT`` per ``OAUTH_CLIENT_AUTH_FAILURE_WINDOW_S``) and, when that
  client exists and so a secret was checked, against the caller's address (``..._ADDRESS_LIMIT``).
  Unknown client ids cost no hashing, and hosted connectors (Claude's) send many users' clients from
  a few shared addresses, where a handful of stale or deleted clients must not hold off everyone
  else's refreshes. Past either limit the endpoint answers ``429`` with
  ``Retry-After`` and ``{"error": "too_many_requests"}`` before looking at the secret, until the window
  ends; a right secret gets the same answer meanwhile, so a blocked caller learns nothing. Only
  failures count. The counters live in the cache and fail open when Redis is away (``avtrz.lib.throttle``).
  The per-client limit means someone who knows a confidential client's id can hold it off for a window
  by failing on purpose; with secrets of 128 random characters guessing is hopeless anyway, and the
  per-address limit alone would let a botnet spread its attempts over one client.
- **Secrets stored the old way are upgraded.** After a successful check, a secret whose digest is not
  the current ``CLIENT_SECRET_HASHER``'s (PBKDF2, from before ``accounts.hashers``) or was made with a
  key now in ``SECRET_KEY_FALLBACKS`` is re-hashed with the current hasher and key.
"""

from __future__ import annotations

import functools
import hashlib

from django.conf import settings
from django.contrib.auth.hashers import get_hasher, identify_hasher, make_password
from django.http import HttpRequest, HttpResponse, JsonResponse
from oauth2_provider.models import AbstractApplication, get_application_model
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

from accounts import dot
from avtrz.lib import throttle


CLIENT_SCOPE = "oauth-client-auth"
ADDRESS_SCOPE = "oauth-client-auth-ip"


class ClientAuthenticationThrottled(errors.OAuth2Error):
    """Too many failed client authentications; oauthlib renders it as the endpoint's error response."""

    error = "too_many_requests"
    status_code = 429

    def __init__(self, retry_after: int, request=None) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(
            description=f"Too many failed client authentications. Try again in {self.retry_after} seconds.",
            request=request,
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def authenticate(validator, request) -> bool:
    """DOT's client authentication (HTTP Basic first, then the body), limited and upgrading."""
    client_id = _presented_client_id(validator, request)
    # Without a client id nothing was tried (introspection falls back to a bearer token then).
    limits = _limits(client_id, request) if client_id else []
    for scope, ident, limit in limits:
        window = throttle.peek(scope, ident, settings.OAUTH_CLIENT_AUTH_FAILURE_WINDOW_S)
        if window.count >= limit:
            raise ClientAuthenticationThrottled(window.retry_after, request=request)

    if dot.authenticate_client_basic(validator, request):
        secret = (dot.basic_auth_credentials(validator, request) or ("", ""))[1]
    elif dot.authenticate_client_body(validator, request):
        secret = getattr(request, "client_secret", "") or ""
    else:
        # DOT drops request.client when the body attempt follows a failed Basic one: ask the database.
        checked = get_application_model().objects.filter(client_id=client_id).exists()
        for scope, ident, _limit in limits:
            if checked or scope == CLIENT_SCOPE:
                throttle.hit(scope, ident, settings.OAUTH_CLIENT_AUTH_FAILURE_WINDOW_S)
        return False
    upgrade_stored_secret(request.client, secret)
    return True


def upgrade_stored_secret(client: AbstractApplication, secret: str) -> bool:
    """Re-hash a confidential client's verified ``secret`` if its digest is not the current hasher's
    with the current key. Returns whether it did."""
    stored = client.client_secret
    if client.client_type != AbstractApplication.CLIENT_CONFIDENTIAL or not client.hash_client_secret or not secret:
        return False
    try:
        current = identify_hasher(stored)
    except ValueError:
        return False  # stored in clear on purpose (hash_client_secret off)
    preferred = get_hasher(oauth2_settings.CLIENT_SECRET_HASHER)
    if current.algorithm == preferred.algorithm and not preferred.must_update(stored):
        return False
    digest = make_password(secret, hasher=oauth2_settings.CLIENT_SECRET_HASHER)
    # Conditional: of two requests upgrading at once, one writes; both digests would verify anyway.
    type(client).objects.filter(pk=client.pk, client_secret=stored).update(client_secret=digest)
    client.client_secret = digest
    return True


def throttled_response(exc: ClientAuthenticationThrottled) -> HttpResponse:
    """The 429 for endpoints where DOT calls the validator outside oauthlib's error handling
    (introspection authenticates the client in the view's ``dispatch``)."""
    response = JsonResponse({"error": exc.error, "error_description": exc.description}, status=exc.status_code)
    response["Retry-After"] = str(exc.retry_after)
    response["Cache-Control"] = "no-store"
    return response


def limited(view):
    """Wrap an OAuth endpoint view so a throttled client authentication is a 429 wherever it is raised."""

    @functools.wraps(view)  # keeps csrf_exempt and view_class
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ClientAuthenticationThrottled as exc:
            return throttled_response(exc)

    return wrapper


def _limits(client_id: str, request) -> list[tuple[str, str, int]]:
    # Client ids can be long URLs (CIMD); a digest keeps the cache key short.
    ident = hashlib.sha256(client_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return [
        (ADDRESS_SCOPE, _address(request), settings.OAUTH_CLIENT_AUTH_FAILURE_ADDRESS_LIMIT),
        (CLIENT_SCOPE, ident, settings.OAUTH_CLIENT_AUTH_FAILURE_LIMIT),
    ]


def _address(request) -> str:
    # oauthlib's request carries Django's META as its headers (OAuthLibCore.extract_headers).
    return (request.headers or {}).get("REMOTE_ADDR", "") or "unknown"


def _presented_client_id(validator, request) -> str:
    basic = dot.basic_auth_credentials(validator, request)
    if basic is not None:
        return basic[0]
    return getattr(request, "client_id", None) or ""
