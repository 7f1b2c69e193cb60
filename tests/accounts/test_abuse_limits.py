"""Account abuse limits (issue 13): sign-in, the admin's sign-in, password reset, sign-up."""

import re

import pytest
from django.core import mail
from django.test import Client

from tests.factories import PASSWORD, UserFactory


pytestmark = pytest.mark.django_db

OWNER_IP = "198.51.100.7"
GUESSER_IP = "203.0.113.66"


def _login(client, email, password, ip, path="/accounts/login/"):
    field = {"username": email, "password": password}
    return client.post(path, field, REMOTE_ADDR=ip)


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_admin_login_is_rate_limited(client, settings):
    settings.LOGIN_RATE_LIMIT = 3
    staff = UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)
    for _ in range(3):
        response = _login(client, staff.email, "wrong", GUESSER_IP, path="/admin/login/")
        assert response.status_code == 200
    response = _login(client, staff.email, PASSWORD, GUESSER_IP, path="/admin/login/")
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert not _signed_in(client)


def test_admin_login_still_signs_staff_in(client):
    staff = UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)
    response = _login(client, staff.email, PASSWORD, OWNER_IP, path="/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert _signed_in(client)


def test_a_stranger_who_knows_the_email_cannot_lock_the_owner_out(client, alice, settings):
    settings.LOGIN_RATE_LIMIT = 3
    for _ in range(5):
        _login(client, alice.email, "wrong", GUESSER_IP)
    assert "Too many failed" in _login(client, alice.email, PASSWORD, GUESSER_IP).content.decode()
    response = _login(client, alice.email, PASSWORD, OWNER_IP)
    assert response.status_code == 302
    assert _signed_in(client)


def test_one_address_is_capped_across_emails(client, settings):
    settings.LOGIN_RATE_LIMIT = 3
    settings.LOGIN_ADDRESS_RATE_LIMIT = 4
    for n in range(4):
        _login(client, f"guess{n}@example.com", "wrong", GUESSER_IP)
    user = UserFactory()
    response = _login(client, user.email, PASSWORD, GUESSER_IP)
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert not _signed_in(client)


def _unlock_link():
    unlocks = [m for m in mail.outbox if "unlock" in m.subject.lower()]
    assert len(unlocks) == 1
    return re.search(r"https?://[^/\s]+(/accounts/unlock/\S+/)", unlocks[0].body).group(1)


def test_the_owner_unlocks_sign_in_by_an_emailed_link(client, alice, settings):
    """The owner shares an address with a guesser: the limit mails one link; it works once."""
    settings.LOGIN_RATE_LIMIT = 3
    for _ in range(5):
        _login(client, alice.email, "wrong", OWNER_IP)
    assert [m.to for m in mail.outbox] == [[alice.email]]  # once per window, not per attempt
    link = _unlock_link()
    assert "Too many failed" in _login(client, alice.email, PASSWORD, OWNER_IP).content.decode()
    assert client.get(link).status_code == 200  # a mail scanner fetching the link does not spend it
    assert client.post(link, REMOTE_ADDR=OWNER_IP)["Location"] == "/accounts/login/"
    assert client.post(link, REMOTE_ADDR=OWNER_IP).status_code == 400  # single use
    response = _login(client, alice.email, PASSWORD, OWNER_IP)
    assert response.status_code == 302
    assert _signed_in(client)


def test_the_unlock_link_is_stored_as_a_digest_and_expires(client, alice, settings, monkeypatch):
    import hashlib

    from django.core.cache import cache

    from accounts import unlock

    stored = []
    real_set = cache.set
    monkeypatch.setattr(unlock.cache, "set", lambda key, *a, **kw: stored.append((key, kw)) or real_set(key, *a, **kw))
    settings.LOGIN_RATE_LIMIT = 1
    settings.LOGIN_UNLOCK_TTL_S = 60
    _login(client, alice.email, "wrong", OWNER_IP)
    token = _unlock_link().rstrip("/").rsplit("/", 1)[1]
    links = [(key, options) for key, options in stored if key.startswith("login-unlock:")]
    assert links == [("login-unlock:" + hashlib.sha256(token.encode()).hexdigest(), {"timeout": 60})]
    assert not any(token in key for key, _ in stored)
    cache.delete(links[0][0])  # what the expiry does
    assert client.post(f"/accounts/unlock/{token}/").status_code == 400


def test_no_unlock_mail_for_an_email_without_an_account(client, settings):
    settings.LOGIN_RATE_LIMIT = 2
    for _ in range(4):
        _login(client, "nobody@example.com", "wrong", GUESSER_IP)
    assert mail.outbox == []


def test_password_reset_is_limited_per_email_with_the_same_answer(client, alice, settings):
    settings.PASSWORD_RESET_EMAIL_LIMIT = 3
    for n in range(15):
        response = client.post("/accounts/password/reset/", {"email": alice.email}, REMOTE_ADDR=f"192.0.2.{n}")
        assert response["Location"] == "/accounts/password/reset/sent/"
    assert len(mail.outbox) == 3
    for n in range(15):  # an email without an account answers the same way throughout
        response = client.post("/accounts/password/reset/", {"email": "nobody@example.com"}, REMOTE_ADDR=f"192.0.2.{n}")
        assert response["Location"] == "/accounts/password/reset/sent/"


def test_password_reset_is_limited_per_address(client, settings):
    settings.PASSWORD_RESET_ADDRESS_LIMIT = 4
    users = [UserFactory() for _ in range(6)]
    answers = [client.post("/accounts/password/reset/", {"email": u.email}, REMOTE_ADDR=GUESSER_IP) for u in users]
    assert [a.status_code for a in answers] == [302] * 4 + [429] * 2
    assert "Too many password reset requests" in answers[-1].content.decode()
    assert len(mail.outbox) == 4


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        (
            "GET /accounts/password/reset/MjU/diwxhj-8157fae7119c7c37e012698265791fda/ 302",
            "GET /accounts/password/reset/MjU/[redacted]/ 302",
        ),
        ("GET /accounts/password/reset/MjU/set-password/ 200", "GET /accounts/password/reset/MjU/set-password/ 200"),
        ("GET /accounts/password/reset/sent/ 200", "GET /accounts/password/reset/sent/ 200"),
        (
            "GET /accounts/activate/MjU/diwxhj-8157fae7119c7c/?next=/w/ 302",
            "GET /accounts/activate/MjU/[redacted]/?next=/w/ 302",
        ),
        ("https://avtrz.example/accounts/unlock/Zx9-abc_DEF/", "https://avtrz.example/accounts/unlock/[redacted]/"),
        ("POST /invitations/q1W2e3R4t5Y6u7I8o9P0/ 302", "POST /invitations/[redacted]/ 302"),
    ],
)
def test_reset_unlock_and_invitation_tokens_are_redacted_in_logged_urls(raw, logged):
    from avtrz.lib.logs import redact

    assert redact(raw) == logged
    assert redact(logged) == logged


