"""A person new to Avtrz, sent by an AI app to connect, in a real browser (Debian's chromium through
Playwright): the sign-in and sign-up pages say which app is waiting and that they will come back to
approve it; they sign up, make a workspace, approve, and the app gets its code."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect, sync_playwright

from accounts.connections import workspace_for_access_token
from accounts.models import User
from tests import services
from tests.factories import PASSWORD
from tests.oauth.oauthutil import query, start_authorization


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

INSPECTOR = "http://localhost:6274/oauth/callback"


def _activation_link(mailbox) -> str:
    body = "".join(path.read_text() for path in sorted(mailbox.iterdir()))
    return re.search(r"https?://\S+/accounts/activate/\S+", body).group(0)


def test_a_fresh_user_is_told_which_app_waits_signs_up_approves_and_goes_back(settings, tmp_path):
    chromium = services.chromium_path()
    services.ARTIFACTS.mkdir(exist_ok=True)
    port = services.free_port()
    base = settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{port}"

    mailbox = tmp_path / "mail"
    env = services.server_env(
        PUBLIC_BASE_URL=base,
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mailbox),
    )
    with services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "log"):
        oauth, verifier, url, state = start_authorization(base, "MCP Inspector", INSPECTOR)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            # The Inspector's callback is not running here: answered in the browser and recorded.
            page.route("http://localhost:6274/**", lambda route: route.fulfill(status=200, body="connected"))

            page.goto(url)
            assert "/accounts/login/" in page.url
            waiting = page.locator("#waiting-app")
            expect(waiting).to_contain_text("MCP Inspector")
            expect(waiting).to_contain_text("✓ Verified publisher")
            expect(waiting).to_contain_text("is waiting to connect to your Avtrz account")
            expect(waiting).to_contain_text("Sign in first, then you'll come back to approve or deny it")
            page.screenshot(path=str(services.ARTIFACTS / "signin-waiting-app.png"), full_page=True)

            page.get_by_role("link", name="Create an account").click()
            page.wait_for_url("**/accounts/signup/**")
            expect(waiting).to_contain_text("MCP Inspector")
            expect(waiting).to_contain_text("Create your account first, then you'll come back to approve")
            page.screenshot(path=str(services.ARTIFACTS / "signup-waiting-app.png"), full_page=True)
            page.get_by_label("Email address").fill("grace@example.com")
            page.get_by_label("Your name").fill("Grace Hopper")
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_label("Password confirmation").fill(PASSWORD)
            page.get_by_role("button", name="Create account").click()
            page.wait_for_url(re.compile(r".*/(o/authorize|accounts/signup/sent)/.*"))
            if "/accounts/signup/sent/" in page.url:  # where sign-up asks to confirm the address first
                page.goto(_activation_link(mailbox))

            # Back at the consent screen, which asks for a workspace first and returns after it.
            page.wait_for_url("**/o/authorize/**")
            expect(page.get_by_text("You need a workspace first.")).to_be_visible()
            page.locator(".consent-empty").get_by_role("link", name="Create a workspace").click()
            page.get_by_label("Workspace name").fill("Orbit Labs")
            page.get_by_role("button", name="Create workspace").click()
            page.wait_for_url("**/o/authorize/**")
            expect(page.locator("#publisher")).to_contain_text("✓ Verified publisher")
            page.get_by_role("button", name="Authorize").click()
            page.wait_for_url("http://localhost:6274/**")
            callback = page.url
            browser.close()

        answer = query(callback)
        assert answer["state"] == state
        token = oauth.fetch_token(
            f"{base}/o/token/", authorization_response=callback, code_verifier=verifier, timeout=30
        )

    grace = User.objects.get(email="grace@example.com")
    _token, workspace = workspace_for_access_token(token["access_token"])
    assert workspace.name == "Orbit Labs" and workspace.memberships.filter(user=grace).exists()
    assert (services.ARTIFACTS / "signin-waiting-app.png").stat().st_size > 10_000
