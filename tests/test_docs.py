"""The developer docs under /docs/: every page renders, the API reference matches the OpenAPI
document, and no link leads nowhere."""

import re

import pytest
from django.conf import settings
from django.urls import reverse

from avtrz.avatars.openapi import openapi_document
from avtrz.site.docs import ERROR_CODES, SECTIONS


pytestmark = pytest.mark.django_db

PAGES = {
    "docs:index": ["Avtrz documentation", "/v1/avatar"],
    "docs:quickstart": ["Create a publishable key", "x-api-key", "curl -i", "/v1/usage", "&lt;img"],
    "docs:authentication": [
        "Publishable",
        "Secret",
        "*.example.com",
        "Origin",
        "Referer",
        "neither header",
        "secret_key_in_query",
        "Rotating a key",
    ],
    "docs:how-it-works": [
        "Resolve",
        "Crop",
        "Store",
        "Serve",
        "public, max-age=86400",
        "immutable",
        "no-store",
        "avatar_requests",
        "avatar_new_profiles",
        "402",
        "Retry-After",
    ],
    "docs:api": ["/v1/openapi.json", "Error codes"],
    "docs:mcp": ["streamable HTTP", "OAuth 2.1", "get_publishable_key", "quota exceeded for this workspace"],
    "docs:mcp-connect": [
        "Claude",
        "ChatGPT",
        "mcp.json",
        "MCP Inspector",
        "consent screen",
        "Not authenticated",
        "Revoke it in the dashboard",
        "Quota exceeded for this workspace",
    ],
    "docs:mcp-tools": [
        "get_profile_avatar",
        "get_profile",
        "get_publishable_key",
        "exactly one",
        "structuredContent",
        "imageUrl",
        "Default <code>256</code>",
    ],
}


def test_the_sidebar_lists_every_page():
    assert {name for _heading, pages in SECTIONS for name, _title in pages} == set(PAGES)


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_with_its_key_content(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 200
    html = response.content.decode()
    for text in PAGES[name]:
        assert text in html, f"{text!r} missing from {name}"
    assert 'aria-current="page"' in html
    assert html.count("<h1>") == 1


def test_examples_use_the_configured_urls(client):
    quickstart = client.get(reverse("docs:quickstart")).content.decode()
    assert f"{settings.PUBLIC_BASE_URL}/v1/avatar?key=YOUR_PUBLISHABLE_KEY&amp;" in quickstart
    assert f"{settings.PUBLIC_BASE_URL}/mcp" in client.get(reverse("docs:mcp-connect")).content.decode()


def test_the_api_reference_has_every_path_parameter_and_status_of_the_openapi_document(client):
    html = client.get(reverse("docs:api")).content.decode()
    document = openapi_document()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            section = html.split(f'id="{operation["operationId"]}"', 1)[1].split("</section>", 1)[0]
            assert f"{method.upper()}</span> <code>{path}</code>" in section
            for parameter in operation["parameters"]:
                assert f"<code>{parameter['name']}</code>" in section
            statuses = re.findall(r'<code class="status">(\d{3})</code>', section)
            assert statuses == list(operation["responses"])


def test_the_api_reference_explains_every_error_code(client):
    html = client.get(reverse("docs:api")).content.decode()
    errors = html.split('id="errors"', 1)[1]
    codes = openapi_document()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert set(codes) == set(ERROR_CODES)
    for code in codes:
        status, meaning = ERROR_CODES[code]
        assert f'<code>{code}</code></td><td><code class="status">{status}</code>' in errors


def test_the_connector_page_states_the_configured_connection_lifetimes(client, settings):
    settings.OAUTH_ACCESS_TOKEN_SECONDS = 1800
    settings.OAUTH_REFRESH_TOKEN_SECONDS = 90 * 86400
    settings.OAUTH_REFRESH_GRACE_SECONDS = 10
    html = client.get(reverse("docs:mcp-connect")).content.decode()
    assert "How long a connection lasts, and how to end it" in html
    assert "works for 30 minutes" in html
    assert "unused for 90 days" in html
    assert "10-second grace period" in html
    assert "Stay connected until I revoke it" in html


def test_plans_are_shown_from_the_database(client):
    html = client.get(reverse("docs:how-it-works")).content.decode()
    assert "Free" in html and "1000" in html


def test_every_internal_link_resolves(client):
    seen: set[str] = set()
    for name in PAGES:
        html = client.get(reverse(name)).content.decode()
        for href in re.findall(r'href="(/[^"#]*)', html):
            if href in seen:
                continue
            seen.add(href)
            response = client.get(href)
            assert response.status_code != 404, href
            assert response.status_code < 500, href
    assert "/v1/openapi.json" in seen
    assert reverse("docs:mcp-tools") in seen


def test_the_top_navigation_links_to_the_docs(client):
    assert f'href="{reverse("docs:index")}">Docs</a>' in client.get("/").content.decode()


@pytest.mark.parametrize("name", PAGES)
def test_every_code_sample_has_a_copy_button(client, name):
    """Issue 13: each <pre><code> in the docs has a Copy button (copy.js, loaded as a file: strict CSP)."""
    body = client.get(reverse(name)).content.decode()
    codes = re.findall(r"<pre><code([^>]*)>", body)
    ids = [re.fullmatch(r' id="([\w-]+)"', attributes).group(1) for attributes in codes]
    assert len(set(ids)) == len(ids)
    for code_id in ids:
        assert (
            f'<button class="button small secondary copy" type="button" data-copy="#{code_id}" hidden>Copy</button>'
            in body
        )
    if ids:
        assert re.search(r'<script src="[^"]*/js/copy\.js" defer></script>', body)
        assert (
            "pk_live_…&amp;username" not in body and "key=pk_live_…&amp;linkedin_url=linkedin.com/in/alex" not in body
        )
