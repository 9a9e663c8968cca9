"""Redis leases against a real Redis: exact admission across nodes, release, expiry, failure."""

from __future__ import annotations

import asyncio
import socket

import pytest
import redis

from bastion.counters.attached import attached_degraded, close_attached
from bastion.counters.leases import Grant, MemoryLeases, leases_for
from bastion.counters.leases_redis import RedisLeases
from bastion.counters.memory import MemoryCounters
from bastion.counters.quota_redis import RedisQuotas
from bastion.counters.quota_store import MemoryQuotas, quotas_for
from bastion.counters.redis_counters import RedisCounters
from tests.integration.redis_support import (
    delete_prefix,
    private_redis,
    require_redis,
    unique_prefix,
)

pytestmark = [pytest.mark.redis, pytest.mark.anyio]

SECOND = 1_000_000
LEASE = 2 * SECOND  # renewed every 0.67 s: a loaded machine has 1.3 s of slack


@pytest.fixture
def prefix():
    require_redis()
    value = unique_prefix()
    yield value
    delete_prefix(value)


async def _acquire(store: RedisLeases, key: str, limit: int, lease_us: int = 30 * SECOND) -> Grant:
    pending = store.acquire(key, limit, lease_us=lease_us)
    assert pending is not None
    assert not isinstance(pending, Grant), "expected a Redis round trip"
    grant = await pending
    assert grant is not None
    return grant


def _members(prefix: str, store: RedisLeases, key: str) -> int:
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        return int(client.zcard(store.redis_key(key)))
    finally:
        client.close()


async def test_two_nodes_admit_exactly_max_in_flight_in_one_pipeline_each(prefix):
    spec = f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=1000"
    node_a, node_b = RedisLeases(spec), RedisLeases(spec)
    try:
        grants = await asyncio.gather(
            *[_acquire(node, "k", 7) for node in (node_a, node_b) for _ in range(20)]
        )
        assert sum(1 for grant in grants if grant.allowed) == 7
        assert node_a.batch.batches == node_b.batch.batches == 1
        assert _members(prefix, node_a, "k") == 7
        leases = [grant.lease for grant in grants if grant.lease is not None]
        assert len(leases) == 7
        leases[0].release()
        leases[0].release()  # a second release must not free another request's slot
        await asyncio.sleep(0.05)
        assert _members(prefix, node_a, "k") == 6
        assert (await _acquire(node_b, "k", 7)).allowed
        assert not (await _acquire(node_a, "k", 7)).allowed
    finally:
        await node_a.close()
        await node_b.close()


async def test_a_crashed_nodes_leases_expire_and_a_live_nodes_are_renewed(prefix):
    spec = f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=1000"
    crashed, live = RedisLeases(spec), RedisLeases(spec)
    try:
        assert (await _acquire(crashed, "c", 2, lease_us=LEASE)).allowed
        assert (await _acquire(live, "c", 2, lease_us=LEASE)).allowed
        # The crashed node stops renewing (and never releases).
        assert crashed._renewer is not None
        crashed._renewer.cancel()
        assert not (await _acquire(live, "c", 2, lease_us=LEASE)).allowed
        await asyncio.sleep(2.6)
        # The crashed node's slot came free; the live node's lease, older than its 2 s, holds.
        assert (await _acquire(live, "c", 2, lease_us=LEASE)).allowed
        assert not (await _acquire(live, "c", 2, lease_us=LEASE)).allowed
        assert live.held("c") == 2
        assert _members(prefix, live, "c") == 2
    finally:
        await crashed.close()
        await live.close()


async def test_the_lease_key_expires_with_its_last_lease(prefix):
    store = RedisLeases(f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=1000")
    try:
        await _acquire(store, "ttl", 1, lease_us=5 * SECOND)
        client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
        try:
            ttl = client.pttl(store.redis_key("ttl"))
            keys = list(client.scan_iter(match=f"{prefix}*"))
        finally:
            client.close()
        assert 0 < int(ttl) <= 5_100
        assert [key.decode() for key in keys] == [store.redis_key("ttl")]
        assert store.redis_key("ttl").startswith(f"{prefix}cc:{{")
    finally:
        await store.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_down_applies_on_backend_error_and_answers_at_once_meanwhile():
    store = RedisLeases(f"redis://127.0.0.1:{_closed_port()}/0?timeout_ms=50")
    try:
        pending = store.acquire("k", 1, lease_us=SECOND, on_error="local")
        assert pending is not None
        assert not isinstance(pending, Grant)
        local = await pending
        assert local is not None
        assert local.allowed
        assert local.lease is not None
        assert store.batch.degraded
        # While degraded, no Redis round trip: the fallback answers synchronously.
        refused = store.acquire("k", 1, lease_us=SECOND, on_error="local")
        assert isinstance(refused, Grant)
        assert not refused.allowed
        local.lease.release()
        assert store.local.held("k") == 0
        assert store.acquire("k", 1, lease_us=SECOND, on_error="allow") is None
        assert store.acquire("k", 1, lease_us=SECOND, on_error="deny") is None
        assert store.fallbacks == 4
    finally:
        await store.close()


async def test_leases_survive_a_script_flush_and_a_foreign_key_type_falls_back(prefix):
    store = RedisLeases(f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=1000")
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        assert (await _acquire(store, "k", 2)).allowed
        client.script_flush()  # as after a Redis restart or failover: EVAL sends the text
        assert (await _acquire(store, "k", 2)).allowed
        assert not (await _acquire(store, "k", 2)).allowed
        client.set(store.redis_key("wrong"), "a string")  # the script fails on this key
        grant = await _acquire(store, "wrong", 1)
        assert grant.allowed  # answered by the local fallback
        assert store.fallbacks == 1
        assert store.degraded
    finally:
        client.close()
        await store.close()


async def test_degraded_then_recovered_when_redis_comes_back(caplog):
    with private_redis() as server:
        store = RedisLeases(
            f"redis://127.0.0.1:{server.port}/0?timeout_ms=1000", retry_interval=0.1
        )
        try:
            assert (await _acquire(store, "k", 5)).allowed
            server.kill()
            assert (await _acquire(store, "k", 5)).allowed  # the local fallback
            assert store.batch.degraded
            server.start()
            await asyncio.sleep(0.15)
            assert (await _acquire(store, "k", 5)).allowed
            assert not store.batch.degraded
        finally:
            await store.close()
    actions = [getattr(record, "event.action", None) for record in caplog.records]
    assert actions.count("counters-degraded") == 1
    assert actions.count("counters-recovered") == 1


async def test_stores_are_attached_to_the_gateways_counters_and_closed_with_them(prefix):
    counters = RedisCounters(f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=1000")
    memory = MemoryCounters()
    try:
        leases = leases_for(counters)
        assert isinstance(leases, RedisLeases)
        assert leases_for(counters) is leases
        quotas = quotas_for(counters)
        assert isinstance(quotas, RedisQuotas)
        assert isinstance(leases_for(memory), MemoryLeases)
        assert isinstance(quotas_for(memory), MemoryQuotas)
        assert (await _acquire(leases, "k", 1)).allowed
        assert not attached_degraded(counters)
        leases.batch._degrade(OSError("down"))  # as a failed pipeline does
        assert attached_degraded(counters)
        assert not attached_degraded(memory)
    finally:
        await close_attached(counters)
        await close_attached(memory)
        await close_attached(memory)  # nothing attached any more: a no-op
        await counters.close()
    assert leases_for(counters) is not leases  # a closed store is never handed out again
    await close_attached(counters)
