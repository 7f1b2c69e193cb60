"""API keys in the dashboard: create (the key shown exactly once), list, edit domains, revoke."""

import re

import pytest

from workspaces.models import ApiKey, AuditEvent, key_digest
from workspaces.services import create_api_key


pytestmark = pytest.mark.django_db


def _create(client, **data):
    return client.post("/w/acme/keys/new/", {"name": "Marketing site", "kind": "publishable", "domains": "", **data})


def test_a_new_key_is_shown_once_and_never_in_a_url(alice_client, acme):
    response = _create(alice_client, domains="example.com\n*.example.org")
    key = ApiKey.objects.get(workspace=acme)
    assert response["Location"] == f"/w/acme/keys/{key.uid}/"
    assert "pk_live_" not in response["Location"]

    page = alice_client.get(response["Location"])
    raw = re.search(r'<code class="secret" id="new-key">(pk_live_[\w-]+)</code>', page.content.decode()).group(1)
    assert key_digest(raw) == key.digest
    assert raw in page.context["snippets"]["img"] and raw in page.context["snippets"]["curl"]
    assert "no-store" in page["Cache-Control"]
    assert key.allowed_domains == ["example.com", "*.example.org"]
    assert AuditEvent.objects.filter(action="key.created", workspace=acme).exists()

    again = alice_client.get(response["Location"]).content.decode()
    assert raw not in again
    assert key.masked in again


def test_a_secret_key_gets_a_header_example_and_no_img_tag(alice_client, acme):
    page = alice_client.get(_create(alice_client, kind="secret", domains="ignored.example")["Location"])
    key = ApiKey.objects.get(workspace=acme)
    assert key.kind == "secret" and key.allowed_domains == []
    raw = page.context["raw_key"]
    assert raw.startswith("sk_live_")
    assert page.context["snippets"]["img"] == ""
    assert f'-H "x-api-key: {raw}"' in page.context["snippets"]["curl"]
    assert "key=sk_" not in page.context["snippets"]["curl"]


@pytest.mark.parametrize(
    ("domains", "message"),
    [("https://example.com", "host name only"), ("not a domain", "is not a host name")],
)
def test_bad_domains_are_form_errors(alice_client, acme, domains, message):
    response = _create(alice_client, domains=domains)
    assert response.status_code == 400
    assert message in response.context["form"].errors["domains"][0]
    assert not ApiKey.objects.filter(workspace=acme).exists()


def test_a_bad_kind_is_a_form_error(alice_client, acme):
    response = _create(alice_client, kind="root")
    assert response.status_code == 400
    assert response.context["form"].errors["kind"]


def test_the_list_shows_keys_masked_with_a_warning_for_open_publishable_keys(bob_client, alice, acme):
    create_api_key(actor=alice, workspace=acme, kind="publishable", name="Open", domains=[])
    create_api_key(actor=alice, workspace=acme, kind="publishable", name="Locked", domains=["example.com"])
    raw_secret = create_api_key(actor=alice, workspace=acme, kind="secret", name="Server")
    body = bob_client.get("/w/acme/keys/").content.decode()
    for key in ApiKey.objects.filter(workspace=acme):
        assert key.masked in body
    assert raw_secret not in body
    assert body.count("⚠ not locked") == 1
    assert "Server only" in body
    assert "Create a key" not in body  # members read only
    assert "Revoke" not in body


def _snippet_codes(body: str) -> list[str]:
    return re.findall(r'<code id="snippet-\w+">(.*?)</code>', body, flags=re.S)


def test_the_list_snippets_carry_a_placeholder_never_a_masked_key(alice_client, alice, acme):
    # Issue 13: the masked key (pk_live_hLpP…P2N5) in a snippet gives 401 when pasted.
    create_api_key(actor=alice, workspace=acme, kind="publishable", name="Site", domains=["example.com"])
    create_api_key(actor=alice, workspace=acme, kind="secret", name="Server")
    response = alice_client.get("/w/acme/keys/")
    body = response.content.decode()
    codes = _snippet_codes(body)
    assert len(codes) == 2  # <img> and curl
    for code in codes:
        assert "YOUR_PUBLISHABLE_KEY" in code
        assert "…" not in code and "pk_live_" not in code
        for key in ApiKey.objects.filter(workspace=acme):
            assert key.masked not in code and key.prefix not in code
    assert "key=YOUR_PUBLISHABLE_KEY&amp;" in codes[0]
    site = ApiKey.objects.get(name="Site")
    assert "Replace <code>YOUR_PUBLISHABLE_KEY</code>" in body
    assert f"<code>{site.masked}</code>" in body  # the note says which key, outside the snippet
    assert "shown in full only once" in body


