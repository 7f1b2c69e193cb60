"""The sign-in and sign-up pages in front of an authorization request: they name the app waiting to
connect with the consent screen's badge, and say the person comes back to approve it; a request
that does not check out (unknown client, a redirect URI it never registered) gets the plain page.
A client's prompt=create goes to the sign-up page first, and from there to the consent screen."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from django.core import mail
from django.test import Client

from tests.oauth.oauthutil import CLAUDE, authorize_params, authorize_path, pkce, query


INSPECTOR = "http://localhost:6274/oauth/callback"


def login_page(client: Client, authorize: str):
    response = client.get(authorize)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), response
    return client.get(response["Location"])


def authorize_for(client_id: str, redirect_uri: str) -> str:
    return authorize_path(authorize_params(client_id, redirect_uri, pkce()[1]))


@pytest.mark.django_db
def test_sign_in_and_sign_up_name_the_waiting_app(register):
    app = register(client_name="My Notes Bot", redirect_uris=["https://notes.example/callback"])
    page = login_page(Client(), authorize_for(app["client_id"], "https://notes.example/callback"))
    html = page.content.decode()
    assert 'id="waiting-app"' in html
    assert "My Notes Bot" in html and "Unverified" in html
    assert "is waiting to connect to your Avtrz account" in html
    assert "Sign in first, then you'll come back to approve or deny it" in html

    # "Create an account" carries the request along, and that page says the same.
    signup_link = page.context["next"]
    signup = Client().get(f"/accounts/signup/?{urlencode({'next': signup_link})}")
    html = signup.content.decode()
    assert "My Notes Bot" in html and "is waiting to connect" in html
    assert "Create your account first, then you'll come back to approve" in html


@pytest.mark.django_db
def test_a_recognised_redirect_shows_the_verified_publisher(register):
    app = register(client_name="claude", redirect_uris=[CLAUDE])
    html = login_page(Client(), authorize_for(app["client_id"], CLAUDE)).content.decode()
    assert "✓ Verified publisher" in html and "Claude by Anthropic" in html


@pytest.mark.django_db
def test_requests_that_do_not_check_out_get_the_plain_page(register):
    app = register(client_name="Claude", redirect_uris=["https://evil.example/cb"])
    plain = [
        # A name anyone can register, and a redirect URI it never registered: no Claude badge.
        authorize_for(app["client_id"], CLAUDE),
        authorize_for("no-such-client", CLAUDE),
    ]
    for authorize in plain:
        html = login_page(Client(), authorize).content.decode()
        assert 'id="waiting-app"' not in html, authorize
        assert "Verified publisher" not in html
    for next_url in ("https://evil.example/o/authorize/?client_id=" + app["client_id"], "/w/", ""):
        html = Client().get(f"/accounts/login/?{urlencode({'next': next_url})}").content.decode()
        assert 'id="waiting-app"' not in html, next_url


# ------------------------------------------------ prompt=create: "initiate user registration"


@pytest.mark.django_db
def test_prompt_create_takes_a_new_person_through_sign_up_to_the_consent_screen(register):
    app = register(client_name="My Notes Bot", redirect_uris=["https://notes.example/callback"])
    authorize = authorize_path(
        authorize_params(app["client_id"], "https://notes.example/callback", pkce()[1], prompt="create", state="s-9")
    )
    browser = Client()
    response = browser.get(authorize)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/signup/?"), response
    next_url = query(response["Location"])["next"]
    # Back to the same request without prompt=create, so it does not send the person here again.
    assert next_url.startswith("/o/authorize/?") and "prompt" not in query(next_url)
    assert query(next_url)["state"] == "s-9"
    html = browser.get(response["Location"]).content.decode()
    assert "My Notes Bot" in html and "Create your account first, then you'll come back to approve" in html

    password = "a sturdy passphrase 42"
    signup = {"email": "new@example.com", "password1": password, "password2": password, "next": next_url}
    assert browser.post("/accounts/signup/", signup)["Location"] == "/accounts/signup/sent/"
    activation = re.search(r"https?://[^/\s]+(/accounts/activate/\S+)", mail.outbox[-1].body).group(1)
    assert browser.get(activation)["Location"] == next_url
    consent = browser.get(next_url)
    assert consent.status_code == 200 and "My Notes Bot" in consent.content.decode()
    assert "/workspaces/new/?next=" in consent.content.decode()  # a new account's first workspace, then back


@pytest.mark.django_db
def test_prompt_create_for_someone_signed_in_is_the_consent_screen(register, alice, acme):
    app = register(redirect_uris=[CLAUDE])
    browser = Client()
    browser.force_login(alice)
    response = browser.get(authorize_path(authorize_params(app["client_id"], CLAUDE, pkce()[1], prompt="create")))
    assert response.status_code == 200
    assert b'name="allow"' in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed in"])
def test_prompt_create_with_a_redirect_uri_never_registered_is_the_error_page(register, alice, signed_in):
    app = register(redirect_uris=[CLAUDE])
    browser = Client()
    if signed_in:
        browser.force_login(alice)
    response = browser.get(
        authorize_path(authorize_params(app["client_id"], "https://evil.example/cb", pkce()[1], prompt="create"))
    )
    assert response.status_code == 400 and "Location" not in response
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_discovery_says_prompt_create_is_supported():
    assert "create" in Client().get("/.well-known/openid-configuration").json()["prompt_values_supported"]
