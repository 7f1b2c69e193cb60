"""Issue 13: the AI connector key on the API keys page: labelled, explained, and a Revoke confirm that
says what revoking it does."""

import dataclasses
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from avtrz.avatars import fastpath
from avtrz.lib import hotcache
from mcpserver import lookups
from tests.factories import MembershipFactory, UserFactory
from workspaces import keys
from workspaces.models import ApiKey, AuditEvent, Membership
from workspaces.services import (
    connector_publishable_key,
    create_api_key,
    retire_rotated_keys,
    rotate_connector_key,
)


pytestmark = pytest.mark.django_db


@pytest.fixture
def connector_key(acme):
    connector_publishable_key(acme)
    return ApiKey.objects.get(workspace=acme, for_connector=True)


def test_the_list_labels_and_explains_the_connector_key(alice_client, alice, acme, connector_key):
    create_api_key(actor=alice, workspace=acme, kind="publishable", name="Site")
    body = alice_client.get("/w/acme/keys/").content.decode()
    assert "used by your AI connections" in body
    assert '<h2 id="connector-key-title">The AI connector key</h2>' in body
    assert "those URLs contain this key" in body
    assert "Why it is not locked to domains" in body and "would show initials" in body
    # Open on purpose, said so instead of the bare warning other open keys get.
    assert body.count("⚠ not locked") == 1
    assert "on purpose" in body


def test_the_connector_key_revoke_confirm_says_what_revoking_does(alice_client, alice, acme, connector_key):
    site_raw = create_api_key(actor=alice, workspace=acme, kind="publishable", name="Site")
    site = ApiKey.objects.for_key(site_raw)
    body = alice_client.get("/w/acme/keys/").content.decode()
    connector_form = body[body.index(f'action="/w/acme/keys/{connector_key.uid}/revoke/"') :]
    connector_form = connector_form[: connector_form.index("</form>")]
    assert "Every image URL an AI assistant already handed out" in connector_form
    assert "shows initials instead of the photo" in connector_form
    assert "The next AI call creates a new key" in connector_form
    site_form = body[body.index(f'action="/w/acme/keys/{site.uid}/revoke/"') :]
    site_form = site_form[: site_form.index("</form>")]
    assert "Requests with" in site_form and "AI assistant" not in site_form

    page = alice_client.get(f"/w/acme/keys/{connector_key.uid}/").content.decode()
    assert "The AI connector key" in page and "those URLs contain this key" in page
    assert "handed out (they contain" in page and "the next AI call creates a new key" in page
    assert "Rotating? Create the new key" not in page


def test_members_read_the_explanation_without_actions(bob_client, connector_key):
    body = bob_client.get("/w/acme/keys/").content.decode()
    assert "The AI connector key" in body
    assert "/revoke/" not in body


def test_no_explanation_without_a_connector_key(alice_client, alice, acme):
    create_api_key(actor=alice, workspace=acme, kind="publishable", name="Site")
    assert "The AI connector key" not in alice_client.get("/w/acme/keys/").content.decode()


# ---------------------------------------------------------------- rotation with a grace period


def _avatar(client, raw):
    return client.get("/v1/avatar", {"key": raw, "username": "eileen-collins"})


def test_rotate_hands_out_a_new_key_and_the_old_one_answers_until_its_grace_ends(
    alice_client, alice, acme, eileen, settings, django_capture_on_commit_callbacks
):
    settings.AVTRZ_CONNECTOR_KEY_GRACE_S = 7 * 24 * 3600
    old_raw = lookups.connector(acme).key  # created, and cached by the MCP lookup
    old = ApiKey.objects.for_key(old_raw)
    assert _avatar(alice_client, old_raw).status_code == 302  # its context is cached too

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/w/acme/keys/{old.uid}/rotate/")
    assert response.status_code == 302 and response["Location"] == "/w/acme/keys/"

    # New AI answers carry the new key (the MCP lookup's cache included)...
    new_raw = lookups.connector(acme).key
    assert new_raw != old_raw
    new = ApiKey.objects.for_key(new_raw)
    assert new.for_connector and new.expires_at is None and new.created_by == alice
    assert lookups.connector(acme).key == new_raw
    assert f"key={new_raw}" in lookups.profile_avatar(acme, None, "eileen-collins", 128).structured["imageUrl"]
    assert _avatar(alice_client, new_raw).status_code == 302
    # ...while the old one keeps answering the URLs already handed out, for the grace period.
    old.refresh_from_db()
    assert old.revoked_at is None and old.is_retiring
    assert abs((old.expires_at - timezone.now()) - timedelta(days=7)) < timedelta(minutes=1)
    assert _avatar(alice_client, old_raw).status_code == 302

    event = AuditEvent.objects.get(action="key.rotated", workspace=acme)
    assert event.actor == alice
    assert event.data["old"] == old.masked and event.data["new"] == new.masked
    assert event.data["old_expires_at"] == old.expires_at.isoformat()

    # The list says which key is rotated and until when; the explanation is about the new one.
    body = alice_client.get("/w/acme/keys/").content.decode()
    assert "Rotated</span> answers URLs already handed out until" in body
    assert f"Rotate {new.masked}" in body and f"Rotate {old.masked}" not in body

    # The grace ends (the clock moved by editing the stored end): the beat task retires the key and
    # drops it from every worker's cache, as revocation does.
    ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert retire_rotated_keys() == 1
    assert _avatar(alice_client, old_raw).status_code == 401
    assert _avatar(alice_client, new_raw).status_code == 302
    old.refresh_from_db()
    assert old.revoked_at is not None and not old.is_active
    assert lookups.connector(acme).key == new_raw
    assert AuditEvent.objects.filter(action="key.revoked", summary__contains="grace period").count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert retire_rotated_keys() == 0  # once


