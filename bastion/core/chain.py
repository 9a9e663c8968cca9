"""Runs a route's policies through the request and response phases.

How this works: a `Chain` is compiled once per route from its policy instances. For each phase
it keeps only the policies that implement it, in priority order (request phases high to low,
response phases low to high). Request phases call each policy synchronously; when one returns an
awaitable (it needs I/O), the rest of that phase continues in a coroutine, so requests whose
policies answer from memory never create one. A `Reject` from an enforcing policy stops the
request phases and is recorded on the context; from a `report_only` policy it becomes a
`PolicyReport` and the request goes on. Response phases and `log` always run for every policy,
including after a reject, so CORS and security headers reach error responses too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from bastion.core.context import PolicyReport, RequestContext
from bastion.core.policy import PhaseResult, Policy
from bastion.errors import Reject

_log = logging.getLogger("bastion.chain")

AnyPolicy = Policy[Any]


def _report(ctx: RequestContext, policy: AnyPolicy, reject: Reject) -> None:
    ctx.reports.append(PolicyReport(policy.name, reject.status, reject.error_code, reject.detail))


class Chain:
    """The compiled, ordered policies of one route."""

    __slots__ = (
        "_access",
        "_body",
        "_header",
        "_log",
        "_rewrite",
        "has_access",
        "has_body_filter",
        "has_header_filter",
        "has_log",
        "has_rewrite",
        "needs_request_body",
        "policies",
    )

    def __init__(self, policies: Sequence[AnyPolicy], *, grouped: Sequence[AnyPolicy] = ()) -> None:
        ordered = sorted(policies, key=lambda p: p.priority, reverse=True)
        self.policies: tuple[AnyPolicy, ...] = tuple(ordered)
        self._rewrite = tuple(p for p in ordered if p.overrides("rewrite"))
        # Members of an `AnyOf` group run their access phase through the group, not on their
        # own. Compared by identity: the same instance may serve other routes ungrouped.
        apart = {id(p) for p in grouped}
        self._access = tuple(p for p in ordered if p.overrides("access") and id(p) not in apart)
        reverse = list(reversed(ordered))
        self._header = tuple(p for p in reverse if p.overrides("header_filter"))
        self._body = tuple(p for p in reverse if p.overrides("body_filter"))
        self._log = tuple(p for p in reverse if p.overrides("log"))
        self.needs_request_body = any(p.needs_request_body for p in ordered)
        # Plain flags, so the gateway skips empty phases without a call.
        self.has_rewrite = bool(self._rewrite)
        self.has_access = bool(self._access)
        self.has_body_filter = bool(self._body)
        self.has_header_filter = bool(self._header)
        self.has_log = bool(self._log)

    def rewrite(self, ctx: RequestContext) -> PhaseResult:
        """Run the rewrite phase; raises `Reject` if an enforcing policy refuses."""
        return self._run(self._rewrite, "rewrite", ctx)

    def access(self, ctx: RequestContext) -> PhaseResult:
        """Run the access phase; raises `Reject` if an enforcing policy refuses."""
        return self._run(self._access, "access", ctx)

    def _run(self, policies: tuple[AnyPolicy, ...], phase: str, ctx: RequestContext) -> PhaseResult:
        for index, policy in enumerate(policies):
            try:
                pending = getattr(policy, phase)(ctx)
            except Reject as reject:
                self._on_reject(ctx, policy, reject)
                continue
            if pending is not None:
                return self._run_async(policies, phase, ctx, index, pending)
        return None

    async def _run_async(
        self,
        policies: tuple[AnyPolicy, ...],
        phase: str,
        ctx: RequestContext,
        index: int,
        pending: Awaitable[None],
    ) -> None:
        try:
            await pending
        except Reject as reject:
            self._on_reject(ctx, policies[index], reject)
        for policy in policies[index + 1 :]:
            try:
                result = getattr(policy, phase)(ctx)
                if result is not None:
                    await result
            except Reject as reject:
                self._on_reject(ctx, policy, reject)

    @staticmethod
    def _on_reject(ctx: RequestContext, policy: AnyPolicy, reject: Reject) -> None:
        if policy.report_only:
            _report(ctx, policy, reject)
            return
        ctx.rejected_by = policy.name
        ctx.reject = reject
        raise reject

    def header_filter(self, ctx: RequestContext) -> None:
        """Let every policy adjust the response head; failures are logged, not fatal."""
        for policy in self._header:
            try:
                policy.header_filter(ctx)
            except Exception:  # noqa: BLE001 - a response-phase bug must not lose the response
                _log.exception("header_filter failed in policy %s", policy.name)

    def body_filter(self, ctx: RequestContext, chunk: bytes, end: bool) -> bytes:
        """Pass a response body chunk through every body filter."""
        for policy in self._body:
            chunk = policy.body_filter(ctx, chunk, end)
        return chunk

    def log(self, ctx: RequestContext) -> None:
        """Run the log phase of every policy; failures are logged, never raised."""
        for policy in self._log:
            try:
                policy.log(ctx)
            except Exception:  # noqa: BLE001 - logging must never break the connection
                _log.exception("log phase failed in policy %s", policy.name)
