"""Micro-benchmark: CPU per request of `brute_force` (memory counters) and `introspection` hits.

Runs in a few seconds: `PYTHONPATH=. .venv/bin/python bench/auth_lockout_cost.py`. Figures are
process CPU time per access phase (time.process_time), so other load affects them less.
"""

from __future__ import annotations

import base64
import time

from bastion.core.context import Identity
from bastion.core.policy import PolicyDeps
from bastion.counters.memory import MemoryCounters
from bastion.policies.brute_force.config import BruteForceConfig
from bastion.policies.brute_force.policy import BruteForcePolicy
from bastion.policies.introspection.cache import token_key
from bastion.policies.introspection.config import IntrospectionConfig
from bastion.policies.introspection.policy import IntrospectionPolicy
from tests.support import make_ctx

ROUNDS = 200_000


def _brute_force() -> float:
    policy = BruteForcePolicy(BruteForceConfig(), PolicyDeps(counters=MemoryCounters()))
    contexts = [
        make_ctx(
            headers=[(b"authorization", b"Basic " + base64.b64encode(f"user{i}:pw".encode()))],
            peer_ip=f"10.0.{i // 250}.{i % 250}",
        )
        for i in range(1000)
    ]
    started = time.process_time()
    for index in range(ROUNDS):
        policy.access(contexts[index % 1000])
    return (time.process_time() - started) / ROUNDS * 1e6


def _introspection_hit() -> float:
    config = IntrospectionConfig(
        introspection_endpoint="https://as.example/introspect",
        client_id="gateway",
        client_secret="secret",  # noqa: S106 - a benchmark, no server is called
    )
    policy = IntrospectionPolicy(config, PolicyDeps())
    contexts = []
    for index in range(1000):
        token = f"opaque-token-{index:05d}-{'x' * 24}".encode()
        policy.cache.put(token_key(token), Identity(f"client{index}"), 3600)
        contexts.append(make_ctx(headers=[(b"authorization", b"Bearer " + token)]))
    started = time.process_time()
    for index in range(ROUNDS):
        policy.access(contexts[index % 1000])
    return (time.process_time() - started) / ROUNDS * 1e6


def main() -> None:
    """Print CPU microseconds per access phase."""
    print(f"brute_force access, Basic credential, memory counters: {_brute_force():.2f} us")
    print(f"introspection access, cached verdict: {_introspection_hit():.2f} us")


if __name__ == "__main__":
    main()
