"""Our request validator: DOT's, plus workspace binding, audience binding and offline access.

DOT's private hooks are extended through the public names ``accounts.dot.OAuth2ValidatorHooks``
gives them (``check_and_set_resource``, ``store_bearer_token``, ``create_access_token``,
``create_refresh_token``); the grant is extended through DOT's public ``save_authorization_code``.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_grant_model, get_refresh_token_model
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

from accounts import client_auth, connections, dot
from accounts.models import Connection
from accounts.oauth import OFFLINE_SCOPE, bind_resource, mcp_resource_url
from accounts.redirects import redirect_uri_allowed


logger = logging.getLogger(__name__)

AccessToken = get_access_token_model()
Grant = get_grant_model()
RefreshToken = get_refresh_token_model()


class AvtrzOAuth2Validator(dot.OAuth2ValidatorHooks):
    def save_authorization_code(self, client_id, code, request, *args, **kwargs):
        # The consent view passes the chosen workspace along with the user; every grant records one.
        workspace = getattr(request, "workspace", None)
        if workspace is None:
            raise errors.AccessDeniedError(description="No workspace was chosen for this connection.", request=request)
        # DOT records request.resource as the grant's audience.
        request.resource = bind_resource(getattr(request, "resource", None), request)
        with transaction.atomic():
            super().save_authorization_code(client_id, code, request, *args, **kwargs)
            grant = Grant.objects.get(code=code["code"], application=request.client)
            connections.record_consent(grant=grant, workspace=workspace)

    def check_and_set_resource(self, request):
        # Clients spell our resource in several ways (trailing slash, upper-case host); the token
        # request is compared in canonical form, so DOT's narrowing check sees the grant's value.
        # oauthlib keeps only the last of repeated body parameters; RFC 8707 allows repeats.
        values = [value for key, value in (request.decoded_body or []) if key == "resource"]
        if values:
            bind_resource(values, request)
            request.resource = [mcp_resource_url()]
        super().check_and_set_resource(request)

    def store_bearer_token(self, token, request, *args, **kwargs):
        if OFFLINE_SCOPE not in token.get("scope", "").split():
            # Refresh tokens are the "stay connected" the user may switch off on the consent screen.
            token.pop("refresh_token", None)
        # Resolved before DOT rotates: rotation revokes the refresh token this is read from.
        request.connection = self._connection_for(request)
        superseded = self._superseded_refresh_token(request)
        if superseded is not None and "refresh_token" in token:
            self._issue_after_rotation(token, request, superseded)
        else:
            super().store_bearer_token(token, request, *args, **kwargs)
        Connection.objects.filter(pk=request.connection.pk).update(last_used_at=timezone.now())

    def _superseded_refresh_token(self, request):
        """The presented refresh token, locked, if a rotation already superseded it; else None.

        DOT let it through ``validate_refresh_token`` because it was rotated less than the grace
        period ago (a client retrying a lost response, or parallel tool calls refreshing with the
        same token), or because a parallel rotation committed after that check: the lock waits
        for it. Either way this request must not simply fail.
        """
        if request.grant_type != "refresh_token":
            return None
        presented = RefreshToken.objects.select_for_update().get(pk=dot.presented_refresh_token(request).pk)
        return presented if presented.revoked is not None else None

    def _issue_after_rotation(self, token, request, superseded) -> None:
        """Answer a refresh with a token its rotation already superseded: a new pair in the same family.

        DOT's grace period would hand back the pair the rotation issued, which needs the tokens in
        clear; we store only their digests. A second pair serves the retry or the parallel call as
        well, and stays in the family, so a replay after the grace period still revokes them all.
        A token revoked on purpose (the connection revoked, RFC 7009) was never used to mint a
        successor and is refused, as DOT refuses it.
        """
        if not AccessToken.objects.filter(source_refresh_token=superseded).exists():
            raise errors.InvalidGrantError(request=request)
        self.check_and_set_resource(request)
        expires = timezone.now() + timedelta(
            seconds=token.get("expires_in", oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS)
        )
        # The superseded token's one successor slot is taken: this access token has no source.
        access_token = self.create_access_token(expires, request, token)
        self.create_refresh_token(request, token["refresh_token"], access_token, superseded)

    def _connection_for(self, request) -> Connection:
        if request.grant_type == "authorization_code":
            connection = connections.connection_for_grant(request.code, request.client)
        elif request.grant_type == "refresh_token":
            link = getattr(dot.presented_refresh_token(request), "connection_link", None)
            connection = link.connection if link else None
        else:
            connection = None
        if connection is None or not connection.is_active:
            raise errors.InvalidGrantError(request=request)
        return connection

    def create_access_token(self, expires, request, token, source_refresh_token=None):
        access_token = super().create_access_token(expires, request, token, source_refresh_token)
        connections.link_token(request.connection, access_token=access_token, code_digest=_code_digest(request))
        return access_token

    def create_refresh_token(self, request, refresh_token_code, access_token, previous_refresh_token):
        refresh_token = super().create_refresh_token(request, refresh_token_code, access_token, previous_refresh_token)
        connections.link_token(request.connection, refresh_token=refresh_token, code_digest=_code_digest(request))
        return refresh_token

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        if not super().validate_refresh_token(refresh_token, client, request, *args, **kwargs):
            return False
        # DOT checks the token alone. A deactivated user, or one no longer a member of the workspace
        # the connection acts for, must not mint access tokens (refused as invalid_grant), even where
        # nothing revoked the refresh token (deactivation does not; an SQL console would not).
        link = getattr(dot.presented_refresh_token(request), "connection_link", None)
        return link is not None and connections.may_act_for(request.user, link.connection)

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        if super().validate_code(client_id, code, client, request, *args, **kwargs):
            # DOT checks the code alone. Its user may have been deactivated in the minute since consent
            # (leaving the workspace revokes the connection itself): no tokens that are dead on arrival.
            connection = connections.connection_for_grant(code, client)
            return connection is not None and connections.may_act_for(request.user, connection)
        # A redeemed code is deleted, so a second use lands here: whoever holds it may have
        # intercepted it, and the tokens of its first use are revoked (RFC 6749 §4.1.2).
        revoked = connections.revoke_tokens_from_code(_digest(code))
        if revoked:
            logger.warning("Authorization code replayed by client %s: revoked %d token(s)", client_id, revoked)
        return False

    def validate_redirect_uri(self, client_id, redirect_uri, request, *args, **kwargs):
        # DOT's exact match, plus loopback URIs across loopback names (see accounts.redirects).
        return redirect_uri_allowed(request.client, redirect_uri)

    def get_additional_claims(self, request):
        # Filtered by DOT against the granted scopes (profile → name, email → email).
        return {"name": request.user.get_full_name(), "email": request.user.email}

    def authenticate_client(self, request, *args, **kwargs):
        # DOT's check, with failures limited per client and per address (429 past the limit) and
        # secrets stored with an older hasher or key re-hashed once they verify.
        return client_auth.authenticate(self, request)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _code_digest(request) -> str:
    """The digest of the code a token request redeems; blank for a refresh (the family carries it)."""
    return _digest(request.code) if request.grant_type == "authorization_code" else ""
