"""The two-level cache against a real Redis, with a fake clock and the listener driven by hand.

Two `HotCache` instances sharing one Redis stand for two server processes. A Redis that a process
cannot reach is a real one too: its store client points at a port where nothing listens.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest
import redis
from django.db import connection
from django.utils import timezone
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout
from redis.retry import Retry

from avtrz.avatars import cards
from avtrz.avatars.models import Profile
from avtrz.lib import redisclient
from avtrz.lib.hotcache import LIVENESS_S, HotCache
from tests import services
from tests.blackhole import BlackHole
from workspaces import keys
from workspaces.models import ApiKey, key_digest
from workspaces.services import create_api_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))


class Network:
    """Redis as one process sees it: reachable, or not (a port nobody listens on)."""

    def __init__(self, url: str) -> None:
        self.up = _client(url)
        self.down = _client(f"redis://127.0.0.1:{services.free_port()}/0")
        self.reachable = True

    def __call__(self) -> redis.Redis:
        return self.up if self.reachable else self.down


@pytest.fixture
def redis_url() -> str:
    return services.redis_url()


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def process(redis_url, prefix, clock):
    """A factory of processes: each a HotCache with its own view of the network and its own channel."""
    made: list[HotCache] = []

    def make() -> tuple[HotCache, Network]:
        network = Network(redis_url)
        subscriber = _client(redis_url)
        cache = HotCache(network, prefix=lambda: prefix, subscriber=lambda: subscriber, clock=clock, background=False)
        cache.tick(timeout=1)  # subscribed: the confirmation is the first thing it hears
        assert cache.trusted()
        made.append(cache)
        return cache, network

    yield make
    for cache in made:
        cache.lose_channel("test over")


def _hear(cache: HotCache) -> None:
    cache.tick(timeout=0.5)  # what the listener thread does every second


def test_level_one_answers_without_redis_while_the_channel_is_heard(process):
    cache, network = process()
    cache.set("k", "v1", 60)
    assert cache.get("k") == "v1"  # from Redis, now kept in level 1
    network.reachable = False
    assert cache.get("k") == "v1"  # level 1
    assert cache.get("k", local_only=True) == "v1"


def test_local_only_never_reads_redis(process):
    writer, _ = process()
    reader, _ = process()
    writer.set("k", "v1", 60)
    assert reader.get("k", local_only=True) is None  # in Redis, not in this process: no round trip
    assert reader.get("k") == "v1"
    assert reader.get("k", local_only=True) == "v1"


def test_a_silent_channel_turns_level_one_off_and_it_comes_back_empty(process, clock):
    """A Redis that stalls sends no error, only silence: invalidations may be lost in it."""
    writer, _ = process()
    reader, _ = process()
    writer.set("k", "before", 60)
    assert reader.get("k") == "before"
    # An invalidation the reader never hears (lost while Redis stalled): level 2 changes silently.
    writer.store.write("k", "after", 60)
    assert reader.get("k") == "before"  # level 1, trusted: the channel was heard just now
    clock.advance(LIVENESS_S)
    assert not reader.trusted()
    assert reader.generation() is None  # the fast path stops replaying answers too
    assert reader.get("k") == "after"  # level 1 bypassed
    _hear(reader)  # the channel answers again
    assert reader.trusted()
    assert reader.get("k", local_only=True) is None  # level 1 was emptied, not trusted with "before"
    assert reader.get("k") == "after"


def test_a_silent_channel_is_given_up_and_dialled_again(redis_url, prefix, clock):
    """A stalled Redis, or a half-open connection, raises no error: the listener must not wait on it forever."""
    target = urlsplit(redis_url)
    with BlackHole(target.hostname or "127.0.0.1", target.port or 6379) as hole:
        subscriber = _client(f"redis://127.0.0.1:{hole.port}{target.path}")
        cache = HotCache(
            Network(redis_url), prefix=lambda: prefix, subscriber=lambda: subscriber, clock=clock, background=False
        )
        cache.tick(timeout=1)
        cache.tick(timeout=0.5)  # the subscription's confirmation and the first ping's answer are in
        assert cache.trusted()
        hole.stall()
        clock.advance(LIVENESS_S)
        with pytest.raises(RedisError):
            cache.tick(timeout=0.1)  # its ping went into the void
        cache.lose_channel("silent")  # what the listener thread does with that
        hole.flow()
        cache.tick(timeout=1)  # a new connection
        assert cache.trusted()
        cache.lose_channel("test over")


def test_a_failed_delete_is_retried_before_the_key_is_read_again(process):
    """A revocation whose delete failed while the channel stayed up must not leave the key working."""
    revoker, network = process()
    revoker.set("apikey:x", "valid", 3600)
    assert revoker.get("apikey:x") == "valid"
    network.reachable = False  # a blip: the delete (and its broadcast) fail
    revoker.delete_many(["apikey:x"])
    assert set(revoker.pending) == {"apikey:x"}
    assert revoker.get("apikey:x") is None  # not level 1, not Redis: the database decides
    network.reachable = True  # back, and the invalidation channel never dropped
    assert revoker.get("apikey:x") is None
    assert not revoker.pending
    assert revoker.store.read("apikey:x")[0] is None


def test_a_delete_that_fails_again_while_a_retry_runs_stays_pending(process):
    """The retry's Redis call runs outside the lock; a failure recorded meanwhile is not forgotten."""
    cache, network = process()
    network.reachable = False
    cache.delete_many(["k"])
    retrying = cache._pending_now()  # a retry takes its list ...
    cache.delete_many(["k"])  # ... another revocation of the key fails meanwhile ...
    cache._forget_pending(retrying)  # ... and the retry succeeds for what it took
    assert set(cache.pending) == {"k"}
    network.reachable = True
    assert cache.retry_pending()
    assert not cache.pending


