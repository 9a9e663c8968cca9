"""Counters in Redis: one atomic Lua script per key, batched per event-loop tick, bounded waits.

How this works: `hit()` hands its checks to the shared per-tick pipeline
(`bastion.counters.redis_batch`, also used by the lease and quota stores) and returns a future:
every check issued while the loop handles one iteration's ready callbacks (requests parsed
together) goes out in one pipeline of EVALSHA calls: one round trip per tick. The script reads
Redis' own clock (`TIME`), so every gateway node shares one time base, and implements the
arithmetic of `bastion.policies.rate_limit.algorithm` atomically. Keys are hashed into a
`{...}` hash tag, so each lives in one Redis Cluster slot and user input never reaches a key
name. When a
request is refused by one of several limits, the ones that admitted it are refunded by the
same script in `undo` mode (a sliding log removes the very entry it recorded), so only
accepted requests are counted.

Failure: each pipeline is bounded by `timeout` (tens of milliseconds). An error or a timeout
marks the backend degraded for `retry_interval` seconds, logs one event, and answers that
batch and every check until then from the fallback (`on_error`: in-process counters,
allow, or deny) without touching Redis; the first batch after the interval probes Redis again
and a success logs the recovery.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Final

from redis.exceptions import RedisError

from bastion.clock import Clock, SystemClock
from bastion.counters.base import Check, Decisions, OnError
from bastion.counters.memory import MemoryCounters
from bastion.counters.redis_batch import DEFAULT_RETRY_INTERVAL, Call, RedisBatch, Replies, Script
from bastion.policies.rate_limit.algorithm import Algorithm, Decision

# KEYS[1]: the counter. ARGV: mode (hit | undo), algorithm (g | s | l), limit, window_us,
# burst, and for undo of a sliding log the entry to remove. Returns {allowed, remaining,
# reset_us, retry_after_us, entry}: `entry` is the time a sliding log recorded (0 otherwise),
# which an undo removes again. Integers are kept below 2^53 (Unix time in microseconds) so
# Lua's doubles hold them exactly; '%.0f' writes them back in full.
# The sliding log is a list of admission times, oldest first: when the head has left the
# window, a binary search (LINDEX) finds the first entry still inside and LTRIM drops the
# rest in one call, so a script never loops over up to `limit` entries; LLEN counts them, and
# the key expires one window after its newest entry.
LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
local limit = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local burst = tonumber(ARGV[5])
local key = KEYS[1]
if ARGV[2] == 'l' then
  if mode == 'undo' then
    redis.call('LREM', key, -1, ARGV[6])
    return {1, 0, 0, 0, 0}
  end
  local horizon = now - window
  local count = redis.call('LLEN', key)
  local oldest = tonumber(redis.call('LINDEX', key, 0))
  if oldest and oldest <= horizon then
    local lo, hi = 1, count
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if tonumber(redis.call('LINDEX', key, mid)) <= horizon then lo = mid + 1 else hi = mid end
    end
    if lo >= count then redis.call('DEL', key) else redis.call('LTRIM', key, lo, -1) end
    count = count - lo
  end
  if count < limit then
    redis.call('RPUSH', key, string.format('%.0f', now))
    redis.call('PEXPIRE', key, math.ceil(window / 1000))
    return {1, limit - count - 1, window, 0, now}
  end
  local last = tonumber(redis.call('LINDEX', key, count - limit))
  local newest = tonumber(redis.call('LINDEX', key, -1))
  return {0, 0, newest + window - now, last + window - now, 0}
end
if ARGV[2] == 'g' then
  local interval = math.floor((window + limit - 1) / limit)
  local tolerance = burst * interval
  local tat = tonumber(redis.call('GET', key))
  if mode == 'undo' then
    if tat then
      tat = tat - interval
      if tat > now then
        redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
      else
        redis.call('DEL', key)
      end
    end
    return {1, 0, 0, 0, 0}
  end
  local base = now
  if tat and tat > now then base = tat end
  if base - now > tolerance then
    return {0, 0, base - now, base - tolerance - now, 0}
  end
  local new_tat = base + interval
  local remaining = math.floor((now + tolerance + interval - new_tat) / interval)
  if remaining < 0 then remaining = 0 end
  redis.call('SET', key, string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
  return {1, remaining, new_tat - now, 0, 0}
end
local index = math.floor(now / window)
local elapsed = now - index * window
local stored = redis.call('HMGET', key, 'i', 'p', 'c')
local previous, current = 0, 0
local si = tonumber(stored[1])
if si == index then
  previous, current = tonumber(stored[2]), tonumber(stored[3])
elseif si == index - 1 then
  previous = tonumber(stored[3])
end
if mode == 'undo' then
  if si == index and current > 0 then redis.call('HINCRBY', key, 'c', -1) end
  return {1, 0, 0, 0, 0}
end
local weight = window - elapsed
local budget = limit * window - previous * weight
local function reset(c)
  if c == 0 then return window - elapsed end
  return 2 * window - elapsed
end
if (current + 1) * window <= budget then
  current = current + 1
  local remaining = math.floor(budget / window) - current
  if remaining < 0 then remaining = 0 end
  redis.call('HSET', key, 'i', string.format('%.0f', index), 'p', previous, 'c', current)
  redis.call('PEXPIRE', key, math.ceil((2 * window - elapsed) / 1000))
  return {1, remaining, reset(current), 0, 0}
end
local room = limit - current - 1
local retry = -1
if room >= 0 and previous > 0 then
  local needed = window - math.floor(room * window / previous)
  if needed < window then
    retry = math.max(needed - elapsed, 1)
  end
end
if retry < 0 then
  retry = window - elapsed
  if current > limit - 1 then
    retry = retry + window - math.floor((limit - 1) * window / current)
  end
end
return {0, 0, reset(current), retry, 0}
"""
SCRIPT: Final = Script(LUA)


