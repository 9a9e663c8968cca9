"""The quota policy: `limit` admitted requests per consumer per calendar day or month (UTC).

How this works: `access` counts the request on its key (built exactly as rate_limit builds its
keys; by default the consumer) and the current period's label in the quota store beside the
gateway's counters (`bastion.counters.quota_store`: process memory, or one Redis script shared
by every node). Past `limit` the request is refused with 429 `quota_exceeded` and a
`Retry-After` that runs to the period's end. A refused request is not counted, and one that a
later policy refuses is refunded in `log`, so only admitted requests use up the quota.
Responses carry `RateLimit-Policy` and `RateLimit` in rate_limit's draft form, under this
policy's own name, added to rate_limit's when both apply.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.counters.quota_store import Usage, quotas_for
from bastion.errors import RateLimited, ServiceUnavailable
from bastion.policies.quota.config import QuotaConfig
from bastion.policies.quota.period import Span, span_at
from bastion.policies.rate_limit.algorithm import MICROS, Rule
from bastion.policies.rate_limit.policy import _Limit  # rate_limit's key builder, shared

QUOTA_EXCEEDED = "The request quota for this period is used up; retry after Retry-After."
"""Public detail of the 429."""
BACKEND_UNAVAILABLE = "The quota counter is unavailable; the request was refused."
"""Public detail of the 503 when Redis is down and on_backend_error is deny."""
CODE = "quota_exceeded"
_USAGE = "usage"
_COUNTED = "counted"
# Rejections that did not come from a later policy: the request was admitted and counts.
_NOT_POLICIES = frozenset({"quota", "app"})


def policy_item(name: str, quota: int, window: int) -> str:
    """One `RateLimit-Policy` item (draft-ietf-httpapi-ratelimit-headers): `"name";q=..;w=..`."""
    return f'"{name}";q={quota};w={window}'


def limit_item(name: str, remaining: int, reset: int) -> str:
    """One `RateLimit` item (draft-ietf-httpapi-ratelimit-headers): `"name";r=..;t=..`."""
    return f'"{name}";r={remaining};t={reset}'


def _append(ctx: RequestContext, field: bytes, item: str) -> None:
    """Add `item` to a list-valued field another policy (rate_limit) may have set already."""
    headers = ctx.response_headers
    existing = headers.get(field)
    value = item.encode()
    headers.set(field, value if not existing else existing + b", " + value)


class QuotaPolicy(Policy[QuotaConfig]):
    """Admit at most `limit` requests per key and calendar period; answer 429 beyond it."""

    name = "quota"
    # Request phases just before rate_limit, response phases just after it: its headers are
    # set by then and the quota's items are appended to them. A request rate_limit refuses
    # is refunded in `log`.
    priority = Priority.RATE_LIMIT + 10

    def __init__(self, config: QuotaConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        scope = f"{deps.service or '*'}/{deps.route or '*'}"
        # The rule is unused by the key builder; it carries the limit for completeness.
        self._keys = _Limit(scope, self.name, Rule(config.limit, MICROS), config.key)
        self._limit = config.limit
        self._period = config.period
        self._label = config.name
        self._headers = config.headers
        self._on_error = config.on_backend_error
        self._clock = deps.clock
        self._span = span_at(deps.clock.time(), config.period)
        self.quotas = quotas_for(deps.counters, deps.clock)

    def key(self, ctx: RequestContext) -> str:
        """The quota key of `ctx`."""
        return self._keys.key(ctx)

    def span(self, now: float) -> Span:
        """The period containing `now` (recomputed only when a period ends)."""
        span = self._span
        if not span.contains(now):
            span = self._span = span_at(now, self._period)
        return span

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        now = self._clock.time()
        span = self.span(now)
        key = self._keys.key(ctx)
        result = self.quotas.take(key, span.label, self._limit, span.end, on_error=self._on_error)
        if result is None or isinstance(result, Usage):
            self._apply(ctx, key, span, now, result)
            return None
        return self._finish(ctx, key, span, now, result)

    async def _finish(
        self,
        ctx: RequestContext,
        key: str,
        span: Span,
        now: float,
        pending: Awaitable[Usage | None],
    ) -> None:
        self._apply(ctx, key, span, now, await pending)

    def _apply(
        self, ctx: RequestContext, key: str, span: Span, now: float, usage: Usage | None
    ) -> None:
        if usage is None:  # Redis down and on_backend_error is allow or deny
            if self._on_error == "deny":
                raise ServiceUnavailable(BACKEND_UNAVAILABLE, code="quota_unavailable")
            return
        state = ctx.state(self)
        state[_USAGE] = (usage.used, span)
        if not usage.allowed:
            retry = max(math.ceil(span.end - now), 1)
            raise RateLimited(QUOTA_EXCEEDED, retry_after=retry, code=CODE)
        state[_COUNTED] = (key, span.label, usage.local)

    @override
    def header_filter(self, ctx: RequestContext) -> None:
        if not self._headers:
            return
        now = self._clock.time()
        found = ctx.state(self).get(_USAGE)
        span = found[1] if isinstance(found, tuple) else self.span(now)
        _append(ctx, b"ratelimit-policy", policy_item(self._label, self._limit, span.seconds))
        if isinstance(found, tuple):
            remaining = max(self._limit - found[0], 0)
            reset = max(math.ceil(span.end - now), 0)
            _append(ctx, b"ratelimit", limit_item(self._label, remaining, reset))

    @override
    def log(self, ctx: RequestContext) -> None:
        counted = ctx.state(self).pop(_COUNTED, None)
        if not isinstance(counted, tuple):
            return
        if ctx.rejected_by is not None and ctx.rejected_by not in _NOT_POLICIES:
            key, label, local = counted
            self.quotas.refund(key, label, local=local)
