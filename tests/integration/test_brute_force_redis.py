"""brute_force on Redis counters: a lock made on one node is enforced by another at once."""

from __future__ import annotations

import asyncio
import base64

import pytest

from bastion.core.context import RequestContext
from bastion.core.policy import PolicyDeps
from bastion.counters.redis_counters import RedisCounters
from bastion.errors import RateLimited, Unauthenticated
from bastion.policies.brute_force.config import BruteForceConfig
from bastion.policies.brute_force.policy import BruteForcePolicy
from tests.integration.redis_support import delete_prefix, require_redis, unique_prefix
from tests.support import make_ctx

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.anyio]

ATTACKER = "203.0.113.7"


def basic(user: str, ip: str) -> RequestContext:
    token = base64.b64encode(f"{user}:guess".encode())
    return make_ctx(headers=[(b"authorization", b"Basic " + token)], peer_ip=ip)


async def access(policy: BruteForcePolicy, ctx: RequestContext) -> int:
    """The access phase against Redis; 429 when locked, 0 when admitted."""
    try:
        pending = policy.access(ctx)
        if pending is not None:
            await pending
    except RateLimited:
        return 429
    return 0


async def fail(policy: BruteForcePolicy, ctx: RequestContext) -> None:
    """A request the basic_auth policy refused, logged; waits for the background count."""
    assert await access(policy, ctx) == 0
    ctx.rejected_by, ctx.reject, ctx.status = "basic_auth", Unauthenticated("x", challenge="B"), 401
    policy.log(ctx)
    for _ in range(50):  # the count and the lock are Redis round trips in background tasks
        await asyncio.sleep(0.01)


async def test_lock_made_on_one_node_is_enforced_by_another_and_expires():
    require_redis()
    prefix = unique_prefix()
    spec = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    config = BruteForceConfig(max_failures=2, max_ip_failures=10, window=60, lockout=1)
    first, second = RedisCounters(spec), RedisCounters(spec)
    node_a = BruteForcePolicy(config, PolicyDeps(counters=first, route="login"))
    node_b = BruteForcePolicy(config, PolicyDeps(counters=second, route="login"))
    try:
        await fail(node_a, basic("alice", ATTACKER))
        await fail(node_b, basic("alice", ATTACKER))
        assert await access(node_a, basic("alice", ATTACKER)) == 429
        assert await access(node_b, basic("alice", ATTACKER)) == 429
        assert await access(node_b, basic("alice", "198.51.100.20")) == 0  # victim elsewhere
        assert await access(node_b, basic("bob", ATTACKER)) == 0  # below the address threshold
        await asyncio.sleep(1.2)
        assert await access(node_a, basic("alice", ATTACKER)) == 0
        assert first.fallbacks == second.fallbacks == 0
    finally:
        await first.close()
        await second.close()
        delete_prefix(prefix)
