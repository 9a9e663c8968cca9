"""RedisCounters against a real Redis: atomic counting, batching, hash tags, failure modes."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import redis

from bastion.counters.base import Check, Decisions, OnError
from bastion.counters.redis_counters import RedisCounters, redis_key
from bastion.counters.url import parse_redis_url
from bastion.policies.rate_limit.algorithm import MICROS, Rule
from tests.integration.redis_support import delete_prefix, require_redis, unique_prefix

pytestmark = pytest.mark.anyio


async def _hit(
    counters: RedisCounters, checks: list[Check], on_error: OnError = "local"
) -> Decisions:
    result = counters.hit(checks, on_error=on_error)
    if result is None or isinstance(result, tuple):
        raise AssertionError(f"expected a pending answer from Redis, got {result!r}")
    answer = await result
    assert answer is not None
    return answer


@pytest.fixture
def prefix():
    require_redis()
    value = unique_prefix()
    yield value
    delete_prefix(value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.redis
async def test_concurrent_checks_admit_exactly_the_capacity_in_one_pipeline(prefix):
    counters = RedisCounters(f"redis://127.0.0.1:6379/0?prefix={prefix}")
    rule = Rule(50, 60 * MICROS, burst=49)
    try:
        answers = await asyncio.gather(*[_hit(counters, [("k", rule)]) for _ in range(120)])
    finally:
        await counters.close()
    assert sum(1 for (decision,) in answers if decision.allowed) == 50
    assert counters.batches == 1


@pytest.mark.redis
async def test_a_refusal_by_one_limit_refunds_the_others(prefix):
    counters = RedisCounters(f"redis://127.0.0.1:6379/0?prefix={prefix}")
    roomy = Rule(10, 60 * MICROS, burst=9)
    single = Rule(1, 60 * MICROS)
    try:
        await _hit(counters, [("b", single)])
        for _ in range(4):
            decisions = await _hit(counters, [("a", roomy), ("b", single)])
            assert not decisions[1].allowed
        await asyncio.sleep(0.05)  # refunds go out in their own pipeline
        (decision,) = await _hit(counters, [("a", roomy)])
    finally:
        await counters.close()
    assert decision.remaining == 9  # only this request counted: the refused four were refunded


@pytest.mark.redis
async def test_sliding_window_in_redis_matches_the_limit(prefix):
    counters = RedisCounters(f"redis://127.0.0.1:6379/0?prefix={prefix}")
    rule = Rule(7, 3600 * MICROS, algorithm="sliding_window")
    try:
        answers = [await _hit(counters, [("s", rule)]) for _ in range(10)]
    finally:
        await counters.close()
    # The hour's fixed window may have begun just now or long ago: at most 7, and at least 1.
    admitted = sum(1 for (decision,) in answers if decision.allowed)
    assert 1 <= admitted <= 7
    assert all(not decision.allowed for (decision,) in answers[admitted:])


def _redis() -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)


@pytest.mark.redis
async def test_sliding_log_admits_exactly_the_limit_from_concurrent_checks(prefix):
    counters = RedisCounters(f"redis://127.0.0.1:6379/0?prefix={prefix}")
    rule = Rule(50, 60 * MICROS, algorithm="sliding_log")
    try:
        answers = await asyncio.gather(*[_hit(counters, [("k", rule)]) for _ in range(120)])
    finally:
        await counters.close()
    decisions = [decision for (decision,) in answers]
    assert sum(1 for decision in decisions if decision.allowed) == 50
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(50))
    refused = [decision for decision in decisions if not decision.allowed]
    # The oldest entry was recorded moments ago: it leaves the window just under 60 s from now.
    assert all(59 * MICROS < d.retry_after_us <= 60 * MICROS for d in refused)
    client = _redis()
    try:
        key = redis_key(prefix, "k")
        assert client.llen(key) == 50  # one entry per admitted request, none for the refused
        assert 59_000 < client.pttl(key) <= 60_000  # the key lives one window
    finally:
        client.close()


@pytest.mark.redis
async def test_sliding_log_in_redis_readmits_when_the_oldest_entry_leaves(prefix):
    counters = RedisCounters(f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=1000")
    rule = Rule(3, 300_000, algorithm="sliding_log")  # 3 per 0.3 s (Rule takes microseconds)
    try:
        first = [await _hit(counters, [("w", rule)]) for _ in range(4)]
        assert [d.allowed for (d,) in first] == [True, True, True, False]
        (refused,) = first[3]
        assert 0 < refused.retry_after_us <= 300_000
        await asyncio.sleep(refused.retry_after_us / MICROS + 0.01)
        (again,) = await _hit(counters, [("w", rule)])
    finally:
        await counters.close()
    assert again.allowed  # the oldest entry left when Retry-After said, without a refusal
    assert again.reset_us == 300_000


@pytest.mark.redis
async def test_sliding_log_in_redis_drops_exactly_the_entries_that_left(prefix):
    counters = RedisCounters(f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=1000")
    rule = Rule(20, MICROS, algorithm="sliding_log")
    try:
        for _ in range(10):
            await _hit(counters, [("t", rule)])
        await asyncio.sleep(0.5)
        for _ in range(10):
            await _hit(counters, [("t", rule)])
        (refused,) = await _hit(counters, [("t", rule)])
        assert not refused.allowed
        # The first ten leave at about +1 s, the second ten at about +1.5 s: check in between.
        await asyncio.sleep(refused.retry_after_us / MICROS + 0.1)
        (decision,) = await _hit(counters, [("t", rule)])
    finally:
        await counters.close()
    assert decision.allowed
    assert decision.remaining == 20 - 10 - 1
    client = _redis()
    try:
        assert client.llen(redis_key(prefix, "t")) == 11
    finally:
        client.close()


@pytest.mark.redis
async def test_sliding_log_refused_by_another_limit_is_refunded(prefix):
    counters = RedisCounters(f"redis://127.0.0.1:6379/0?prefix={prefix}")
    log = Rule(5, 60 * MICROS, algorithm="sliding_log")
    single = Rule(1, 60 * MICROS)
    try:
        await _hit(counters, [("b", single)])
        for _ in range(4):
            decisions = await _hit(counters, [("a", log), ("b", single)])
            assert decisions[0].allowed
            assert not decisions[1].allowed
        await asyncio.sleep(0.05)  # refunds go out in their own pipeline
        (decision,) = await _hit(counters, [("a", log)])
    finally:
        await counters.close()
    assert decision.remaining == 4  # only this request is in the log
    client = _redis()
    try:
        assert client.llen(redis_key(prefix, "a")) == 1
    finally:
        client.close()


@pytest.mark.redis
async def test_keys_are_hashed_into_one_hash_tag(prefix):
    key = redis_key(prefix, "route\x00default\x00ip=10.0.0.1")
    assert key.startswith(prefix + "{")
    assert key.endswith("}")
    assert "10.0.0.1" not in key


async def test_unreachable_redis_falls_back_locally_within_the_timeout():
    counters = RedisCounters(f"redis://127.0.0.1:{_closed_port()}/0?timeout_ms=30")
    rule = Rule(1, 60 * MICROS)
    try:
        started = time.monotonic()
        first = counters.hit([("k", rule)], on_error="local")
        assert isinstance(first, asyncio.Future)
        first_answer = await first
        elapsed = time.monotonic() - started
        second = counters.hit([("k", rule)], on_error="local")  # degraded: answered at once
        denied = counters.hit([("k", rule)], on_error="deny")
    finally:
        await counters.close()
    assert elapsed < 0.5
    assert counters.degraded
    assert first_answer is not None
    assert first_answer[0].allowed
    assert isinstance(second, tuple)
    assert not second[0].allowed
    assert denied is None
    assert counters.fallbacks == 3


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", ("redis://127.0.0.1:6379/0", "bastion:rl:", 0.05)),
        ("redis://h:1/2?prefix=p:&timeout_ms=20", ("redis://h:1/2", "p:", 0.02)),
        ("rediss://h:1", ("rediss://h:1", "bastion:rl:", 0.05)),
    ],
    ids=["default", "options", "tls"],
)
def test_parse_redis_url(url, expected):
    assert parse_redis_url(url) == expected
