"""Our request validator: DOT's, plus workspace binding, audience binding and offline access."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors

from accounts import connections
from accounts.models import Connection
from accounts.oauth import OFFLINE_SCOPE, bind_resource, mcp_resource_url


class AvtrzOAuth2Validator(OAuth2Validator):
    def save_authorization_code(self, client_id, code, request, *args, **kwargs):
        with transaction.atomic():
            super().save_authorization_code(client_id, code, request, *args, **kwargs)

    def _create_authorization_code(self, request, code, expires=None):
        # The consent view passes the chosen workspace along with the user; every grant records one.
        workspace = getattr(request, "workspace", None)
        if workspace is None:
            raise errors.AccessDeniedError(description="No workspace was chosen for this connection.", request=request)
        request.resource = bind_resource(getattr(request, "resource", None), request)
        grant = super()._create_authorization_code(request, code, expires)
        connections.record_consent(grant=grant, workspace=workspace)
        return grant

    def _check_and_set_request_resource(self, request):
        # Clients spell our resource in several ways (trailing slash, upper-case host); the token
        # request is compared in canonical form, so DOT's narrowing check sees the grant's value.
        # oauthlib keeps only the last of repeated body parameters; RFC 8707 allows repeats.
        values = [value for key, value in (request.decoded_body or []) if key == "resource"]
        if values:
            bind_resource(values, request)
            request.resource = [mcp_resource_url()]
        super()._check_and_set_request_resource(request)

    def _save_bearer_token(self, token, request, *args, **kwargs):
        if OFFLINE_SCOPE not in token.get("scope", "").split():
            # Refresh tokens are the "stay connected" the user may switch off on the consent screen.
            token.pop("refresh_token", None)
        # Resolved before DOT rotates: rotation revokes the refresh token this is read from.
        request.connection = self._connection_for(request)
        super()._save_bearer_token(token, request, *args, **kwargs)
        Connection.objects.filter(pk=request.connection.pk).update(last_used_at=timezone.now())

    def _connection_for(self, request) -> Connection:
        if request.grant_type == "authorization_code":
            connection = connections.connection_for_grant(request.code, request.client)
        elif request.grant_type == "refresh_token":
            link = getattr(request.refresh_token_instance, "connection_link", None)
            connection = link.connection if link else None
        else:
            connection = None
        if connection is None or not connection.is_active:
            raise errors.InvalidGrantError(request=request)
        return connection

    def _create_access_token(self, expires, request, token, source_refresh_token=None):
        access_token = super()._create_access_token(expires, request, token, source_refresh_token)
        connections.link_token(request.connection, access_token=access_token)
        return access_token

    def _create_refresh_token(self, request, refresh_token_code, access_token, previous_refresh_token):
        refresh_token = super()._create_refresh_token(request, refresh_token_code, access_token, previous_refresh_token)
        connections.link_token(request.connection, refresh_token=refresh_token)
        return refresh_token

    def get_additional_claims(self, request):
        # Filtered by DOT against the granted scopes (profile → name, email → email).
        return {"name": request.user.get_full_name(), "email": request.user.email}