def test_a_key_page_after_the_one_view_shows_placeholders_too(alice_client, alice, acme):
    create_api_key(actor=alice, workspace=acme, kind="secret", name="Server")
    key = ApiKey.objects.get(workspace=acme)
    body = alice_client.get(f"/w/acme/keys/{key.uid}/").content.decode()
    (curl,) = _snippet_codes(body)
    assert "x-api-key: YOUR_SECRET_KEY&quot;" in curl
    assert key.masked not in curl


@pytest.mark.parametrize("kind", ["publishable", "secret"])
def test_the_show_once_page_snippets_carry_the_real_key(alice_client, acme, kind):
    page = alice_client.get(_create(alice_client, kind=kind)["Location"])
    body = page.content.decode()
    raw = page.context["raw_key"]
    codes = _snippet_codes(body)
    assert codes and all(raw in code for code in codes)
    assert all("YOUR_" not in code for code in codes)
    assert "Replace <code>YOUR_" not in body
    for code_id in ("snippet-img", "snippet-curl") if kind == "publishable" else ("snippet-curl",):
        assert f'data-copy="#{code_id}"' in body


def test_revoked_keys_leave_the_list_and_stop_working(
    alice_client, alice, acme, client, eileen, django_capture_on_commit_callbacks
):
    raw = create_api_key(actor=alice, workspace=acme, kind="publishable", name="Old")
    key = ApiKey.objects.get(workspace=acme)
    assert client.get("/v1/avatar", {"key": raw, "username": "eileen-collins"}).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(f"/w/acme/keys/{key.uid}/revoke/")
    assert response["Location"] == "/w/acme/keys/"
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert list(alice_client.get("/w/acme/keys/").context["api_keys"]) == []
    assert client.get("/v1/avatar", {"key": raw, "username": "eileen-collins"}).status_code == 401
    assert "Revoked" in alice_client.get(f"/w/acme/keys/{key.uid}/").content.decode()
    # Revoking twice is harmless.
    assert alice_client.post(f"/w/acme/keys/{key.uid}/revoke/").status_code == 302
    assert AuditEvent.objects.filter(action="key.revoked").count() == 1


def test_revoke_needs_no_javascript(alice_client, alice, acme):
    create_api_key(actor=alice, workspace=acme, kind="publishable", name="Site")
    key = ApiKey.objects.get(workspace=acme)
    body = alice_client.get("/w/acme/keys/").content.decode()
    assert '<details class="confirm">' in body
    assert f'action="/w/acme/keys/{key.uid}/revoke/"' in body


def test_edit_domains(alice_client, alice, acme):
    create_api_key(actor=alice, workspace=acme, kind="publishable", name="Site")
    key = ApiKey.objects.get(workspace=acme)
    response = alice_client.post(f"/w/acme/keys/{key.uid}/domains/", {"domains": "Shop.Example.com, *.example.net"})
    assert response["Location"] == f"/w/acme/keys/{key.uid}/"
    key.refresh_from_db()
    assert key.allowed_domains == ["shop.example.com", "*.example.net"]

    bad = alice_client.post(f"/w/acme/keys/{key.uid}/domains/", {"domains": "http://x.example/path"})
    assert bad.status_code == 400
    assert bad.context["domains_form"].errors["domains"]
    key.refresh_from_db()
    assert key.allowed_domains == ["shop.example.com", "*.example.net"]


def test_secret_and_revoked_keys_have_no_domains_to_edit(alice_client, alice, acme):
    create_api_key(actor=alice, workspace=acme, kind="secret", name="Server")
    key = ApiKey.objects.get(workspace=acme)
    assert alice_client.post(f"/w/acme/keys/{key.uid}/domains/", {"domains": "example.com"}).status_code == 400
    key.refresh_from_db()
    assert key.allowed_domains == []


def test_the_clear_key_is_for_the_next_page_view_only(alice_client, alice, acme):
    first = _create(alice_client)["Location"]
    alice_client.get("/w/acme/keys/")  # wandered off: the session still holds it for the key page...
    assert "new_api_key" in alice_client.session
    alice_client.get(first)
    assert "new_api_key" not in alice_client.session  # ...which takes it out
