"""Batched Lua calls to the `counters:` Redis for the lease and quota stores, with bounded waits.

How this works: `submit()` queues script calls and returns a future; the first call of an
event-loop iteration schedules a flush with `call_soon`, so every call issued while the loop
handles that iteration's callbacks goes out in one pipeline of EVALSHA (EVAL again if Redis lost
the scripts): one round trip per tick, as the rate-limit counters do. The client is opened from
the same `counters:` URL (`bastion.counters.url`), with the same timeout and no retries.

Failure: a pipeline bounded by `timeout` that errs or times out marks the backend degraded for
`retry_interval` seconds and logs one event; the futures of that batch get `None` and callers
apply their `on_backend_error` fallback. While degraded, `down` is true so callers skip Redis
altogether; the first batch after the interval probes it again and a success logs the recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from bastion.clock import Clock, SystemClock
from bastion.counters.url import parse_redis_url

_log = logging.getLogger("bastion.counters")

DEFAULT_RETRY_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA-1 (the EVALSHA handle)."""

    lua: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.lua.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)


Call = tuple[Script, str, Sequence[str | int]]
"""One script call: the script, its single key, its arguments."""
Replies = list[object]
_Pending = tuple[list[Call], "asyncio.Future[Replies | None]"]


class RedisBatch:
    """One Redis connection pool and per-tick pipeline for a store built on Lua scripts.

    Args:
        spec: the `counters:` setting, `redis://host:port/db[?prefix=..&timeout_ms=..]`.
        what: the store's name in the degraded/recovered log events.
        clock: for the degraded-mode interval.
        retry_interval: seconds between probes of a failed Redis.
    """

    def __init__(
        self,
        spec: str,
        what: str,
        *,
        clock: Clock | None = None,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
    ) -> None:
        client_url, self.prefix, self.timeout = parse_redis_url(spec)
        self.spec = spec
        self.what = what
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
        self.degraded = False
        self.batches = 0
        """Pipelines sent (a metric source, and how tests see the batching)."""
        self._down_until = 0.0
        self._queue: list[_Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def down(self) -> bool:
        """Whether Redis failed within the last `retry_interval` (callers skip it meanwhile)."""
        return self.degraded and self._clock.monotonic() < self._down_until

    def submit(self, calls: list[Call]) -> asyncio.Future[Replies | None]:
        """Queue `calls` for this tick's pipeline; the future gets the replies (None: failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Replies | None] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((calls, future))
        return future

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            self._spawn(self._send(batch))

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, calls: list[Call]) -> Replies:
        pipe = self._client.pipeline(transaction=False)
        for script, key, args in calls:
            pipe.evalsha(script.sha, 1, key, *args)
        results: Replies = await pipe.execute(raise_on_error=False)
        if any(isinstance(item, NoScriptError) for item in results):
            # Redis restarted or failed over: send the text, which also caches it again.
            pipe = self._client.pipeline(transaction=False)
            for script, key, args in calls:
                pipe.eval(script.lua, 1, key, *args)
            results = await pipe.execute(raise_on_error=False)
        for item in results:
            if isinstance(item, Exception):
                raise item
        return results

    async def _send(self, batch: list[_Pending]) -> None:
        calls = [call for calls, _ in batch for call in calls]
        self.batches += 1
        try:
            async with asyncio.timeout(self.timeout):
                replies = await self._execute(calls)
        except (RedisError, OSError, TimeoutError) as exc:
            self._degrade(exc)
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            # Pooled connections to a Redis that went away are dead: drop them so the next
            # probe connects afresh.
            with contextlib.suppress(RedisError, OSError):
                await self._client.connection_pool.disconnect()
            return
        self._recover()
        position = 0
        for calls_of, future in batch:
            if not future.done():
                future.set_result(replies[position : position + len(calls_of)])
            position += len(calls_of)

    def _degrade(self, exc: BaseException) -> None:
        self._down_until = self._clock.monotonic() + self._retry_interval
        if not self.degraded:
            self.degraded = True
            _log.warning(
                "%s degraded: redis unavailable (%s); applying on_backend_error until it "
                "answers again",
                self.what,
                type(exc).__name__,
                extra={"event.action": "counters-degraded", "event.outcome": "failure"},
            )

    def _recover(self) -> None:
        if self.degraded:
            self.degraded = False
            _log.warning(
                "%s recovered: redis answers again",
                self.what,
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
        """Flush what is queued, wait for the pipelines in flight, close the pool."""
        self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()
