"""The dashboard in a real browser (Debian's chromium through Playwright) against the live ASGI server:
sign up, create a workspace, create and copy a publishable key, see its <img> snippet render a face,
watch the meters update live, revoke the key and see the snippet fall back to the monogram.
Screenshots of every dashboard page go to tests/artifacts/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect, sync_playwright

from avtrz.avatars.directory import import_profile
from tests import services


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# CI machines are small and busy: give the page time rather than fail on a slow second.
expect.set_options(timeout=15_000)

IMAGES = services.ROOT / "tests" / "fixtures" / "images"
PASSWORD = "a long and unusual passphrase 42"


def _render_snippet(browser, snippet: str) -> tuple[dict, int]:
    """Put the snippet in a blank page of a fresh context (no cached redirects) and load it.
    Returns the final image response's status and headers, and the image's natural width."""
    context = browser.new_context()
    page = context.new_page()
    answers = []
    page.on("response", lambda response: answers.append(response))
    page.set_content(f"<!doctype html><html><body>{snippet}</body></html>", wait_until="load")
    page.wait_for_function("document.images[0].complete")
    width = page.evaluate("document.images[0].naturalWidth")
    image = [r for r in answers if r.request.resource_type == "image" and r.status not in (301, 302)][-1]
    answer = {"status": image.status, "type": image.headers.get("content-type", ""), "url": image.url}
    context.close()
    return answer, width


def _activation_link(mailbox) -> str:
    body = "".join(path.read_text() for path in sorted(mailbox.iterdir()))
    return re.search(r"https?://\S+/accounts/activate/\S+", body).group(0)


def test_sign_up_create_a_key_use_it_and_revoke_it(settings, tmp_path):
    chromium = services.chromium_path()
    services.ARTIFACTS.mkdir(exist_ok=True)
    import_profile({"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "face.jpg"}, base_dir=IMAGES)
    port = services.free_port()
    base = settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{port}"
    mailbox = tmp_path / "mail"
    env = services.server_env(
        PUBLIC_BASE_URL=base,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mailbox),
    )

    with (
        services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "server.log"),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = context.new_page()

        page.goto(f"{base}/accounts/signup/")
        page.get_by_label("Email address").fill("grace@example.com")
        page.get_by_label("Your name").fill("Grace Hopper")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Password confirmation").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        page.wait_for_url("**/accounts/signup/sent/")
        expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
        page.goto(_activation_link(mailbox))  # the link in the mail signs the new account in
        page.wait_for_url("**/workspaces/new/**")
        page.get_by_label("Workspace name").fill("Orbit Labs")
        page.get_by_role("button", name="Create workspace").click()
        page.wait_for_url(f"{base}/w/orbit-labs/")
        expect(page.locator("[data-live-status]")).to_have_text("Live")  # the WebSocket is open

        page.get_by_role("link", name="API keys", exact=True).click()
        page.get_by_label("Name").fill("Landing page")
        page.get_by_label("Kind").select_option("publishable")
        page.get_by_role("button", name="Create key").click()
        page.wait_for_url(f"{base}/w/orbit-labs/keys/*/")
        raw = page.locator("#new-key").inner_text()
        assert raw.startswith("pk_live_")
        page.get_by_role("button", name="Copy key").click()
        expect(page.get_by_role("button", name="Copied")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == raw
        page.screenshot(path=str(services.ARTIFACTS / "dashboard-key-created.png"), full_page=True)
        snippet = page.locator("#snippet-img").inner_text()
        assert f"key={raw}" in snippet
        key_page = page.url

        page.reload()
        assert raw not in page.content()  # shown once

        # The snippet works from any page, and the overview's meters move without a reload.
        page.goto(f"{base}/w/orbit-labs/")
        expect(page.locator("[data-live-status]")).to_have_text("Live")
        answer, width = _render_snippet(browser, snippet)
        assert answer["status"] == 200 and answer["type"] == "image/webp", answer
        assert width == 128
        expect(page.locator('.stat-value[data-live="requests.used"]')).to_have_text("1", timeout=10_000)
        expect(page.locator('.stat-value[data-live="new_profiles.used"]')).to_have_text("1")

        for name, path in [
            ("overview", ""),
            ("keys", "keys/"),
            ("connections", "connections/"),
            ("usage", "usage/"),
            ("billing", "billing/"),
            ("connect", "connect/"),
            ("members", "members/"),
            ("settings", "settings/"),
        ]:
            page.goto(f"{base}/w/orbit-labs/{path}")
            page.screenshot(path=str(services.ARTIFACTS / f"dashboard-{name}.png"), full_page=True)

        page.goto(key_page)
        page.get_by_text("Revoke this key…").click()
        page.get_by_role("button", name="Yes, revoke").click()
        page.wait_for_url(f"{base}/w/orbit-labs/keys/")
        expect(page.locator(".message.success")).to_contain_text("Revoked Landing page")

        answer, width = _render_snippet(browser, snippet)
        assert answer["status"] == 401 and answer["type"] == "image/svg+xml", answer
        assert width == 128  # the monogram: a broken key never shows a broken image
        browser.close()
