"""AI connections in the dashboard: who connected what, and revoking kills the tokens at once."""

import pytest

from accounts.connections import workspace_for_access_token
from tests.factories import MembershipFactory, UserFactory
from workspaces.models import AuditEvent, Membership


pytestmark = pytest.mark.django_db


def test_the_list_names_the_client_who_authorized_it_and_the_scopes(bob_client, alice, acme, make_connection):
    make_connection(alice, acme)
    make_connection(alice, acme, redirect_uri="http://127.0.0.1:5555/callback", name="Homebrew agent")
    body = bob_client.get("/w/acme/connections/").content.decode()
    assert "<strong>Claude</strong>" in body and "✓ Verified" in body and "Anthropic" in body
    assert "<strong>Homebrew agent</strong>" in body and "Unverified" in body
    assert "Alice Example" in body
    assert "<code>offline_access</code>" in body
    assert "Revoke" not in body  # Bob made neither and is a member


def test_connections_of_other_workspaces_are_not_listed(alice_client, charlie, make_connection):
    make_connection(charlie, charlie.memberships.get().workspace, name="Charlie's bot", redirect_uri="http://x/cb")
    assert "Charlie's bot" not in alice_client.get("/w/acme/connections/").content.decode()


def test_an_owner_revokes_and_the_token_dies_at_once(alice_client, bob, acme, make_connection):
    connection, token = make_connection(bob, acme)
    assert workspace_for_access_token(token)[1] == acme
    response = alice_client.post(f"/w/acme/connections/{connection.uid}/revoke/")
    assert response["Location"] == "/w/acme/connections/"
    assert workspace_for_access_token(token) is None
    connection.refresh_from_db()
    assert connection.revoked_at is not None
    assert AuditEvent.objects.filter(action="connection.revoked", workspace=acme).exists()
    assert alice_client.get("/w/acme/connections/").context["rows"] == []


def test_a_member_may_revoke_their_own_connection_only(client, bob, alice, acme, make_connection):
    own, _ = make_connection(bob, acme)
    others, others_token = make_connection(alice, acme, name="Alice's", redirect_uri="http://127.0.0.1:1/cb")
    client.force_login(bob)
    body = client.get("/w/acme/connections/").content.decode()
    assert body.count("Revoke</summary>") == 1
    assert client.post(f"/w/acme/connections/{others.uid}/revoke/").status_code == 403
    assert workspace_for_access_token(others_token)[1] == acme
    assert client.post(f"/w/acme/connections/{own.uid}/revoke/").status_code == 302


def test_an_admin_may_revoke_anyones(client, alice, acme, make_connection):
    connection, token = make_connection(alice, acme)
    admin = MembershipFactory(workspace=acme, role=Membership.Role.ADMIN).user
    client.force_login(admin)
    assert client.post(f"/w/acme/connections/{connection.uid}/revoke/").status_code == 302
    assert workspace_for_access_token(token) is None


def test_revoke_is_404_for_outsiders_and_other_workspaces(client, alice, acme, charlie, make_connection):
    connection, token = make_connection(alice, acme)
    client.force_login(charlie)
    assert client.post(f"/w/acme/connections/{connection.uid}/revoke/").status_code == 404
    assert client.post(f"/w/charlie-co/connections/{connection.uid}/revoke/").status_code == 404
    assert workspace_for_access_token(token)[1] == acme


def test_revoked_connections_cannot_be_revoked_again(alice_client, alice, acme, make_connection):
    connection, _ = make_connection(alice, acme)
    alice_client.post(f"/w/acme/connections/{connection.uid}/revoke/")
    assert alice_client.post(f"/w/acme/connections/{connection.uid}/revoke/").status_code == 404


def test_revoke_refuses_get(alice_client, alice, acme, make_connection):
    connection, _ = make_connection(alice, acme)
    assert alice_client.get(f"/w/acme/connections/{connection.uid}/revoke/").status_code == 405


def test_empty_state_points_to_the_connect_page(alice_client):
    body = alice_client.get("/w/acme/connections/").content.decode()
    assert "No AI assistant is connected" in body
    assert 'href="/w/acme/connect/"' in body


def test_connect_page_has_the_connector_url_and_every_client(bob_client, settings):
    body = bob_client.get("/w/acme/connect/").content.decode()
    assert f'id="connector-url">{settings.PUBLIC_BASE_URL}/mcp</code>' in body
    for client_name in ["Claude", "ChatGPT", "Cursor", "MCP Inspector"]:
        assert client_name in body
    assert '"mcpServers"' in body
    assert "npx @modelcontextprotocol/inspector" in body


def test_a_user_without_access_to_the_workspace_sees_nothing(client, acme, make_connection):
    stranger = UserFactory()
    make_connection(stranger, acme)
    client.force_login(stranger)
    assert client.get("/w/acme/connections/").status_code == 404
