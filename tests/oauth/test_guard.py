"""Which lockout settings the authorization server uses, and which counter keys it shares."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.clock import FakeClock
from bastion.config.loader import parse_config
from bastion.core.policy import PolicyDeps
from bastion.counters.memory import MemoryCounters
from bastion.errors import RateLimited
from bastion.oauth.setup import oauth_guard
from bastion.policies.brute_force.config import BruteForceConfig
from bastion.policies.brute_force.policy import BruteForcePolicy
from tests.support import make_ctx

ATTACKER = "203.0.113.7"


def config(oauth: dict[str, Any], global_policies: dict[str, Any] | None = None) -> Any:
    document: dict[str, Any] = {
        "listeners": [{"bind": "127.0.0.1:8443", "tls": {}}],
        "oauth": {"issuer": "https://localhost:8443", **oauth},
    }
    if global_policies is not None:
        document["global_policies"] = global_policies
    return parse_config(document)


def failures_until_locked(oauth: dict[str, Any], global_policies: Any = None) -> int | None:
    """Failed client authentications from one address until it is refused (None: never)."""
    counters = MemoryCounters(FakeClock())
    guard = oauth_guard(config(oauth, global_policies), counters)
    if guard is None:
        return None
    for count in range(1, 60):
        guard.failed(ATTACKER, "client:cl_0000000000000001")
        try:
            guard.check(ATTACKER, "client:cl_0000000000000001")
        except RateLimited:
            return count
    return None


@pytest.mark.parametrize(
    ("oauth", "global_policies", "expected"),
    [
        ({}, None, BruteForceConfig().max_failures),
        ({}, {"brute_force": {"max_failures": 2, "max_ip_failures": 4}}, 2),
        ({"brute_force": {"max_failures": 3}}, {"brute_force": {"max_failures": 2}}, 3),
        ({"brute_force": False}, None, None),
    ],
    ids=["defaults", "global-policy", "own-settings", "off"],
)
def test_oauth_lockout_settings(oauth, global_policies, expected):
    assert failures_until_locked(oauth, global_policies) == expected


def test_without_own_settings_an_address_locked_by_the_global_policy_is_locked_for_oauth():
    counters = MemoryCounters(FakeClock())
    gateway = config({}, {"brute_force": {"max_failures": 2, "max_ip_failures": 3}})
    settings = gateway.global_policies.configured()["brute_force"]
    policy = BruteForcePolicy(settings, PolicyDeps(counters=counters))
    for user in ("a", "b", "c"):  # three usernames: the address passes max_ip_failures
        policy.guard.failed(ATTACKER, f"user:{user}")
    guard = oauth_guard(gateway, counters)
    assert guard is not None
    with pytest.raises(RateLimited):
        guard.check(ATTACKER, None)
    guard.check("198.51.100.1", None)  # another address is not affected


def test_the_policy_leaves_oauth_routes_to_the_authorization_server():
    counters = MemoryCounters(FakeClock())
    policy = BruteForcePolicy(BruteForceConfig(max_failures=1), PolicyDeps(counters=counters))
    for _ in range(3):
        ctx = make_ctx(headers=[(b"authorization", b"Basic Y2xpZW50Ondyb25n")], peer_ip=ATTACKER)
        ctx.route = "oauth.token"
        assert policy.access(ctx) is None
        ctx.status = 401
        policy.log(ctx)  # the server counted it (or not): the policy must not count it twice
    ctx = make_ctx(headers=[(b"authorization", b"Basic Y2xpZW50Ondyb25n")], peer_ip=ATTACKER)
    assert policy.access(ctx) is None  # nothing was counted for the address