def test_past_its_end_a_rotated_key_is_refused_before_the_task_runs(
    alice, acme, client, eileen, django_capture_on_commit_callbacks
):
    old_raw = lookups.connector(acme).key
    old = ApiKey.objects.for_key(old_raw)
    with django_capture_on_commit_callbacks(execute=True):
        rotate_connector_key(actor=alice, key=old)
    assert _avatar(client, old_raw).status_code == 302  # cached with its end
    ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    # Another worker, whose cache does not hold the key: the database no longer counts it as active.
    hotcache.delete(keys.cache_key(old_raw))
    assert _avatar(client, old_raw).status_code == 401
    assert list(acme.api_keys.active()) == [ApiKey.objects.get(for_connector=True, expires_at__isnull=True)]


def test_a_cached_context_stops_at_the_key_end_by_itself(acme):
    old_raw = lookups.connector(acme).key
    context = keys.load_context(old_raw)
    ended = dataclasses.replace(context, expires_at=time.time() - 1)
    hotcache.set(keys.cache_key(old_raw), ended, 60)
    assert keys.cached_context(old_raw) is None  # the request path reloads it from the database


def test_only_admins_and_owners_rotate(bob_client, acme, connector_key):
    assert bob_client.post(f"/w/acme/keys/{connector_key.uid}/rotate/").status_code == 403
    assert "Rotate the AI connector key" not in bob_client.get("/w/acme/keys/").content.decode()
    connector_key.refresh_from_db()
    assert connector_key.expires_at is None
    assert not AuditEvent.objects.filter(action="key.rotated").exists()


def test_outsiders_get_404(charlie_client, connector_key):
    assert charlie_client.post(f"/w/acme/keys/{connector_key.uid}/rotate/").status_code == 404
    connector_key.refresh_from_db()
    assert connector_key.expires_at is None


def test_admins_rotate_too(client, acme, connector_key):
    admin = UserFactory(email="dana@example.com")
    MembershipFactory(user=admin, workspace=acme, role=Membership.Role.ADMIN)
    client.force_login(admin)
    assert client.post(f"/w/acme/keys/{connector_key.uid}/rotate/").status_code == 302
    connector_key.refresh_from_db()
    assert connector_key.is_retiring


def test_only_the_current_connector_key_rotates(alice_client, alice, acme, connector_key):
    create_api_key(actor=alice, workspace=acme, kind="publishable", name="Site")
    site = ApiKey.objects.get(name="Site")
    response = alice_client.post(f"/w/acme/keys/{site.uid}/rotate/", follow=True)
    assert "Only the active AI connector key can be rotated." in response.content.decode()
    assert alice_client.post(f"/w/acme/keys/{connector_key.uid}/rotate/").status_code == 302
    again = alice_client.post(f"/w/acme/keys/{connector_key.uid}/rotate/", follow=True).content.decode()
    assert "was already rotated" in again
    assert AuditEvent.objects.filter(action="key.rotated").count() == 1
    assert ApiKey.objects.filter(workspace=acme, for_connector=True).count() == 2
    assert alice_client.get(f"/w/acme/keys/{site.uid}/rotate/").status_code == 405


def test_the_fast_path_never_replays_a_rotated_key_past_its_end(
    alice, acme, client, eileen, settings, django_capture_on_commit_callbacks
):
    from tests.avatars.test_api import _fast

    settings.AVTRZ_CONNECTOR_KEY_GRACE_S = 30  # shorter than a replay's minute
    old_raw = lookups.connector(acme).key
    with django_capture_on_commit_callbacks(execute=True):
        rotate_connector_key(actor=alice, key=ApiKey.objects.for_key(old_raw))
    assert _avatar(client, old_raw).status_code == 302  # warm: answered by Django
    assert _fast(old_raw, username="eileen-collins")[0] == 302
    (replay,) = fastpath._replays.values()
    assert replay.until == ApiKey.objects.get(digest=keys.key_digest(old_raw)).expires_at.timestamp()


def test_the_connector_key_page_warns_before_locking_it_to_domains(alice_client, connector_key):
    page = alice_client.get(f"/w/acme/keys/{connector_key.uid}/").content.decode()
    assert "Any domain, on purpose" in page and "⚠ not locked" not in page
    assert "Locking this key to domains makes the image URLs assistants hand out show initials" in page
    assert "never shown in full here" in page and "get_publishable_key" in page
