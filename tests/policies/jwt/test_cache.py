"""The verified-token cache: bounded, least recently used evicted, never past expiry."""

from __future__ import annotations

from bastion.clock import FakeClock
from bastion.core.context import Identity
from bastion.policies.jwt.cache import VerifiedTokenCache

ALICE = Identity(consumer_id="alice", method="jwt")


def test_cache_returns_an_entry_until_its_ttl():
    clock = FakeClock()
    cache = VerifiedTokenCache(10, ttl=60, clock=clock)
    cache.put(b"t", ALICE, expires_at=clock.time() + 3600)
    clock.advance(59)
    assert cache.get(b"t") is ALICE
    clock.advance(1)
    assert cache.get(b"t") is None
    assert len(cache) == 0


def test_cache_never_outlives_the_token_expiry():
    clock = FakeClock()
    cache = VerifiedTokenCache(10, ttl=60, clock=clock)
    cache.put(b"t", ALICE, expires_at=clock.time() + 5)
    clock.advance(5)
    assert cache.get(b"t") is None


def test_cache_evicts_the_least_recently_used_entry():
    clock = FakeClock()
    cache = VerifiedTokenCache(2, ttl=60, clock=clock)
    later = clock.time() + 600
    cache.put(b"a", ALICE, later)
    cache.put(b"b", ALICE, later)
    assert cache.get(b"a") is ALICE  # a is now the most recent
    cache.put(b"c", ALICE, later)
    assert cache.get(b"b") is None
    assert cache.get(b"a") is ALICE
    assert cache.get(b"c") is ALICE


def test_cache_of_size_or_ttl_zero_keeps_nothing():
    clock = FakeClock()
    for cache in (VerifiedTokenCache(0, 60, clock), VerifiedTokenCache(10, 0, clock)):
        cache.put(b"t", ALICE, clock.time() + 600)
        assert cache.get(b"t") is None


def test_cache_clear_forgets_everything():
    clock = FakeClock()
    cache = VerifiedTokenCache(10, 60, clock)
    cache.put(b"t", ALICE, clock.time() + 600)
    cache.clear()
    assert cache.get(b"t") is None
