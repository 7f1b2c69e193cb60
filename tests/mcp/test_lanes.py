"""A cold lookup (a profile never seen, its enrichment stuck on a slow LinkedIn) does not hold up the
worker's warm calls: they run on another lane (`mcpserver.lanes`)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixture_server import fixture_server
from tests.mcp.conftest import access_token, call
from tests.services import sign_in


pytestmark = pytest.mark.django_db(transaction=True)

slow_linkedin = fixture_server()


def avatar_of(username: str) -> dict:
    return {"name": "get_profile_avatar", "arguments": {"username": username, "size": 64}}


def test_warm_calls_answer_while_a_cold_lookup_waits_on_enrichment(serve, directory, alice, acme, slow_linkedin):
    # LinkedIn holds the profile page until the test lets it go (stopping the server wakes the handler).
    slow_linkedin.route("/in/slow-sam/", delay=120)
    environment = {
        "LINKEDIN_BASE_URL": slow_linkedin.url("").rstrip("/"),
        "AVTRZ_FETCH_ALLOW_PRIVATE": "127.0.0.1",
        "AVTRZ_FETCH_READ_TIMEOUT_S": "120",
    }
    with serve(**environment) as base:
        token = access_token(base, sign_in(base, alice))
        assert call(base, token, "tools/call", avatar_of("eileen-collins")).status_code == 200  # now cached
        with ThreadPoolExecutor(1) as pool:
            cold = pool.submit(call, base, token, "tools/call", avatar_of("slow-sam"))
            deadline = time.monotonic() + 30
            while not any(request.path.startswith("/in/slow-sam/") for request in slow_linkedin.requests):
                assert not cold.done() and time.monotonic() < deadline, "the cold lookup never reached LinkedIn"
                time.sleep(0.01)
            warm = [call(base, token, "tools/call", avatar_of("eileen-collins")) for _ in range(5)]
            cold_still_waiting = not cold.done()
            slow_linkedin.stop()
            cold_answer = cold.result()

    assert cold_still_waiting
    for response in warm:
        assert response.status_code == 200
        assert response.json()["result"]["structuredContent"]["status"] == "resolved"
    assert cold_answer.status_code == 200
    assert cold_answer.json()["result"]["structuredContent"]["handle"] == "slow-sam"
