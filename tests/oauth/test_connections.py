"""Connections: listing, revoking, and resolving an access token to its workspace for the MCP server."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection as db_connection
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from accounts.connections import (
    list_connections,
    revoke_connection,
    workspace_for_access_token,
)
from accounts.models import Connection
from accounts.oauth import mcp_resource_url
from tests.oauth.oauthutil import CLAUDE, authorize_params, authorize_path, pkce
from workspaces import services
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


def test_connections_are_listed_per_workspace(alice_client, connect, acme, globex):
    connect(alice_client)
    connect(alice_client, workspace="globex")
    assert [c.workspace for c in list_connections(acme)] == [acme]
    assert [c.workspace for c in list_connections(globex)] == [globex]


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


def _deactivate(user):
    user.is_active = False
    user.save()


def _remove_membership_outside_the_services(user):
    # A membership removed in an SQL console or a data migration: no signal revokes the connections.
    membership = Membership.objects.get(user=user, workspace__slug="acme")
    with db_connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Membership._meta.db_table} WHERE id = %s", [membership.pk])  # noqa: S608 (our table)


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(_deactivate, id="deactivated"),
        pytest.param(
            lambda user: type(user).objects.filter(pk=user.pk).update(is_active=False), id="deactivated in bulk"
        ),
        pytest.param(_remove_membership_outside_the_services, id="no longer a member"),
    ],
)
def test_a_refresh_token_mints_nothing_once_its_user_may_not_act_for_the_workspace(alice_client, connect, alice, spoil):
    app, token = connect(alice_client)
    spoil(alice)
    tokens_before = AccessToken.objects.count()
    refused = _refresh(app, token)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert AccessToken.objects.count() == tokens_before


def test_deactivation_suspends_a_connection_and_reactivation_resumes_it(alice_client, connect, alice, acme):
    """Deactivating is support's pause button, not a revocation: the same tokens work again after it."""
    app, token = connect(alice_client)
    _deactivate(alice)
    assert workspace_for_access_token(token["access_token"]) is None
    assert _refresh(app, token).json()["error"] == "invalid_grant"
    alice.is_active = True
    alice.save()
    assert workspace_for_access_token(token["access_token"])[1] == acme
    assert _refresh(app, token).status_code == 200


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


# ---------------------------------------------------------------- recognised by where the code went

ELSEWHERE = "https://agent.example/oauth/callback"


def _connections_page(client) -> str:
    return client.get("/w/acme/connections/").content.decode()


def test_a_connection_is_recognised_by_the_redirect_uri_its_code_went_to(alice_client, register, connect):
    """A client that registers Claude's callback beside its own is not Claude when the code goes to its own."""
    app = register(redirect_uris=[CLAUDE, ELSEWHERE], client_name="Totally Claude")
    connect(alice_client, app=app, redirect_uri=ELSEWHERE)
    connection = Connection.objects.get()
    assert connection.redirect_uri == ELSEWHERE
    assert not connection.publisher.verified
    body = _connections_page(alice_client)
    assert "<strong>Totally Claude</strong>" in body and "Unverified" in body
    assert "✓ Verified" not in body and "Anthropic" not in body
    assert "<code>agent.example</code>" in body

    # Consenting again through Claude's callback: now the code went to claude.ai.
    connect(alice_client, app=app, redirect_uri=CLAUDE)
    connection.refresh_from_db()
    assert connection.redirect_uri == CLAUDE
    body = _connections_page(alice_client)
    assert "<strong>Claude</strong>" in body and "✓ Verified" in body and "<code>claude.ai</code>" in body


def test_a_connection_from_before_redirect_uris_were_recorded_shows_unverified(alice_client, connect):
    connect(alice_client)  # registered with Claude's callback only
    Connection.objects.update(redirect_uri="")  # as the migration leaves existing rows
    body = _connections_page(alice_client)
    assert "✓ Verified" not in body and "Unverified" in body
    assert "Not recorded where its authorization was sent" in body


@pytest.mark.parametrize(
    ("redirect_uri", "host"),
    [
        (CLAUDE, "claude.ai"),
        ("http://127.0.0.1:53682/callback", "http://127.0.0.1:53682"),
        ("cursor://anysphere.cursor-mcp/oauth/callback", "cursor://anysphere.cursor-mcp"),
        ("https://user@agent.example:8443/cb", "agent.example:8443"),
        ("", ""),
        ("not a uri", ""),
    ],
)
def test_the_redirect_host_is_short(redirect_uri, host):
    assert Connection(redirect_uri=redirect_uri).redirect_host == host


# ---------------------------------------------------------------- members who go take their connections along


def _membership(user, workspace) -> Membership:
    return Membership.objects.select_related("user", "workspace").get(user=user, workspace=workspace)


