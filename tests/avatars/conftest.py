import json
from pathlib import Path

import pytest

from avtrz.avatars.directory import import_profile
from tests.fixture_server import FixtureServer
from workspaces import services
from workspaces.models import ApiKey, Plan


IMAGES = Path(__file__).resolve().parent.parent / "fixtures" / "images"
RENDITION = "profile-displayphoto-shrink_100_100"
PHOTO_PATH = f"/dms/image/v2/D4E03AQ{{photo_id}}/{RENDITION}/{RENDITION}/0/{{uploaded}}"


class FakeLinkedIn:
    """LinkedIn-shaped profile pages and photos served from a real HTTP server on 127.0.0.1."""

    def __init__(self, server: FixtureServer) -> None:
        self.server = server

    def photo(
        self,
        image: str,
        *,
        photo_id: str = "PHOTO1",
        uploaded: int = 1716832153410,
        expires: int = 1767830400,
        content_type: str = "image/jpeg",
        body: bytes | None = None,
        delay: float = 0.0,
    ) -> str:
        """Serve a photo (a fixture file, or raw bytes), `delay` seconds late, and return its LinkedIn-style
        small-size URL."""
        path = PHOTO_PATH.format(photo_id=photo_id, uploaded=uploaded)
        large = path.replace("shrink_100_100", "shrink_800_800")
        self.server.route(
            large,
            body=body if body is not None else (IMAGES / image).read_bytes(),
            headers={"Content-Type": content_type},
            delay=delay,
        )
        return self.server.url(path) + f"?e={expires}&v=beta&t=signature"

    def profile(
        self,
        handle: str,
        *,
        name: str = "Alex Rivera",
        photo_url: str | None = None,
        og_only: bool = False,
        headline: str = "Head of Growth at Example",
        **extra_person: str,
    ) -> None:
        meta = f'<meta property="og:title" content="{name} - Example | LinkedIn">'
        if photo_url:
            meta += f'<meta property="og:image" content="{photo_url}">'
        person = {
            "@context": "http://schema.org",
            "@type": "Person",
            "name": name,
            "jobTitle": headline,
            "address": {"@type": "PostalAddress", "addressLocality": "Lisbon", "addressCountry": "Portugal"},
            **extra_person,
        }
        if photo_url:
            person["image"] = {"@type": "ImageObject", "contentUrl": photo_url}
        ld = "" if og_only else f'<script type="application/ld+json">{json.dumps(person)}</script>'
        html = f"<!doctype html><html><head><title>{name} | LinkedIn</title>{meta}{ld}</head><body></body></html>"
        self.server.route(f"/in/{handle}/", body=html.encode(), headers={"Content-Type": "text/html; charset=utf-8"})

    def answer(self, handle: str, status: int, body: bytes = b"", **options) -> None:
        self.server.route(f"/in/{handle}/", status=status, body=body, **options)


@pytest.fixture
def linkedin(settings):
    with FixtureServer() as server:
        settings.LINKEDIN_BASE_URL = server.url("").rstrip("/")
        settings.LINKEDIN_HOST = "127.0.0.1"
        settings.AVTRZ_PHOTO_HOSTS = ["127.0.0.1"]
        settings.AVTRZ_FETCH_ALLOW_PRIVATE = ["127.0.0.1"]
        settings.AVTRZ_FETCH_READ_TIMEOUT_S = 1.0
        yield FakeLinkedIn(server)


@pytest.fixture(autouse=True)
def _image_urls(settings):
    settings.AVTRZ_IMAGE_BASE_URL = "http://testserver/img/"
    settings.AVTRZ_ENRICH_WAIT_S = 0.5


@pytest.fixture
def acme(acme):
    """Acme with a rate limit no test hits by accident (tests of the limit lower it)."""
    Plan.objects.filter(code="free").update(requests_per_second=1000)
    acme.plan.refresh_from_db()
    return acme


@pytest.fixture
def pk(acme, alice):
    """A publishable key of Acme with no domain restriction."""
    return services.create_api_key(actor=alice, workspace=acme, kind=ApiKey.Kind.PUBLISHABLE, name="Web")


@pytest.fixture
def sk(acme, alice):
    return services.create_api_key(actor=alice, workspace=acme, kind=ApiKey.Kind.SECRET, name="Server")


@pytest.fixture
def eileen(db, django_capture_on_commit_callbacks):
    """A profile in the directory with a real face photo."""
    with django_capture_on_commit_callbacks(execute=True):
        return import_profile(
            {"handle": "eileen-collins", "name": "Eileen Collins", "photo_file": "face.jpg"}, base_dir=IMAGES
        )
