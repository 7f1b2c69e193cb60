"""Every dashboard page and action (issue #6): members read, owners and admins act, outsiders get 404,
anonymous visitors are sent to sign in, and each URL answers only its methods."""

import uuid

import pytest

from tests.factories import MembershipFactory
from workspaces.models import ApiKey, Membership
from workspaces.services import create_api_key


pytestmark = pytest.mark.django_db

PAGES = [
    "/w/acme/",
    "/w/acme/keys/",
    "/w/acme/connections/",
    "/w/acme/usage/",
    "/w/acme/usage.json",
    "/w/acme/billing/",
    "/w/acme/connect/",
]
# Owner/admin actions; bodies are valid, so a 403 or 404 is the access check speaking.
ADMIN_ACTIONS = [
    ("/w/acme/keys/new/", {"name": "Site", "kind": "publishable", "domains": "example.com"}),
    ("/w/acme/billing/plan/", {"plan": "free"}),
    ("/w/acme/billing/checkout/", {"plan": "pro"}),
    ("/w/acme/billing/portal/", {}),
]


@pytest.fixture
def key(acme, alice):
    create_api_key(actor=alice, workspace=acme, kind="publishable", name="Site", domains=["example.com"])
    return ApiKey.objects.get(workspace=acme, name="Site")


@pytest.mark.parametrize("url", PAGES)
def test_members_can_read_every_page(bob_client, url):
    assert bob_client.get(url).status_code == 200


@pytest.mark.parametrize("url", PAGES)
def test_outsiders_get_404(charlie_client, acme, url):
    assert charlie_client.get(url).status_code == 404


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_visitors_sign_in_first(client, acme, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", PAGES)
def test_pages_refuse_post(alice_client, url):
    assert alice_client.post(url).status_code == 405


@pytest.mark.parametrize(("url", "data"), ADMIN_ACTIONS)
def test_members_cannot_act(bob_client, url, data):
    assert bob_client.post(url, data).status_code == 403


@pytest.mark.parametrize(("url", "data"), ADMIN_ACTIONS)
def test_outsiders_cannot_act(charlie_client, acme, url, data):
    assert charlie_client.post(url, data).status_code == 404


@pytest.mark.parametrize(("url", "data"), ADMIN_ACTIONS)
def test_actions_refuse_get(alice_client, url, data):
    assert alice_client.get(url).status_code == 405


@pytest.mark.parametrize("action", ["domains", "revoke"])
def test_key_actions_are_for_admins_only(bob_client, key, action):
    assert bob_client.post(f"/w/acme/keys/{key.uid}/{action}/", {"domains": "evil.example"}).status_code == 403
    key.refresh_from_db()
    assert key.is_active and key.allowed_domains == ["example.com"]


@pytest.mark.parametrize("action", ["domains", "revoke"])
def test_key_actions_refuse_get(alice_client, key, action):
    assert alice_client.get(f"/w/acme/keys/{key.uid}/{action}/").status_code == 405


def test_key_page_and_actions_are_404_for_outsiders(client, charlie, key):
    client.force_login(charlie)
    assert client.get(f"/w/acme/keys/{key.uid}/").status_code == 404
    assert client.post(f"/w/acme/keys/{key.uid}/revoke/").status_code == 404
    assert client.post(f"/w/acme/keys/{key.uid}/domains/", {"domains": ""}).status_code == 404


def test_a_key_of_another_workspace_is_404(alice_client, alice, key):
    other = MembershipFactory(user=alice, role=Membership.Role.OWNER).workspace
    assert alice_client.get(f"/w/{other.slug}/keys/{key.uid}/").status_code == 404
    assert alice_client.post(f"/w/{other.slug}/keys/{key.uid}/revoke/").status_code == 404
    assert alice_client.get(f"/w/acme/keys/{uuid.uuid4()}/").status_code == 404


def test_admins_may_act_like_owners(client, acme):
    admin = MembershipFactory(workspace=acme, role=Membership.Role.ADMIN).user
    client.force_login(admin)
    response = client.post("/w/acme/keys/new/", {"name": "Admin's", "kind": "secret", "domains": ""})
    assert response.status_code == 302


def test_tabs_name_every_page(bob_client):
    body = bob_client.get("/w/acme/usage/").content.decode()
    for label in ["Overview", "API keys", "AI connections", "Usage", "Billing", "Connect", "Members", "Settings"]:
        assert f">{label}</a>" in body
    assert 'href="/w/acme/usage/" aria-current="page"' in body


def test_pages_load_only_vendored_scripts(bob_client):
    body = bob_client.get("/w/acme/").content.decode()
    assert '<script src="/static/js/live.js" defer></script>' in body
    assert "<script>" not in body
    assert 'data-ws="/ws/w/acme/"' in body
