"""The brute_force policy: lockout per (address, identity) and per address, never per identity."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings, strategies as st

from bastion.clock import FakeClock
from bastion.core.context import RequestContext
from bastion.core.policy import PolicyDeps
from bastion.counters.memory import MemoryCounters
from bastion.errors import RateLimited, Unauthenticated
from bastion.policies.brute_force.config import BruteForceConfig
from bastion.policies.brute_force.policy import LOCKED_OUT, BruteForcePolicy
from bastion.store.secrets import new_api_key
from tests.support import make_ctx

ATTACKER = "203.0.113.7"
VICTIM_HOME = "198.51.100.20"


def make_policy(clock: FakeClock, **settings: object) -> BruteForcePolicy:
    config = BruteForceConfig.model_validate(
        {"max_failures": 3, "max_ip_failures": 10, "window": 60, "lockout": 120, **settings}
    )
    return BruteForcePolicy(config, PolicyDeps(clock=clock, counters=MemoryCounters(clock)))


def basic(user: str, ip: str, password: str = "guess") -> RequestContext:  # noqa: S107 - a test credential
    token = base64.b64encode(f"{user}:{password}".encode())
    return make_ctx(headers=[(b"authorization", b"Basic " + token)], peer_ip=ip)


def attempt(
    policy: BruteForcePolicy,
    ctx: RequestContext,
    *,
    succeeds: bool = False,
    rejected_by: str = "basic_auth",
) -> int:
    """Run one request through the policy's phases, as the gateway does; returns the status."""
    try:
        assert policy.access(ctx) is None  # memory counters: synchronous
    except RateLimited as locked:
        ctx.rejected_by, ctx.reject, ctx.status = "brute_force", locked, 429
    else:
        if succeeds:
            ctx.status = 200
        else:
            refused = Unauthenticated("no", challenge="Basic")
            ctx.rejected_by, ctx.reject, ctx.status = rejected_by, refused, 401
    policy.log(ctx)
    return ctx.status


def fail(policy: BruteForcePolicy, user: str, ip: str, times: int) -> list[int]:
    return [attempt(policy, basic(user, ip)) for _ in range(times)]


def test_pair_is_locked_after_max_failures_with_retry_after():
    policy = make_policy(FakeClock())
    assert fail(policy, "alice", ATTACKER, 3) == [401, 401, 401]
    with pytest.raises(RateLimited) as caught:
        policy.access(basic("alice", ATTACKER, "the right password"))
    assert caught.value.status == 429
    assert caught.value.detail == LOCKED_OUT
    assert caught.value.error_code == "too_many_failures"
    assert (b"retry-after", b"120") in caught.value.headers


def test_lockout_refuses_even_the_right_password_until_it_expires():
    clock = FakeClock()
    policy = make_policy(clock)
    fail(policy, "alice", ATTACKER, 3)
    clock.advance(119)
    assert attempt(policy, basic("alice", ATTACKER), succeeds=True) == 429
    clock.advance(2)
    assert attempt(policy, basic("alice", ATTACKER), succeeds=True) == 200


def test_retry_after_counts_down_with_the_lockout():
    clock = FakeClock()
    policy = make_policy(clock)
    fail(policy, "alice", ATTACKER, 3)
    clock.advance(100)
    with pytest.raises(RateLimited) as caught:
        policy.access(basic("alice", ATTACKER))
    assert caught.value.retry_after == 20


def test_victim_from_another_address_is_not_locked_out():
    policy = make_policy(FakeClock())
    fail(policy, "alice", ATTACKER, 5)
    assert attempt(policy, basic("alice", VICTIM_HOME), succeeds=True) == 200


def test_another_address_is_unaffected_by_a_locked_address():
    policy = make_policy(FakeClock())
    for index in range(10):
        attempt(policy, basic(f"user{index}", ATTACKER))
    assert attempt(policy, basic("bob", ATTACKER), succeeds=True) == 429
    assert attempt(policy, basic("bob", "192.0.2.1"), succeeds=True) == 200


