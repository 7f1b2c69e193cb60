"""The OpenAPI 3.1 description of the public `/v1/*` API, served at `/v1/openapi.json`."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from avtrz.avatars.api import DEFAULT_SIZE, SIZES
from avtrz.avatars.services import PUBLIC_STATUS


ERROR = {"$ref": "#/components/schemas/Error"}
PROFILE_STATUSES = [*dict.fromkeys(PUBLIC_STATUS.values()), "not_found"]  # what services.public_status says


# draft-ietf-httpapi-ratelimit-headers, on every answer that passed the meter (api.rate_limit_headers).
RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {
        "schema": {"type": "string"},
        "description": "The workspace's token bucket as a structured field, e.g. "
        '`"burst";q=60;w=12`: bursts of q requests, refilled in w seconds (the plan\'s sustained rate is q/w).',
    },
    "RateLimit": {
        "schema": {"type": "string"},
        "description": 'What is left of it after this request, e.g. `"burst";r=59;t=0`: r requests may follow at '
        "once; when r is 0, t is the seconds until the next one.",
    },
}


def _error_response(description: str, *, retry_after: bool = False, metered: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "headers": {"Cache-Control": {"schema": {"type": "string", "const": "no-store"}}},
        "content": {
            "application/json": {"schema": ERROR},
            "image/svg+xml": {"schema": {"type": "string"}, "description": "When the request prefers an image."},
        },
    }
    if retry_after:
        response["headers"]["Retry-After"] = {"schema": {"type": "integer"}, "description": "Seconds to wait."}
    if metered:
        # Not on every such answer: an address guessing keys, or a refused new profile, never reached the bucket.
        response["headers"].update({name: {**header, "required": False} for name, header in RATE_LIMIT_HEADERS.items()})
    return response


# avtrz.lib.middleware.DatabaseUnavailableMiddleware: the database is restarting or failing over.
UNAVAILABLE = {
    "description": "Briefly unavailable (the database cannot be reached): retry after Retry-After seconds.",
    "headers": {
        "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."},
        "Cache-Control": {"schema": {"type": "string", "const": "no-store"}},
    },
    "content": {"application/json": {"schema": ERROR}},
}


def openapi_document() -> dict:
    profile_params = [
        {
            "name": "key",
            "in": "query",
            "schema": {"type": "string"},
            "description": "A publishable key (pk_live_…). Secret keys go in x-api-key, never here.",
        },
        {
            "name": "x-api-key",
            "in": "header",
            "schema": {"type": "string"},
            "description": "A secret or publishable key.",
        },
        {
            "name": "linkedin_url",
            "in": "query",
            "schema": {"type": "string"},
            "description": "A LinkedIn profile URL, with or without scheme. Exactly one of linkedin_url and username.",
        },
        {
            "name": "username",
            "in": "query",
            "schema": {"type": "string"},
            "description": "The LinkedIn handle (the part after /in/).",
        },
        {"name": "size", "in": "query", "schema": {"type": "integer", "enum": list(SIZES), "default": DEFAULT_SIZE}},
        {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["webp", "png"], "default": "webp"}},
        {"name": "refresh", "in": "query", "schema": {"type": "string"}, "description": "Accepted and ignored."},
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Avtrz API",
            "version": "1.0.0",
            "description": "Durable, face-cropped profile photos from a LinkedIn profile URL or username.",
        },
        "servers": [{"url": settings.PUBLIC_BASE_URL}],
        "paths": {
            "/v1/avatar": {
                "get": {
                    "operationId": "getAvatar",
                    "summary": "Redirect to the profile's durable, face-cropped photo",
                    "parameters": profile_params,
                    "responses": {
                        "302": {
                            "description": "The profile has a photo: Location is its durable, immutable URL "
                            "(Cache-Control: public, max-age=86400). Over the rate limit, a request that prefers an "
                            "image (<img>) and whose photo is known gets the same redirect, not billed, with "
                            "Cache-Control: private, max-age=60 (JSON callers get the 429).",
                            "headers": {
                                "Location": {"schema": {"type": "string", "format": "uri"}},
                                "ETag": {"schema": {"type": "string"}},
                                "Cache-Control": {"schema": {"type": "string"}},
                                **RATE_LIMIT_HEADERS,
                            },
                        },
                        "304": {
                            "description": "If-None-Match matches the profile's current image: answered before the "
                            "meter, so neither billed nor counted against the rate limit.",
                            "headers": {"ETag": {"schema": {"type": "string"}}},
                        },
                        "200": {
                            "description": "No photo: an SVG monogram. Avtrz-Profile-Status says why, in the words "
                            "the MCP tools use: enriching (still being fetched, or LinkedIn refused us for now and "
                            "we retry: ask again later), not_found, resolved (the profile has no photo), or "
                            "opted_out (the person asked not to be shown).",
                            "headers": {
                                "Cache-Control": {"schema": {"type": "string", "const": "no-store"}},
                                "Avtrz-Profile-Status": {"schema": {"type": "string", "enum": PROFILE_STATUSES}},
                                **RATE_LIMIT_HEADERS,
                            },
                            "content": {"image/svg+xml": {"schema": {"type": "string"}}},
                        },
                        "400": _error_response("Bad parameters."),
                        "401": _error_response(
                            "Missing, invalid or revoked key; domain not allowed; secret key in the URL."
                        ),
                        "402": _error_response("The workspace's monthly quota is spent.", metered=True),
                        "429": _error_response(
                            "The workspace's rate limit was exceeded (RateLimit says when to retry), or this "
                            "address sent too many invalid keys. A refused request does no work: the profile is "
                            "not looked up.",
                            retry_after=True,
                            metered=True,
                        ),
                        "503": UNAVAILABLE,
                    },
                }
            },
            "/v1/usage": {
                "get": {
                    "operationId": "getUsage",
                    "summary": "The workspace's current cycle: meters, limits and reset date",
                    "parameters": [
                        {"name": "x-api-key", "in": "header", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "Usage.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Usage"}}},
                        },
                        "401": {
                            "description": "Missing or invalid key, or not a secret key.",
                            "content": {"application/json": {"schema": ERROR}},
                        },
                        "429": _error_response("This address sent too many invalid keys.", retry_after=True),
                        "503": UNAVAILABLE,
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {
                                    "type": "string",
                                    "enum": [
                                        "invalid_request",
                                        "missing_key",
                                        "invalid_key",
                                        "secret_key_in_query",
                                        "secret_key_required",
                                        "domain_not_allowed",
                                        "quota_exceeded",
                                        "rate_limited",
                                        "unavailable",
                                    ],
                                },
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
                "Meter": {
                    "type": "object",
                    "required": ["used", "limit"],
                    "properties": {
                        "used": {"type": "integer", "minimum": 0},
                        "limit": {"type": "integer", "minimum": 0},
                    },
                },
                "Usage": {
                    "type": "object",
                    "required": ["workspace", "plan", "period", "meters"],
                    "properties": {
                        "workspace": {"type": "string"},
                        "plan": {"type": "string"},
                        "period": {
                            "type": "object",
                            "required": ["starts_at", "resets_at"],
                            "properties": {
                                "starts_at": {"type": "string", "format": "date-time"},
                                "resets_at": {"type": "string", "format": "date-time"},
                            },
                        },
                        "meters": {
                            "type": "object",
                            "required": ["avatar_requests", "avatar_new_profiles"],
                            "properties": {
                                "avatar_requests": {"$ref": "#/components/schemas/Meter"},
                                "avatar_new_profiles": {"$ref": "#/components/schemas/Meter"},
                            },
                        },
                    },
                },
            }
        },
    }