def redis_key(prefix: str, key: str) -> str:
    """The Redis key of a counter: a digest inside a hash tag, one cluster slot per key."""
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return f"{prefix}{{{digest}}}"


_SCRIPT_ALGORITHM: Final[dict[Algorithm, str]] = {
    "gcra": "g",
    "sliding_window": "s",
    "sliding_log": "l",
}


class RedisCounters:
    """Counters shared by every gateway process through one Redis (or a Redis Cluster slot map).

    Args:
        spec: the `counters:` setting, `redis://host:port/db[?prefix=..&timeout_ms=..]`.
        clock: for the degraded-mode interval and the local fallback.
        retry_interval: seconds between probes of a failed Redis.
    """

    kind = "redis"

    def __init__(
        self,
        spec: str,
        *,
        clock: Clock | None = None,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        self._clock = clock or SystemClock()
        self._batch = RedisBatch(
            spec, "rate-limit counters", clock=self._clock, retry_interval=retry_interval
        )
        self.spec = spec
        self.prefix = self._batch.prefix
        self.timeout = self._batch.timeout
        self.local = MemoryCounters(self._clock, spec="memory")
        """The fallback when `on_error` is `local`."""
        self.fallbacks = 0
        """Checks answered without Redis since start (a metric source)."""

    @property
    def degraded(self) -> bool:
        """Whether Redis failed and has not answered since."""
        return self._batch.degraded

    @property
    def batches(self) -> int:
        """Pipelines sent to Redis (checks per batch = hits / batches)."""
        return self._batch.batches

    def hit(
        self, checks: Sequence[Check], *, on_error: OnError = "local"
    ) -> Decisions | asyncio.Future[Decisions | None] | None:
        """Queue the checks for this tick's pipeline; answer at once while Redis is down."""
        if self._batch.down:
            return self._fallback(checks, on_error)
        calls: list[Call] = [
            (
                SCRIPT,
                redis_key(self.prefix, key),
                ("hit", _SCRIPT_ALGORITHM[rule.algorithm], rule.limit, rule.window_us, rule.burst),
            )
            for key, rule in checks
        ]
        decided: asyncio.Future[Decisions | None] = asyncio.get_running_loop().create_future()
        self._batch.submit(calls).add_done_callback(
            lambda done: self._decide(done, checks, calls, on_error, decided)
        )
        return decided

    def _decide(
        self,
        done: asyncio.Future[Replies | None],
        checks: Sequence[Check],
        calls: list[Call],
        on_error: OnError,
        decided: asyncio.Future[Decisions | None],
    ) -> None:
        if decided.done():
            return
        results = None if done.cancelled() else done.result()
        try:
            replies = None if results is None else [_reply(item) for item in results]
        except RedisError:
            replies = None
        if replies is None:
            decided.set_result(self._fallback(checks, on_error))
            return
        decisions = tuple(decision for decision, _ in replies)
        if not all(decision.allowed for decision in decisions):
            # Only accepted requests count: refund the limits that admitted this one.
            undo: list[Call] = [
                (script, key, ("undo", *args[1:], entry))
                for (script, key, args), (decision, entry) in zip(calls, replies, strict=True)
                if decision.allowed
            ]
            if undo:
                self._batch.submit(undo)  # a failure degrades the backend; nothing to wait for
        decided.set_result(decisions)

    def _fallback(self, checks: Sequence[Check], on_error: OnError) -> Decisions | None:
        self.fallbacks += 1
        if on_error == "local":
            return self.local.hit(checks)
        return None

    async def ping(self) -> bool:
        """Whether Redis answers within the timeout."""
        return await self._batch.ping()

    async def close(self) -> None:
        """Wait for pending refunds, then close the connection pool."""
        await self._batch.close()


def _reply(raw: object) -> tuple[Decision, int]:
    """A script reply as a Decision and the entry a sliding log recorded (0 for the others).

    The reply is {allowed, remaining, reset_us, retry_after_us, entry}; a refund removes
    `entry` again.
    """
    if not isinstance(raw, list) or len(raw) != 5:
        raise RedisError("unexpected reply from the rate-limit script")
    allowed, remaining, reset, retry, entry = (int(item) for item in raw)
    return Decision(bool(allowed), remaining, reset, retry), entry
