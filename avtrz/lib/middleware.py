"""Cross-cutting HTTP middleware."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string


log = logging.getLogger(__name__)

# Everything the app renders comes from its own origin: vendored CSS/JS, no inline script.
# Images may also be data: URIs (SVG monograms) and the durable image host.
DEFAULT_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    """Send a Content-Security-Policy on every HTML response that does not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response and response.get("Content-Type", "").startswith("text/html"):
            response["Content-Security-Policy"] = DEFAULT_POLICY
        return response


class NulCharacterMiddleware:
    """Refuse query or form parameters no view could use, with a 400, before any view sees them:
    a NUL character, a body past Django's size limits, too many fields.

    No parameter of ours can hold a NUL, and PostgreSQL refuses it in any query: Django's forms
    reject it, but the OAuth endpoints read their parameters without forms, and a NUL in a client id
    or code would be a 500. Reading the parameters here means a body too large is found here too
    (a view reading them again would find them empty). The answer is an OAuth-shaped JSON error,
    which API callers and OAuth clients can read.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/v1/"):
            # The API validates its own parameters and answers in its own error format (an SVG for <img>).
            return self.get_response(request)
        try:
            parameters = [*request.GET.lists(), *request.POST.lists()]
        except RequestDataTooBig:
            return _invalid_request("The request body is too large.")
        except TooManyFieldsSent:
            return _invalid_request("The request has too many parameters.")
        if any("\x00" in value for _name, values in parameters for value in values):
            return _invalid_request("A parameter contains a NUL character.")
        return self.get_response(request)


def _invalid_request(description: str) -> JsonResponse:
    return JsonResponse(
        {"error": "invalid_request", "error_description": description},
        status=400,
        headers={"Cache-Control": "no-store"},
    )


# A restart or failover of the database takes seconds.
DATABASE_RETRY_AFTER_S = 5


class DatabaseUnavailableMiddleware:
    """A database that cannot be reached answers 503 with Retry-After (JSON on /v1/*, a short page
    elsewhere) instead of a 500 with a traceback: callers know to retry, and each request opens a
    fresh connection (DB_CONN_MAX_AGE 0, health checks), so the app recovers when the database does."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning("database unavailable for %s %s: %s", request.method, request.path, exception)
        if request.path.startswith("/v1/"):
            message = "The service is briefly unavailable. Retry in a few seconds."
            response: HttpResponse = JsonResponse({"error": {"code": "unavailable", "message": message}}, status=503)
        else:
            # Rendered without the request: context processors would query the database again.
            response = HttpResponse(render_to_string("503.html"), status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        response["Cache-Control"] = "no-store"
        return response


class ProductErrorPagesMiddleware:
    """Under DEBUG, answer a 404 or a 500 with the product's own page instead of Django's technical one.

    The technical pages style themselves inline, which the Content-Security-Policy blocks, so they
    showed as unstyled text, and they are not what people meet in production: someone following a stale
    invitation link or mistyping a URL in `make run` should see what they would see there. The traceback
    still goes to the log; `DEBUG_TECHNICAL_ERRORS=true` brings Django's pages back. Innermost in
    MIDDLEWARE, so the replacement still gets every header the outer middleware adds.
    """

    MARKER = b"<code>DEBUG = True</code>"  # in both technical_404.html and technical_500.html

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            settings.DEBUG
            and not settings.DEBUG_TECHNICAL_ERRORS
            and response.status_code in (404, 500)
            and not response.streaming
            and response.get("Content-Type", "").startswith("text/html")
            and self.MARKER in response.content
        ):
            if response.status_code == 404:
                return HttpResponse(render_to_string("404.html", request=request), status=404)
            return HttpResponse(render_to_string("500.html"), status=500)
        return response
