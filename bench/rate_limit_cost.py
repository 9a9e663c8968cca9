"""Micro-benchmark: CPU per rate-limit check, memory counters versus Redis with batching.

Runs in a few seconds: `PYTHONPATH=. .venv/bin/python bench/rate_limit_cost.py` (the Redis
part needs the server at 127.0.0.1:6379 and is skipped without it). Figures are process CPU
time per check (time.process_time), so other load on the machine affects them less.

The sliding-log part calls `MemoryCounters.hit` directly (no key building) with a clock the
loop moves itself, on one key whose log is full: each admission comes exactly when the oldest
entry leaves (one entry dropped, one appended), each refusal while it is still inside. The
best of several rounds is kept; GCRA under the same loop is the reference.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from functools import partial

from bastion.core.policy import PolicyDeps
from bastion.counters.memory import MemoryCounters
from bastion.policies.rate_limit import RateLimitConfig, RateLimitPolicy
from bastion.policies.rate_limit.algorithm import MICROS, Rule
from tests.support import make_ctx


def _memory(checks: int) -> float:
    deps = PolicyDeps(counters=MemoryCounters())
    policy = RateLimitPolicy(RateLimitConfig(limit=10**9, window=60, burst=10**9), deps)
    contexts = [make_ctx(peer_ip=f"10.0.{i // 250}.{i % 250}") for i in range(1000)]
    started = time.process_time()
    for index in range(checks):
        policy.access(contexts[index % 1000])
    return (time.process_time() - started) / checks * 1e6


class _LoopClock:
    """A clock the benchmark loop moves, in whole microseconds."""

    def __init__(self) -> None:
        self.micros = 10**12

    def monotonic(self) -> float:
        return self.micros / MICROS

    def time(self) -> float:
        return self.micros / MICROS


_SLOT = 1_000  # microseconds between admissions; the window is `limit` slots


def _best(rounds: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(rounds))


def _full_log(limit: int) -> tuple[_LoopClock, MemoryCounters, list[tuple[str, Rule]]]:
    clock = _LoopClock()
    counters = MemoryCounters(clock)
    checks = [("key", Rule(limit, limit * _SLOT, algorithm="sliding_log"))]
    for _ in range(limit):
        counters.hit(checks)
        clock.micros += _SLOT
    return clock, counters, checks


def _log_admissions(limit: int, checks_per_round: int) -> float:
    clock, counters, checks = _full_log(limit)
    hit = counters.hit
    started = time.process_time()
    for _ in range(checks_per_round):
        hit(checks)  # the oldest entry leaves exactly now: admitted
        clock.micros += _SLOT
    cost = (time.process_time() - started) / checks_per_round * 1e6
    if not hit(checks)[0].allowed:
        raise RuntimeError("the loop fell out of step: a check was refused")
    return cost


def _log_refusals(limit: int, checks_per_round: int) -> float:
    clock, counters, checks = _full_log(limit)
    clock.micros -= _SLOT // 2  # the oldest entry is still inside the window
    hit = counters.hit
    started = time.process_time()
    for _ in range(checks_per_round):
        hit(checks)
    cost = (time.process_time() - started) / checks_per_round * 1e6
    if hit(checks)[0].allowed:
        raise RuntimeError("the loop fell out of step: a check was admitted")
    return cost


def _gcra_hits(checks_per_round: int) -> float:
    counters = MemoryCounters(_LoopClock())
    checks = [("key", Rule(10**9, 60 * MICROS, burst=10**9))]
    started = time.process_time()
    for _ in range(checks_per_round):
        counters.hit(checks)
    return (time.process_time() - started) / checks_per_round * 1e6


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


async def _redis(checks: int, concurrency: int) -> float:
    from bastion.counters.redis_counters import RedisCounters

    prefix = f"bench:{uuid.uuid4().hex}:"
    counters = RedisCounters(f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=500")
    deps = PolicyDeps(counters=counters)
    policy = RateLimitPolicy(RateLimitConfig(limit=10**9, window=60, burst=10**9), deps)
    contexts = [make_ctx(peer_ip=f"10.1.{i // 250}.{i % 250}") for i in range(1000)]
    started = time.process_time()
    for start in range(0, checks, concurrency):
        pending = [policy.access(contexts[(start + i) % 1000]) for i in range(concurrency)]
        await asyncio.gather(*[p for p in pending if p is not None])
    cost = (time.process_time() - started) / checks * 1e6
    await counters.close()
    # The bench's own keys are removed with a separate client (the counters keep theirs private).
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    return cost


def main() -> None:
    """Print CPU microseconds per check."""
    print(f"memory counters: {_memory(200_000):.2f} us CPU per check")
    rounds, per_round = 5, 20_000
    print(f"MemoryCounters.hit, gcra: {_best(rounds, partial(_gcra_hits, per_round)):.2f} us")
    for limit in (100, 1_000, 10_000):
        admitted = _best(rounds, partial(_log_admissions, limit, per_round))
        refused = _best(rounds, partial(_log_refusals, limit, per_round))
        print(
            f"MemoryCounters.hit, sliding_log limit {limit:,} (full log): "
            f"admission {admitted:.2f} us, refusal {refused:.2f} us"
        )
    if not _redis_reachable():
        print("redis: skipped (127.0.0.1:6379 not reachable)")
        return
    for concurrency in (1, 50):
        cost = asyncio.run(_redis(5_000, concurrency))
        print(
            f"redis counters, {concurrency} checks per event-loop tick: "
            f"{cost:.1f} us client CPU per check"
        )


if __name__ == "__main__":
    main()