SIGNUP = {"name": "Someone", "password1": "a sturdy passphrase 42", "password2": "a sturdy passphrase 42"}


def test_signup_answers_the_same_whether_or_not_the_email_has_an_account(client, alice):
    taken = client.post("/accounts/signup/", {**SIGNUP, "email": "ALICE@example.com"})
    free = Client().post("/accounts/signup/", {**SIGNUP, "email": "fresh@example.com"})
    assert taken.status_code == free.status_code == 302
    assert taken["Location"] == free["Location"] == "/accounts/signup/sent/"
    assert "_auth_user_id" not in client.session
    # Only the mailboxes learn the difference.
    existing, activation = mail.outbox
    assert existing.to == ["alice@example.com"] and "already" in existing.subject
    assert "/accounts/login/" in existing.body and "/accounts/password/reset/" in existing.body
    assert activation.to == ["fresh@example.com"] and "/accounts/activate/" in activation.body
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD) and alice.name == "Alice Example"  # untouched


def test_the_already_registered_mail_is_not_a_mail_cannon(client, alice):
    for _ in range(5):
        client.post("/accounts/signup/", {**SIGNUP, "email": alice.email})
    assert len(mail.outbox) == 1


def _invite(workspace, inviter, email):
    from workspaces.models import Invitation

    invitation = Invitation(workspace=workspace, email=email, invited_by=inviter)
    token = invitation.issue_token()
    invitation.save()
    return f"/invitations/{token}/"


def test_an_invitation_to_that_address_signs_up_at_once(client, acme, alice):
    path = _invite(acme, alice, "dana@example.com")
    page = client.get("/accounts/signup/", {"next": path})
    assert page.context["form"]["email"].value() == "dana@example.com"  # filled in
    response = client.post("/accounts/signup/", {**SIGNUP, "email": "dana@example.com", "next": path})
    assert response["Location"] == path
    assert _signed_in(client)
    page = client.get(path)
    assert "Accept the invitation to join Acme" in page.content.decode()
    assert "Create a workspace to get your API keys" not in page.content.decode()


def test_an_invitation_to_another_address_still_needs_the_mailed_link(client, acme, alice):
    path = _invite(acme, alice, "dana@example.com")
    response = client.post("/accounts/signup/", {**SIGNUP, "email": "eve@example.com", "next": path})
    assert response["Location"] == "/accounts/signup/sent/"
    assert not _signed_in(client)


def test_signing_in_before_following_the_link_says_what_to_do(client):
    client.post("/accounts/signup/", {**SIGNUP, "email": "new@example.com"})
    response = _login(client, "new@example.com", SIGNUP["password1"], OWNER_IP)
    assert response.status_code == 200 and not _signed_in(client)
    assert "Follow the link in the email we sent you first" in response.content.decode()


def test_a_taken_address_costs_the_same_password_hashing_as_a_new_one(client, alice, monkeypatch):
    from accounts import views

    hashed = []
    monkeypatch.setattr(views, "make_password", lambda raw: hashed.append(raw))
    client.post("/accounts/signup/", {**SIGNUP, "email": alice.email})
    assert hashed == [SIGNUP["password1"]]
