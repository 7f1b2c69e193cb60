"""Telling AI connections apart: who authorized each, where its codes go, a short client id, times
with hours and "just now"; one person's re-registrations of the same app shown as one group with
the one used last first and the others collapsed, each still revocable."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.connections import group_connections, list_connections
from accounts.models import Connection
from workspaces.templatetags.moments import ago


pytestmark = pytest.mark.django_db

INSPECTOR = "http://localhost:6274/oauth/callback"


def test_ago_says_just_now_under_a_minute():
    now = timezone.now()
    assert ago(now - timedelta(seconds=5), now) == "just now"
    assert ago(now - timedelta(seconds=59), now) == "just now"
    assert ago(now - timedelta(minutes=3, seconds=5), now) == "3\xa0minutes ago"
    assert ago(now - timedelta(hours=5, minutes=3), now) == "5\xa0hours ago"
    assert ago(None) == ""


def test_re_registrations_of_one_app_by_one_person_are_grouped(alice, bob, acme, make_connection):
    now = timezone.now()
    inspectors = [make_connection(alice, acme, redirect_uri=INSPECTOR, name="MCP Inspector")[0] for _ in range(3)]
    # The middle one was used last; the first never.
    Connection.objects.filter(pk=inspectors[1].pk).update(last_used_at=now - timedelta(minutes=1))
    Connection.objects.filter(pk=inspectors[2].pk).update(last_used_at=now - timedelta(hours=2))
    bobs = make_connection(bob, acme, redirect_uri=INSPECTOR, name="MCP Inspector")[0]  # another person
    other_port = make_connection(alice, acme, redirect_uri="http://127.0.0.1:9/cb", name="MCP Inspector")[0]
    renamed = make_connection(alice, acme, redirect_uri=INSPECTOR, name="My inspector")[0]

    groups = group_connections(list_connections(acme))
    by_latest = {group.latest.pk: [c.pk for c in group.connections] for group in groups}
    assert by_latest[inspectors[1].pk] == [inspectors[1].pk, inspectors[2].pk, inspectors[0].pk]
    for alone in (bobs, other_port, renamed):
        assert by_latest[alone.pk] == [alone.pk]
    assert len(groups) == 4
    assert groups[0].latest.pk == renamed.pk  # the most recent activity (here a new connection) leads


def test_the_page_shows_what_tells_connections_apart(alice_client, alice, acme, make_connection):
    now = timezone.now()
    first = make_connection(alice, acme, redirect_uri=INSPECTOR, name="MCP Inspector")[0]
    second = make_connection(alice, acme, redirect_uri=INSPECTOR, name="MCP Inspector")[0]
    Connection.objects.filter(pk=first.pk).update(
        created_at=now.replace(hour=9, minute=5) - timedelta(days=1), last_used_at=now - timedelta(hours=3)
    )
    Connection.objects.filter(pk=second.pk).update(last_used_at=now)
    response = alice_client.get("/w/acme/connections/")
    body = response.content.decode()
    assert response.context["rows"][0]["connection"] == second  # used last, first
    assert body.count("data-used-last") == 1
    assert "1 earlier connection of MCP Inspector by Alice Example" in body
    assert body.count("<details data-older>") == 1
    assert "just now" in body and "0\xa0minutes" not in body
    assert "3\xa0hours ago" in body
    created = (now - timedelta(days=1)).strftime("%-d %b %Y") + ", 09:05 UTC"
    assert created in body
    for connection in (first, second):
        assert f"<code>{connection.application.client_id[:8]}…</code>" in body
        assert f"/w/acme/connections/{connection.uid}/revoke/" in body  # each one still revocable
    assert "Sent to <code>http://localhost:6274</code>" in body
    assert 'data-connections="2"' in body  # the live count is of connections, not groups
