"""concurrency_limit phases: slots taken in access, freed once in log, keys, 429, failure modes."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest
from typing_extensions import override

from bastion.clock import FakeClock
from bastion.core.chain import Chain
from bastion.core.context import Identity, RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyConfig, PolicyDeps
from bastion.counters.leases import Grant, MemoryLeases, leases_for
from bastion.counters.memory import MemoryCounters
from bastion.errors import Forbidden, RateLimited, ServiceUnavailable
from bastion.policies.concurrency_limit import ConcurrencyLimitConfig, ConcurrencyLimitPolicy
from bastion.policies.concurrency_limit.policy import BACKEND_UNAVAILABLE, TOO_MANY_IN_FLIGHT
from tests.support import make_ctx

pytestmark = pytest.mark.anyio


def _policy(counters: object | None = None, **settings: Any) -> ConcurrencyLimitPolicy:
    clock = FakeClock()
    if counters is None:
        counters = MemoryCounters(clock)
    deps = PolicyDeps(clock=clock, counters=counters, route="r")  # type: ignore[arg-type]  # test doubles
    return ConcurrencyLimitPolicy(ConcurrencyLimitConfig.model_validate(settings), deps)


def _ctx(ip: str = "10.0.0.1", identity: Identity | None = None, **kw: Any) -> RequestContext:
    ctx = make_ctx(peer_ip=ip, **kw)
    if identity is not None:
        ctx.authenticate(identity)
    return ctx


def test_admits_max_in_flight_then_refuses_with_429_and_retry_after_one():
    policy = _policy(max=2)
    first, second = _ctx(), _ctx()
    assert policy.access(first) is None
    assert policy.access(second) is None
    with pytest.raises(RateLimited) as caught:
        policy.access(_ctx())
    assert caught.value.error_code == "concurrency_limited"
    assert caught.value.detail == TOO_MANY_IN_FLIGHT
    assert (b"retry-after", b"1") in caught.value.headers
    policy.log(first)  # a request ends: its slot is free again
    assert policy.access(_ctx()) is None


def test_log_frees_a_slot_exactly_once():
    policy = _policy(max=2)
    first, second = _ctx(), _ctx()
    policy.access(first)
    policy.access(second)
    policy.log(first)
    policy.log(first)  # a second log of the same request must not free `second`'s slot
    assert policy.leases.held(policy.key(second)) == 1
    policy.access(_ctx())
    with pytest.raises(RateLimited):
        policy.access(_ctx())


def test_a_refused_request_holds_no_slot_and_its_log_frees_none():
    policy = _policy(max=1)
    holder, refused = _ctx(), _ctx()
    policy.access(holder)
    with pytest.raises(RateLimited):
        policy.access(refused)
    policy.log(refused)
    assert policy.leases.held(policy.key(holder)) == 1


class _RejectAfter(Policy[PolicyConfig]):
    """A later policy (validation) that refuses every request."""

    name = "validator"
    priority = 3000

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        raise Forbidden("no")


def test_a_request_refused_by_a_later_policy_frees_its_slot_in_log():
    policy = _policy(max=1)
    chain = Chain([policy, _RejectAfter(PolicyConfig(), PolicyDeps())])
    ctx = _ctx()
    with pytest.raises(Forbidden):
        chain.access(ctx)
    assert policy.leases.held(policy.key(ctx)) == 1
    chain.log(ctx)  # the gateway runs log for every request that reached the chain
    assert policy.leases.held(policy.key(ctx)) == 0
    with pytest.raises(Forbidden):  # not RateLimited: the one slot is free again
        chain.access(_ctx())


def test_report_only_lets_the_request_through_reports_and_takes_no_slot():
    policy = _policy(max=1, mode="report_only")
    chain = Chain([policy])
    holder, over = _ctx(), _ctx()
    assert chain.access(holder) is None
    assert chain.access(over) is None
    assert [(r.policy, r.status, r.code) for r in over.reports] == [
        ("concurrency_limit", 429, "concurrency_limited")
    ]
    chain.log(over)
    assert policy.leases.held(policy.key(holder)) == 1


@pytest.mark.parametrize(
    ("key", "first", "second", "shared"),
    [
        ("ip", {"ip": "10.0.0.1"}, {"ip": "10.0.0.1"}, True),
        ("ip", {"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, False),
        ("consumer", {"consumer": "alice", "ip": "1.1.1.1"}, {"consumer": "alice"}, True),
        ("consumer", {"consumer": "alice"}, {"consumer": "bob"}, False),
        ("consumer", {"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, False),
        ("credential", {"consumer": "a", "cred": "k1"}, {"consumer": "a", "cred": "k2"}, False),
        ("route", {"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, True),
        ("header:x-tenant", {"tenant": b"t1"}, {"tenant": b"t1", "ip": "9.9.9.9"}, True),
        ("header:x-tenant", {"tenant": b"t1"}, {"tenant": b"t2"}, False),
    ],
    ids=[
        "ip_same",
        "ip_other",
        "consumer_same_any_ip",
        "consumer_other",
        "anonymous_falls_back_to_ip",
        "credential_other",
        "route_shared",
        "header_same",
        "header_other",
    ],
)
def test_key_kinds_decide_who_shares_the_slots(key, first, second, shared):
    policy = _policy(max=1, key=key)

    def build(spec: dict[str, Any]) -> RequestContext:
        identity = None
        if "consumer" in spec:
            identity = Identity(spec["consumer"], credential_id=spec.get("cred"))
        headers = [(b"host", b"h")]
        if "tenant" in spec:
            headers.append((b"x-tenant", spec["tenant"]))
        return _ctx(spec.get("ip", "10.0.0.1"), identity, headers=headers)

    policy.access(build(first))
    if shared:
        with pytest.raises(RateLimited):
            policy.access(build(second))
    else:
        assert policy.access(build(second)) is None


def test_policies_rebuilt_on_the_same_counters_share_the_slots():
    # A reload builds new policy instances on the same counters: in-flight requests keep
    # their slots and release them into the same table.
    counters = MemoryCounters()
    before = _policy(counters, max=1)
    after = _policy(counters, max=1)
    ctx = _ctx()
    before.access(ctx)
    with pytest.raises(RateLimited):
        after.access(_ctx())
    before.log(ctx)
    assert after.access(_ctx()) is None


def test_the_memory_lease_table_forgets_keys_without_leases():
    counters = MemoryCounters()
    policy = _policy(counters, max=3)
    contexts = [_ctx(ip=f"10.0.0.{n}") for n in range(5)]
    for ctx in contexts:
        policy.access(ctx)
    store = leases_for(counters)
    assert isinstance(store, MemoryLeases)
    assert len(store) == 5
    for ctx in contexts:
        policy.log(ctx)
    assert len(store) == 0


class _DownLeases:
    """A lease store whose backend is down: answers as RedisLeases does for allow/deny."""

    kind = "redis"

    def acquire(self, key: str, limit: int, **kw: Any) -> Awaitable[Grant | None]:
        async def down() -> Grant | None:
            return None

        return down()

    def held(self, key: str) -> int:
        return 0


async def test_backend_down_with_deny_answers_503():
    policy = _policy(max=1, on_backend_error="deny")
    policy.leases = _DownLeases()  # type: ignore[assignment]  # a failing backend
    pending = policy.access(_ctx())
    assert pending is not None
    with pytest.raises(ServiceUnavailable) as caught:
        await pending
    assert caught.value.detail == BACKEND_UNAVAILABLE
    assert caught.value.error_code == "concurrency_limit_unavailable"


async def test_backend_down_with_allow_admits_without_a_lease():
    policy = _policy(max=1, on_backend_error="allow")
    policy.leases = _DownLeases()  # type: ignore[assignment]  # a failing backend
    ctx = _ctx()
    for _ in range(3):
        pending = policy.access(ctx)
        assert pending is not None
        await pending
    policy.log(ctx)  # nothing to release
