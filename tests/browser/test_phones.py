"""Every page at phone and desktop widths in a real browser (Debian's chromium through Playwright):
nothing scrolls sideways at 360, 390, 768 or 1280 px, the main touch targets are at least 44 px tall on
phones, the header keeps the brand, Docs and the account menu on one row, and the workspace tabs show
that they scroll. Screenshots of every page at 390 px: tests/artifacts/phone-<page>.png.

The landing page shows a live example avatar (`/v1/avatar` with the demo key) when `load_demo` made
the demo key, else the same avatar shipped as a static file."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import requests
from django.contrib.auth.tokens import default_token_generator
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from oauth2_provider.models import get_application_model
from playwright.sync_api import expect, sync_playwright

from accounts.models import Connection
from avtrz.avatars.directory import import_profile
from avtrz.avatars.management.commands.load_demo import DEMO_DIRECTORY, demo_publishable_key
from tests import services
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from tests.oauth.oauthutil import CLAUDE, SCOPE, pkce
from workspaces.models import ApiKey, Invitation, Membership


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
expect.set_options(timeout=15_000)

WIDTHS = (360, 390, 768, 1280)  # 768: a tablet, where a six-column table once overflowed
PHONES = (360, 390)
SCREENSHOT_WIDTH = 390

PUBLIC_PAGES = [
    ("landing", "/"),
    ("docs", "/docs/"),
    ("docs-quickstart", "/docs/quickstart/"),
    ("docs-authentication", "/docs/authentication/"),
    ("docs-how-it-works", "/docs/how-it-works/"),
    ("docs-api", "/docs/api/"),
    ("docs-mcp", "/docs/mcp/"),
    ("docs-mcp-connect", "/docs/mcp/connect/"),
    ("docs-mcp-tools", "/docs/mcp/tools/"),
    ("sign-in", "/accounts/login/"),
    ("sign-up", "/accounts/signup/"),
    ("password-reset", "/accounts/password/reset/"),
    ("password-reset-sent", "/accounts/password/reset/sent/"),
    ("sign-up-sent", "/accounts/signup/sent/"),
    ("privacy", "/privacy/"),
    ("removal-request", "/privacy/removal/"),
    ("404", "/no-such-page/"),
]

# What a thumb has to hit: navigation, buttons, form controls, disclosure toggles. Links inside running
# text are exempt (WCAG 2.5.8's inline exception); so are checkboxes, whose whole row is the target.
TARGETS = """() => {
  const selectors = ['.topbar a:not(.skip-link)', '.topbar summary', '.tabs a', '.switcher summary', '.button',
    'button', 'summary', 'select', 'textarea', 'input:not([type=checkbox]):not([type=radio]):not([type=hidden])',
    '.docs-nav a', '.consent-scopes li', '.container.narrow > .card > p.small > a'];
  const small = [];
  for (const el of document.querySelectorAll(selectors.join(','))) {
    if (!el.checkVisibility({checkVisibilityCSS: true})) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const label = (el.innerText || el.name || '').trim().slice(0, 30);
    if (r.height < 43.5) small.push(`${el.tagName.toLowerCase()}.${el.className} "${label}" ${r.height.toFixed(1)} px`);
  }
  return small;
}"""

WIDEST = """() => [...document.querySelectorAll('body *')]
  .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5)
  .slice(0, 8).map(el => `${el.tagName.toLowerCase()}.${el.className} ${el.getBoundingClientRect().right} px`)"""


def _fits(page, name: str, width: int) -> None:
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"{name} at {width} px scrolls sideways ({scroll} > {inner}): {page.evaluate(WIDEST)}"


def _check(page, name: str, width: int, *, workspace: bool = False, signed_in: bool = False) -> None:
    _fits(page, name, width)
    if width in PHONES:
        # Stacked tables (API keys, members, workspaces, AI connections) fit without scrolling even inside.
        wide = page.evaluate(
            "() => [...document.querySelectorAll('.table.stack')].filter(t => t.scrollWidth > t.clientWidth + 1)"
            ".map(t => `${t.className} ${t.scrollWidth} > ${t.clientWidth}`)"
        )
        assert not wide, f"{name} at {width} px: stacked tables scroll: {wide}"
        small = page.evaluate(TARGETS)
        assert not small, f"{name} at {width} px has touch targets under 44 px: {small}"
        header = page.evaluate(
            """() => [...document.querySelectorAll('.topbar .brand, .topnav > a, .topnav > details > summary')]
              .filter(el => el.checkVisibility())
              .map(el => { const r = el.getBoundingClientRect(); return [el.innerText.trim(), r.top, r.right]; })"""
        )
        labels = [label for label, _top, _right in header]
        assert labels[:2] == ["Avtrz", "Docs"], labels
        if signed_in:
            assert len(labels) == 3, f"{name}: the phone header is brand, Docs and the account menu: {labels}"
        assert all(right <= width for _label, _top, right in header), header
        assert len({round(top) for _label, top, _right in header}) == 1, f"{name}: the header wraps: {header}"
        if workspace:
            tabs = page.evaluate(
                """() => { const t = document.querySelector('.tabs'); const s = getComputedStyle(t);
                  return {scrolls: t.scrollWidth > t.clientWidth, overflow: s.overflowX, edge: s.backgroundImage}; }"""
            )
            # Eight tabs never fit a phone: they scroll inside the bar, whose edges fade to say so.
            assert tabs["scrolls"] and tabs["overflow"] == "auto", tabs
            assert tabs["edge"].count("linear-gradient") == 4, tabs
            current = page.locator(".tabs [aria-current=page]")
            box, bar = current.bounding_box(), page.locator(".tabs").bounding_box()
            assert box["x"] >= bar["x"] - 1 and box["x"] + box["width"] <= bar["x"] + bar["width"] + 1, (
                f"{name}: the current tab is scrolled out of sight"
            )
    if width == SCREENSHOT_WIDTH:
        page.screenshot(path=str(services.ARTIFACTS / f"phone-{name}.png"), full_page=True)


def _widths(page, url: str, *, load_at: tuple[int, ...] = ()) -> Iterator[int]:
    """Each of WIDTHS in turn with `url` on screen at that width: loaded at the first width (and again at
    those in `load_at`, for pages whose scripts lay them out once, on load), the viewport resized between.
    The page's CSS lays it out again at the new width as at a fresh load; the browser does not load and
    parse the page, and the server does not render it, once per width."""
    for index, width in enumerate(WIDTHS):
        page.set_viewport_size({"width": width, "height": 800})
        if index == 0 or width in load_at:
            page.goto(url)
        yield width


def _connection(user, workspace) -> None:
    Application = get_application_model()
    application = Application.objects.create(
        name="claudeai",
        client_id=secrets.token_urlsafe(24),
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=CLAUDE,
        client_secret="",
    )
    Connection.objects.create(
        user=user,
        workspace=workspace,
        application=application,
        scope="openid profile offline_access",
        redirect_uri=CLAUDE,
        last_used_at=timezone.now(),
    )


def test_every_page_fits_phones_and_desktops(alice, bob, acme, settings, tmp_path):
    chromium = services.chromium_path()
    services.ARTIFACTS.mkdir(exist_ok=True)
    # A workspace with something in every table: keys, members, a pending invitation, an AI connection.
    secret = ApiKey(workspace=acme, kind=ApiKey.Kind.SECRET, name="Nightly CRM sync job", created_by=alice)
    secret.issue()
    secret.save()
    key = ApiKey(
        workspace=acme,
        kind=ApiKey.Kind.PUBLISHABLE,
        name="Marketing site",
        created_by=alice,
        allowed_domains=["www.example.com", "*.example-with-a-long-name.com"],
    )
    key.issue()
    key.save()
    MembershipFactory(
        user=UserFactory(email="someone.with.a.long.address@example-company.com", name="Someone Long-Named"),
        workspace=acme,
        role=Membership.Role.ADMIN,
    )
    pending = Invitation(workspace=acme, email="new.colleague@example.com", invited_by=alice)
    pending.issue_token()
    pending.save()
    _connection(bob, acme)
    _connection(bob, acme)  # a re-registration: the earlier one is collapsed under the one used last
    globex = WorkspaceFactory(name="Globex Corporation International", slug="globex")
    invitation = Invitation(workspace=globex, email=alice.email, role=Membership.Role.MEMBER)
    invitation_token = invitation.issue_token()
    invitation.save()
    reset_path = (
        f"/accounts/password/reset/{urlsafe_base64_encode(force_bytes(alice.pk))}/"
        f"{default_token_generator.make_token(alice)}/"
    )

    port = services.free_port()
    base = settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{port}"
    env = services.server_env(PUBLIC_BASE_URL=base, MEDIA_ROOT=str(settings.MEDIA_ROOT))
    with services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "server.log"):
        client = requests.post(
            f"{base}/o/register/",
            json={"client_name": "claudeai", "redirect_uris": [CLAUDE], "token_endpoint_auth_method": "none"},
            timeout=10,
        ).json()
        _verifier, challenge = pkce()
        authorize = {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": CLAUDE,
            "scope": SCOPE,
            "state": "phone",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": f"{base}/mcp",
        }
        consent = f"/o/authorize/?{urlencode(authorize)}"
        consent_error = f"/o/authorize/?{urlencode({**authorize, 'redirect_uri': 'https://evil.example/callback'})}"
        signed_in_pages = [
            ("workspaces", "/workspaces/", False),
            ("overview", "/w/acme/", True),
            ("api-keys", "/w/acme/keys/", True),
            ("api-key", f"/w/acme/keys/{key.uid}/", True),
            ("ai-connections", "/w/acme/connections/", True),
            ("usage", "/w/acme/usage/", True),
            ("billing", "/w/acme/billing/", True),
            ("connect", "/w/acme/connect/", True),
            ("members", "/w/acme/members/", True),
            ("settings", "/w/acme/settings/", True),
            ("create-workspace", "/workspaces/new/", False),
            ("password-change", "/accounts/password/change/", False),
            ("invitation", f"/invitations/{invitation_token}/", False),
            ("consent", consent, False),
            ("consent-error", consent_error, False),
            ("404-signed-in", "/w/no-such-workspace/", False),
        ]
        cookies = [{"name": c.name, "value": c.value, "url": base} for c in services.sign_in(base, alice).cookies]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
            signed_out = browser.new_context(viewport={"width": WIDTHS[0], "height": 800}).new_page()
            for name, path in [*PUBLIC_PAGES, ("password-reset-confirm", reset_path)]:
                for width in _widths(signed_out, f"{base}{path}"):
                    _check(signed_out, name, width)
            context = browser.new_context(viewport={"width": WIDTHS[0], "height": 800})
            context.add_cookies(cookies)
            page = context.new_page()
            for name, path, workspace in signed_in_pages:
                # The workspace tabs are scrolled to the current one when the page loads: at each phone
                # width a page of its own, as a phone would load it.
                for width in _widths(page, f"{base}{path}", load_at=PHONES if workspace else ()):
                    _check(page, name, width, workspace=workspace, signed_in=True)
                    if name == "consent":
                        expect(page.get_by_role("button", name="Authorize")).to_be_visible()
                    elif name == "consent-error":
                        expect(page.get_by_role("heading", name="This connection can't be completed")).to_be_visible()
                    elif name == "invitation":
                        expect(page.get_by_text("Globex Corporation International").first).to_be_visible()
            for width in PHONES:
                # The links the phone header leaves out are in the account menu, which stays on screen.
                page.set_viewport_size({"width": width, "height": 800})
                page.goto(f"{base}/w/acme/")
                page.locator(".account-menu > summary").click()
                menu = page.locator(".account-menu .menu-body")
                expect(menu.get_by_role("link", name="Dashboard")).to_be_visible()
                expect(menu.get_by_role("link", name="Workspaces")).to_be_visible()
                box = menu.bounding_box()
                assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
                _fits(page, "account menu", width)
                if width == SCREENSHOT_WIDTH:
                    page.screenshot(path=str(services.ARTIFACTS / "phone-account-menu.png"))
            browser.close()
    assert (services.ARTIFACTS / "phone-consent.png").stat().st_size > 10_000


def _landing_example(base: str, chromium: str) -> dict:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 800})
        images = []
        page.on("response", lambda r: images.append(r) if r.request.resource_type == "image" else None)
        page.goto(f"{base}/")
        figure = page.locator("figure.landing-example")
        expect(figure.locator("img")).to_be_visible()
        page.wait_for_function("document.querySelector('.landing-example img').complete")
        found = page.evaluate(
            """() => { const f = document.querySelector('.landing-example'), img = f.querySelector('img');
              return {kind: f.dataset.example, src: img.getAttribute('src'), width: img.naturalWidth,
                      alt: img.alt, caption: f.querySelector('figcaption').innerText}; }"""
        )
        found["type"] = next(
            r.headers.get("content-type", "") for r in images if r.status == 200 and "logo" not in r.url
        )
        browser.close()
    return found


def test_the_landing_page_shows_a_live_example_avatar_with_the_demo_key(settings, tmp_path):
    chromium = services.chromium_path()
    # What `load_demo` makes: the demo profile and the demo workspace's publishable key.
    import_profile(
        {"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "eileen-collins.jpg"},
        base_dir=DEMO_DIRECTORY.parent,
    )
    owner = UserFactory(email="demo@example.com")
    demo = WorkspaceFactory(name="Demo workspace", slug="demo")
    raw = demo_publishable_key()
    key = ApiKey(workspace=demo, kind=ApiKey.Kind.PUBLISHABLE, name="Demo key", created_by=owner)
    key.issue(raw)
    key.save()
    port = services.free_port()
    base = settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{port}"
    env = services.server_env(PUBLIC_BASE_URL=base, MEDIA_ROOT=str(settings.MEDIA_ROOT))
    with services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "server.log"):
        live = _landing_example(base, chromium)
        assert live["kind"] == "live", live
        assert live["src"] == f"/v1/avatar?key={raw}&username=eileen-collins&size=256", live
        assert live["width"] == 256 and live["type"] == "image/webp", live  # the photo, not a monogram
        assert "Live from the API" in live["caption"]

        # Without the demo key (production), the same avatar comes from a static file.
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        fallback = _landing_example(base, chromium)
    assert fallback["kind"] == "static", fallback
    assert fallback["src"].endswith("/img/example-avatar.webp"), fallback
    assert fallback["width"] == 256 and fallback["type"] == "image/webp", fallback
    assert raw not in str(fallback)
