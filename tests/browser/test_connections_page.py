"""The AI connections page in a real browser (Debian's chromium through Playwright): three
re-registrations of the MCP Inspector by one person show as one row with the one used last, the
earlier ones collapsed and still revocable one by one. Screenshot: tests/artifacts/dashboard-connections-grouped.png."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import get_application_model
from playwright.sync_api import expect, sync_playwright

from accounts.models import Connection
from tests import services
from tests.factories import PASSWORD


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
expect.set_options(timeout=15_000)

INSPECTOR = "http://localhost:6274/oauth/callback"


def _connection(user, workspace, *, name, redirect_uri, created, used):
    Application = get_application_model()
    application = Application.objects.create(
        name=name,
        client_id=secrets.token_urlsafe(24),
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=redirect_uri,
        client_secret="",
    )
    return Connection.objects.create(
        user=user,
        workspace=workspace,
        application=application,
        scope="openid profile offline_access",
        redirect_uri=redirect_uri,
        created_at=created,
        last_used_at=used,
    )


def test_re_registrations_are_one_group_used_last_first_each_revocable(alice, bob, acme, settings, tmp_path):
    chromium = services.chromium_path()
    services.with_server_password(alice)
    services.ARTIFACTS.mkdir(exist_ok=True)
    now = timezone.now()
    old = _connection(
        alice, acme, name="MCP Inspector", redirect_uri=INSPECTOR, created=now - timedelta(days=2), used=None
    )
    _connection(
        alice,
        acme,
        name="MCP Inspector",
        redirect_uri=INSPECTOR,
        created=now - timedelta(days=1, hours=3),
        used=now - timedelta(hours=5),
    )
    latest = _connection(
        alice, acme, name="MCP Inspector", redirect_uri=INSPECTOR, created=now - timedelta(hours=1), used=now
    )
    _connection(
        bob,
        acme,
        name="claudeai",
        redirect_uri="https://claude.ai/api/mcp/auth_callback",
        created=now - timedelta(days=3),
        used=now - timedelta(minutes=12),
    )
    port = services.free_port()
    base = settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{port}"

    with (
        services.running(
            services.uvicorn_cmd(port), env=services.server_env(PUBLIC_BASE_URL=base), port=port, log=tmp_path / "log"
        ),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(f"{base}/accounts/login/?next=/w/acme/connections/")
        page.get_by_label("Email address").fill("alice@example.com")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/w/acme/connections/")

        first = page.locator("tbody[data-group]").first
        latest_row = first.locator(f'tr[data-connection="{latest.uid}"]')
        expect(latest_row).to_be_visible()
        expect(latest_row.locator("[data-used-last]")).to_have_text("Used last")
        expect(latest_row.locator("[data-last-used]")).to_contain_text("just now")
        expect(latest_row.locator("[data-client-id]")).to_contain_text(latest.application.client_id[:8])
        expect(latest_row.locator("[data-redirect-host]")).to_contain_text("http://localhost:6274")
        older = page.locator(f'tr[data-connection="{old.uid}"]')
        expect(older).to_be_hidden()  # collapsed
        summary = first.get_by_text("2 earlier connections of MCP Inspector by Alice Example")
        summary.click()
        expect(older).to_be_visible()
        expect(page.get_by_text("12\xa0minutes ago")).to_be_visible()
        page.screenshot(path=str(services.ARTIFACTS / "dashboard-connections-grouped.png"), full_page=True)

        older.get_by_text("Revoke", exact=True).click()
        older.get_by_role("button", name="Revoke MCP Inspector").click()
        page.wait_for_url(f"{base}/w/acme/connections/")
        expect(page.get_by_text("1 earlier connection of MCP Inspector by Alice Example")).to_be_visible()
        browser.close()

    old.refresh_from_db()
    latest.refresh_from_db()
    assert old.revoked_at is not None and latest.revoked_at is None