@pytest.mark.parametrize("how", ["removed", "left"])
def test_a_member_who_goes_loses_their_connections_to_that_workspace(client, connect, alice, bob, acme, how):
    other = services.create_workspace(owner=bob, name="Bob's own")
    client.force_login(bob)
    app, token = connect(client)
    _app, elsewhere = connect(client, workspace=other.slug)
    if how == "removed":
        services.remove_member(actor=alice, membership=_membership(bob, acme))
    else:
        services.leave_workspace(membership=_membership(bob, acme))

    assert workspace_for_access_token(token["access_token"]) is None
    refused = _refresh(app, token)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    connection = Connection.objects.get(workspace=acme)
    assert connection.revoked_at is not None
    assert not AccessToken.objects.filter(connection_link__connection=connection).exists()
    assert not RefreshToken.objects.filter(connection_link__connection=connection, revoked__isnull=True).exists()
    # The connection to the workspace Bob still belongs to is untouched.
    assert workspace_for_access_token(elsewhere["access_token"])[1] == other
    assert _refresh(_app, elsewhere).status_code == 200

    action = AuditEvent.Action.MEMBER_REMOVED if how == "removed" else AuditEvent.Action.MEMBER_LEFT
    event = AuditEvent.objects.get(action=action)
    assert event.workspace == acme
    assert event.actor == (alice if how == "removed" else bob)
    assert event.data == {"user": "bob@example.com", "connections_revoked": [str(connection.uid)]}
    assert event.summary.endswith("revoking 1 AI connection")
    # Counted in the member's event, not once more as a revocation of its own.
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CONNECTION_REVOKED).exists()


def test_removing_a_member_leaves_everyone_elses_connections(client, connect, alice, bob, acme):
    alice_client = Client()
    alice_client.force_login(alice)
    _app, alices = connect(alice_client)
    client.force_login(bob)
    connect(client)
    services.remove_member(actor=alice, membership=_membership(bob, acme))
    assert workspace_for_access_token(alices["access_token"])[1] == acme
    assert Connection.objects.active().get().user == alice


def test_a_membership_deleted_elsewhere_revokes_too(client, connect, bob, acme):
    """The support admin (or a shell) deleting the membership, not the dashboard's services."""
    client.force_login(bob)
    app, token = connect(client)
    Membership.objects.filter(user=bob, workspace=acme).delete()
    assert _refresh(app, token).json()["error"] == "invalid_grant"
    assert not Connection.objects.active().exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.CONNECTION_REVOKED)
    assert event.workspace == acme and event.actor is None
    assert "bob@example.com" in event.summary


def test_deleting_a_user_or_a_workspace_deletes_their_connections(client, connect, alice, bob, acme):
    """Their memberships go too, but with the connections: nothing to revoke, nothing to audit."""
    client.force_login(bob)
    connect(client)
    bob.delete()
    assert not Connection.objects.exists()
    client.force_login(alice)
    connect(client)
    acme.delete()
    assert not Connection.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CONNECTION_REVOKED).exists()


def test_a_returning_member_must_connect_again(client, connect, alice, bob, acme):
    client.force_login(bob)
    app, token = connect(client)
    services.remove_member(actor=alice, membership=_membership(bob, acme))
    Membership.objects.create(user=bob, workspace=acme, role=Membership.Role.MEMBER)
    assert workspace_for_access_token(token["access_token"]) is None
    assert _refresh(app, token).status_code == 400
    _app, fresh = connect(client, app=app)  # consent again
    assert workspace_for_access_token(fresh["access_token"])[1] == acme


def test_the_consent_screen_says_when_this_connection_was_revoked(alice_client, register, connect, alice, acme):
    app, _token = connect(alice_client)
    connection = Connection.objects.get(application__client_id=app["client_id"])
    assert "revoked-note" not in _consent_page(alice_client, app)  # still active
    revoke_connection(actor=alice, connection=connection)
    connection.refresh_from_db()
    body = _consent_page(alice_client, app)
    when = f"{connection.revoked_at:%-d %b %Y, %H:%M} UTC"
    assert f"You revoked this connection to Acme on {when}; approving reconnects it." in body

    # The app registers anew (as Claude does on every reconnect): the same name and redirect URI.
    again = register(client_name=app["client_name"], redirect_uris=[CLAUDE])
    assert "You revoked this connection to Acme" in _consent_page(alice_client, again)
    # Reconnected, the note is gone.
    connect(alice_client, app=app)
    assert "revoked-note" not in _consent_page(alice_client, again)
    # Another app of the same name elsewhere is not this connection.
    other = register(client_name=app["client_name"], redirect_uris=["https://elsewhere.example/cb"])
    assert "revoked-note" not in _consent_page(alice_client, other, "https://elsewhere.example/cb")


def test_the_note_names_who_else_revoked_it(client, register, connect, alice, bob, acme):
    client.force_login(bob)
    app, _token = connect(client)
    revoke_connection(actor=alice, connection=Connection.objects.get(application__client_id=app["client_id"]))
    assert "Alice Example revoked this connection to Acme on" in _consent_page(client, app)


def _consent_page(client, app, redirect_uri=CLAUDE) -> str:
    response = client.get(authorize_path(authorize_params(app["client_id"], redirect_uri, pkce()[1])))
    assert response.status_code == 200, response
    return response.content.decode()
