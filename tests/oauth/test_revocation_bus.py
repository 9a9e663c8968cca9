"""Revocations pushed to other processes: Redis pub/sub messages and buses, PostgreSQL NOTIFY."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from hypothesis import given, strategies as st

from bastion.clock import FakeClock
from bastion.config.loader import parse_config
from bastion.oauth.revocation_bus import MAX_MESSAGE, RevocationBus, decode
from bastion.oauth.server import Revocations
from bastion.oauth.setup import authorization_server
from bastion.store import close_shared_stores, gateway_store, open_store
from bastion.store.sql import SQLStore
from bastion.store.sqlite import SQLiteStore
from tests.integration.redis_support import require_redis, unique_prefix
from tests.oauth.support import make_server
from tests.store.support import postgres_schema


@given(st.binary(max_size=MAX_MESSAGE + 10))
def test_decode_never_raises_on_arbitrary_bytes(data):
    found = decode(data)
    if found is not None:
        jti, expires_at = found
        assert isinstance(jti, str)
        assert isinstance(expires_at, float)


@given(
    st.text(min_size=1, max_size=64),
    st.integers(min_value=0, max_value=2**40) | st.floats(0, 2**40, allow_nan=False),
)
def test_decode_reads_what_publish_writes(jti, expires_at):
    assert decode(orjson.dumps({"jti": jti, "exp": expires_at})) == (jti, float(expires_at))


@pytest.mark.parametrize(
    "message",
    [
        b"[]",
        b'{"jti": "", "exp": 1}',
        b'{"jti": 5, "exp": 1}',
        b'{"jti": "a", "exp": true}',
        b'{"jti": "a", "exp": "1"}',
        b'{"jti": "a"}',
        b'{"jti": "' + b"a" * 600 + b'", "exp": 1}',
        None,
    ],
    ids=["array", "empty-jti", "number-jti", "bool-exp", "text-exp", "no-exp", "huge", "none"],
)
def test_decode_ignores_malformed_messages(message):
    assert decode(message) is None


@pytest.mark.redis
@pytest.mark.anyio
async def test_a_revocation_published_by_one_bus_reaches_the_other_at_once(tmp_path: Path):
    require_redis()
    spec = f"redis://127.0.0.1:6379/0?prefix={unique_prefix()}"
    clock = FakeClock()
    clock.advance(1_000_000)
    stores = [SQLiteStore(tmp_path / "a.db"), SQLiteStore(tmp_path / "b.db")]
    buses = [RevocationBus(spec), RevocationBus(spec)]
    sides = [Revocations(store, clock) for store in stores]
    try:
        for side, bus in zip(sides, buses, strict=True):
            side.attach(bus)
        for bus in buses:
            await asyncio.wait_for(bus.subscribed.wait(), 5)
        await sides[0].revoke("jti-1", "cl_0000000000000001", clock.time() + 300)
        for _ in range(100):
            if sides[1].is_revoked("jti-1"):
                break
            await asyncio.sleep(0.01)
        assert sides[1].is_revoked("jti-1")  # b's own store never saw it: it was pushed
        assert buses[1].received == 1
        assert not sides[1].is_revoked("jti-2")
    finally:
        for bus in buses:
            await bus.close()
        for store in stores:
            await store.close()


@pytest.mark.anyio
async def test_an_unreachable_redis_never_fails_a_revocation(tmp_path: Path):
    clock = FakeClock()
    store = SQLiteStore(tmp_path / "a.db")
    bus = RevocationBus("redis://127.0.0.1:1/0")  # nothing listens on port 1
    side = Revocations(store, clock)
    try:
        side.attach(bus)
        await side.revoke("jti-1", "cl_0000000000000001", clock.time() + 300)
        assert side.is_revoked("jti-1")
        assert ("jti-1", clock.time() + 300) in await store.list_revocations(0)
    finally:
        await bus.close()
        await store.close()


@pytest.mark.postgres
@pytest.mark.anyio
async def test_with_postgresql_a_revocation_reaches_another_node_by_notification():
    with postgres_schema() as url:
        config = parse_config(
            {
                "listeners": [{"bind": "127.0.0.1:8443", "tls": {}}],
                "store": url,
                "oauth": {"issuer": "https://localhost:8443"},
            }
        )
        clock = FakeClock()
        writer_store = open_store(url)
        assert isinstance(writer_store, SQLStore)
        writer = make_server(writer_store, clock)
        try:
            node = authorization_server(config, gateway_store(config), clock)
            assert node is not None
            await node.store.list_revocations(0)  # migrated, and nothing revoked yet
            await asyncio.sleep(0.5)  # the node's LISTEN connection is up
            await writer.revocations.revoke("jti-pg", "cl_0000000000000001", clock.time() + 300)
            await asyncio.sleep(0.5)
            # The first check after the revocation refuses it: a traffic-driven reload would
            # only start now and answer this check from the old set.
            assert node.is_revoked("jti-pg")
            await node.revocations.close()
        finally:
            await writer_store.close()
            await close_shared_stores()
