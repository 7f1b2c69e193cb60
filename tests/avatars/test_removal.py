"""Removing a person's photo (issue 15): the public request, the email confirmation, support's one
action, and what every way of showing the photo answers afterwards."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.core.cache import cache
from django.core.files.storage import FileSystemStorage, default_storage
from django.utils import timezone

from avtrz.avatars import enrichment, removal, tasks
from avtrz.avatars.directory import ImportError_, import_profile
from avtrz.avatars.models import OptOut, OptOutChange, Profile, RemovalRequest
from mcpserver import lookups
from tests.avatars.conftest import IMAGES


pytestmark = pytest.mark.django_db

# A pasted URL form other than the canonical one: the opt-out covers the profile, not the string.
PASTED_URL = "https://uk.linkedin.com/in/Eileen-Collins/?originalSubdomain=uk"
NEUTRAL = "This person has asked not to be shown."


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run the code under test's on-commit work (mail, cache, purge) as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def ask(client, committed, profile=PASTED_URL, email="eileen@example.com", reason="This is me; please remove it."):
    with committed():
        return client.post("/privacy/removal/", {"profile": profile, "email": email, "reason": reason})


def confirmation_path(message) -> str:
    return urlsplit(re.search(r"https?://\S+/privacy/removal/confirm/\S+/", message.body).group(0)).path


def admin_action(staff_client, committed, model: str, action: str, pks, **extra):
    with committed():
        return staff_client.post(
            f"/admin/avatars/{model}/", {"action": action, "_selected_action": [str(pk) for pk in pks], **extra}
        )


def avatar(client, pk, **params):
    return client.get("/v1/avatar", {"key": pk, "size": "256", **params}, HTTP_ACCEPT="image/webp,image/*")


def test_a_confirmed_request_handled_by_support_takes_the_photo_away_everywhere(
    client, staff_client, staff, eileen, pk, acme, linkedin, committed
):
    names, _ = removal.stored_names(eileen.images.all())
    before = avatar(client, pk, username="eileen-collins")
    assert before.status_code == 302
    image_path = urlsplit(before["Location"]).path
    assert client.get(image_path).status_code == 200
    assert names and all(default_storage.exists(name) for name in names)

    sent = ask(client, committed)
    assert sent.status_code == 200 and b"Check your inbox" in sent.content
    [message] = mail.outbox
    assert message.to == ["eileen@example.com"]
    assert "eileen-collins" in message.subject
    path = confirmation_path(message)
    # Opening the link (as a mail scanner would) shows a button and confirms nothing by itself.
    assert b"Confirm the removal" in client.get(path).content
    assert RemovalRequest.objects.get().status == RemovalRequest.Status.UNCONFIRMED
    assert b"Removal confirmed" in client.post(path).content
    request = RemovalRequest.objects.get()
    assert (request.handle, request.status) == ("eileen-collins", RemovalRequest.Status.CONFIRMED)

    queue = staff_client.get("/admin/avatars/removalrequest/?status__exact=confirmed")
    assert b"eileen-collins" in queue.content
    response = admin_action(staff_client, committed, "removalrequest", "remove", [request.pk])
    assert response.status_code == 302

    assert not any(default_storage.exists(name) for name in names)
    assert client.get(image_path).status_code == 410
    after = avatar(client, pk, username="eileen-collins")
    assert after.status_code == 200 and after["Content-Type"] == "image/svg+xml"
    assert b">EC<" in after.content  # initials from the handle: the name is gone too
    assert not Profile.objects.filter(handle="eileen-collins").exists()
    change = OptOutChange.objects.get()
    assert (change.action, change.actor, change.purge) == ("removed", staff, OptOutChange.Purge.DONE)
    assert "This is me" in change.reason and change.request == request
    request.refresh_from_db()
    assert (request.status, request.handled_by) == (RemovalRequest.Status.REMOVED, staff)

    for result in (
        lookups.profile_avatar(acme, "linkedin.com/in/eileen-collins", None, 256),
        lookups.profile(acme, None, "Eileen-Collins"),
    ):
        assert result.structured["status"] == "opted_out"
        assert [(block.type, block.text) for block in result.content] == [("text", NEUTRAL)]
        assert not {"imageUrl", "pictureUrl", "mimeType"} & set(result.structured)

    # Nothing brings it back: not a new request in another URL form once the card expired, nor a refresh.
    cache.clear()
    linkedin.profile("eileen-collins", name="Eileen Collins", photo_url=linkedin.photo("face.jpg"))
    again = avatar(client, pk, linkedin_url="http://www.linkedin.com/in/EILEEN-COLLINS")
    assert again.status_code == 200 and again["Content-Type"] == "image/svg+xml"
    assert enrichment.enrich("eileen-collins") is None
    assert linkedin.server.requests == []
    assert not Profile.objects.filter(handle="eileen-collins").exists()


def test_unconfirmed_requests_do_nothing_and_links_do_not_outlive_their_days(client, staff_client, eileen, committed):
    ask(client, committed)
    request = RemovalRequest.objects.get()
    response = admin_action(staff_client, committed, "removalrequest", "remove", [request.pk])
    assert response.status_code == 302
    assert Profile.objects.filter(handle="eileen-collins").exists() and not OptOut.objects.exists()
    assert "Skipped 1 request" in staff_client.get("/admin/avatars/removalrequest/").content.decode()

    # Someone who cannot read the mail cannot confirm: a made-up token, and the real one once expired.
    assert client.post("/privacy/removal/confirm/made-up-token/").status_code == 400
    RemovalRequest.objects.update(created_at=timezone.now() - removal.CONFIRM_WITHIN - timedelta(minutes=1))
    assert client.post(confirmation_path(mail.outbox[0])).status_code == 400
    assert RemovalRequest.objects.get().status == RemovalRequest.Status.UNCONFIRMED


def test_a_flood_of_requests_is_limited_per_address_per_profile_and_per_sender(client, committed):
    by_address = [ask(client, committed, profile=f"person-{n}", email="same@example.com") for n in range(5)]
    assert [response.status_code for response in by_address] == [200, 200, 200, 429, 429]
    assert b"Too many removal requests for this email address" in by_address[-1].content
    by_profile = [ask(client, committed, profile="janedoe", email=f"p{n}@example.com") for n in range(7)]
    assert [response.status_code for response in by_profile] == [200] * 5 + [429] * 2
    # 12 so far from this client; new addresses and profiles each time do not get past 20.
    by_sender = [ask(client, committed, profile=f"other-{n}", email=f"o{n}@example.com") for n in range(9)]
    assert [response.status_code for response in by_sender] == [200] * 8 + [429]
    assert b"Too many removal requests from your network" in by_sender[-1].content
    assert len(mail.outbox) == RemovalRequest.objects.count() == 16


def test_the_form_says_what_is_wrong(client, committed):
    response = ask(client, committed, profile="https://www.linkedin.com/company/acme", email="not-an-email")
    assert response.status_code == 400
    text = response.content.decode()
    assert "The profile URL is a company page, not a person&#x27;s profile" in text
    assert "Enter a valid email address" in text
    assert not mail.outbox


def test_the_footer_and_the_privacy_page_lead_to_the_form(client):
    landing = client.get("/").content.decode()
    assert 'href="/privacy/"' in landing and 'href="/privacy/removal/"' in landing
    privacy = client.get("/privacy/").content.decode()
    assert 'href="/privacy/removal/"' in privacy and "within 3 days" in privacy


def test_support_removes_on_their_own_with_a_reason_and_only_support_restores(
    client, staff_client, staff, eileen, pk, linkedin, committed
):
    asked = admin_action(staff_client, committed, "profile", "remove_and_opt_out", [eileen.pk])
    assert asked.status_code == 200 and b"reason" in asked.content  # the reason comes first
    assert Profile.objects.filter(pk=eileen.pk).exists()
    removed = admin_action(
        staff_client, committed, "profile", "remove_and_opt_out", [eileen.pk], reason="Photo of a minor."
    )
    assert removed.status_code == 302
    assert OptOut.objects.filter(handle="eileen-collins").exists()
    assert OptOutChange.objects.get().reason == "Photo of a minor."
    with pytest.raises(ImportError_, match="opt-out list"):
        import_profile({"linkedin_url": PASTED_URL, "photo_file": "face.jpg"}, base_dir=IMAGES)

    opt_out = OptOut.objects.get()
    admin_action(staff_client, committed, "optout", "restore", [opt_out.pk], reason="Asked by mistake, per email.")
    assert not OptOut.objects.exists()
    restored = OptOutChange.objects.get(action=OptOutChange.Action.RESTORED)
    assert (restored.actor, restored.reason) == (staff, "Asked by mistake, per email.")
    linkedin.profile("eileen-collins", name="Eileen Collins", photo_url=linkedin.photo("face.jpg"))
    with committed():
        assert enrichment.enrich("eileen-collins").status == Profile.Status.RESOLVED
    back = avatar(client, pk, username="eileen-collins")
    assert back.status_code == 302  # the same photo, under the same hashes, is served again
    assert client.get(urlsplit(back["Location"]).path).status_code == 200


def test_a_storage_outage_leaves_the_removal_retrying_until_storage_answers(
    client, eileen, staff, monkeypatch, committed, settings
):
    names, hashes = removal.stored_names(eileen.images.all())

    def unavailable(storage, name):
        raise OSError("storage unavailable")

    monkeypatch.setattr(FileSystemStorage, "delete", unavailable)
    with committed():
        change = removal.remove_profile("eileen-collins", actor=staff, reason="Request by email.")
    change.refresh_from_db()
    assert change.purge == OptOutChange.Purge.RETRYING and "storage unavailable" in change.purge_error
    assert all(default_storage.exists(name) for name in names)
    # The files still exist, yet no URL serves them any more.
    assert all(client.get(f"/img/{digest}.webp").status_code == 410 for digest in hashes)

    monkeypatch.undo()
    beat = settings.CELERY_BEAT_SCHEDULE["retry-unfinished-purges"]["task"]
    assert beat == tasks.retry_unfinished_purges.name
    assert tasks.retry_unfinished_purges.delay().get() == 1
    change.refresh_from_db()
    assert change.purge == OptOutChange.Purge.DONE and change.purged_at is not None
    assert not any(default_storage.exists(name) for name in names)
    assert tasks.retry_unfinished_purges() == 0


def test_support_retries_a_stuck_purge_from_the_removals_log(eileen, staff, staff_client, monkeypatch, committed):
    names, _hashes = removal.stored_names(eileen.images.all())

    def unavailable(storage, name):
        raise OSError("storage unavailable")

    monkeypatch.setattr(FileSystemStorage, "delete", unavailable)
    with committed():
        change = removal.remove_profile("eileen-collins", actor=staff, reason="Request by email.")
    monkeypatch.undo()

    with committed():
        page = staff_client.post(
            "/admin/avatars/optoutchange/", {"action": "retry_purge", "_selected_action": [change.pk]}, follow=True
        )
    assert b"Queued 1 purge." in page.content
    change.refresh_from_db()
    assert change.purge == OptOutChange.Purge.DONE
    assert not any(default_storage.exists(name) for name in names)


def test_support_opts_out_a_pasted_profile_the_directory_has_never_seen(client, staff_client, staff, pk, linkedin):
    page = staff_client.get("/admin/avatars/optout/add/")
    assert page.status_code == 200 and b"Remove a profile and opt it out" in page.content
    bad = staff_client.post("/admin/avatars/optout/add/", {"profile": "https://example.com/in/x", "reason": "Email."})
    assert bad.status_code == 200 and b"must be on linkedin.com" in bad.content
    done = staff_client.post(
        "/admin/avatars/optout/add/", {"profile": "https://de.linkedin.com/in/Jane-Doe?trk=x", "reason": "Email."}
    )
    assert done.status_code == 302
    change = OptOutChange.objects.get()
    assert (change.handle, change.actor, change.purge) == ("jane-doe", staff, OptOutChange.Purge.NONE)
    answer = avatar(client, pk, username="jane-doe")
    assert answer.status_code == 200 and answer["Content-Type"] == "image/svg+xml"
    assert linkedin.server.requests == [] and not Profile.objects.exists()
