import re

import pytest
from django.core import mail

from accounts.models import User
from tests.factories import PASSWORD, UserFactory


pytestmark = pytest.mark.django_db


def _activation_link() -> str:
    link = re.search(r"https?://[^/\s]+(/accounts/activate/\S+)", mail.outbox[-1].body).group(1)
    return link


def test_signup_mails_a_link_that_activates_signs_in_and_asks_for_a_workspace(client):
    response = client.post(
        "/accounts/signup/",
        {
            "email": "New.Person@Example.com",
            "name": "New Person",
            "password1": "a sturdy passphrase 42",
            "password2": "a sturdy passphrase 42",
        },
    )
    assert response["Location"] == "/accounts/signup/sent/"
    assert "new.person@example.com" in client.get(response["Location"]).content.decode()
    user = User.objects.get()
    assert user.email == "new.person@example.com"
    assert not user.is_active
    assert "_auth_user_id" not in client.session
    assert mail.outbox[0].to == ["new.person@example.com"]
    link = _activation_link()
    response = client.get(link)
    assert response["Location"] == "/workspaces/new/"
    user.refresh_from_db()
    assert user.is_active
    assert client.get("/dashboard/")["Location"] == "/workspaces/new/"
    client.logout()
    assert client.get(link).status_code == 400  # used up


def test_signup_keeps_a_local_next_and_drops_a_foreign_one(client):
    data = {"email": "a@example.com", "password1": "a sturdy passphrase 42", "password2": "a sturdy passphrase 42"}
    client.post("/accounts/signup/", {**data, "next": "/o/authorize/?client_id=x"})
    assert client.get(_activation_link())["Location"] == "/o/authorize/?client_id=x"
    client.logout()
    data["email"] = "b@example.com"
    client.post("/accounts/signup/", {**data, "next": "https://evil.example/steal"})
    assert "evil" not in mail.outbox[-1].body
    assert client.get(_activation_link())["Location"] == "/workspaces/new/"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"password2": "something else"}, "password2", "didn’t match"),
        ({"password1": "123", "password2": "123"}, "password2", "too short"),
    ],
)
def test_signup_explains_what_is_wrong(client, data, field, message):
    base = {"email": "a@example.com", "password1": "a sturdy passphrase 42", "password2": "a sturdy passphrase 42"}
    response = client.post("/accounts/signup/", {**base, **data})
    assert response.status_code == 200
    assert any(message in error for error in response.context["form"].errors[field])
    assert not User.objects.exists()


def test_login_with_email_in_any_case(client, alice):
    response = client.post("/accounts/login/", {"username": "Alice@Example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response.wsgi_request.user == alice


def test_login_refuses_a_foreign_next(client, alice):
    response = client.post(
        "/accounts/login/?next=https://evil.example/", {"username": alice.email, "password": PASSWORD}
    )
    assert response["Location"] == "/dashboard/"


def test_wrong_password_is_a_clear_error(client, alice):
    response = client.post("/accounts/login/", {"username": alice.email, "password": "nope"})
    assert response.status_code == 200
    assert "do not match" in response.content.decode()


def test_login_is_rate_limited_per_email_and_address(client, alice, settings):
    settings.LOGIN_RATE_LIMIT = 3
    for _ in range(3):
        client.post("/accounts/login/", {"username": alice.email, "password": "wrong"})
    response = client.post("/accounts/login/", {"username": alice.email, "password": PASSWORD})
    assert response.status_code == 200
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_is_rate_limited_per_address_across_emails(client, settings):
    settings.LOGIN_ADDRESS_RATE_LIMIT = 3
    for n in range(3):
        client.post("/accounts/login/", {"username": f"guess{n}@example.com", "password": "wrong"})
    user = UserFactory()
    response = client.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    assert "Too many failed sign-in attempts" in response.content.decode()


def test_logout_needs_post(alice_client):
    assert alice_client.get("/accounts/logout/").status_code == 405
    assert alice_client.post("/accounts/logout/").status_code == 302
    assert "_auth_user_id" not in alice_client.session


def test_password_change(alice_client, alice):
    response = alice_client.post(
        "/accounts/password/change/",
        {
            "old_password": PASSWORD,
            "new_password1": "another sturdy phrase 7",
            "new_password2": "another sturdy phrase 7",
        },
    )
    assert response["Location"] == "/accounts/password/change/done/"
    alice.refresh_from_db()
    assert alice.check_password("another sturdy phrase 7")


def test_password_reset_by_email_link(client, alice, settings):
    settings.PUBLIC_BASE_URL = "https://avtrz.example"
    response = client.post("/accounts/password/reset/", {"email": alice.email}, HTTP_HOST="127.0.0.1")
    assert response["Location"] == "/accounts/password/reset/sent/"
    assert len(mail.outbox) == 1
    link = re.search(r"https://avtrz\.example(/accounts/password/reset/\S+/)", mail.outbox[0].body).group(1)
    form_url = client.get(link)["Location"]
    response = client.post(
        form_url, {"new_password1": "fresh sturdy phrase 9", "new_password2": "fresh sturdy phrase 9"}
    )
    assert response["Location"] == "/accounts/password/reset/done/"
    alice.refresh_from_db()
    assert alice.check_password("fresh sturdy phrase 9")


def test_password_reset_for_unknown_email_says_the_same_and_sends_nothing(client):
    response = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert response["Location"] == "/accounts/password/reset/sent/"
    assert mail.outbox == []


def test_pages_render(client):
    for url in ["/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "Content-Security-Policy" in response
        assert response["X-Frame-Options"] == "DENY"


def test_createsuperuser_noinput_with_environment(monkeypatch):
    from django.core.management import call_command

    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "staff@example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "staff sturdy phrase 1")
    call_command("createsuperuser", "--noinput")
    user = User.objects.get(email="staff@example.com")
    assert user.is_superuser
    assert user.is_staff
    assert user.check_password("staff sturdy phrase 1")
