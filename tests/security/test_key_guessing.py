"""Guessing API keys: invalid keys are limited per client address on the Django path, valid keys never are."""

import secrets
from types import SimpleNamespace

import pytest
from django.utils import timezone
from redis.exceptions import RedisError

from avtrz.avatars import api
from avtrz.lib import throttle
from workspaces.models import ApiKey


pytestmark = pytest.mark.django_db

LIMIT = 5
ATTACKER = "203.0.113.7"
NEIGHBOUR = "198.51.100.20"


@pytest.fixture(autouse=True)
def clock(settings, monkeypatch):
    """The throttle's clock, stopped at the start of a window so no test straddles two."""
    settings.AVTRZ_INVALID_KEY_LIMIT = LIMIT
    settings.AVTRZ_INVALID_KEY_WINDOW_S = 60
    clock = SimpleNamespace(now=1_800_000_000)
    monkeypatch.setattr(throttle, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


def random_key(kind: str = "pk") -> str:
    """A fresh, well-formed key nobody issued: it misses every cache, as an attacker's next guess does."""
    return f"{kind}_live_{secrets.token_urlsafe(24)}"


def avatar(client, key: str, ip: str = ATTACKER, **headers):
    return client.get("/v1/avatar", {"key": key, "username": "eileen-collins"}, REMOTE_ADDR=ip, **headers)


def usage(client, key: str, ip: str = ATTACKER):
    return client.get("/v1/usage", HTTP_X_API_KEY=key, REMOTE_ADDR=ip)


def test_a_new_random_key_is_never_answered_from_the_cache_alone(eileen):
    """So every guess reaches the Django view, where the limit is."""
    query = api.parse({"key": random_key(), "username": "eileen-collins"}, {}, method="GET")
    with pytest.raises(api.NeedsDatabase):
        api.answer(query, cached_only=True)


def test_cycling_new_keys_on_the_avatar_api_gets_429_once_over_the_limit(client, eileen, django_assert_num_queries):
    statuses = [avatar(client, random_key()).status_code for _ in range(LIMIT)]
    assert statuses == [401] * LIMIT
    with django_assert_num_queries(0):  # refused before any lookup
        refused = avatar(client, random_key())
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "invalid API keys" in refused.json()["error"]["message"]
    assert refused["Retry-After"] == "60"
    assert refused["Cache-Control"] == "no-store"


def test_an_img_tag_that_is_refused_gets_the_monogram_with_429(client, eileen):
    for _ in range(LIMIT):
        avatar(client, random_key())
    refused = avatar(client, random_key(), HTTP_ACCEPT="image/avif,image/webp,image/*")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "image/svg+xml"
    assert int(refused["Retry-After"]) > 0


def test_the_usage_api_shares_the_limit(client, eileen):
    for _ in range(LIMIT - 1):
        assert usage(client, random_key("sk")).status_code == 401
    assert avatar(client, random_key()).status_code == 401  # the same address, the other endpoint
    refused = usage(client, random_key("sk"))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused["Retry-After"]) > 0


def test_malformed_and_revoked_keys_count_too(client, pk, eileen):
    ApiKey.objects.update(revoked_at=timezone.now())
    for key in ["garbage", pk] * (LIMIT // 2) + ["garbage"] * (LIMIT % 2):
        assert avatar(client, key).status_code == 401
    assert avatar(client, "garbage").status_code == 429


def test_valid_keys_are_never_counted(client, pk, sk, eileen):
    for _ in range(3 * LIMIT):
        assert avatar(client, pk).status_code == 302
        assert usage(client, sk).status_code == 200
    assert throttle.peek("invalid-key", ATTACKER, 60).count == 0


def test_a_blocked_address_keeps_working_keys_it_already_uses(client, pk, eileen):
    assert avatar(client, pk).status_code == 302  # the key's context is now cached
    for _ in range(LIMIT):
        avatar(client, random_key())
    assert avatar(client, random_key()).status_code == 429
    assert avatar(client, pk).status_code == 302


def test_a_blocked_address_learns_nothing_about_a_key_it_has_not_used(client, sk, eileen):
    """The check comes before the lookup: a right guess is refused exactly like a wrong one."""
    for _ in range(LIMIT):
        usage(client, random_key("sk"))
    assert usage(client, sk).status_code == 429
    assert usage(client, sk, ip=NEIGHBOUR).status_code == 200


def test_other_addresses_are_not_affected(client, pk, eileen):
    for _ in range(LIMIT):
        avatar(client, random_key())
    assert avatar(client, random_key()).status_code == 429
    assert avatar(client, random_key(), ip=NEIGHBOUR).status_code == 401
    assert avatar(client, pk, ip=NEIGHBOUR).status_code == 302


def test_the_limit_lifts_when_the_window_ends(client, eileen, clock):
    for _ in range(LIMIT):
        avatar(client, random_key())
    assert avatar(client, random_key()).status_code == 429
    clock.now += 60
    assert avatar(client, random_key()).status_code == 401


def test_guesses_straddling_the_turn_of_a_minute_are_one_window(client, eileen, clock):
    """The window opens at the first guess: a clock minute turning over midway starts nothing new, so a
    guesser who times a burst around it gets no more than the limit."""
    clock.now += 59
    for _ in range(LIMIT):
        avatar(client, random_key())
    clock.now += 2
    assert avatar(client, random_key()).status_code == 429
    clock.now += 58  # a full window after the first guess
    assert avatar(client, random_key()).status_code == 401


def test_without_redis_keys_are_still_checked_unthrottled(client, pk, eileen, monkeypatch):
    """The limit lives in the cache; losing it must not take the API down (avtrz.lib.throttle fails open)."""

    class Unreachable:
        def __getattr__(self, name):
            def unavailable(*args, **kwargs):
                raise RedisError("connection refused")

            return unavailable

    monkeypatch.setattr(throttle, "cache", Unreachable())
    assert [avatar(client, random_key()).status_code for _ in range(LIMIT + 2)] == [401] * (LIMIT + 2)
    assert usage(client, random_key("sk")).status_code == 401
    assert avatar(client, pk).status_code == 302