def test_same_address_other_identity_stays_open_below_the_address_threshold():
    policy = make_policy(FakeClock())
    fail(policy, "alice", ATTACKER, 3)
    assert attempt(policy, basic("bob", ATTACKER), succeeds=True) == 200


def test_address_alone_is_locked_past_max_ip_failures_across_identities():
    policy = make_policy(FakeClock())
    statuses = [attempt(policy, basic(f"user{index}", ATTACKER)) for index in range(11)]
    assert statuses == [401] * 10 + [429]


def test_failures_outside_the_window_do_not_add_up():
    clock = FakeClock()
    policy = make_policy(clock)
    for _ in range(6):
        assert fail(policy, "alice", ATTACKER, 1) == [401]
        clock.advance(61)  # each failure lands in its own window: never 3 in 60 s


def test_successes_are_not_counted():
    policy = make_policy(FakeClock())
    for _ in range(20):
        assert attempt(policy, basic("alice", ATTACKER), succeeds=True) == 200


def test_requests_without_a_credential_are_not_counted():
    policy = make_policy(FakeClock())
    for _ in range(20):
        assert attempt(policy, make_ctx(peer_ip=ATTACKER)) == 401


@pytest.mark.parametrize("rejected_by", ["api_key", "basic_auth", "jwt", "introspection"], ids=str)
def test_rejections_of_every_auth_policy_are_counted(rejected_by):
    policy = make_policy(FakeClock(), max_failures=2, max_ip_failures=2)
    bearer = [(b"authorization", b"Bearer abc")]
    for _ in range(2):
        attempt(policy, make_ctx(headers=bearer, peer_ip=ATTACKER), rejected_by=rejected_by)
    assert attempt(policy, make_ctx(headers=bearer, peer_ip=ATTACKER), succeeds=True) == 429


def test_upstream_401_is_counted():
    policy = make_policy(FakeClock())
    for _ in range(3):
        ctx = basic("alice", ATTACKER)
        assert policy.access(ctx) is None
        ctx.status = 401  # the upstream refused the credential itself
        policy.log(ctx)
    with pytest.raises(RateLimited):
        policy.access(basic("alice", ATTACKER))


def test_api_key_failures_lock_the_key_id_from_that_address_only():
    policy = make_policy(FakeClock())
    _, key = new_api_key()
    for _ in range(3):
        ctx = make_ctx(headers=[(b"x-api-key", key.encode())], peer_ip=ATTACKER)
        attempt(policy, ctx, rejected_by="api_key")
    again = make_ctx(headers=[(b"x-api-key", key.encode())], peer_ip=ATTACKER)
    assert attempt(policy, again, succeeds=True) == 429
    elsewhere = make_ctx(headers=[(b"x-api-key", key.encode())], peer_ip=VICTIM_HOME)
    assert attempt(policy, elsewhere, succeeds=True) == 200


def test_locks_are_per_route_scope():
    clock = FakeClock()
    counters = MemoryCounters(clock)
    config = BruteForceConfig(max_failures=1, max_ip_failures=5)
    login = BruteForcePolicy(config, PolicyDeps(clock=clock, counters=counters, route="login"))
    other = BruteForcePolicy(config, PolicyDeps(clock=clock, counters=counters, route="other"))
    fail(login, "alice", ATTACKER, 1)
    assert attempt(login, basic("alice", ATTACKER), succeeds=True) == 429
    assert attempt(other, basic("alice", ATTACKER), succeeds=True) == 200


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=300))
def test_any_authorization_value_is_handled_without_error(value):
    policy = make_policy(FakeClock())
    ctx = make_ctx(headers=[(b"authorization", value), (b"x-api-key", value)], peer_ip=ATTACKER)
    assert attempt(policy, ctx) == 401
