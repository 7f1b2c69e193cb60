"""Support fixes a crop in a real browser (Debian's chromium through Playwright) against the live ASGI
server: the crop page shows the source and the five renditions, a drag fills in the square, saving
re-renders. A screenshot goes to tests/artifacts/admin-crop.png."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import expect, sync_playwright

from avtrz.avatars.directory import import_profile
from avtrz.avatars.models import AvatarImage, CropChange
from tests import services
from tests.factories import UserFactory


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
expect.set_options(timeout=15_000)

IMAGES = services.ROOT / "tests" / "fixtures" / "images"


def test_drag_a_square_and_save_it(settings, tmp_path):
    chromium = services.chromium_path()
    services.ARTIFACTS.mkdir(exist_ok=True)
    profile = import_profile({"handle": "eileen-collins", "name": "Eileen", "photo_file": "face.jpg"}, base_dir=IMAGES)
    image = profile.current_image
    staff = UserFactory(email="support@avtrz.dev", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)  # a staff session in the shared database (sign-in is tested elsewhere)
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    port = services.free_port()
    base = settings.PUBLIC_BASE_URL = f"http://127.0.0.1:{port}"
    env = services.server_env(PUBLIC_BASE_URL=base, MEDIA_ROOT=str(settings.MEDIA_ROOT))

    with (
        services.running(services.uvicorn_cmd(port), env=env, port=port, log=tmp_path / "server.log"),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=chromium, args=services.CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 1400})
        context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "value": session, "url": base}])
        page = context.new_page()
        page.goto(f"{base}/admin/avatars/avatarimage/{image.pk}/crop/")

        page.wait_for_function("[...document.images].every(img => img.complete && img.naturalWidth > 0)")
        widths = page.evaluate("[...document.querySelectorAll('.crop-renditions img')].map(i => i.naturalWidth)")
        assert widths == [32, 64, 128, 256, 512]
        source = page.locator("#crop-source")
        assert page.evaluate("document.getElementById('crop-source').naturalWidth") == 720

        shown = source.bounding_box()
        scale = 800 / shown["width"]
        page.mouse.move(shown["x"] + 100, shown["y"] + 50)
        page.mouse.down()
        page.mouse.move(shown["x"] + 250, shown["y"] + 150, steps=5)
        page.mouse.move(shown["x"] + 400, shown["y"] + 300, steps=5)
        page.mouse.up()
        expect(page.locator(".crop-drag")).to_be_visible()
        left, top, side = (int(page.locator(f"#id_{name}").input_value()) for name in ("left", "top", "side"))
        assert abs(left - 100 * scale) <= 2 and abs(top - 50 * scale) <= 2 and abs(side - 300 * scale) <= 2
        page.screenshot(path=str(services.ARTIFACTS / "admin-crop.png"), full_page=True)

        page.get_by_role("button", name="Save crop and re-render").click()
        expect(page.get_by_text("Manual crop saved")).to_be_visible()
        expect(page.get_by_role("button", name="Back to the framing rule")).to_be_visible()
        browser.close()

    image = AvatarImage.objects.get(pk=image.pk)
    assert image.manual_box == [left, top, left + side, top + side]
    assert CropChange.objects.get().actor == staff
