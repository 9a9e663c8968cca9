"""Micro-benchmark: CPU per rate-limit check, memory counters versus Redis with batching.

Runs in a few seconds: `PYTHONPATH=. .venv/bin/python bench/rate_limit_cost.py` (the Redis
part needs the server at 127.0.0.1:6379 and is skipped without it). Figures are process CPU
time per check (time.process_time), so other load on the machine affects them less.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

from bastion.core.policy import PolicyDeps
from bastion.counters.memory import MemoryCounters
from bastion.policies.rate_limit import RateLimitConfig, RateLimitPolicy
from tests.support import make_ctx


def _memory(checks: int) -> float:
    deps = PolicyDeps(counters=MemoryCounters())
    policy = RateLimitPolicy(RateLimitConfig(limit=10**9, window=60, burst=10**9), deps)
    contexts = [make_ctx(peer_ip=f"10.0.{i // 250}.{i % 250}") for i in range(1000)]
    started = time.process_time()
    for index in range(checks):
        policy.access(contexts[index % 1000])
    return (time.process_time() - started) / checks * 1e6


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
    keys = [key async for key in counters._client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await counters._client.delete(*keys)
    await counters.close()
    return cost


def main() -> None:
    """Print CPU microseconds per check."""
    print(f"memory counters: {_memory(200_000):.2f} us CPU per check")
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
