import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application

from accounts.models import Connection, ConnectionLink
from accounts.oauth import mcp_resource_url
from avtrz.avatars.directory import import_profile


CLAUDE = "https://claude.ai/api/mcp/auth_callback"
IMAGES = Path(__file__).resolve().parent.parent / "fixtures" / "images"
DEMO_PROFILE = {"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "face.jpg"}


@pytest.fixture
def eileen(db):
    """A profile in the directory with a photo, so /v1/avatar answers it without fetching anything."""
    return import_profile(DEMO_PROFILE, base_dir=IMAGES)


@pytest.fixture
def make_connection(db):
    """An AI connection as the consent screen leaves it: a client, the connection, and a live access
    token linked to it. Returns (connection, the access token in clear)."""

    def _make(user, workspace, *, redirect_uri=CLAUDE, name="claudeai", scope="openid profile offline_access"):
        application = Application.objects.create(
            name=name,
            client_type=Application.CLIENT_PUBLIC,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=redirect_uri,
            client_secret="",
        )
        connection = Connection.objects.create(
            user=user, workspace=workspace, application=application, scope=scope, redirect_uri=redirect_uri
        )
        token = AccessToken.objects.create(
            user=user,
            application=application,
            token=secrets.token_urlsafe(32),
            expires=timezone.now() + timedelta(hours=1),
            scope=scope,
            resource=[mcp_resource_url()],
        )
        ConnectionLink.objects.create(connection=connection, access_token=token)
        return connection, token.token

    return _make
