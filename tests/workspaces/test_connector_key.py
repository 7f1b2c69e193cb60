"""Issue 13: the AI connector key on the API keys page: labelled, explained, and a Revoke confirm that
says what revoking it does."""

import pytest

from workspaces.models import ApiKey
from workspaces.services import connector_publishable_key, create_api_key


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
