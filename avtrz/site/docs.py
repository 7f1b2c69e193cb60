"""The developer docs under ``/docs/``.

Prose pages are plain templates. The API reference is rendered from the OpenAPI document the API
serves, so the two cannot disagree about paths, parameters or statuses.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_safe

from avtrz.avatars.openapi import openapi_document
from workspaces.models import Plan


# The sidebar in reading order: section heading, then (URL name, title) of each page.
SECTIONS = (
    (
        "Getting started",
        (("docs:index", "Overview"), ("docs:quickstart", "Quickstart"), ("docs:authentication", "Authentication")),
    ),
    ("REST API", (("docs:how-it-works", "How it works"), ("docs:api", "API reference"))),
    (
        "MCP",
        (("docs:mcp", "MCP server"), ("docs:mcp-connect", "Connect Claude & ChatGPT"), ("docs:mcp-tools", "MCP tools")),
    ),
)

# What each error code of the OpenAPI document means to the caller, and the status it comes with.
# The reference lists the document's codes; a code missing here shows without an explanation
# (and fails the docs tests), so a new code cannot ship undocumented.
ERROR_CODES = {
    "invalid_request": (
        400,
        "Neither or both of linkedin_url and username, a size or format not offered, "
        "or a URL that is not a LinkedIn profile (company pages and posts included).",
    ),
    "missing_key": (401, "No key: pass key=pk_live_… in the query or the x-api-key header."),
    "invalid_key": (401, "The key does not exist or was revoked."),
    "secret_key_in_query": (
        401,
        "A secret key was sent in the URL. Send it in x-api-key, and rotate it: "
        "URLs end up in logs and browser history.",
    ),
    "secret_key_required": (401, "This endpoint needs a secret key (sk_live_…); publishable keys only fetch avatars."),
    "domain_not_allowed": (
        401,
        "A publishable key with allowed domains was used from another site, or from a "
        "request with neither Origin nor Referer.",
    ),
    "quota_exceeded": (
        402,
        "The workspace used its monthly requests or new profiles. The message names the plan and the reset date.",
    ),
    "rate_limited": (
        429,
        "Too many requests per second for the workspace's plan, or too many invalid keys from your address. "
        "Wait Retry-After seconds.",
    ),
    "unavailable": (
        503,
        "The database is briefly out of reach (a restart or failover). Retry after Retry-After seconds; "
        "avatars already cached keep answering meanwhile.",
    ),
}


def _page(request: HttpRequest, template: str, **context: Any) -> HttpResponse:
    return render(request, f"docs/{template}", {"docs_sections": SECTIONS, **context})


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    return _page(request, "index.html")


@require_safe
def quickstart(request: HttpRequest) -> HttpResponse:
    return _page(request, "quickstart.html")


@require_safe
def authentication(request: HttpRequest) -> HttpResponse:
    return _page(request, "authentication.html")


@require_safe
def how_it_works(request: HttpRequest) -> HttpResponse:
    # Plans are data staff edit; the page shows their current limits rather than repeating figures.
    return _page(request, "how_it_works.html", plans=Plan.objects.filter(is_public=True))


@require_safe
def api_reference(request: HttpRequest) -> HttpResponse:
    document = openapi_document()
    codes = document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    return _page(
        request,
        "api.html",
        info=document["info"],
        operations=operations(document),
        error_codes=[(code, *ERROR_CODES.get(code, ("", ""))) for code in codes],
    )


@require_safe
def mcp(request: HttpRequest) -> HttpResponse:
    return _page(request, "mcp.html")


@require_safe
def mcp_connect(request: HttpRequest) -> HttpResponse:
    # The lifetimes the page states are the configured ones.
    return _page(
        request,
        "mcp_connect.html",
        access_token_minutes=settings.OAUTH_ACCESS_TOKEN_SECONDS // 60,
        refresh_idle_days=settings.OAUTH_REFRESH_TOKEN_SECONDS // 86400,
        refresh_grace_seconds=settings.OAUTH_REFRESH_GRACE_SECONDS,
    )


@require_safe
def mcp_tools(request: HttpRequest) -> HttpResponse:
    return _page(request, "mcp_tools.html")


def operations(document: dict) -> list[dict]:
    """Each operation of the document, flattened for the template (which cannot read keys like ``in``)."""
    found = []
    for url_path, methods in document["paths"].items():
        for method, operation in methods.items():
            found.append(
                {
                    "path": url_path,
                    "method": method.upper(),
                    "id": operation.get("operationId", ""),
                    "summary": operation.get("summary", ""),
                    "parameters": [_parameter(parameter) for parameter in operation.get("parameters", [])],
                    "responses": [
                        {
                            "status": status,
                            "description": response.get("description", ""),
                            "headers": list(response.get("headers", {})),
                            "content_types": list(response.get("content", {})),
                        }
                        for status, response in operation["responses"].items()
                    ],
                }
            )
    return found


def _parameter(parameter: dict) -> dict:
    schema = parameter.get("schema", {})
    return {
        "name": parameter["name"],
        "location": parameter["in"],
        "type": schema.get("type", ""),
        "values": [str(value) for value in schema.get("enum", [])],
        "default": schema.get("default"),
        "required": parameter.get("required", False),
        "description": parameter.get("description", ""),
    }


urlpatterns = [
    path("", index, name="index"),
    path("quickstart/", quickstart, name="quickstart"),
    path("authentication/", authentication, name="authentication"),
    path("how-it-works/", how_it_works, name="how-it-works"),
    path("api/", api_reference, name="api"),
    path("mcp/", mcp, name="mcp"),
    path("mcp/connect/", mcp_connect, name="mcp-connect"),
    path("mcp/tools/", mcp_tools, name="mcp-tools"),
]
