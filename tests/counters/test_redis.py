"""RedisCounters against a real Redis: atomic counting, batching, hash tags, failure modes."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

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
