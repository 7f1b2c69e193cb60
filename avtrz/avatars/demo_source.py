"""A stand-in for LinkedIn's public profile pages, served by the app itself in development.

`make run` points LINKEDIN_BASE_URL here, so enrichment works offline and the development server
never reaches out to the internet: the handles in `demo/source.jsonl` get a LinkedIn-shaped page with
a photo, every other handle a 404 (so it ends as a monogram). Mounted only when DEBUG is on.
"""

from __future__ import annotations

import json
from functools import cache
from html import escape
from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotFound
from django.urls import path
from django.views.decorators.http import require_safe


DEMO = Path(__file__).resolve().parent / "demo"
PHOTO_PATH = "/dms/image/v2/DEMO{stem}/profile-displayphoto-shrink_200_200/profile-displayphoto-shrink_200_200/0/1"


@cache
def _profiles() -> dict[str, dict]:
    lines = (DEMO / "source.jsonl").read_text().splitlines()
    return {row["handle"]: row for row in map(json.loads, lines)}


@require_safe
def profile_page(request: HttpRequest, handle: str) -> HttpResponse:
    person = _profiles().get(handle)
    if person is None:
        return HttpResponseNotFound("<!doctype html><title>Page not found | LinkedIn</title>")
    base = request.build_absolute_uri("/demo-linkedin")
    photo = base + PHOTO_PATH.format(stem=Path(person["photo_file"]).stem)
    person_ld = {
        "@context": "http://schema.org",
        "@type": "Person",
        "name": person["name"],
        "jobTitle": person["headline"],
        "address": person["location"],
        "image": {"@type": "ImageObject", "contentUrl": photo},
    }
    ld = json.dumps(person_ld).replace("</", r"<\/")  # nothing in it can close the script element
    html = (
        f"<!doctype html><html><head><title>{escape(person['name'])} | LinkedIn</title>"
        f'<meta property="og:image" content="{escape(photo)}">'
        f'<script type="application/ld+json">{ld}</script></head><body></body></html>'
    )
    return HttpResponse(html)


@require_safe
def photo(request: HttpRequest, stem: str, rendition: str, again: str) -> HttpResponse:
    person = next((p for p in _profiles().values() if Path(p["photo_file"]).stem == stem), None)
    if person is None:
        raise Http404
    # Whole bytes rather than a streamed file: this server may be fetching from itself, mid-request.
    data = (DEMO / person["photo_file"]).read_bytes()
    return HttpResponse(data, content_type="image/png" if person["photo_file"].endswith(".png") else "image/jpeg")


urlpatterns = [
    path("demo-linkedin/in/<str:handle>/", profile_page),
    # Any rendition size: LinkedIn's media path, which enrichment recognises only at the URL's root.
    path("demo-linkedin/dms/image/v2/DEMO<str:stem>/<str:rendition>/<str:again>/0/1", photo),
]
