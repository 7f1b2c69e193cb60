from __future__ import annotations

import re

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_safe

from avtrz.avatars import api
from avtrz.avatars.models import RemovedImage
from avtrz.avatars.openapi import openapi_document
from avtrz.lib import throttle
from workspaces import keys, usage
from workspaces.models import ApiKey


IMAGE_NAME = re.compile(r"^[0-9a-f]{64}\.(webp|png)$")
IMMUTABLE = "public, max-age=31536000, immutable"


@require_safe
def avatar(request: HttpRequest) -> HttpResponse:
    """`GET /v1/avatar`: what the ASGI fast path could not answer from the cache alone."""
    query = api.parse(request.GET, request.headers, method=request.method or "GET")  # None only on a bare HttpRequest()
    result = api.answer(query, client_ip=throttle.client_ip(request))
    response = HttpResponse(result.body, status=result.status)
    for name, value in result.headers:
        response[name] = value
    return response


@require_safe
def image(request: HttpRequest, name: str) -> HttpResponseBase:
    """A stored rendition by content hash: immutable, so it may be cached forever anywhere."""
    if not IMAGE_NAME.match(name):
        raise Http404
    # Checked before anything is served, revalidations included: from the moment support removes a
    # photo, before its files are purged, no copy of it is served or kept fresh in a cache.
    if RemovedImage.objects.filter(content_hash=name.split(".")[0]).exists():
        return _gone()
    etag = f'"{name.split(".")[0]}"'
    if etag in request.headers.get("If-None-Match", ""):
        response: HttpResponseBase = HttpResponseNotModified()
    else:
        try:
            blob = default_storage.open(f"avatars/{name}")
        except FileNotFoundError:
            raise Http404 from None
        response = FileResponse(blob, content_type=f"image/{name.rsplit('.', 1)[1]}")
    response["ETag"] = etag
    response["Cache-Control"] = IMMUTABLE
    return response


def _gone() -> HttpResponse:
    """A removed photo (`avatars.removal`): gone for good, and no cache may keep this answer either."""
    response = HttpResponse("This image was removed at the request of the person shown.\n", status=410)
    response["Content-Type"] = "text/plain; charset=utf-8"
    response["Cache-Control"] = "no-store"
    return response


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(
        {"error": {"code": code, "message": message}}, status=status, headers={"Cache-Control": "no-store"}
    )


@require_safe
def usage_view(request: HttpRequest) -> JsonResponse:
    """`GET /v1/usage`: the workspace's current cycle, for secret keys only."""
    raw = request.headers.get("x-api-key", "")
    if not raw:
        if request.GET.get("key", "").startswith("sk_"):
            return _error(401, "secret_key_in_query", "Send secret keys in the x-api-key header, never in the URL.")
        return _error(401, "missing_key", "Send a secret key in the x-api-key header.")
    ip = throttle.client_ip(request)
    retry_after = keys.guessing_retry_after(ip, raw)
    if retry_after:
        message = f"Too many invalid API keys from this address. Retry in {retry_after} s."
        response = _error(429, "rate_limited", message)
        response["Retry-After"] = str(retry_after)
        return response
    key = ApiKey.objects.for_key(raw)
    if key is None:
        keys.note_invalid_key(ip)
        return _error(401, "invalid_key", "This API key is not valid or was revoked.")
    if key.kind != ApiKey.Kind.SECRET:
        return _error(401, "secret_key_required", "Usage can only be read with a secret key (sk_live_…).")
    period = usage.current_period(key.workspace)
    meter = usage.meter_for_period(period)
    used = usage.requests_used(period.pk)
    return JsonResponse(
        {
            "workspace": key.workspace.slug,
            "plan": meter.plan_name,
            "period": {"starts_at": period.starts_at.isoformat(), "resets_at": period.ends_at.isoformat()},
            "meters": {
                "avatar_requests": {"used": used, "limit": meter.requests_limit},
                "avatar_new_profiles": {"used": period.avatar_new_profiles, "limit": meter.new_profiles_limit},
            },
        },
        headers={"Cache-Control": "no-store"},
    )


@require_safe
def openapi(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openapi_document(), json_dumps_params={"indent": 2})
