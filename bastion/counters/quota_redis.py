"""Quota counts in Redis: one counter per key and period, counted by one atomic Lua script.

See `bastion.counters.quota_store` for how quotas count; this module holds the scripts and the
Redis store (imported only when `counters:` is a Redis URL).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Final

from bastion.clock import Clock
from bastion.counters.quota_store import MemoryQuotas, OnError, Usage
from bastion.counters.redis_batch import Call, RedisBatch, Replies, Script
from bastion.counters.redis_counters import redis_key

KEY_PREFIX: Final = "q:"
"""Added to the `counters:` URL's prefix for quota keys."""
EXPIRY_SLACK = 3_600
"""Seconds a period's key outlives the period (nodes' clocks may differ slightly)."""

# KEYS[1]: the period's counter. ARGV: limit, expire_at (Unix seconds). Returns {admitted, count}.
TAKE: Final = Script(
    """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
end
if count > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return {0, count - 1}
end
return {1, count}
"""
)
# KEYS[1]: the period's counter. Takes one request back, never below zero.
REFUND: Final = Script(
    """
local count = tonumber(redis.call('GET', KEYS[1]))
if count and count > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""
)


class RedisQuotas:
    """Quota counts shared by every gateway process through Redis.

    Args:
        spec: the `counters:` setting (its prefix, timeout and database apply).
        clock: for the degraded-mode interval.
        retry_interval: seconds between probes of a failed Redis.
    """

    kind = "redis"

    def __init__(
        self, spec: str, *, clock: Clock | None = None, retry_interval: float = 1.0
    ) -> None:
        self.batch = RedisBatch(spec, "quota counters", clock=clock, retry_interval=retry_interval)
        self.prefix = self.batch.prefix + KEY_PREFIX
        self.local = MemoryQuotas()
        """The fallback when `on_error` is `local`."""
        self.fallbacks = 0
        """Takes answered without Redis (a metric source)."""

    @property
    def degraded(self) -> bool:
        """Whether Redis failed and has not answered since (a metric source)."""
        return self.batch.degraded

    def redis_key(self, key: str, label: str) -> str:
        """The Redis counter of `key` in the period `label`."""
        return redis_key(self.prefix, f"{key}\x00{label}")

    def take(
        self, key: str, label: str, limit: int, end: int, *, on_error: OnError = "local"
    ) -> Usage | Awaitable[Usage | None] | None:
        """Ask Redis (one pipelined script call); answer at once from the fallback while down."""
        if self.batch.down:
            return self._fallback(key, label, limit, on_error)
        call: Call = (TAKE, self.redis_key(key, label), (limit, end + EXPIRY_SLACK))
        return self._finish(self.batch.submit([call]), key, label, limit, on_error)

    async def _finish(
        self,
        pending: Awaitable[Replies | None],
        key: str,
        label: str,
        limit: int,
        on_error: OnError,
    ) -> Usage | None:
        replies = await pending
        if replies is None:
            return self._fallback(key, label, limit, on_error)
        raw = replies[0]
        if not isinstance(raw, list) or len(raw) != 2:
            return self._fallback(key, label, limit, on_error)
        return Usage(bool(int(raw[0])), int(raw[1]))

    def _fallback(self, key: str, label: str, limit: int, on_error: OnError) -> Usage | None:
        self.fallbacks += 1
        if on_error == "local":
            usage = self.local.take(key, label, limit)
            return Usage(usage.allowed, usage.used, local=True)
        return None

    def refund(self, key: str, label: str, *, local: bool = False) -> None:
        """Take back one request in Redis (queued into this tick's pipeline, not awaited)."""
        if local:
            self.local.refund(key, label)
        elif not self.batch.down:  # while down, the request stays counted (one too many)
            self.batch.submit([(REFUND, self.redis_key(key, label), ())])

    async def close(self) -> None:
        """Send the pending refunds and close the connection pool."""
        await self.batch.close()
