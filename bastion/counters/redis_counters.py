"""Counters in Redis: one atomic Lua script per key, batched per event-loop tick, bounded waits.

How this works: `hit()` queues its checks and returns a future; the first check of an
event-loop iteration schedules a flush with `call_soon`, so every check issued while the loop
handles that iteration's ready callbacks (requests parsed together) goes out in one pipeline of
EVALSHA calls: one round trip per tick. The script reads Redis' own clock (`TIME`), so every
gateway node shares one time base, and implements the arithmetic of
`bastion.policies.rate_limit.algorithm` atomically. Keys are hashed into a `{...}` hash tag,
so each lives in one Redis Cluster slot and user input never reaches a key name. When a
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
import contextlib
import hashlib
import logging
from collections.abc import Coroutine, Sequence
from typing import Final

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from bastion.clock import Clock, SystemClock
from bastion.counters.base import Check, Decisions, OnError
from bastion.counters.memory import MemoryCounters
from bastion.counters.url import parse_redis_url
from bastion.policies.rate_limit.algorithm import Algorithm, Decision

_log = logging.getLogger("bastion.counters")

DEFAULT_RETRY_INTERVAL = 1.0

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
SCRIPT_SHA: Final = hashlib.sha1(LUA.encode(), usedforsecurity=False).hexdigest()


def redis_key(prefix: str, key: str) -> str:
    """The Redis key of a counter: a digest inside a hash tag, one cluster slot per key."""
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return f"{prefix}{{{digest}}}"


_SCRIPT_ALGORITHM: Final[dict[Algorithm, str]] = {
    "gcra": "g",
    "sliding_window": "s",
    "sliding_log": "l",
}

_Pending = tuple[Sequence[Check], "asyncio.Future[Decisions | None]", OnError]


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
        client_url, self.prefix, self.timeout = parse_redis_url(spec)
        self.spec = spec
        self._clock = clock or SystemClock()
        self._retry_interval = retry_interval
        self._client = aioredis.Redis.from_url(
            client_url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self.local = MemoryCounters(self._clock, spec="memory")
        """The fallback when `on_error` is `local`."""
        self.degraded = False
        self.fallbacks = 0
        """Checks answered without Redis since start (a metric source)."""
        self.batches = 0
        """Pipelines sent to Redis (checks per batch = hits / batches)."""
        self._down_until = 0.0
        self._queue: list[_Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def hit(
        self, checks: Sequence[Check], *, on_error: OnError = "local"
    ) -> Decisions | asyncio.Future[Decisions | None] | None:
        """Queue the checks for this tick's pipeline; answer at once while Redis is down."""
        if self.degraded and self._clock.monotonic() < self._down_until:
            return self._fallback(checks, on_error)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decisions | None] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((checks, future, on_error))
        return future

    def _fallback(self, checks: Sequence[Check], on_error: OnError) -> Decisions | None:
        self.fallbacks += 1
        if on_error == "local":
            return self.local.hit(checks)
        return None

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            self._spawn(self._send(batch))

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, calls: list[tuple[str, Sequence[str | int]]]) -> list[object]:
        """Run the script over `calls` in one pipeline of EVALSHA.

        If Redis lost the script (a restart or a failover), the batch is sent again as EVAL
        with the script's text, which also caches it for the next EVALSHA.
        """
        pipe = self._client.pipeline(transaction=False)
        for key, args in calls:
            pipe.evalsha(SCRIPT_SHA, 1, key, *args)
        results: list[object] = await pipe.execute(raise_on_error=False)
        if any(isinstance(item, NoScriptError) for item in results):
            pipe = self._client.pipeline(transaction=False)
            for key, args in calls:
                pipe.eval(LUA, 1, key, *args)
            results = await pipe.execute(raise_on_error=False)
        for item in results:
            if isinstance(item, Exception):
                raise item
        return results

    async def _send(self, batch: list[_Pending]) -> None:
        calls: list[tuple[str, Sequence[str | int]]] = []
        for checks, _, _ in batch:
            for key, rule in checks:
                algorithm = _SCRIPT_ALGORITHM[rule.algorithm]
                hit_args = ("hit", algorithm, rule.limit, rule.window_us, rule.burst)
                calls.append((redis_key(self.prefix, key), hit_args))
        self.batches += 1
        try:
            async with asyncio.timeout(self.timeout):
                results = await self._execute(calls)
            replies = [_reply(item) for item in results]
        except (RedisError, OSError, TimeoutError) as exc:
            self._degrade(exc)
            for checks, future, on_error in batch:
                if not future.done():
                    future.set_result(self._fallback(checks, on_error))
            # Pooled connections to a Redis that went away are dead: drop them all so the
            # next probe connects afresh instead of failing on each stale one in turn.
            with contextlib.suppress(RedisError, OSError):
                await self._client.connection_pool.disconnect()
            return
        self._recover()
        undo: list[tuple[str, Sequence[str | int]]] = []
        position = 0
        for checks, future, _ in batch:
            answers = replies[position : position + len(checks)]
            decisions = tuple(decision for decision, _ in answers)
            if not all(decision.allowed for decision in decisions):
                for offset, (decision, entry) in enumerate(answers):
                    if decision.allowed:
                        key, counted = calls[position + offset]
                        undo.append((key, ("undo", *counted[1:], entry)))
            position += len(checks)
            if not future.done():
                future.set_result(decisions)
        if undo:
            self._spawn(self._undo(undo))

    async def _undo(self, calls: list[tuple[str, Sequence[str | int]]]) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self._execute(calls)
        except (RedisError, OSError, TimeoutError) as exc:
            self._degrade(exc)

    def _degrade(self, exc: BaseException) -> None:
        self._down_until = self._clock.monotonic() + self._retry_interval
        if not self.degraded:
            self.degraded = True
            _log.warning(
                "rate-limit counters degraded: redis unavailable (%s); applying on_backend_error"
                " until it answers again",
                type(exc).__name__,
                extra={"event.action": "counters-degraded", "event.outcome": "failure"},
            )

    def _recover(self) -> None:
        if self.degraded:
            self.degraded = False
            _log.warning(
                "rate-limit counters recovered: redis answers again",
                extra={"event.action": "counters-recovered", "event.outcome": "success"},
            )

    async def ping(self) -> bool:
        """Whether Redis answers within the timeout."""
        try:
            async with asyncio.timeout(self.timeout):
                return bool(await self._client.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        """Wait for pending refunds, then close the connection pool."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()


def _reply(raw: object) -> tuple[Decision, int]:
    """A script reply as a Decision and the entry a sliding log recorded (0 for the others).

    The reply is {allowed, remaining, reset_us, retry_after_us, entry}; a refund removes
    `entry` again.
    """
    if not isinstance(raw, list) or len(raw) != 5:
        raise RedisError("unexpected reply from the rate-limit script")
    allowed, remaining, reset, retry, entry = (int(item) for item in raw)
    return Decision(bool(allowed), remaining, reset, retry), entry
