"""A member who is removed, leaves or is demoted: what happens to the AI connections they made."""

import pytest

from accounts.connections import workspace_for_access_token
from accounts.models import Connection
from workspaces.models import AuditEvent, Membership


pytestmark = pytest.mark.django_db


def test_removing_a_member_in_the_dashboard_revokes_their_connections(
    alice_client, alice, bob, charlie, acme, make_connection
):
    bobs, bobs_token = make_connection(bob, acme)
    alices, alices_token = make_connection(alice, acme, name="Alice's agent", redirect_uri="http://127.0.0.1:9/cb")
    uid = Membership.objects.get(user=bob).uid
    assert alice_client.post(f"/w/acme/members/{uid}/remove/")["Location"] == "/w/acme/members/"

    assert workspace_for_access_token(bobs_token) is None
    bobs.refresh_from_db()
    assert bobs.revoked_at is not None
    assert workspace_for_access_token(alices_token)[1] == acme  # the remover's own are untouched
    event = AuditEvent.objects.get(action=AuditEvent.Action.MEMBER_REMOVED)
    assert event.summary == "alice@example.com removed bob@example.com, revoking 1 AI connection"
    assert event.data["connections_revoked"] == [str(bobs.uid)]
    assert [row["connection"] for row in alice_client.get("/w/acme/connections/").context["rows"]] == [alices]


def test_removing_a_member_without_connections_says_nothing_of_them(alice_client, bob):
    alice_client.post(f"/w/acme/members/{Membership.objects.get(user=bob).uid}/remove/")
    event = AuditEvent.objects.get(action=AuditEvent.Action.MEMBER_REMOVED)
    assert event.summary == "alice@example.com removed bob@example.com"
    assert event.data == {"user": "bob@example.com", "connections_revoked": []}


def test_leaving_revokes_ones_own_connections_there(bob_client, bob, acme, make_connection):
    first, first_token = make_connection(bob, acme)
    _second, second_token = make_connection(
        bob, acme, name="Cursor", redirect_uri="cursor://anysphere.cursor-mcp/oauth/callback"
    )
    assert bob_client.post("/w/acme/leave/")["Location"] == "/dashboard/"
    assert workspace_for_access_token(first_token) is None
    assert workspace_for_access_token(second_token) is None
    assert not Connection.objects.active().exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.MEMBER_LEFT)
    assert event.summary == "bob@example.com left, revoking 2 AI connections"


def test_a_refused_removal_revokes_nothing(client, alice, bob, acme, make_connection):
    """An admin may not remove an owner: the owner's connections stay, as the membership does."""
    _connection, token = make_connection(alice, acme)
    Membership.objects.filter(user=bob).update(role=Membership.Role.ADMIN)
    client.force_login(bob)
    assert client.post(f"/w/acme/members/{Membership.objects.get(user=alice).uid}/remove/").status_code == 403
    assert workspace_for_access_token(token)[1] == acme


def test_the_last_owner_leaving_is_refused_and_keeps_their_connections(alice_client, alice, acme, make_connection):
    _connection, token = make_connection(alice, acme)
    alice_client.post("/w/acme/leave/")
    assert workspace_for_access_token(token)[1] == acme


def test_a_role_change_keeps_connections(alice_client, bob, acme, make_connection):
    """What a connection may do does not depend on its maker's role, so demoting them keeps it."""
    Membership.objects.filter(user=bob).update(role=Membership.Role.ADMIN)
    _connection, token = make_connection(bob, acme)
    uid = Membership.objects.get(user=bob).uid
    alice_client.post(f"/w/acme/members/{uid}/role/", {"role": Membership.Role.MEMBER})
    assert Membership.objects.get(user=bob).role == Membership.Role.MEMBER
    assert workspace_for_access_token(token)[1] == acme
