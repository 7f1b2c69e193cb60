"""A circuit breaker around the profile source, its state in the cache so every worker shares it.

When AVTRZ_UPSTREAM_BREAKER_FAILURES profile fetches in a row fail or are blocked (within
FAILURE_WINDOW_S of the first), the circuit opens for AVTRZ_UPSTREAM_BREAKER_OPEN_S:
enrichment reschedules profiles without calling the source, so a source that blocks us or is down
is not hammered by every queued task (which would only prolong a block). After that the circuit is
half-open: the next fetch is a trial, a failure opens it again at once and a success closes it.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError


log = logging.getLogger(__name__)

FAILURES_KEY = "upstream-breaker:failures"
OPEN_KEY = "upstream-breaker:open"
# Failures further apart than this do not add up: a rare hiccup never opens the circuit.
FAILURE_WINDOW_S = 300


def is_open() -> bool:
    try:
        return cache.get(OPEN_KEY) is not None
    except RedisError:  # no shared state: fetch, each fetch is bounded by its own timeouts anyway
        return False


def record(*, ok: bool) -> None:
    """Note how the source answered a profile fetch."""
    try:
        if ok:
            cache.delete(FAILURES_KEY)
        else:
            _failed()
    except RedisError as exc:
        log.warning("upstream breaker state not updated: %s", exc)


def _failed() -> None:
    threshold, open_s = settings.AVTRZ_UPSTREAM_BREAKER_FAILURES, settings.AVTRZ_UPSTREAM_BREAKER_OPEN_S
    cache.add(FAILURES_KEY, 0, FAILURE_WINDOW_S)
    try:
        failures = cache.incr(FAILURES_KEY)
    except ValueError:  # the count expired between the two calls: this failure starts a new window
        failures = 1
    if failures >= threshold:
        cache.set(OPEN_KEY, True, open_s)
        # One short of the threshold and outliving the open period: the trial fetch after it decides.
        cache.set(FAILURES_KEY, threshold - 1, open_s + FAILURE_WINDOW_S)
        log.warning("profile source failed %s times in a row: not fetching for %s s", failures, open_s)
