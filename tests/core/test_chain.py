"""The policy chain: phase order, rejects, report_only, asynchronous continuation, failures."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import pytest
from anyio.lowlevel import checkpoint
from typing_extensions import override

from bastion.clock import FakeClock
from bastion.core.chain import Chain
from bastion.core.context import PolicyReport, RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyConfig, PolicyDeps
from bastion.errors import Forbidden, RateLimited, Reject, Respond, Unauthenticated
from tests.support import make_ctx

pytestmark = pytest.mark.anyio

Calls = list[tuple[str, str]]

REQUEST_PHASES = ["rewrite", "access"]


def _deps() -> PolicyDeps:
    return PolicyDeps(clock=FakeClock())


def _config(mode: str = "enforce") -> PolicyConfig:
    return PolicyConfig.model_validate({"mode": mode})


def recorder(
    label: str,
    rank: int,
    calls: Calls,
    *,
    mode: str = "enforce",
    reject_in: str | None = None,
    reject: Reject | None = None,
) -> Policy[PolicyConfig]:
    """A policy named `label` at priority `rank` that records every phase it runs."""

    class _Recorder(Policy[PolicyConfig]):
        name = label
        priority = rank

        def _phase(self, phase: str, ctx: RequestContext) -> None:
            calls.append((self.name, phase))
            if phase == reject_in:
                raise reject or Forbidden("not allowed")

        @override
        def rewrite(self, ctx: RequestContext) -> PhaseResult:
            self._phase("rewrite", ctx)
            return None

        @override
        def access(self, ctx: RequestContext) -> PhaseResult:
            self._phase("access", ctx)
            return None

        @override
        def header_filter(self, ctx: RequestContext) -> None:
            self._phase("header_filter", ctx)

        @override
        def body_filter(self, ctx: RequestContext, chunk: bytes, end: bool) -> bytes:
            self._phase("body_filter", ctx)
            return chunk

        @override
        def log(self, ctx: RequestContext) -> None:
            self._phase("log", ctx)

    return _Recorder(_config(mode), _deps())


def slow(
    label: str,
    rank: int,
    calls: Calls,
    *,
    mode: str = "enforce",
    reject_after_await: Reject | None = None,
) -> Policy[PolicyConfig]:
    """A policy whose `access` needs I/O: it returns an awaitable instead of finishing."""

    class _Slow(Policy[PolicyConfig]):
        name = label
        priority = rank

        @override
        def access(self, ctx: RequestContext) -> PhaseResult:
            calls.append((self.name, "access-started"))
            return self._finish()

        async def _finish(self) -> None:
            await checkpoint()
            calls.append((self.name, "access-finished"))
            if reject_after_await is not None:
                raise reject_after_await

    return _Slow(_config(mode), _deps())


class _AccessOnly(Policy[PolicyConfig]):
    name = "access_only"
    priority = 100

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        ctx.state(self)["seen"] = True
        return None


class _InheritsAccess(_AccessOnly):
    name = "inherits_access"


class _Broken(Policy[PolicyConfig]):
    name = "broken"
    priority = 500

    @override
    def header_filter(self, ctx: RequestContext) -> None:
        raise RuntimeError("bug in header_filter")

    @override
    def log(self, ctx: RequestContext) -> None:
        raise KeyError("bug in log")


class _Suffix(Policy[PolicyConfig]):
    """Appends its own suffix to every chunk, so the order of transforms is visible."""

    name = "suffix"
    priority = 0

    def __init__(self, suffix: bytes, rank: int) -> None:
        super().__init__(_config(), _deps())
        self.suffix = suffix
        self.rank = rank

    @override
    def body_filter(self, ctx: RequestContext, chunk: bytes, end: bool) -> bytes:
        return chunk + self.suffix + (b"$" if end else b"")


def _suffix_policy(suffix: bytes, rank: int) -> Policy[PolicyConfig]:
    class _Ranked(_Suffix):
        name = f"suffix_{suffix.decode()}"
        priority = rank

    return _Ranked(suffix, rank)


class _NeedsBody(Policy[PolicyConfig]):
    name = "needs_body"
    priority = 3000
    needs_request_body = True


def _names(calls: Calls, phase: str) -> list[str]:
    return [name for name, seen in calls if seen == phase]


# --- order -----------------------------------------------------------------------------------


def test_policies_are_kept_from_highest_to_lowest_priority():
    calls: Calls = []
    low, mid, high = (
        recorder("low", 10, calls),
        recorder("mid", 20, calls),
        recorder("hi", 30, calls),
    )
    assert Chain([low, high, mid]).policies == (high, mid, low)


@pytest.mark.parametrize("phase", REQUEST_PHASES, ids=REQUEST_PHASES)
def test_request_phases_run_from_highest_to_lowest_priority(phase):
    calls: Calls = []
    chain = Chain(
        [recorder("low", 10, calls), recorder("high", 9000, calls), recorder("mid", 500, calls)]
    )
    assert getattr(chain, phase)(make_ctx()) is None
    assert _names(calls, phase) == ["high", "mid", "low"]


@pytest.mark.parametrize("phase", ["header_filter", "log"], ids=["header_filter", "log"])
def test_response_phases_run_from_lowest_to_highest_priority(phase):
    calls: Calls = []
    chain = Chain(
        [recorder("low", 10, calls), recorder("high", 9000, calls), recorder("mid", 500, calls)]
    )
    getattr(chain, phase)(make_ctx())
    assert _names(calls, phase) == ["low", "mid", "high"]


def test_body_filter_runs_from_lowest_to_highest_priority():
    calls: Calls = []
    chain = Chain(
        [recorder("low", 10, calls), recorder("high", 9000, calls), recorder("mid", 500, calls)]
    )
    chain.body_filter(make_ctx(), b"x", False)
    assert _names(calls, "body_filter") == ["low", "mid", "high"]


# --- which policies run ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("rewrite", False),
        ("access", True),
        ("header_filter", False),
        ("body_filter", False),
        ("log", False),
    ],
    ids=["rewrite", "access", "header_filter", "body_filter", "log"],
)
def test_overrides_reports_only_the_phases_a_policy_implements(phase, expected):
    assert _AccessOnly(_config(), _deps()).overrides(phase) is expected


def test_overrides_counts_a_phase_inherited_from_a_parent_policy():
    assert _InheritsAccess(_config(), _deps()).overrides("access")
    assert not _InheritsAccess(_config(), _deps()).overrides("log")


def test_a_policy_runs_only_in_the_phases_it_overrides():
    calls: Calls = []
    only_access = _AccessOnly(_config(), _deps())
    chain = Chain([only_access, recorder("all", 50, calls)])
    ctx = make_ctx()
    chain.rewrite(ctx)
    assert ctx.state(only_access) == {}
    chain.access(ctx)
    assert ctx.state(only_access) == {"seen": True}
    assert _names(calls, "access") == ["all"]


def test_has_body_filter_only_when_some_policy_transforms_bodies():
    assert not Chain([_AccessOnly(_config(), _deps())]).has_body_filter
    assert Chain([_AccessOnly(_config(), _deps()), _suffix_policy(b"a", 1)]).has_body_filter


def test_an_empty_chain_passes_everything_through():
    chain = Chain([])
    ctx = make_ctx()
    assert chain.rewrite(ctx) is None
    assert chain.access(ctx) is None
    chain.header_filter(ctx)
    assert chain.body_filter(ctx, b"body", True) == b"body"
    chain.log(ctx)
    assert ctx.rejected_by is None
    assert not chain.needs_request_body


# --- rejects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", REQUEST_PHASES, ids=REQUEST_PHASES)
def test_enforcing_reject_stops_later_policies_and_is_recorded(phase):
    calls: Calls = []
    refusal = Unauthenticated("missing credential", challenge='Bearer realm="bastion"')
    chain = Chain(
        [
            recorder("first", 300, calls),
            recorder("gate", 200, calls, reject_in=phase, reject=refusal),
            recorder("after", 100, calls),
        ]
    )
    ctx = make_ctx()
    with pytest.raises(Unauthenticated) as raised:
        getattr(chain, phase)(ctx)
    assert raised.value is refusal
    assert _names(calls, phase) == ["first", "gate"]
    assert ctx.rejected_by == "gate"
    assert ctx.reject is refusal
    assert ctx.reports == []


def test_response_phases_still_run_for_every_policy_after_a_reject():
    calls: Calls = []
    chain = Chain(
        [
            recorder("first", 300, calls),
            recorder("gate", 200, calls, reject_in="access"),
            recorder("skipped", 100, calls),
        ]
    )
    ctx = make_ctx()
    with pytest.raises(Forbidden):
        chain.access(ctx)
    chain.header_filter(ctx)
    chain.body_filter(ctx, b"{}", True)
    chain.log(ctx)
    for phase in ("header_filter", "body_filter", "log"):
        assert _names(calls, phase) == ["skipped", "gate", "first"]


def test_report_only_reject_becomes_a_report_and_the_request_goes_on():
    calls: Calls = []
    refusal = RateLimited("too many requests", retry_after=30, code="quota_exceeded")
    chain = Chain(
        [
            recorder("watch", 200, calls, mode="report_only", reject_in="access", reject=refusal),
            recorder("after", 100, calls),
        ]
    )
    ctx = make_ctx()
    assert chain.access(ctx) is None
    assert _names(calls, "access") == ["watch", "after"]
    assert ctx.rejected_by is None
    assert ctx.reject is None
    assert ctx.reports == [PolicyReport("watch", 429, "quota_exceeded", "too many requests")]


def test_report_only_policies_each_add_a_report_before_an_enforcing_reject():
    calls: Calls = []
    chain = Chain(
        [
            recorder("watch_a", 400, calls, mode="report_only", reject_in="rewrite"),
            recorder("watch_b", 300, calls, mode="report_only", reject_in="rewrite"),
            recorder("gate", 200, calls, reject_in="rewrite"),
            recorder("after", 100, calls),
        ]
    )
    ctx = make_ctx()
    with pytest.raises(Forbidden):
        chain.rewrite(ctx)
    assert [report.policy for report in ctx.reports] == ["watch_a", "watch_b"]
    assert ctx.rejected_by == "gate"
    assert _names(calls, "rewrite") == ["watch_a", "watch_b", "gate"]


def test_respond_is_not_a_reject_and_reaches_the_caller_unrecorded():
    class _Preflight(Policy[PolicyConfig]):
        name = "preflight"
        priority = 7000

        @override
        def access(self, ctx: RequestContext) -> PhaseResult:
            raise Respond(204, [(b"access-control-allow-origin", b"https://app.example")])

    ctx = make_ctx("OPTIONS")
    with pytest.raises(Respond) as raised:
        Chain([_Preflight(_config(), _deps())]).access(ctx)
    assert raised.value.status == 204
    assert ctx.rejected_by is None
    assert ctx.reports == []


def test_unexpected_exception_in_access_propagates_to_the_500_boundary():
    class _Crashes(Policy[PolicyConfig]):
        name = "crashes"
        priority = 100

        @override
        def access(self, ctx: RequestContext) -> PhaseResult:
            raise ZeroDivisionError

    ctx = make_ctx()
    with pytest.raises(ZeroDivisionError):
        Chain([_Crashes(_config(), _deps())]).access(ctx)
    assert ctx.rejected_by is None


# --- asynchronous continuation ---------------------------------------------------------------


async def test_awaitable_phase_continues_the_rest_of_the_phase_asynchronously_in_order():
    calls: Calls = []
    chain = Chain(
        [
            recorder("first", 300, calls),
            slow("slow", 200, calls),
            recorder("after", 100, calls),
        ]
    )
    ctx = make_ctx()
    pending = chain.access(ctx)
    assert pending is not None
    # Nothing after the slow policy ran before the chain was awaited.
    assert calls == [("first", "access"), ("slow", "access-started")]
    await pending
    assert calls == [
        ("first", "access"),
        ("slow", "access-started"),
        ("slow", "access-finished"),
        ("after", "access"),
    ]


async def test_several_awaitable_phases_are_each_awaited_in_order():
    calls: Calls = []
    chain = Chain([slow("one", 300, calls), recorder("mid", 200, calls), slow("two", 100, calls)])
    pending = chain.access(make_ctx())
    assert pending is not None
    await pending
    assert calls == [
        ("one", "access-started"),
        ("one", "access-finished"),
        ("mid", "access"),
        ("two", "access-started"),
        ("two", "access-finished"),
    ]


async def test_reject_raised_after_an_await_is_recorded_and_stops_the_phase():
    calls: Calls = []
    refusal = Unauthenticated("invalid token", challenge="Bearer")
    chain = Chain(
        [slow("slow", 200, calls, reject_after_await=refusal), recorder("after", 100, calls)]
    )
    ctx = make_ctx()
    pending = chain.access(ctx)
    assert pending is not None
    with pytest.raises(Unauthenticated) as raised:
        await pending
    assert raised.value is refusal
    assert ctx.rejected_by == "slow"
    assert ctx.reject is refusal
    assert _names(calls, "access") == []


async def test_report_only_reject_after_an_await_becomes_a_report():
    calls: Calls = []
    chain = Chain(
        [
            slow("slow", 200, calls, mode="report_only", reject_after_await=Forbidden("denied")),
            recorder("after", 100, calls),
        ]
    )
    ctx = make_ctx()
    pending = chain.access(ctx)
    assert pending is not None
    await pending
    assert ctx.rejected_by is None
    assert ctx.reports == [PolicyReport("slow", 403, "forbidden", "denied")]
    assert _names(calls, "access") == ["after"]


async def test_sync_reject_after_an_awaited_policy_is_recorded():
    calls: Calls = []
    chain = Chain(
        [
            slow("slow", 300, calls),
            recorder("gate", 200, calls, reject_in="access"),
            recorder("after", 100, calls),
        ]
    )
    ctx = make_ctx()
    pending = chain.access(ctx)
    assert pending is not None
    with pytest.raises(Forbidden):
        await pending
    assert ctx.rejected_by == "gate"
    assert _names(calls, "access") == ["gate"]


async def test_report_only_reject_after_an_awaited_policy_is_reported_and_the_phase_goes_on():
    calls: Calls = []
    chain = Chain(
        [
            slow("slow", 300, calls),
            recorder("watch", 200, calls, mode="report_only", reject_in="access"),
            slow("later", 100, calls),
        ]
    )
    ctx = make_ctx()
    pending = chain.access(ctx)
    assert pending is not None
    await pending
    assert [report.policy for report in ctx.reports] == ["watch"]
    assert ("later", "access-finished") in calls


def test_all_synchronous_policies_never_create_an_awaitable():
    calls: Calls = []
    chain = Chain([recorder("a", 2, calls), recorder("b", 1, calls)])
    ctx = make_ctx()
    results: list[Awaitable[None] | None] = [chain.rewrite(ctx), chain.access(ctx)]
    assert results == [None, None]


# --- response-phase failures -----------------------------------------------------------------


def test_header_filter_failure_is_logged_and_other_policies_still_run(caplog):
    calls: Calls = []
    chain = Chain(
        [recorder("low", 100, calls), _Broken(_config(), _deps()), recorder("hi", 900, calls)]
    )
    ctx = make_ctx()
    with caplog.at_level(logging.ERROR, logger="bastion.chain"):
        chain.header_filter(ctx)
    assert _names(calls, "header_filter") == ["low", "hi"]
    [record] = caplog.records
    assert "broken" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


def test_log_failure_is_logged_and_other_policies_still_run(caplog):
    calls: Calls = []
    chain = Chain(
        [recorder("low", 100, calls), _Broken(_config(), _deps()), recorder("hi", 900, calls)]
    )
    with caplog.at_level(logging.ERROR, logger="bastion.chain"):
        chain.log(make_ctx())
    assert _names(calls, "log") == ["low", "hi"]
    [record] = caplog.records
    assert "broken" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], KeyError)


# --- bodies ----------------------------------------------------------------------------------


def test_body_filter_chains_each_transform_low_priority_first():
    chain = Chain([_suffix_policy(b"b", 200), _suffix_policy(b"a", 100), _suffix_policy(b"c", 300)])
    ctx = make_ctx()
    assert chain.body_filter(ctx, b"x", False) == b"xabc"
    assert chain.body_filter(ctx, b"y", True) == b"ya$b$c$"


@pytest.mark.parametrize(
    ("with_body_policy", "expected"),
    [(True, True), (False, False)],
    ids=["a_policy_needs_it", "no_policy_needs_it"],
)
def test_chain_needs_the_request_body_when_any_policy_does(with_body_policy, expected):
    policies: list[Policy[PolicyConfig]] = [_AccessOnly(_config(), _deps())]
    if with_body_policy:
        policies.append(_NeedsBody(_config(), _deps()))
    assert Chain(policies).needs_request_body is expected
