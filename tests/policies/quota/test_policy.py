"""quota phases: counting admitted requests, 429 until the period ends, headers, refunds."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import pytest
from typing_extensions import override

from bastion.clock import FakeClock
from bastion.core.chain import Chain
from bastion.core.context import Identity, RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyConfig, PolicyDeps
from bastion.counters.memory import MemoryCounters
from bastion.counters.quota_store import MemoryQuotas, Usage, quotas_for
from bastion.errors import Forbidden, RateLimited, ServiceUnavailable
from bastion.policies.concurrency_limit import ConcurrencyLimitConfig, ConcurrencyLimitPolicy
from bastion.policies.quota import QuotaConfig, QuotaPolicy
from bastion.policies.quota.policy import BACKEND_UNAVAILABLE, QUOTA_EXCEEDED
from bastion.policies.rate_limit import RateLimitConfig, RateLimitPolicy
from tests.support import make_ctx

pytestmark = pytest.mark.anyio


def _clock(moment: str) -> FakeClock:
    wall = datetime.fromisoformat(moment).replace(tzinfo=UTC).timestamp()
    return FakeClock(wall=wall)


def _policy(clock: FakeClock, counters: object | None = None, **settings: Any) -> QuotaPolicy:
    if counters is None:
        counters = MemoryCounters(clock)
    deps = PolicyDeps(clock=clock, counters=counters, route="r")  # type: ignore[arg-type]  # test doubles
    return QuotaPolicy(QuotaConfig.model_validate(settings), deps)


def _ctx(consumer: str | None = "alice", ip: str = "10.0.0.1") -> RequestContext:
    ctx = make_ctx(peer_ip=ip)
    if consumer is not None:
        ctx.authenticate(Identity(consumer, credential_id=f"key-{consumer}"))
    return ctx


def _headers(chain: Chain, ctx: RequestContext) -> tuple[bytes | None, bytes | None]:
    ctx.status = 200
    chain.header_filter(ctx)
    return ctx.response_headers.get(b"ratelimit-policy"), ctx.response_headers.get(b"ratelimit")


def test_admits_the_limit_per_day_then_refuses_until_midnight_utc():
    clock = _clock("2026-11-27T23:58:20")
    policy = _policy(clock, limit=2, period="day")
    assert policy.access(_ctx()) is None
    assert policy.access(_ctx()) is None
    with pytest.raises(RateLimited) as caught:
        policy.access(_ctx())
    assert caught.value.error_code == "quota_exceeded"
    assert caught.value.detail == QUOTA_EXCEEDED
    assert (b"retry-after", b"100") in caught.value.headers  # 23:58:20 -> 00:00:00
    assert policy.access(_ctx("bob")) is None  # another consumer has its own quota
    clock.advance(100)
    assert policy.access(_ctx()) is None  # a new day


def test_monthly_quota_retry_after_runs_to_the_first_of_next_month():
    clock = _clock("2026-12-31T23:00:00")
    policy = _policy(clock, limit=1, period="month")
    policy.access(_ctx())
    with pytest.raises(RateLimited) as caught:
        policy.access(_ctx())
    assert (b"retry-after", b"3600") in caught.value.headers


def test_refused_requests_are_not_counted():
    clock = _clock("2026-11-27T12:00:00")
    policy = _policy(clock, limit=3, period="day")
    store = quotas_for(policy.deps.counters)
    assert isinstance(store, MemoryQuotas)
    for _ in range(3):
        policy.access(_ctx())
    for _ in range(5):
        with pytest.raises(RateLimited):
            policy.access(_ctx())
    assert store.used(policy.key(_ctx()), "d20261127") == 3


def test_headers_use_the_rate_limit_draft_form_with_the_quota_name():
    clock = _clock("2026-11-27T12:00:00")
    policy = _policy(clock, limit=10, period="day", name="daily")
    chain = Chain([policy])
    ctx = _ctx()
    chain.access(ctx)
    assert _headers(chain, ctx) == (b'"daily";q=10;w=86400', b'"daily";r=9;t=43200')


def test_a_refusal_reports_zero_remaining():
    clock = _clock("2026-11-27T12:00:00")
    policy = _policy(clock, limit=1, period="day")
    chain = Chain([policy])
    chain.access(_ctx())
    ctx = _ctx()
    with pytest.raises(RateLimited):
        chain.access(ctx)
    assert _headers(chain, ctx) == (b'"quota";q=1;w=86400', b'"quota";r=0;t=43200')


def test_headers_are_added_to_rate_limits_own():
    clock = _clock("2026-11-27T12:00:00")
    deps = PolicyDeps(clock=clock, counters=MemoryCounters(clock), route="r")
    quota = QuotaPolicy(QuotaConfig(limit=5, period="day"), deps)
    rate = RateLimitPolicy(RateLimitConfig(limit=100, window=60), deps)
    chain = Chain([quota, rate])
    ctx = _ctx()
    chain.access(ctx)
    policy_header, limit_header = _headers(chain, ctx)
    assert policy_header == b'"default";q=100;w=60, "quota";q=5;w=86400'
    assert limit_header is not None
    assert limit_header.endswith(b', "quota";r=4;t=43200')


def test_headers_can_be_turned_off():
    clock = _clock("2026-11-27T12:00:00")
    chain = Chain([_policy(clock, limit=5, period="day", headers=False)])
    ctx = _ctx()
    chain.access(ctx)
    assert _headers(chain, ctx) == (None, None)


class _RejectAfter(Policy[PolicyConfig]):
    """A later policy (concurrency, validation) that refuses every request."""

    name = "validator"
    priority = 3000

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        raise Forbidden("no")


def test_a_request_refused_by_a_later_policy_is_refunded_in_log():
    clock = _clock("2026-11-27T12:00:00")
    policy = _policy(clock, limit=1, period="day")
    chain = Chain([policy, _RejectAfter(PolicyConfig(), PolicyDeps())])
    for _ in range(3):
        ctx = _ctx()
        with pytest.raises(Forbidden):  # never RateLimited: each was refunded
            chain.access(ctx)
        chain.log(ctx)
    assert policy.access(_ctx()) is None


def test_an_admitted_request_stays_counted_even_if_the_upstream_fails():
    clock = _clock("2026-11-27T12:00:00")
    policy = _policy(clock, limit=1, period="day")
    ctx = _ctx()
    policy.access(ctx)
    ctx.reject, ctx.status = Forbidden("upstream"), 502  # the gateway sets no rejected_by
    policy.log(ctx)
    with pytest.raises(RateLimited):
        policy.access(_ctx())


def test_report_only_lets_the_request_through_and_reports():
    clock = _clock("2026-11-27T12:00:00")
    chain = Chain([_policy(clock, limit=1, period="day", mode="report_only")])
    chain.access(_ctx())
    ctx = _ctx()
    assert chain.access(ctx) is None
    assert [(r.policy, r.code) for r in ctx.reports] == [("quota", "quota_exceeded")]


def test_anonymous_callers_are_counted_by_address_never_pooled():
    clock = _clock("2026-11-27T12:00:00")
    policy = _policy(clock, limit=1, period="day")
    policy.access(_ctx(None, ip="10.0.0.1"))
    assert policy.access(_ctx(None, ip="10.0.0.2")) is None
    with pytest.raises(RateLimited):
        policy.access(_ctx(None, ip="10.0.0.1"))


def test_counts_survive_a_rebuild_on_the_same_counters():
    clock = _clock("2026-11-27T12:00:00")
    counters = MemoryCounters(clock)
    _policy(clock, counters, limit=1, period="day").access(_ctx())
    with pytest.raises(RateLimited):
        _policy(clock, counters, limit=1, period="day").access(_ctx())


def test_memory_quotas_stay_bounded_and_drop_past_periods_first():
    store = MemoryQuotas(max_keys=3)
    store.take("old", "d1", 5)
    store.take("a", "d2", 5)
    store.take("b", "d2", 5)
    store.take("c", "d2", 5)  # full: the key of the past period goes first
    assert (len(store), store.used("old", "d1"), store.used("a", "d2")) == (3, 0, 1)
    store.take("d", "d2", 5)  # no past period left: the least recently counted goes
    assert (len(store), store.used("a", "d2"), store.used("d", "d2")) == (3, 0, 1)
    with pytest.raises(ValueError, match="positive"):
        MemoryQuotas(max_keys=0)


class _DownQuotas:
    """A quota store whose backend is down: answers as RedisQuotas does for allow/deny."""

    kind = "redis"

    def take(self, *args: Any, **kw: Any) -> Awaitable[Usage | None]:
        async def down() -> Usage | None:
            return None

        return down()


async def test_backend_down_with_deny_answers_503_and_allow_admits():
    clock = _clock("2026-11-27T12:00:00")
    deny = _policy(clock, limit=1, period="day", on_backend_error="deny")
    deny.quotas = _DownQuotas()  # type: ignore[assignment]  # a failing backend
    pending = deny.access(_ctx())
    assert pending is not None
    with pytest.raises(ServiceUnavailable) as caught:
        await pending
    assert (caught.value.detail, caught.value.error_code) == (
        BACKEND_UNAVAILABLE,
        "quota_unavailable",
    )
    allow = _policy(clock, limit=1, period="day", on_backend_error="allow")
    allow.quotas = _DownQuotas()  # type: ignore[assignment]  # a failing backend
    chain = Chain([allow])
    for _ in range(3):
        ctx = _ctx()
        pending = chain.access(ctx)
        assert pending is not None
        await pending
    assert _headers(chain, ctx) == (b'"quota";q=1;w=86400', None)


def test_a_request_the_concurrency_limit_refuses_is_given_back_to_the_quota():
    clock = _clock("2026-11-27T12:00:00")
    counters = MemoryCounters(clock)
    deps = PolicyDeps(clock=clock, counters=counters, route="r")
    quota = QuotaPolicy(QuotaConfig(limit=5, period="day"), deps)
    concurrency = ConcurrencyLimitPolicy(ConcurrencyLimitConfig(max=1, key="consumer"), deps)
    chain = Chain([concurrency, quota])
    holder = _ctx()
    chain.access(holder)
    for _ in range(3):
        ctx = _ctx()
        with pytest.raises(RateLimited) as caught:
            chain.access(ctx)
        assert caught.value.error_code == "concurrency_limited"
        chain.log(ctx)
    store = quotas_for(counters)
    assert isinstance(store, MemoryQuotas)
    assert store.used(quota.key(holder), "d20261127") == 1