def test_the_listener_retries_failed_deletes_promptly_for_every_process(process):
    revoker, network = process()
    other, _ = process()
    revoker.set("apikey:x", "valid", 3600)
    assert other.get("apikey:x") == "valid"  # in the other process's level 1
    network.reachable = False
    revoker.delete_many(["apikey:x"])
    assert other.get("apikey:x") == "valid"  # nobody could tell it yet
    _hear(revoker)
    assert set(revoker.pending) == {"apikey:x"}  # still unreachable: kept
    network.reachable = True
    _hear(revoker)  # the next listener round, at most a second later
    assert not revoker.pending
    _hear(other)  # the broadcast arrives
    assert other.get("apikey:x") is None


def test_a_load_that_raced_an_invalidation_is_not_written_back(process):
    loader, _ = process()
    revoker, _ = process()
    value, version = loader.read("apikey:x")
    assert value is None
    # ... the loader reads the database (the key is valid), meanwhile the key is revoked ...
    revoker.delete_many(["apikey:x"])
    assert not loader.set_if_current("apikey:x", "valid", 3600, version)
    assert loader.get("apikey:x") is None
    assert revoker.get("apikey:x") is None
    value, version = loader.read("apikey:x")  # a load after the revocation stores what it read
    assert loader.set_if_current("apikey:x", "revoked", 3600, version)
    assert revoker.get("apikey:x") == "revoked"


def test_an_unconditional_write_also_beats_a_slower_load(process):
    """An enrichment's card is newer than anything a concurrent load read from the database."""
    loader, _ = process()
    enricher, _ = process()
    _, version = loader.read("card:ada")
    enricher.set("card:ada", "resolved", 60)
    assert not loader.set_if_current("card:ada", "enriching", 60, version)
    assert loader.get("card:ada") == "resolved"


def test_a_load_that_could_not_read_redis_writes_nothing(process):
    loader, network = process()
    network.reachable = False
    assert loader.read("k") == (None, None)
    network.reachable = True
    assert not loader.set_if_current("k", "v", 60, None)


def test_without_redis_writes_are_versioned_in_process(settings):
    cache = HotCache(None, prefix=lambda: "unused:")
    _, version = cache.read("k")
    cache.delete_many(["k"])
    assert not cache.set_if_current("k", "stale", 60, version)
    _, version = cache.read("k")
    assert cache.set_if_current("k", "fresh", 60, version)
    assert cache.get("k") == "fresh"
    assert cache.get("k", local_only=True) == "fresh"  # the in-process cache is local already
    assert cache.generation() is not None


# ---------------------------------------------------------------- the loaders


def _after_the_first_query_of(table: str, then):
    """A database hook: runs `then` right after the first query that reads `table`, i.e. between a
    loader's database read and its cache write, where a concurrent request's change would land."""
    done = []

    def hook(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not done and table in sql:
            done.append(True)
            then()
        return result

    return connection.execute_wrapper(hook)


@pytest.mark.django_db
def test_a_key_context_read_before_a_revocation_is_not_cached(acme):
    raw = create_api_key(actor=None, workspace=acme, kind=ApiKey.Kind.PUBLISHABLE, name="Site")
    key = ApiKey.objects.get(digest=key_digest(raw))

    def revoke() -> None:  # what revoke_api_key does on commit, in another request
        ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
        keys.forget_key(key)

    with _after_the_first_query_of("workspaces_apikey", revoke):
        assert keys.load_context(raw) is not None  # answered from what it read
    assert keys.load_context(raw) is None  # the next request sees the revocation
    assert keys.cached_context(raw) == keys.UNKNOWN


@pytest.mark.django_db
def test_a_card_read_before_an_enrichment_does_not_overwrite_it():
    Profile.objects.create(handle="ada-demo", status=Profile.Status.ENRICHING)
    resolved = cards.Card(handle="ada-demo", status=Profile.Status.RESOLVED, renditions={"webp": {"32": "ab"}})

    with _after_the_first_query_of("avatars_profile", lambda: cards.remember(resolved)):
        assert cards.load_card("ada-demo").status == Profile.Status.ENRICHING
    assert cards.cached_card("ada-demo") == resolved


# ---------------------------------------------------------------- the Redis client


def test_a_redis_that_timed_out_is_not_waited_on_again_for_a_moment(redis_url, clock, monkeypatch):
    """One request pays a stalled Redis's timeout; the ones right after it fail at once (and fall back)."""
    monkeypatch.setattr(redisclient, "_clock", clock)
    target = urlsplit(redis_url)
    with BlackHole(target.hostname or "127.0.0.1", target.port or 6379) as hole:
        client = redis.Redis.from_url(
            f"redis://127.0.0.1:{hole.port}{target.path}",
            socket_timeout=0.2,
            socket_connect_timeout=0.2,
            retry=Retry(NoBackoff(), 0),
            connection_class=redisclient.StallBreakerConnection,
        )
        assert client.ping()
        hole.stall()
        with pytest.raises(RedisTimeout, match="Timeout reading"):
            client.ping()  # waits out its timeout
        with pytest.raises(RedisTimeout, match="moments ago"):
            client.get("k")  # does not wait again
        hole.flow()
        with pytest.raises(RedisTimeout, match="moments ago"):
            client.get("k")
        clock.advance(redisclient.STALL_PAUSE_S)
        assert client.ping()  # the first call after the pause tries again
