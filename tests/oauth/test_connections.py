"""Connections: listing, revoking, and resolving an access token to its workspace for the MCP server."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from accounts.connections import (
    list_connections,
    list_user_connections,
    revoke_connection,
    workspace_for_access_token,
)
from accounts.models import Connection
from accounts.oauth import mcp_resource_url
from workspaces.models import AuditEvent, Membership


pytestmark = pytest.mark.django_db


def _refresh(app, token):
    return Client().post(
        "/o/token/",
        {"grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": app["client_id"]},
    )


def test_a_token_resolves_to_its_workspace_in_two_queries(alice_client, connect, acme, django_assert_num_queries):
    _app, token = connect(alice_client)
    with django_assert_num_queries(2):
        access_token, workspace = workspace_for_access_token(token["access_token"])
    assert workspace == acme
    assert access_token.user.email == "alice@example.com"
    assert access_token.resource == [mcp_resource_url()]
    assert access_token.expires - timezone.now() == pytest.approx(timedelta(hours=1), abs=timedelta(seconds=30))


def test_refresh_keeps_the_workspace_binding(alice_client, connect, globex):
    app, token = connect(alice_client, workspace="globex")
    refreshed = _refresh(app, token).json()
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert workspace_for_access_token(refreshed["access_token"])[1] == globex
    assert workspace_for_access_token(token["access_token"]) is None  # rotated out


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda at: AccessToken.objects.filter(pk=at.pk).update(expires=timezone.now()), id="expired"),
        pytest.param(
            lambda at: AccessToken.objects.filter(pk=at.pk).update(resource=["https://other.example/mcp"]),
            id="another audience",
        ),
        pytest.param(lambda at: AccessToken.objects.filter(pk=at.pk).update(resource=[]), id="no audience"),
        pytest.param(lambda at: Membership.objects.filter(user=at.user).delete(), id="left the workspace"),
        pytest.param(lambda at: type(at.user).objects.filter(pk=at.user_id).update(is_active=False), id="deactivated"),
        pytest.param(lambda at: at.connection_link.delete(), id="not bound"),
    ],
)
def test_tokens_that_must_not_reach_the_mcp_server(alice_client, connect, spoil):
    _app, token = connect(alice_client)
    access_token, _workspace = workspace_for_access_token(token["access_token"])
    spoil(access_token)
    assert workspace_for_access_token(token["access_token"]) is None


def test_unknown_tokens_resolve_to_nothing(db):
    assert workspace_for_access_token("not-a-token") is None


def test_connections_are_listed_per_workspace_and_per_user(alice_client, connect, acme, globex):
    connect(alice_client)
    connect(alice_client, workspace="globex")
    assert [c.workspace for c in list_connections(acme)] == [acme]
    assert {c.workspace for c in list_user_connections(acme.owners().get().user)} == {acme, globex}


def test_revoking_kills_access_and_refresh_tokens_at_once(alice_client, connect, alice, acme):
    app, token = connect(alice_client)
    connection = Connection.objects.get()
    revoke_connection(actor=alice, connection=connection)

    assert workspace_for_access_token(token["access_token"]) is None
    assert not AccessToken.objects.filter(connection_link__connection=connection).exists()
    assert not RefreshToken.objects.filter(connection_link__connection=connection, revoked__isnull=True).exists()
    refused = _refresh(app, token)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert list(list_connections(acme)) == []
    event = AuditEvent.objects.get(action=AuditEvent.Action.CONNECTION_REVOKED)
    assert event.workspace == acme
    assert event.actor == alice
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONNECTION_CREATED).count() == 1


def test_reconnecting_after_a_revocation_reactivates_the_connection(alice_client, connect, alice, acme):
    app, _token = connect(alice_client)
    revoke_connection(actor=alice, connection=Connection.objects.get())
    _app, token = connect(alice_client, app=app)
    connection = Connection.objects.get()
    assert connection.is_active
    assert workspace_for_access_token(token["access_token"])[1] == acme
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONNECTION_CREATED).count() == 2


def test_who_may_revoke(client, connect, alice, bob, charlie, acme):
    client.force_login(bob)
    connect(client)
    connection = Connection.objects.get()
    with pytest.raises(PermissionDenied):
        revoke_connection(actor=charlie, connection=connection)
    revoke_connection(actor=alice, connection=connection)  # the workspace owner
    assert not Connection.objects.active().exists()
