"""Issue 13: control characters in names, and quota warnings that are not lost when a send fails."""

from smtplib import SMTPServerDisconnected

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from workspaces import quota_warnings, services, usage
from workspaces.models import ApiKey, UsagePeriod, Workspace


pytestmark = pytest.mark.django_db

BAD_NAMES = ["Acme\r\nBcc: victim@example.com", "Acme\nCorp", "Tab\there", "Nul\x00l", "Line\u2028sep", "Bell\x07"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_workspace_names_with_control_characters_are_refused(alice_client, acme, name):
    created = alice_client.post("/workspaces/new/", {"name": name})
    renamed = alice_client.post("/w/acme/rename/", {"name": name})
    if "\x00" in name:  # a NUL never reaches a view (avtrz.lib.middleware)
        assert created.status_code == renamed.status_code == 400
    else:
        assert created.status_code == 200
        assert "without control characters" in created.content.decode()
        assert renamed.status_code == 400
        assert "without control characters" in renamed.content.decode()
    acme.refresh_from_db()
    assert acme.name == "Acme"
    assert not Workspace.objects.exclude(pk=acme.pk).exists()


@pytest.mark.parametrize("name", BAD_NAMES[:2])
def test_key_names_with_control_characters_are_refused(alice_client, acme, name):
    response = alice_client.post("/w/acme/keys/new/", {"name": name, "kind": "publishable", "domains": ""})
    assert response.status_code == 400
    assert "without control characters" in response.content.decode()
    assert not ApiKey.objects.filter(name__contains="Acme").exists()


def test_user_names_with_control_characters_are_refused(client):
    response = client.post(
        "/accounts/signup/",
        {
            "email": "new@example.com",
            "name": "Eve\r\nBcc: all@example.com",
            "password1": "a sturdy passphrase 42",
            "password2": "a sturdy passphrase 42",
        },
    )
    assert response.status_code == 200
    assert "without control characters" in response.context["form"].errors["name"][0]


def test_services_refuse_control_characters_too(alice, acme):
    with pytest.raises(ValidationError):
        services.create_workspace(owner=alice, name="A\nB")
    with pytest.raises(ValidationError):
        services.rename_workspace(actor=alice, workspace=acme, name="A\rB")
    with pytest.raises(ValidationError):
        services.create_api_key(actor=alice, workspace=acme, kind="secret", name="A\nB")


def test_an_invitation_from_a_workspace_named_before_the_check_still_sends(
    alice_client, acme, django_capture_on_commit_callbacks
):
    Workspace.objects.filter(pk=acme.pk).update(name="Acme\r\nBcc: victim@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/w/acme/members/invite/", {"email": "dana@example.com", "role": "member"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "\n" not in mail.outbox[0].subject and "\r" not in mail.outbox[0].subject
    assert mail.outbox[0].to == ["dana@example.com"]


def _spend(workspace, *, profiles):
    period = usage.current_period(workspace)
    UsagePeriod.objects.filter(pk=period.pk).update(avatar_new_profiles=profiles)
    period.refresh_from_db()
    return period


def test_a_quota_warning_whose_send_fails_is_not_marked_and_is_sent_at_the_next_check(
    acme, monkeypatch, django_capture_on_commit_callbacks
):
    from workspaces import emails

    real_send = emails.send_mail

    def broken(*args, **kwargs):
        raise SMTPServerDisconnected("the mail server went away")

    monkeypatch.setattr(emails, "send_mail", broken)
    with django_capture_on_commit_callbacks(execute=True):
        quota_warnings.warn_quota_thresholds(_spend(acme, profiles=85), requests_used=0)
    assert mail.outbox == []
    period = usage.current_period(acme)
    period.refresh_from_db()
    assert period.new_profiles_warned_80_at is None  # not marked: it was not sent

    monkeypatch.setattr(emails, "send_mail", real_send)
    with django_capture_on_commit_callbacks(execute=True):
        assert quota_warnings.warn_quota_thresholds(_spend(acme, profiles=85), requests_used=0) == [
            ("new_profiles", 80)
        ]
    assert [m.subject for m in mail.outbox] == ["Acme has used 80% of its new profiles for this cycle"]
    period.refresh_from_db()
    assert period.new_profiles_warned_80_at is not None


def test_a_quota_warning_that_cannot_be_queued_is_not_marked(acme, monkeypatch, django_capture_on_commit_callbacks):
    from workspaces import emails

    def no_broker(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(emails.send_quota_warning, "delay", no_broker)
    with django_capture_on_commit_callbacks(execute=True):
        quota_warnings.warn_quota_thresholds(_spend(acme, profiles=100), requests_used=0)
    period = usage.current_period(acme)
    period.refresh_from_db()
    assert period.new_profiles_warned_80_at is None and period.new_profiles_warned_100_at is None
