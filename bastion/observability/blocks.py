"""Blocked sources: client addresses and CIDRs refused before routing, for a limited time.

How this works: `BlockedSources` holds the blocks of this process: exact addresses in a dict
(the request path does one lookup there) and CIDRs in a `CIDRSet` rebuilt on change (consulted
only while a CIDR block exists). Blocks come from the anomaly detector (`anomaly.block`, when an
alert fires) and from the admin API (`/admin/blocked-sources`); each one ends at `until` (Unix
seconds), checked when it is hit, so no timer runs. A refused request gets 403 problem+json with
code `source_blocked` and `Connection: close`, an access-log line and a security event, without
routing or running any policy.

The address checked is the socket peer, or, when the peer is a trusted proxy (`trusted_proxies`
or the global `trusted_proxy` policy), the client address its forwarding header reports, worked
out as the trusted_proxy policy does, so a block never falls on the load balancer in front.

Cluster: with `counters: redis://...`, `RedisBlockSync` keeps the blocks in one Redis hash
(field: the source, value: the block as JSON with its `until`), writes every local change there
and re-reads the hash every second, so every node (and every worker) refuses a source within
about a second of it being blocked anywhere. Redis 7.4's per-field expiry is not needed: expired
entries are ignored when read and deleted by the next sync. Without Redis, the workers of one
node (`--workers N`) share them the same way through a file in the node's private directory
(`FileBlockSync`: changes written under an exclusive `flock`, re-read every half second when
the file changed); a single process needs no sharing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol

import orjson

from bastion.clock import Clock
from bastion.config.models import GatewayConfig
from bastion.core.context import RequestContext
from bastion.errors import Forbidden
from bastion.http.cidr import CIDRSet
from bastion.http.forwarded import (
    client_ip_from_chain,
    forwarded_for_hops,
    parse_forwarded,
    parse_x_forwarded_for,
)
from bastion.http.request import Request
from bastion.http.response import problem_response
from bastion.proxy.downstream import Exchange, http_date

_log = logging.getLogger("bastion.blocks")

SOURCE_BLOCKED: Final = "Requests from this address are blocked for a while."
"""Public detail of the 403 sent to a blocked source."""
POLICY: Final = "blocked_sources"
"""`bastion.policy` of refused requests (and of their security events)."""
MAX_BLOCKS: Final = 100_000
"""Blocks held at most; past it new blocks are refused (a flood of addresses must not exhaust
memory)."""
MAX_SECONDS: Final = 30 * 86_400
REDIS_KEY: Final = "blocked_sources"
SYNC_INTERVAL: Final = 1.0

BlockedBy = Literal["anomaly", "admin-api"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Block:
    """One blocked source (an address, or a CIDR such as `203.0.113.0/24`)."""

    source: str
    until: float
    reason: str
    by: BlockedBy
    created: float

    def public(self) -> dict[str, object]:
        """The block as the admin API shows it."""
        return {
            "source": self.source,
            "until": round(self.until, 3),
            "reason": self.reason,
            "by": self.by,
            "created": round(self.created, 3),
        }


def parse_source(text: str) -> str:
    """The canonical form of an address or CIDR (`/32` and `/128` become the address).

    Raises:
        ValueError: `text` is neither, or a CIDR has host bits set.
    """
    text = text.strip()
    if "/" in text:
        network = ipaddress.ip_network(text, strict=True)
        if network.num_addresses == 1:
            return str(network.network_address)
        return str(network)
    return str(ipaddress.ip_address(text))


class _Recorder(Protocol):
    def record(self, ctx: RequestContext) -> None: ...


class _Gateway(Protocol):
    """What a refusal needs from the gateway: its clock and its log-phase hook."""

    @property
    def clock(self) -> Clock: ...

    @property
    def access_log(self) -> _Recorder | None: ...


class _Events(Protocol):
    def source_blocked(
        self, source: str, *, blocked: bool, reason: str, until: float | None, by: str
    ) -> None: ...


class BlockedSources:
    """This process's blocked sources and the early check of every request.

    Args:
        clock: Wall time for `until` (blocks are shared between nodes in Unix seconds).
        events: Writes a security event for each block and unblock.
        trusted_proxies: Peers whose forwarding header names the client.
        forwarded: Read `Forwarded` (RFC 7239) instead of `X-Forwarded-For` from them.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        events: _Events | None = None,
        trusted_proxies: Iterable[str] = (),
        forwarded: bool = False,
    ) -> None:
        self._clock = clock
        self._events = events
        self.any = False
        """Whether any block exists: the request path tests this first."""
        self._addresses: dict[str, Block] = {}
        self._networks: dict[str, Block] = {}
        self._network_set = CIDRSet()
        self._network_list: list[tuple[IPNetwork, str]] = []
        self._trusted = CIDRSet(trusted_proxies)
        self._forwarded = forwarded
        self.on_change: Callable[[Block | None, str], None] | None = None
        """Called with (block, source) on every local change (None: unblocked); cluster sync."""

    def configure(self, trusted_proxies: Iterable[str], *, forwarded: bool) -> None:
        """Take the trusted proxies of a (re)loaded config."""
        self._trusted = CIDRSet(trusted_proxies)
        self._forwarded = forwarded

    # -- changes -----------------------------------------------------------------------------

    def block(self, source: str, seconds: float, reason: str, by: BlockedBy) -> Block:
        """Block `source` for `seconds` (replacing a block of the same source).

        Raises:
            ValueError: `source` is not an address or CIDR, `seconds` is out of range, or
                `MAX_BLOCKS` blocks exist already.
        """
        canonical = parse_source(source)
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"seconds must be between 1 and {MAX_SECONDS}")
        table = self._networks if "/" in canonical else self._addresses
        if canonical not in table and len(self._addresses) + len(self._networks) >= MAX_BLOCKS:
            raise ValueError("too many blocked sources")
        now = self._clock.time()
        block = Block(canonical, now + seconds, reason, by, now)
        self._put(block)
        if self._events is not None:
            self._events.source_blocked(
                canonical, blocked=True, reason=reason, until=block.until, by=by
            )
        if self.on_change is not None:
            self.on_change(block, canonical)
        return block

    def unblock(self, source: str, by: BlockedBy = "admin-api") -> Block | None:
        """Lift the block of `source`; returns it, or None if there was none.

        Raises:
            ValueError: `source` is not an address or CIDR.
        """
        canonical = parse_source(source)
        found = self._drop(canonical)
        if found is not None:
            if self._events is not None:
                self._events.source_blocked(
                    canonical, blocked=False, reason=found.reason, until=None, by=by
                )
            if self.on_change is not None:
                self.on_change(None, canonical)
        return found

    def blocks(self) -> list[Block]:
        """The blocks in force, soonest ending first."""
        now = self._clock.time()
        found = [b for b in (*self._addresses.values(), *self._networks.values()) if b.until > now]
        return sorted(found, key=lambda b: (b.until, b.source))

    def replace(self, blocks: Iterable[Block]) -> None:
        """Take the cluster's blocks as the whole table (no events: they happened elsewhere)."""
        addresses: dict[str, Block] = {}
        networks: dict[str, Block] = {}
        for block in blocks:
            (networks if "/" in block.source else addresses)[block.source] = block
        self._addresses = addresses
        changed = networks.keys() != self._networks.keys()
        self._networks = networks
        if changed:
            self._index_networks()
        self.any = bool(addresses or networks)

    def _index_networks(self) -> None:
        self._network_set = CIDRSet(self._networks)
        self._network_list = [(ipaddress.ip_network(s), s) for s in self._networks]

    def _put(self, block: Block) -> None:
        if "/" in block.source:
            self._networks[block.source] = block
            self._index_networks()
        else:
            self._addresses[block.source] = block
        self.any = True

    def _drop(self, source: str) -> Block | None:
        if "/" in source:
            found = self._networks.pop(source, None)
            if found is not None:
                self._index_networks()
        else:
            found = self._addresses.pop(source, None)
        self.any = bool(self._addresses or self._networks)
        return found

    # -- the request path --------------------------------------------------------------------

    def blocked(self, ip: str) -> Block | None:
        """The block in force for address `ip`, if any."""
        block = self._addresses.get(ip)
        if block is None and self._networks and self._network_set.contains(ip):
            block = self._network_block(ip)
        if block is None:
            return None
        if block.until <= self._clock.time():
            self._drop(block.source)  # expired: forget it on the way
            return None
        return block

    def _network_block(self, ip: str) -> Block | None:
        """The block of the (first) blocked network holding `ip` (known to hold it)."""
        address = ipaddress.ip_address(ip.partition("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for network, source in self._network_list:
            if address.version == network.version and address in network:
                return self._networks[source]
        return None  # pragma: no cover - the CIDRSet said one network holds it

    def client_ip(self, request: Request) -> str:
        """The address a block applies to: the peer, or the client a trusted proxy names."""
        peer = request.peer_ip
        if self._trusted.is_empty or not self._trusted.contains(peer):
            return peer
        headers = request.headers
        if self._forwarded:
            hops = forwarded_for_hops(parse_forwarded(headers.get_all(b"forwarded")))
        else:
            hops = parse_x_forwarded_for(headers.get_all(b"x-forwarded-for"))
        return client_ip_from_chain(peer, hops, self._trusted)

    def refuse(self, exchange: Exchange, gateway: _Gateway) -> bool:
        """Answer 403 `source_blocked` if the request's source is blocked; True when refused.

        Called for every request while `any` is true, before routing.
        """
        request = exchange.request
        ip = self.client_ip(request)
        if self.blocked(ip) is None:
            return False
        request.client_ip = ip
        ctx = RequestContext(request, start=gateway.clock.monotonic())
        reject = Forbidden(SOURCE_BLOCKED, code="source_blocked")
        ctx.reject = reject
        ctx.rejected_by = POLICY
        ctx.status = reject.status
        response = problem_response(reject, ctx.ensure_request_id())
        response.headers.add(b"date", http_date())
        exchange.close_after = True  # a blocked client gets no keep-alive connection either
        exchange.send_response(response)
        access_log = gateway.access_log
        if access_log is not None:
            try:
                access_log.record(ctx)
            except Exception:  # noqa: BLE001 - logging must never break serving
                _log.exception("access log failed")
        return True


def trusted_proxies_of(config: GatewayConfig) -> tuple[list[str], bool]:
    """The proxies whose forwarding header names the client, and whether it is `Forwarded`.

    The same as the gateway's global trusted_proxy policy: its own settings when configured,
    else the top-level `trusted_proxies` with `X-Forwarded-For`.
    """
    policy = config.global_policies.trusted_proxy
    if policy is not None:
        return list(policy.proxies), policy.header == "forwarded"
    return list(config.trusted_proxies), False


def _fields(block: Block) -> dict[str, object]:
    return {"until": block.until, "reason": block.reason, "by": block.by, "created": block.created}


def _encode(block: Block) -> bytes:
    return orjson.dumps(_fields(block))


def _decode(source: str, raw: bytes) -> Block | None:
    try:
        return _block(source, orjson.loads(raw))
    except orjson.JSONDecodeError:
        return None


def _block(source: str, data: object) -> Block | None:
    try:
        if not isinstance(data, dict):
            return None
        by = data["by"]
        if by not in ("anomaly", "admin-api"):
            return None
        return Block(
            parse_source(source),
            float(data["until"]),
            str(data["reason"]),
            by,
            float(data["created"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


class FileBlockSync:
    """Shares a `BlockedSources` table between the workers of one node through a JSON file.

    Args:
        blocks: The local table; its `on_change` is taken over.
        path: The node's blocks file (in its private directory).
        interval: Seconds between two checks of the file.
    """

    def __init__(self, blocks: BlockedSources, path: Path, *, interval: float = 0.5) -> None:
        self._blocks = blocks
        self._path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._interval = interval
        self._seen: tuple[int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        blocks.on_change = self._changed

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for one small read and write
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self) -> dict[str, Block]:
        try:
            data = orjson.loads(self._path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return {}
        if not isinstance(data, dict):
            return {}
        now = time.time()
        found = {}
        for source, fields in data.items():
            block = _block(str(source), fields)
            if block is not None and block.until > now:
                found[block.source] = block
        return found

    def _changed(self, block: Block | None, source: str) -> None:
        try:
            with self._locked():
                table = self._read()
                if block is None:
                    table.pop(source, None)
                else:
                    table[source] = block
                tmp = self._path.with_name(f".{self._path.name}.{os.getpid()}.tmp")
                tmp.write_bytes(orjson.dumps({s: _fields(b) for s, b in table.items()}))
                tmp.replace(self._path)
        except OSError as exc:
            _log.warning("blocked sources: cannot share a change with the other workers: %s", exc)

    def poll(self) -> None:
        """Take the file as the table if it changed since the last look."""
        try:
            stat = self._path.stat()
        except OSError:
            return
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if key == self._seen:
            return
        self._seen = key
        self._blocks.replace(self._read().values())

    def start(self) -> None:
        """Start checking the file (on the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class RedisBlockSync:
    """Shares a `BlockedSources` table through one Redis hash (see the module docstring).

    Args:
        blocks: The local table; its `on_change` is taken over.
        url: A `counters:` Redis URL (`redis://host:port/db?prefix=...`).
        interval: Seconds between two reads of the hash.
    """

    def __init__(
        self, blocks: BlockedSources, url: str, *, interval: float = SYNC_INTERVAL
    ) -> None:
        import redis.asyncio as aioredis  # an optional extra, like the Redis counters

        from bastion.counters.url import parse_redis_url

        client_url, prefix, timeout = parse_redis_url(url)
        self._client = aioredis.Redis.from_url(
            client_url, socket_timeout=max(timeout, 0.5), socket_connect_timeout=max(timeout, 0.5)
        )
        self.key = f"{prefix}{REDIS_KEY}"
        self._blocks = blocks
        self._interval = interval
        self._pending: list[tuple[str, Block | None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        blocks.on_change = self._changed

    def _changed(self, block: Block | None, source: str) -> None:
        self._pending.append((source, block))
        self._wake.set()

    def start(self) -> None:
        """Start syncing (on the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Write what is pending, stop and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sync(), 1.0)
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:  # noqa: BLE001 - Redis down or slow: keep the table, retry
                if not self._failing:
                    self._failing = True
                    _log.warning("blocked sources: Redis unavailable, keeping the local table")
            else:
                if self._failing:
                    self._failing = False
                    _log.info("blocked sources: Redis available again")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)

    async def sync(self) -> None:
        """Write local changes to the hash, then take the hash as the table.

        Raises:
            redis.RedisError: Redis could not answer (pending changes are kept for the retry).
        """
        pending = self._pending
        count = len(pending)  # changes made while the pipeline runs wait for the next sync
        if count:
            pipe = self._client.pipeline(transaction=False)
            for source, block in pending[:count]:
                if block is None:
                    pipe.hdel(self.key, source)
                else:
                    pipe.hset(self.key, source, _encode(block))
            await pipe.execute()
            del pending[:count]
        raw = await self._client.hgetall(self.key)
        now = time.time()
        current: list[Block] = []
        expired: list[bytes | str] = []
        for field, value in raw.items():
            name = field.decode("utf-8", "replace") if isinstance(field, bytes) else field
            block = _decode(name, value if isinstance(value, bytes) else value.encode())
            if block is None or block.until <= now:
                expired.append(field)
            else:
                current.append(block)
        if self._pending:  # changed while we read: the next sync applies both
            return
        self._blocks.replace(current)
        if expired:
            await self._client.hdel(self.key, *expired)
