"""Redis quota counts against a real Redis: exact across nodes, refunds, expiry, failure."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import redis

from bastion.counters.quota_redis import EXPIRY_SLACK, RedisQuotas
from bastion.counters.quota_store import Usage
from tests.integration.redis_support import delete_prefix, require_redis, unique_prefix

pytestmark = [pytest.mark.redis, pytest.mark.anyio]


@pytest.fixture
def prefix():
    require_redis()
    value = unique_prefix()
    yield value
    delete_prefix(value)


async def _take(store: RedisQuotas, key: str, label: str, limit: int, end: int) -> Usage:
    pending = store.take(key, label, limit, end)
    assert pending is not None
    assert not isinstance(pending, Usage), "expected a round trip"
    usage = await pending
    assert usage is not None
    return usage


def _count(store: RedisQuotas, key: str, label: str) -> tuple[int, int]:
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        name = store.redis_key(key, label)
        return int(client.get(name) or 0), int(client.ttl(name))
    finally:
        client.close()


async def test_two_nodes_admit_exactly_the_limit_and_refusals_are_not_counted(prefix):
    spec = f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=1000"
    node_a, node_b = RedisQuotas(spec), RedisQuotas(spec)
    end = int(time.time()) + 3600
    try:
        usages = await asyncio.gather(
            *[_take(node, "alice", "d1", 25, end) for node in (node_a, node_b) for _ in range(40)]
        )
        assert sum(1 for usage in usages if usage.allowed) == 25
        assert sorted(usage.used for usage in usages if usage.allowed) == list(range(1, 26))
        count, ttl = _count(node_a, "alice", "d1")
        assert count == 25
        assert 3600 < ttl <= 3600 + EXPIRY_SLACK
        node_b.refund("alice", "d1")
        await asyncio.sleep(0.05)
        assert _count(node_a, "alice", "d1")[0] == 24
        assert (await _take(node_a, "alice", "d1", 25, end)).allowed
        assert (await _take(node_a, "alice", "d2", 25, end)).used == 1  # a new period
    finally:
        await node_a.close()
        await node_b.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_down_counts_locally_and_refunds_there():
    store = RedisQuotas(f"redis://127.0.0.1:{_closed_port()}/0?timeout_ms=50")
    try:
        pending = store.take("k", "d1", 1, 0)
        assert pending is not None
        assert not isinstance(pending, Usage)
        usage = await pending
        assert usage == Usage(True, 1, local=True)
        refused = store.take("k", "d1", 1, 0)
        assert refused == Usage(False, 1, local=True)
        store.refund("k", "d1", local=True)
        assert store.local.used("k", "d1") == 0
        assert store.degraded
        assert store.take("k", "d1", 1, 0, on_error="allow") is None
        assert store.take("k", "d1", 1, 0, on_error="deny") is None
    finally:
        await store.close()
