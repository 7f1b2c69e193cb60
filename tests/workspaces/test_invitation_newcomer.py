"""Issue 13: an invitation as a newcomer meets it: the sign-up page says what they join, and an
invitation link replaced by a newer email says so instead of "not valid"."""

import re

import pytest
from django.core import mail
from django.test import Client

from workspaces.models import Invitation, Membership


pytestmark = pytest.mark.django_db


def _invite(alice_client, django_capture_on_commit_callbacks, email="dana@example.com") -> str:
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post("/w/acme/members/invite/", {"email": email, "role": "member"})
    return re.search(r"http://\S+(/invitations/\S+/)", mail.outbox[-1].body).group(1)


def test_a_superseded_invitation_link_says_it_was_replaced(alice_client, client, django_capture_on_commit_callbacks):
    first = _invite(alice_client, django_capture_on_commit_callbacks)
    second = _invite(alice_client, django_capture_on_commit_callbacks)  # re-sent: a fresh link
    assert first != second and Invitation.objects.count() == 1
    page = client.get(first)
    assert page.status_code == 410
    body = page.content.decode()
    assert "replaced by a newer invitation to <strong>dana@example.com</strong>" in body
    assert "most recent email" in body
    assert client.get(second).status_code == 200
    assert client.get("/invitations/never-issued/").status_code == 404


def test_a_superseded_link_admits_nobody(alice_client, django_capture_on_commit_callbacks):
    from tests.factories import UserFactory

    first = _invite(alice_client, django_capture_on_commit_callbacks)
    _invite(alice_client, django_capture_on_commit_callbacks)
    client = Client()
    client.force_login(UserFactory(email="dana@example.com"))
    assert client.post(first).status_code == 410
    assert not Membership.objects.filter(user__email="dana@example.com").exists()


def test_the_sign_up_page_says_which_workspace_the_newcomer_joins(alice_client, django_capture_on_commit_callbacks):
    link = _invite(alice_client, django_capture_on_commit_callbacks)
    client = Client()  # the newcomer, signed out
    page = client.get(link).content.decode()
    assert re.search(r'href="/accounts/signup/\?next=[^"]*invitations', page)
    body = client.get("/accounts/signup/", {"next": link}).content.decode()
    assert "Create your account to join <strong>Acme</strong>" in body
    assert 'value="dana@example.com"' in body
