"""The consent screen in a real browser (Debian's chromium through Playwright), by clicks only."""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from accounts.connections import workspace_for_access_token
from tests import services
from tests.factories import PASSWORD
from tests.oauth.oauthutil import CLAUDE, query, start_authorization


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_switch_workspace_untick_a_scope_and_authorize(alice, acme, globex, settings, tmp_path):
    chromium = services.chromium_path()
    services.with_server_password(alice)
    services.ARTIFACTS.mkdir(exist_ok=True)
    port = services.free_port()
    base = settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{port}"

    with services.running(
        services.uvicorn_cmd(port), env=services.server_env(PUBLIC_BASE_URL=base), port=port, log=tmp_path / "log"
    ):
        oauth, verifier, url, state = start_authorization(base, "claudeai", CLAUDE)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            # Claude is not reachable from the test; its callback is answered here and recorded.
            page.route("https://claude.ai/**", lambda route: route.fulfill(status=200, body="connected"))

            page.goto(url)
            assert "/accounts/login/" in page.url
            page.get_by_label("Email address").fill("alice@example.com")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()

            page.wait_for_url("**/o/authorize/**")
            assert page.get_by_text("✓ Verified publisher").is_visible()
            assert page.locator("#scope-openid").is_disabled()
            page.get_by_label("email See your email address").uncheck()
            page.get_by_text("Switch", exact=True).click()
            page.get_by_label("Bind this connection to").select_option("globex")
            page.screenshot(path=str(services.ARTIFACTS / "consent.png"), full_page=True)

            page.get_by_role("button", name="Authorize").click()
            page.wait_for_url("https://claude.ai/**")
            callback = page.url
            browser.close()

        answer = query(callback)
        assert answer["state"] == state
        assert answer["iss"] == base
        token = oauth.fetch_token(
            f"{base}/o/token/", authorization_response=callback, code_verifier=verifier, timeout=30
        )

    assert token["scope"] == "openid profile offline_access"
    assert workspace_for_access_token(token["access_token"])[1] == globex
    assert (services.ARTIFACTS / "consent.png").stat().st_size > 10_000
