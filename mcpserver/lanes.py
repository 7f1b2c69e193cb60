"""Where the MCP endpoint's synchronous work runs: two bounded thread pools, off Django's sync thread.

`sync_to_async` with its default `thread_sensitive=True` runs all of a process's sync work on one
thread, so one lookup waiting for enrichment (up to `AVTRZ_ENRICH_WAIT_S`) held up every other tool
call and token check of the worker. Instead:

- the warm lane (`MCP_WARM_THREADS`) checks tokens this process does not hold in memory and answers
  lookups the caches can answer (a cached profile, the connector key's cached context);
- the cold lane (`MCP_COLD_LOOKUPS` threads) takes lookups that query the database or wait for
  enrichment. Past that many at once, cold lookups queue for a thread there, never in the warm lane,
  and no more database connections are opened.

Each job starts and ends as a Django request does (`close_old_connections`): a pool thread keeps no
broken connection, nor one past `CONN_MAX_AGE` (with the default 0, none at all between jobs).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections


T = TypeVar("T")


class Lane:
    def __init__(self, name: str, threads: int) -> None:
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on one of the lane's threads, with the caller's context variables."""
        job = functools.partial(contextvars.copy_context().run, _as_request, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, job)


def _as_request(fn: Callable[..., T], *args: Any) -> T:
    close_old_connections()
    try:
        return fn(*args)
    finally:
        close_old_connections()


@functools.cache
def warm() -> Lane:
    return Lane("mcp-warm", settings.MCP_WARM_THREADS)


@functools.cache
def cold() -> Lane:
    return Lane("mcp-cold", settings.MCP_COLD_LOOKUPS)
