"""Having a photo removed, as a new user and support do it in a real browser (Debian's chromium through
Playwright) against the live ASGI server: the landing page's demo avatar shows Eileen Collins' photo;
she follows the footer link, asks for the removal, confirms from the mail; support removes it from the
queue in the admin; the same <img> then shows her initials, and the photo's old URL answers 410.
Screenshots go to tests/artifacts/removal-*.png."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect, sync_playwright

from avtrz.avatars.directory import import_profile
from avtrz.avatars.management.commands.load_demo import DEMO_DIRECTORY, demo_publishable_key
from tests import services
from tests.factories import PASSWORD, UserFactory, WorkspaceFactory
from workspaces.models import ApiKey


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
expect.set_options(timeout=15_000)

LANDING_IMG = 'img[src*="username=eileen-collins"]'


def _landing_avatar(browser, base: str) -> dict:
    """The landing page's demo avatar in a fresh context (nothing cached): its final answer and width."""
    context = browser.new_context()
    page = context.new_page()
    answers = []
    page.on("response", lambda response: answers.append(response))
    page.goto(f"{base}/")
    page.wait_for_function(f"document.querySelector('{LANDING_IMG}').complete")
    width = page.evaluate(f"document.querySelector('{LANDING_IMG}').naturalWidth")
    avatar = re.compile(r"/v1/avatar\?|/img/[0-9a-f]{64}\.")
    image = [r for r in answers if avatar.search(r.url) and r.status != 302][-1]
    found = {"status": image.status, "type": image.headers.get("content-type", ""), "url": image.url, "width": width}
    context.close()
    return found


def test_a_new_user_has_the_demo_photo_removed_and_support_does_it_in_one_action(settings, tmp_path):
    chromium = services.chromium_path()
    services.ARTIFACTS.mkdir(exist_ok=True)
    # What `load_demo` makes for the landing page: the demo profile and the demo workspace's publishable key.
    import_profile(
        {"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "eileen-collins.jpg"},
        base_dir=DEMO_DIRECTORY.parent,
    )
    owner = UserFactory(email="demo@example.com")
    key = ApiKey(
        workspace=WorkspaceFactory(name="Demo workspace", slug="demo"),
        kind=ApiKey.Kind.PUBLISHABLE,
        name="Demo key",
        created_by=owner,
    )
    key.issue(demo_publishable_key())
    key.save()
    support = UserFactory(email="support@example.com", is_staff=True, is_superuser=True)
    services.with_server_password(support)
    port = services.free_port()
    base = settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{port}"
    mailbox = tmp_path / "mail"
    env = services.server_env(
        PUBLIC_BASE_URL=base,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mailbox),
        CELERY_TASK_ALWAYS_EAGER="true",  # as `make run`: the purge runs when support's action commits
    )
    with (
        services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "server.log"),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        before = _landing_avatar(browser, base)

        person = browser.new_context().new_page()
        person.goto(f"{base}/")
        person.get_by_role("link", name="Remove a photo").click()
        person.wait_for_url("**/privacy/removal/")
        person.get_by_label("LinkedIn profile URL or username").fill("https://www.linkedin.com/in/eileen-collins/")
        person.get_by_label("Your email").fill("eileen@example.com")
        person.get_by_label("Reason").fill("This is me; I do not want my photo shown.")
        person.screenshot(path=str(services.ARTIFACTS / "removal-request.png"), full_page=True)
        person.get_by_role("button", name="Email me a confirmation link").click()
        expect(person.get_by_role("heading", name="Check your inbox")).to_be_visible()
        mail = "".join(path.read_text() for path in sorted(mailbox.iterdir()))
        person.goto(re.search(r"https?://\S+/privacy/removal/confirm/\S+/", mail).group(0))
        person.get_by_role("button", name="Confirm the removal").click()
        expect(person.get_by_role("heading", name="Removal confirmed")).to_be_visible()

        staff = browser.new_context().new_page()
        staff.goto(f"{base}/admin/login/")
        staff.locator("#id_username").fill(support.email)
        staff.locator("#id_password").fill(PASSWORD)
        staff.locator("input[type=submit]").click()
        staff.goto(f"{base}/admin/avatars/removalrequest/?status__exact=confirmed")
        row = staff.locator("#result_list tbody tr", has_text="eileen-collins")
        row.locator("input.action-select").check()
        staff.locator("select[name=action]").select_option("remove")
        staff.locator("button[name=index], input[name=index]").first.click()
        expect(staff.locator(".messagelist .success")).to_contain_text("Removed 1 profile")
        staff.goto(f"{base}/admin/avatars/optoutchange/")
        expect(staff.locator("#result_list")).to_contain_text("Stored images deleted")
        staff.screenshot(path=str(services.ARTIFACTS / "removal-admin-log.png"), full_page=True)

        after = _landing_avatar(browser, base)
        old_image = person.request.get(before["url"])
        browser.close()

    assert before["status"] == 200 and before["type"] == "image/webp" and before["width"] == 256, before
    assert after["status"] == 200 and after["type"].startswith("image/svg+xml") and after["width"] == 256, after
    assert old_image.status == 410
