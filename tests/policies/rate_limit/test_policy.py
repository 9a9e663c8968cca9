"""rate_limit phases: counting, 429 with Retry-After, RateLimit headers, keys, failure modes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from bastion.clock import FakeClock
from bastion.core.chain import Chain
from bastion.core.context import Identity
from bastion.core.policy import PolicyDeps
from bastion.counters.base import Check, Decisions, OnError
from bastion.counters.memory import MemoryCounters
from bastion.errors import RateLimited, ServiceUnavailable
from bastion.policies.rate_limit import RateLimitConfig, RateLimitPolicy
from bastion.policies.rate_limit.policy import BACKEND_UNAVAILABLE, TOO_MANY_REQUESTS
from tests.support import make_ctx


def _policy(
    clock: FakeClock, counters: object | None = None, **settings: object
) -> RateLimitPolicy:
    deps = PolicyDeps(clock=clock, counters=counters or MemoryCounters(clock), route="r")  # type: ignore[arg-type]  # test doubles
    return RateLimitPolicy(RateLimitConfig.model_validate(settings), deps)


def _respond(policy: RateLimitPolicy, ctx) -> None:
    ctx.status = 200
    policy.header_filter(ctx)


def test_admits_up_to_the_limit_then_refuses_with_retry_after():
    clock = FakeClock()
    policy = _policy(clock, limit=2, window=10, burst=1)
    assert policy.access(make_ctx(clock=clock)) is None
    assert policy.access(make_ctx(clock=clock)) is None
    with pytest.raises(RateLimited) as caught:
        policy.access(make_ctx(clock=clock))
    assert caught.value.detail == TOO_MANY_REQUESTS
    assert (b"retry-after", b"5") in caught.value.headers
    clock.advance(5)
    assert policy.access(make_ctx(clock=clock)) is None


def test_refused_requests_are_not_counted():
    clock = FakeClock()
    policy = _policy(clock, limit=1, window=10)
    policy.access(make_ctx(clock=clock))
    for _ in range(18):
        clock.advance(0.5)
        with pytest.raises(RateLimited):
            policy.access(make_ctx(clock=clock))
    clock.advance(1.0)  # 10.0 s after the admitted one, however many were refused meanwhile
    assert policy.access(make_ctx(clock=clock)) is None


def test_headers_follow_the_draft_form():
    # draft-ietf-httpapi-ratelimit-headers-10 §§3-4: RateLimit-Policy: "default";q=100;w=60
    # and RateLimit: "default";r=<remaining>;t=<seconds to reset>.
    clock = FakeClock()
    policy = _policy(clock, limit=100, window=60, burst=49)
    ctx = make_ctx(clock=clock)
    policy.access(ctx)
    _respond(policy, ctx)
    assert ctx.response_headers.get(b"ratelimit-policy") == b'"default";q=100;w=60'
    assert ctx.response_headers.get(b"ratelimit") == b'"default";r=49;t=1'
    assert b"x-ratelimit-limit" not in ctx.response_headers


def test_headers_list_every_limit_by_name():
    clock = FakeClock()
    policy = _policy(
        clock,
        limits=[
            {"limit": 10, "window": 1, "burst": 9, "name": "burst"},
            {"limit": 1000, "window": 86400, "burst": 999, "name": "daily"},
        ],
    )
    ctx = make_ctx(clock=clock)
    policy.access(ctx)
    _respond(policy, ctx)
    assert ctx.response_headers.get(b"ratelimit-policy") == (
        b'"burst";q=10;w=1, "daily";q=1000;w=86400'
    )
    assert ctx.response_headers.get(b"ratelimit") == b'"burst";r=9;t=1, "daily";r=999;t=87'


def test_legacy_headers_describe_the_limit_closest_to_refusing():
    clock = FakeClock()
    policy = _policy(
        clock,
        legacy_headers=True,
        limits=[{"limit": 10, "window": 10, "burst": 4}, {"limit": 60, "window": 60, "burst": 1}],
    )
    ctx = make_ctx(clock=clock)
    policy.access(ctx)
    _respond(policy, ctx)
    headers = ctx.response_headers
    assert headers.get(b"x-ratelimit-limit") == b"60"
    assert headers.get(b"x-ratelimit-remaining") == b"1"
    assert headers.get(b"x-ratelimit-reset") == b"1"


def test_headers_can_be_turned_off():
    clock = FakeClock()
    policy = _policy(clock, limit=1, window=1, headers=False)
    ctx = make_ctx(clock=clock)
    policy.access(ctx)
    _respond(policy, ctx)
    assert b"ratelimit" not in ctx.response_headers
    assert b"ratelimit-policy" not in ctx.response_headers


def test_response_of_an_earlier_reject_still_carries_the_policy_header():
    clock = FakeClock()
    policy = _policy(clock, limit=1, window=1)
    ctx = make_ctx(clock=clock)  # access never ran (say authentication refused first)
    _respond(policy, ctx)
    assert ctx.response_headers.get(b"ratelimit-policy") == b'"default";q=1;w=1'
    assert b"ratelimit" not in ctx.response_headers


def test_refusal_reports_zero_remaining():
    clock = FakeClock()
    policy = _policy(clock, limit=1, window=30)
    policy.access(make_ctx(clock=clock))
    ctx = make_ctx(clock=clock)
    with pytest.raises(RateLimited):
        policy.access(ctx)
    _respond(policy, ctx)
    assert ctx.response_headers.get(b"ratelimit") == b'"default";r=0;t=30'


def test_cors_preflight_is_not_counted_by_default():
    clock = FakeClock()
    policy = _policy(clock, limit=1, window=60)
    for _ in range(3):
        ctx = make_ctx("OPTIONS", clock=clock)
        ctx.request.extra["cors_preflight"] = True
        assert policy.access(ctx) is None
    assert policy.access(make_ctx(clock=clock)) is None


def test_cors_preflight_is_counted_when_asked():
    clock = FakeClock()
    policy = _policy(clock, limit=1, window=60, exclude_preflight=False)
    ctx = make_ctx("OPTIONS", clock=clock)
    ctx.request.extra["cors_preflight"] = True
    policy.access(ctx)
    with pytest.raises(RateLimited):
        policy.access(make_ctx(clock=clock))


def _ctx(clock: Any, ip: str = "10.0.0.1", identity: Any = None, headers: Any = None) -> Any:
    ctx = make_ctx(clock=clock, headers=headers, peer_ip=ip)
    if identity is not None:
        ctx.authenticate(identity)
    return ctx


@pytest.mark.parametrize(
    ("key", "first", "second", "shared"),
    [
        ("ip", {"ip": "10.0.0.1"}, {"ip": "10.0.0.1"}, True),
        ("ip", {"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, False),
        ("consumer", {"consumer": "alice", "ip": "1.1.1.1"}, {"consumer": "alice"}, True),
        ("consumer", {"consumer": "alice"}, {"consumer": "bob"}, False),
        ("consumer", {"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, False),
        (
            "credential",
            {"consumer": "alice", "cred": "k1"},
            {"consumer": "alice", "cred": "k2"},
            False,
        ),
        ("route", {"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, True),
        ("header:x-tenant", {"tenant": b"t1"}, {"tenant": b"t1", "ip": "9.9.9.9"}, True),
        ("header:x-tenant", {"tenant": b"t1"}, {"tenant": b"t2"}, False),
        ("header:x-tenant", {"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, False),
        (["consumer", "ip"], {"consumer": "alice"}, {"consumer": "alice", "ip": "10.0.0.9"}, False),
    ],
    ids=[
        "ip_same",
        "ip_other",
        "consumer_same_any_ip",
        "consumer_other",
        "anonymous_falls_back_to_ip",
        "credential_other",
        "route_shared_by_everyone",
        "header_same",
        "header_other",
        "missing_header_falls_back_to_ip",
        "combined_key",
    ],
)
def test_key_kinds_decide_who_shares_a_counter(key, first, second, shared):
    clock = FakeClock()
    policy = _policy(clock, limit=1, window=60, key=key)

    def build(spec: Any) -> Any:
        identity = None
        if "consumer" in spec:
            identity = Identity(spec["consumer"], credential_id=spec.get("cred"))
        headers = [(b"host", b"h")]
        if "tenant" in spec:
            headers.append((b"x-tenant", spec["tenant"]))
        return _ctx(clock, spec.get("ip", "10.0.0.1"), identity, headers)

    policy.access(build(first))
    if shared:
        with pytest.raises(RateLimited):
            policy.access(build(second))
    else:
        assert policy.access(build(second)) is None


def test_key_uses_the_client_ip_not_the_peer():
    clock = FakeClock()
    policy = _policy(clock, limit=1, window=60)
    ctx = make_ctx(clock=clock, peer_ip="10.0.0.1")
    ctx.request.client_ip = "203.0.113.7"  # as trusted_proxy sets it
    policy.access(ctx)
    assert policy.checks(ctx)[0][0].endswith("ip=203.0.113.7")


def test_a_request_refused_by_one_limit_is_counted_by_none():
    clock = FakeClock()
    policy = _policy(
        clock,
        limits=[
            {"limit": 5, "window": 5, "burst": 4, "key": "ip", "name": "per-ip"},
            {"limit": 1, "window": 60, "key": "header:x-tenant", "name": "tenant"},
        ],
    )
    tenant = [(b"host", b"h"), (b"x-tenant", b"t")]
    policy.access(make_ctx(clock=clock, headers=tenant))
    for _ in range(3):
        with pytest.raises(RateLimited):
            policy.access(make_ctx(clock=clock, headers=tenant))
    # Only the first request used the per-ip allowance: four remain.
    ctx = make_ctx(clock=clock)
    policy.access(ctx)
    _respond(policy, ctx)
    assert (ctx.response_headers.get(b"ratelimit") or b"").startswith(b'"per-ip";r=3;')


def test_sliding_log_admits_the_limit_at_once_and_retries_when_the_oldest_leaves():
    clock = FakeClock()
    policy = _policy(clock, limit=3, window=60, algorithm="sliding_log")
    headers = []
    for _ in range(3):
        ctx = make_ctx(clock=clock)
        assert policy.access(ctx) is None
        _respond(policy, ctx)
        headers.append(ctx.response_headers.get(b"ratelimit"))
        clock.advance(10)
    assert headers == [b'"default";r=2;t=60', b'"default";r=1;t=60', b'"default";r=0;t=60']
    # At 30 s the oldest entry (0 s) leaves at 60 s: Retry-After 30; the key rests at 80 s.
    ctx = make_ctx(clock=clock)
    with pytest.raises(RateLimited) as caught:
        policy.access(ctx)
    assert (b"retry-after", b"30") in caught.value.headers
    _respond(policy, ctx)
    assert ctx.response_headers.get(b"ratelimit-policy") == b'"default";q=3;w=60'
    assert ctx.response_headers.get(b"ratelimit") == b'"default";r=0;t=50'
    clock.advance(29.999)
    with pytest.raises(RateLimited):
        policy.access(make_ctx(clock=clock))
    clock.advance(0.001)
    assert policy.access(make_ctx(clock=clock)) is None


def test_sliding_log_refused_by_another_limit_keeps_its_slot():
    clock = FakeClock()
    policy = _policy(
        clock,
        limits=[
            {"limit": 2, "window": 60, "algorithm": "sliding_log", "name": "log"},
            {"limit": 1, "window": 60, "key": "header:x-tenant", "name": "tenant"},
        ],
    )
    tenant = [(b"host", b"h"), (b"x-tenant", b"t")]
    policy.access(make_ctx(clock=clock, headers=tenant))
    for _ in range(5):
        with pytest.raises(RateLimited):
            policy.access(make_ctx(clock=clock, headers=tenant))
    ctx = make_ctx(clock=clock)
    policy.access(ctx)  # the second (and last) slot of the log: the refusals took none
    _respond(policy, ctx)
    assert (ctx.response_headers.get(b"ratelimit") or b"").startswith(b'"log";r=0;')


def test_switching_a_limit_to_the_sliding_log_does_not_reuse_the_old_counter():
    # A reload keeps the counters: the log must not read GCRA's or the window's state (in
    # Redis another type under the same key would fail every check of the batch).
    clock = FakeClock()
    counters = MemoryCounters(clock)
    keys = {
        algorithm: _policy(clock, counters, limit=1, window=60, algorithm=algorithm).checks(
            make_ctx(clock=clock)
        )[0][0]
        for algorithm in ("gcra", "sliding_window", "sliding_log")
    }
    assert keys["gcra"] == keys["sliding_window"]  # unchanged: existing counters carry over
    assert keys["sliding_log"] != keys["gcra"]
    _policy(clock, counters, limit=1, window=60).access(make_ctx(clock=clock))
    log = _policy(clock, counters, limit=1, window=60, algorithm="sliding_log")
    assert log.access(make_ctx(clock=clock)) is None


def test_report_only_lets_the_request_through_and_reports():
    clock = FakeClock()
    policy = _policy(clock, limit=1, window=60, mode="report_only")
    chain = Chain([policy])
    assert chain.access(make_ctx(clock=clock)) is None
    ctx = make_ctx(clock=clock)
    assert chain.access(ctx) is None
    assert ctx.reject is None
    [report] = ctx.reports
    assert (report.policy, report.status, report.code) == ("rate_limit", 429, "rate_limited")


class _DownCounters:
    """Counters whose backend is unreachable: they answer like RedisCounters do then."""

    kind = "redis"
    spec = "redis://127.0.0.1:1/0"

    def __init__(self, clock: FakeClock) -> None:
        self.local = MemoryCounters(clock)

    def hit(self, checks: Sequence[Check], *, on_error: OnError = "local") -> Decisions | None:
        return self.local.hit(checks) if on_error == "local" else None

    async def close(self) -> None:
        return None


def test_backend_down_with_deny_refuses_with_503():
    clock = FakeClock()
    policy = _policy(clock, _DownCounters(clock), limit=5, window=60, on_backend_error="deny")
    with pytest.raises(ServiceUnavailable) as caught:
        policy.access(make_ctx(clock=clock))
    assert caught.value.detail == BACKEND_UNAVAILABLE


def test_backend_down_with_allow_admits_without_rate_headers():
    clock = FakeClock()
    policy = _policy(clock, _DownCounters(clock), limit=1, window=60, on_backend_error="allow")
    for _ in range(3):
        ctx = make_ctx(clock=clock)
        assert policy.access(ctx) is None
    _respond(policy, ctx)
    assert b"ratelimit" not in ctx.response_headers


def test_backend_down_with_local_counts_in_memory():
    clock = FakeClock()
    policy = _policy(clock, _DownCounters(clock), limit=1, window=60)
    policy.access(make_ctx(clock=clock))
    with pytest.raises(RateLimited):
        policy.access(make_ctx(clock=clock))


def test_memory_counters_answer_without_a_coroutine():
    clock = FakeClock()
    policy = _policy(clock, limit=10, window=1)
    assert policy.access(make_ctx(clock=clock)) is None  # None, not an awaitable
