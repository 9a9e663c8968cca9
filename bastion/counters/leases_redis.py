"""Leases in Redis for the concurrency_limit policy: one sorted set per key, renewed while held.

See `bastion.counters.leases` for how leases work; this module holds the Lua scripts and the
Redis store (imported only when `counters:` is a Redis URL).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Final

from bastion.clock import Clock
from bastion.core.context import new_request_id
from bastion.counters.leases import Grant, Lease, MemoryLeases, OnError
from bastion.counters.redis_batch import Call, RedisBatch, Replies, Script
from bastion.counters.redis_counters import redis_key
from bastion.policies.rate_limit.algorithm import MICROS

KEY_PREFIX: Final = "cc:"
"""Added to the `counters:` URL's prefix for lease keys (apart from rate-limit counters)."""

# KEYS[1]: the sorted set. ARGV: limit, lease_us, member. Returns {admitted, held}.
ACQUIRE: Final = Script(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key = KEYS[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', now))
local held = redis.call('ZCARD', key)
if held >= tonumber(ARGV[1]) then
  return {0, held}
end
redis.call('ZADD', key, string.format('%.0f', now + tonumber(ARGV[2])), ARGV[3])
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', key, math.ceil(tonumber(last[2]) / 1000) + 1)
return {1, held + 1}
"""
)
# KEYS[1]: the sorted set. ARGV: member.
RELEASE: Final = Script("return redis.call('ZREM', KEYS[1], ARGV[1])")
# KEYS[1]: the sorted set. ARGV: lease_us, member... Pushes the expiry of leases still held
# (XX: a member already gone, expired or released, is not brought back).
RENEW: Final = Script(
    """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1])
local score = string.format('%.0f', expiry)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', score, ARGV[i])
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then
  redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2]) / 1000) + 1)
end
return 1
"""
)


class RedisLeases:
    """Leases shared by every gateway process through Redis sorted sets.

    Args:
        spec: the `counters:` setting (its prefix, timeout and database apply).
        clock: for the degraded-mode interval.
        retry_interval: seconds between probes of a failed Redis.
    """

    kind = "redis"

    def __init__(
        self, spec: str, *, clock: Clock | None = None, retry_interval: float = 1.0
    ) -> None:
        self.batch = RedisBatch(
            spec, "concurrency leases", clock=clock, retry_interval=retry_interval
        )
        self.prefix = self.batch.prefix + KEY_PREFIX
        self.local = MemoryLeases()
        """The fallback when `on_error` is `local`."""
        self.fallbacks = 0
        """Acquires answered without Redis (a metric source)."""
        # member -> (redis key, lease_us, logical key): leases to renew until released.
        self._held: dict[str, tuple[str, int, str]] = {}
        self._renewer: asyncio.Task[None] | None = None

    @property
    def degraded(self) -> bool:
        """Whether Redis failed and has not answered since (a metric source)."""
        return self.batch.degraded

    def redis_key(self, key: str) -> str:
        """The Redis sorted set of `key`."""
        return redis_key(self.prefix, key)

    def acquire(
        self, key: str, limit: int, *, lease_us: int, on_error: OnError = "local"
    ) -> Grant | Awaitable[Grant | None] | None:
        """Ask Redis (one pipelined script call); answer at once from the fallback while down."""
        if self.batch.down:
            return self._fallback(key, limit, on_error)
        member = new_request_id()  # never the client-visible request id, which clients may set
        rkey = self.redis_key(key)
        call: Call = (ACQUIRE, rkey, (limit, lease_us, member))
        return self._finish(self.batch.submit([call]), key, limit, lease_us, member, on_error)

    async def _finish(
        self,
        pending: Awaitable[Replies | None],
        key: str,
        limit: int,
        lease_us: int,
        member: str,
        on_error: OnError,
    ) -> Grant | None:
        replies = await pending
        if replies is None:
            return self._fallback(key, limit, on_error)
        raw = replies[0]
        if not isinstance(raw, list) or len(raw) != 2:  # not our script's answer
            return self._fallback(key, limit, on_error)
        admitted, held = bool(int(raw[0])), int(raw[1])
        if not admitted:
            return Grant(False, held)
        rkey = self.redis_key(key)
        self._held[member] = (rkey, lease_us, key)
        self._start_renewer()
        return Grant(True, held, Lease(self, rkey, member))

    def _fallback(self, key: str, limit: int, on_error: OnError) -> Grant | None:
        self.fallbacks += 1
        if on_error == "local":
            return self.local.acquire(key, limit)
        return None

    def release(self, lease: Lease) -> None:
        """Free `lease` in Redis (queued into this tick's pipeline, not awaited).

        While Redis is down the release is not attempted: no longer renewed, the lease
        expires by itself within its `lease_us`.
        """
        self._held.pop(lease.member, None)
        if not self.batch.down:
            self.batch.submit([(RELEASE, lease.key, (lease.member,))])

    def held(self, key: str) -> int:
        """Leases this process holds on `key` in Redis."""
        return sum(1 for _, _, logical in self._held.values() if logical == key)

    def _start_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        """Push the expiry of every held lease forward, every third of the shortest lease."""
        while self._held:
            shortest = min(lease_us for _, lease_us, _ in self._held.values())
            await asyncio.sleep(shortest / MICROS / 3)
            if self.batch.down:
                continue
            groups: dict[tuple[str, int], list[str]] = {}
            for member, (rkey, lease_us, _) in self._held.items():
                groups.setdefault((rkey, lease_us), []).append(member)
            calls: list[Call] = [
                (RENEW, rkey, (lease_us, *members)) for (rkey, lease_us), members in groups.items()
            ]
            if calls:
                await self.batch.submit(calls)

    async def close(self) -> None:
        """Stop renewing, send the pending releases, close the connection pool."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        await self.batch.close()
