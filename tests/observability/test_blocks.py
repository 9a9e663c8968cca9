"""Tests of the blocked-sources table: blocks, lifts, expiry, CIDRs, trusted proxies, Redis sync."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, strategies as st

from bastion.clock import FakeClock
from bastion.config.loader import parse_config
from bastion.http.headers import Headers
from bastion.http.request import Request
from bastion.observability.blocks import (
    MAX_SECONDS,
    Block,
    BlockedSources,
    FileBlockSync,
    RedisBlockSync,
    parse_source,
    trusted_proxies_of,
)
from bastion.observability.events import SecurityEvents
from bastion.observability.sinks import MemorySink
from tests.integration.redis_support import delete_prefix, require_redis, unique_prefix
from tests.observability.ecs import ecs_errors


class _Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bool, str]] = []

    def source_blocked(
        self, source: str, *, blocked: bool, reason: str, until: float | None, by: str
    ) -> None:
        self.seen.append((source, blocked, by))


def _table(**kwargs: Any) -> tuple[BlockedSources, FakeClock, _Events]:
    clock = FakeClock()
    events = _Events()
    return BlockedSources(clock, events=events, **kwargs), clock, events


def test_block_refuses_the_address_until_it_expires() -> None:
    table, clock, events = _table()
    assert not table.any
    block = table.block("203.0.113.9", 60, "test", "admin-api")
    assert table.any
    assert table.blocked("203.0.113.9") == block
    assert table.blocked("203.0.113.10") is None
    clock.advance(59.9)
    assert table.blocked("203.0.113.9") is not None
    clock.advance(0.2)
    assert table.blocked("203.0.113.9") is None
    assert not table.any  # the expired block was forgotten when hit
    assert events.seen == [("203.0.113.9", True, "admin-api")]


def test_unblock_lifts_and_reports_only_existing_blocks() -> None:
    table, _, events = _table()
    table.block("2001:DB8::1", 60, "x", "anomaly")
    assert table.unblock("2001:db8:0::1") is not None  # any spelling of the same address
    assert table.unblock("2001:db8::1") is None
    assert table.blocked("2001:db8::1") is None
    assert events.seen == [("2001:db8::1", True, "anomaly"), ("2001:db8::1", False, "admin-api")]


def test_cidr_block_covers_its_network_only() -> None:
    table, _, _ = _table()
    table.block("10.1.0.0/16", 60, "x", "admin-api")
    assert table.blocked("10.1.200.3") is not None
    assert table.blocked("::ffff:10.1.0.1") is not None  # mapped IPv6 is the same client
    assert table.blocked("10.2.0.1") is None
    assert [b.source for b in table.blocks()] == ["10.1.0.0/16"]
    assert table.unblock("10.1.0.0/16") is not None
    assert table.blocked("10.1.200.3") is None
    assert not table.any


def test_single_address_cidrs_are_addresses() -> None:
    assert parse_source("192.0.2.1/32") == "192.0.2.1"
    assert parse_source(" 2001:db8::1/128 ") == "2001:db8::1"


@pytest.mark.parametrize(
    "text", ["", "nope", "10.0.0.1/8", "300.1.1.1", "10.0.0.0/33", "fe80::1%eth0/64"]
)
def test_parse_source_refuses_what_is_not_an_address_or_network(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - ipaddress's messages vary by input
        parse_source(text)


@given(st.ip_addresses())
def test_parse_source_canonicalises_every_address(address: Any) -> None:
    text = parse_source(address.exploded.upper())
    assert ipaddress.ip_address(text) == address
    assert parse_source(text) == text  # canonical forms are fixed points


@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=32))
def test_parse_source_keeps_networks_exact(address: Any, prefix: int) -> None:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    text = parse_source(str(network))
    assert ipaddress.ip_network(text) == network


@pytest.mark.parametrize("seconds", [0, -1, MAX_SECONDS + 1])
def test_block_refuses_out_of_range_durations(seconds: float) -> None:
    table, _, events = _table()
    with pytest.raises(ValueError, match="seconds"):
        table.block("192.0.2.1", seconds, "x", "admin-api")
    assert not table.any
    assert events.seen == []


def test_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bastion.observability.blocks.MAX_BLOCKS", 2)
    table, _, _ = _table()
    table.block("192.0.2.1", 60, "x", "anomaly")
    table.block("192.0.2.0/30", 60, "x", "anomaly")
    with pytest.raises(ValueError, match="too many"):
        table.block("192.0.2.9", 60, "x", "anomaly")
    table.block("192.0.2.1", 120, "renewed", "anomaly")  # replacing is always possible
    assert {b.reason for b in table.blocks()} == {"x", "renewed"}


def test_blocks_are_listed_soonest_ending_first_without_expired_ones() -> None:
    table, clock, _ = _table()
    table.block("192.0.2.2", 30, "b", "admin-api")
    table.block("192.0.2.1", 10, "a", "admin-api")
    table.block("192.0.2.3", 5, "c", "admin-api")
    clock.advance(6)
    assert [b.source for b in table.blocks()] == ["192.0.2.1", "192.0.2.2"]


def test_replace_takes_the_cluster_table_without_events() -> None:
    table, clock, events = _table()
    table.block("192.0.2.1", 60, "local", "admin-api")
    now = clock.time()
    table.replace(
        [
            Block("198.51.100.0/24", now + 60, "remote", "anomaly", now),
            Block("198.51.100.7", now + 60, "remote", "anomaly", now),
        ]
    )
    assert table.blocked("192.0.2.1") is None
    assert table.blocked("198.51.100.99") is not None
    assert table.blocked("198.51.100.7") is not None
    assert len(events.seen) == 1
    table.replace([])
    assert not table.any


def _request(peer: str, headers: list[tuple[bytes, bytes]]) -> Request:
    return Request("GET", "/", b"", Headers(headers), peer_ip=peer, client_ip=peer)


def test_client_ip_is_the_peer_unless_the_peer_is_a_trusted_proxy() -> None:
    table, _, _ = _table(trusted_proxies=["10.0.0.0/8"])
    forwarded = [(b"x-forwarded-for", b"203.0.113.9, 10.0.0.2")]
    assert table.client_ip(_request("10.0.0.1", forwarded)) == "203.0.113.9"
    assert table.client_ip(_request("192.0.2.1", forwarded)) == "192.0.2.1"
    table.configure(["10.0.0.0/8"], forwarded=True)
    header = [(b"forwarded", b"for=198.51.100.3")]
    assert table.client_ip(_request("10.0.0.1", header)) == "198.51.100.3"
    table.configure([], forwarded=False)
    assert table.client_ip(_request("10.0.0.1", forwarded)) == "10.0.0.1"


def _config(extra: dict[str, Any]) -> Any:
    document = {"listeners": [{"bind": "127.0.0.1:8080", "plaintext": True}], **extra}
    return parse_config(document)


def test_trusted_proxies_follow_the_gateway_settings() -> None:
    assert trusted_proxies_of(_config({})) == ([], False)
    assert trusted_proxies_of(_config({"trusted_proxies": ["10.0.0.0/8"]})) == (
        ["10.0.0.0/8"],
        False,
    )
    policy = {"trusted_proxy": {"proxies": ["192.0.2.0/24"], "header": "forwarded"}}
    assert trusted_proxies_of(_config({"global_policies": policy})) == (["192.0.2.0/24"], True)


def test_block_events_are_ecs_alerts() -> None:
    sink = MemorySink()
    clock = FakeClock()
    table = BlockedSources(clock, events=SecurityEvents(sink, clock))
    table.block("203.0.113.0/24", 60, "scanner from the password=hunter2 logs", "admin-api")
    table.unblock("203.0.113.0/24")
    table.block("203.0.113.9", 60, "anomaly.error_ratio", "anomaly")
    blocked, lifted, single = (orjson.loads(line) for line in sink.lines)
    for doc in (blocked, lifted, single):
        assert ecs_errors(doc) == []
    assert blocked["event"]["kind"] == "alert"
    assert blocked["event"]["action"] == "source-blocked"
    assert "hunter2" not in blocked["event"]["reason"]  # notes are redacted like all text
    assert "source" not in blocked  # a network is not a source.ip
    assert lifted["event"]["action"] == "source-unblocked"
    assert lifted["event"]["type"] == ["info"]
    assert single["source"] == {"ip": "203.0.113.9"}
    assert single["bastion"]["blocked_by"] == "anomaly"


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_sync_shares_blocks_and_lifts_between_tables() -> None:
    require_redis()
    prefix = unique_prefix()
    url = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    # The sync compares `until` with the wall clock: these tables use the real one.
    first, second = _wall_table(), _wall_table()
    sync_a, sync_b = RedisBlockSync(first, url), RedisBlockSync(second, url)
    try:
        first.block("192.0.2.1", 60, "x", "admin-api")
        first.block("192.0.2.0/29", 60, "y", "anomaly")
        await sync_a.sync()
        await sync_b.sync()
        assert {b.source for b in second.blocks()} == {"192.0.2.1", "192.0.2.0/29"}
        assert second.blocked("192.0.2.5") is not None
        second.unblock("192.0.2.1")
        await sync_b.sync()
        await sync_a.sync()
        assert {b.source for b in first.blocks()} == {"192.0.2.0/29"}
    finally:
        await sync_a.close()
        await sync_b.close()
        delete_prefix(prefix)


def _wall_table() -> BlockedSources:
    from bastion.clock import SystemClock

    return BlockedSources(SystemClock())


@pytest.mark.redis
@pytest.mark.anyio
async def test_redis_sync_drops_expired_and_unreadable_entries() -> None:
    require_redis()
    import redis.asyncio as aioredis

    prefix = unique_prefix()
    table = _wall_table()
    sync = RedisBlockSync(table, f"redis://127.0.0.1:6379/0?prefix={prefix}")
    client = aioredis.Redis(host="127.0.0.1", port=6379)
    try:
        await client.hset(sync.key, "192.0.2.1", b"not json")
        expired = {"until": 1.0, "reason": "old", "by": "anomaly", "created": 0.5}
        await client.hset(sync.key, "192.0.2.2", orjson.dumps(expired))
        await client.hset(sync.key, "192.0.2.3", orjson.dumps({**expired, "by": "someone"}))
        await sync.sync()
        assert table.blocks() == []
        assert await client.hlen(sync.key) == 0
    finally:
        await sync.close()
        await client.aclose()
        delete_prefix(prefix)


@pytest.mark.anyio
async def test_redis_sync_keeps_the_local_table_while_redis_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = _wall_table()
    sync = RedisBlockSync(table, "redis://127.0.0.1:1/0?timeout_ms=200", interval=0.05)
    sync.start()
    table.block("192.0.2.1", 60, "x", "admin-api")
    await asyncio.sleep(0.3)
    assert table.blocked("192.0.2.1") is not None
    assert "Redis unavailable" in caplog.text
    await sync.close()


@pytest.mark.anyio
async def test_file_sync_shares_blocks_between_the_workers_of_a_node(tmp_path: Path) -> None:
    first, second = _wall_table(), _wall_table()
    path = tmp_path / "blocks.json"
    sync_a, sync_b = FileBlockSync(first, path), FileBlockSync(second, path, interval=0.01)
    sync_b.start()
    try:
        first.block("192.0.2.1", 60, "x", "admin-api")
        first.block("192.0.2.0/29", 60, "y", "anomaly")
        for _ in range(100):
            if len(second.blocks()) == 2:
                break
            await asyncio.sleep(0.01)
        assert {b.source for b in second.blocks()} == {"192.0.2.1", "192.0.2.0/29"}
        second.unblock("192.0.2.1")
        sync_a.poll()
        assert {b.source for b in first.blocks()} == {"192.0.2.0/29"}
    finally:
        await sync_b.close()
        await sync_a.close()  # never started: nothing to stop


def test_file_sync_ignores_expired_and_unreadable_entries(tmp_path: Path) -> None:
    table = _wall_table()
    path = tmp_path / "blocks.json"
    sync = FileBlockSync(table, path)
    sync.poll()  # no file yet: nothing happens
    assert table.blocks() == []
    expired = {"until": 1.0, "reason": "old", "by": "anomaly", "created": 0.5}
    path.write_bytes(orjson.dumps({"192.0.2.2": expired, "192.0.2.3": "junk", "x": {}}))
    sync.poll()
    assert table.blocks() == []
    path.write_bytes(b"[not a table")
    sync.poll()
    assert table.blocks() == []
    path.write_bytes(b"[1]")
    sync.poll()
    assert table.blocks() == []


def test_file_sync_logs_when_it_cannot_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = _wall_table()
    FileBlockSync(table, tmp_path / "gone" / "blocks.json")
    table.block("192.0.2.1", 60, "x", "admin-api")
    assert table.blocked("192.0.2.1") is not None  # the local block stands
    assert "cannot share a change with the other workers" in caplog.text


@given(
    st.lists(
        st.tuples(st.ip_addresses(v=4), st.integers(min_value=8, max_value=32)),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.ip_addresses(v=4), min_size=1, max_size=20),
)
def test_network_blocks_match_exactly_the_addresses_inside(
    networks: list[tuple[Any, int]], addresses: list[Any]
) -> None:
    table = BlockedSources(FakeClock())
    parsed = []
    for address, prefix in networks:
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        parsed.append(network)
        table.block(str(network), 60, "x", "admin-api")
    for address in addresses + [network.network_address for network in parsed]:
        found = table.blocked(str(address))
        inside = [network for network in parsed if address in network]
        assert (found is not None) == bool(inside)
        if found is not None:
            assert address in ipaddress.ip_network(found.source)
