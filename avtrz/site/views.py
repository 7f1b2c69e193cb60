"""Site-wide pages that belong to no single app."""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from avtrz.avatars.management.commands.load_demo import demo_publishable_key
from avtrz.celery import app as celery_app
from workspaces.models import ApiKey


logger = logging.getLogger(__name__)


EXAMPLE_HANDLE = "eileen-collins"  # a demo profile (`load_demo`) with a photo


def _live_example_url() -> str | None:
    """`/v1/avatar` with the demo publishable key when `load_demo` made it (local, staging), else None:
    production shows the same avatar shipped as a static file instead."""
    raw = demo_publishable_key()
    try:
        if ApiKey.objects.for_key(raw) is None:
            return None
    except DatabaseError:
        return None  # the landing page still shows, with the static example
    return f"/v1/avatar?key={raw}&username={EXAMPLE_HANDLE}&size=256"


@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "landing.html", {"example_url": _live_example_url(), "example_handle": EXAMPLE_HANDLE})


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        # A pool thread's own connection: no request ends to close it, and connecting is part of the check.
        connection.close()
    return "ok"


def _check_cache() -> str:
    cache.set("healthz", "ok", 10)
    if cache.get("healthz") != "ok":
        raise RuntimeError("the cache did not keep a value")
    return "ok"


def _check_broker() -> str:
    if celery_app.conf.task_always_eager:
        return "eager"  # no broker: tasks run in-process
    with celery_app.connection_for_write() as conn:
        # kombu waits a float timeout as given; its stub's int is too narrow.
        conn.ensure_connection(max_retries=0, timeout=settings.HEALTH_CHECK_TIMEOUT_S)  # type: ignore[arg-type]
    return "ok"


CHECKS = {"database": _check_database, "cache": _check_cache, "broker": _check_broker}
# Checks run off the request thread so a hung service costs a pool thread, not Django's one sync thread.
_pool = ThreadPoolExecutor(max_workers=2 * len(CHECKS), thread_name_prefix="healthz")


@require_safe
async def health(request: HttpRequest) -> JsonResponse:
    """Readiness for load balancers: the database, the cache and the broker each answer in time."""
    loop = asyncio.get_running_loop()
    futures = {name: loop.run_in_executor(_pool, check) for name, check in CHECKS.items()}
    await asyncio.wait(futures.values(), timeout=settings.HEALTH_CHECK_TIMEOUT_S)
    checks = {}
    for name, future in futures.items():
        if not future.done():
            future.cancel()
            checks[name] = "timeout"
        elif future.exception() is not None:
            logger.warning("health check %s failed: %s", name, future.exception())
            checks[name] = "error"
        else:
            checks[name] = future.result()
    healthy = all(result in {"ok", "eager"} for result in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "error", "checks": checks},
        status=200 if healthy else 503,
        headers={"Cache-Control": "no-store"},
    )
