"""Access and refresh tokens are stored as digests only, including the ones issued before."""

import hashlib
import secrets
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from accounts.connections import workspace_for_access_token
from accounts.oauth import mcp_resource_url


BEFORE = [("accounts", "0003_connection_redirect_uri"), ("oauth2_provider", "0022_refreshtoken_token_family_index")]
AFTER = [("accounts", "0004_connectionlink_code_digest")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_forgets_tokens_stored_in_clear_and_they_keep_working(alice, acme):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Application = apps.get_model("oauth2_provider", "Application")
    AccessToken = apps.get_model("oauth2_provider", "AccessToken")
    RefreshToken = apps.get_model("oauth2_provider", "RefreshToken")
    Connection = apps.get_model("accounts", "Connection")
    ConnectionLink = apps.get_model("accounts", "ConnectionLink")
    application = Application.objects.create(
        name="Claude",
        client_type="public",
        authorization_grant_type="authorization-code",
        redirect_uris="https://claude.ai/api/mcp/auth_callback",
        algorithm="RS256",
    )
    bound = Connection.objects.create(user_id=alice.pk, workspace_id=acme.pk, application=application)
    clear = secrets.token_urlsafe(32)
    access = AccessToken.objects.create(
        user_id=alice.pk,
        application=application,
        token=clear,
        token_checksum=hashlib.sha256(clear.encode()).hexdigest(),
        expires=timezone.now() + timedelta(hours=1),
        scope="openid offline_access",
        resource=[],
    )
    ConnectionLink.objects.create(connection=bound, access_token=access)
    refresh_clear = secrets.token_urlsafe(32)
    RefreshToken.objects.create(
        user_id=alice.pk,
        application=application,
        access_token=access,
        token=refresh_clear,
        token_checksum=hashlib.sha256(refresh_clear.encode()).hexdigest(),
    )

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)

    assert not AccessToken.objects.exclude(token="").exists()
    assert not RefreshToken.objects.exclude(token="").exists()
    AccessToken.objects.filter(pk=access.pk).update(resource=[mcp_resource_url()])
    found = workspace_for_access_token(clear)
    assert found is not None and found[1] == acme
