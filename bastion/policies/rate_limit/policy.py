"""The rate_limit policy: GCRA or sliding limits per client, consumer, route or header."""

from __future__ import annotations

from collections.abc import Awaitable

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.counters.base import Check, Decisions
from bastion.errors import RateLimited, ServiceUnavailable
from bastion.policies.rate_limit.algorithm import MICROS, Rule, ceil_seconds
from bastion.policies.rate_limit.config import HEADER_KIND, RateLimitConfig, limit_name

TOO_MANY_REQUESTS = "Too many requests; retry after the time given in Retry-After."
"""Public detail of the 429."""
BACKEND_UNAVAILABLE = "The rate limiter is unavailable; the request was refused."
"""Public detail of the 503 when Redis is down and on_backend_error is deny."""

CORS_PREFLIGHT = "cors_preflight"  # the flag the cors policy sets in request.extra
_DECISIONS = "decisions"
_SEPARATOR = "\x00"  # never inside an IP, a route name or a header value (parser rule)


class _Limit:
    """One compiled limit: its rule, header name and how its key is built."""

    __slots__ = ("headers", "kinds", "limit", "name", "prefix", "rule")

    def __init__(self, scope: str, name: str, rule: Rule, kinds: list[str]) -> None:
        self.name = name
        self.rule = rule
        self.limit = rule.limit
        self.kinds = tuple(
            (kind, kind[len(HEADER_KIND) :].encode() if kind.startswith(HEADER_KIND) else b"")
            for kind in kinds
        )
        self.prefix = f"{scope}{_SEPARATOR}{name}"
        if rule.algorithm == "sliding_log":
            # Its state has another shape (a Redis list): a reload that switches a limit to or
            # from the log must not find the other algorithm's state under the same key.
            self.prefix += f"{_SEPARATOR}log"

    def key(self, ctx: RequestContext) -> str:
        """The counter key of `ctx` for this limit."""
        parts = [self.prefix]
        for kind, header in self.kinds:
            value: str | None
            if kind == "ip":
                value = ctx.request.client_ip
            elif kind == "consumer":
                value = ctx.identity.consumer_id if ctx.identity is not None else None
            elif kind == "credential":
                identity = ctx.identity
                value = identity.credential_id if identity is not None else None
            elif kind == "route":
                value = ctx.route or ""
            else:
                raw = ctx.request.headers.get(header)
                value = None if raw is None else raw.decode("latin-1")
            if value is None:
                # An anonymous caller or a missing header is counted by address, never pooled
                # with every other such caller (one client could exhaust it for all).
                parts.append(f"{kind}?ip={ctx.request.client_ip}")
            else:
                parts.append(f"{kind}={value}")
        return _SEPARATOR.join(parts)


class RateLimitPolicy(Policy[RateLimitConfig]):
    """Admit at most the configured rate per key; answer 429 with Retry-After beyond it.

    Every limit of the policy is checked at once and the request is counted on all of them
    only if all admit it, so refused requests never use up quota. The counters come from the
    gateway (`deps.counters`): in memory the check is synchronous; with Redis the access
    phase returns an awaitable. Responses of the route carry `RateLimit-Policy` and
    `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10:
    https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/).
    """

    name = "rate_limit"
    priority = Priority.RATE_LIMIT

    def __init__(self, config: RateLimitConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        resolved = config.resolved()
        scope = f"{deps.service or '*'}/{deps.route or '*'}"
        self._limits = tuple(
            _Limit(
                scope,
                limit_name(item, len(resolved)),
                Rule(item.limit, item.window * MICROS, item.burst, item.algorithm),
                item.key,
            )
            for item in resolved
        )
        self._counters = deps.counters
        self._on_error = config.on_backend_error
        self._exclude_preflight = config.exclude_preflight
        self._headers = config.headers
        self._legacy = config.legacy_headers
        self._policy_header = ", ".join(
            f'"{limit.name}";q={item.limit};w={item.window}'
            for limit, item in zip(self._limits, resolved, strict=True)
        ).encode()

    def checks(self, ctx: RequestContext) -> list[Check]:
        """The (key, rule) pairs `ctx` is counted against."""
        return [(limit.key(ctx), limit.rule) for limit in self._limits]

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        if self._exclude_preflight and ctx.request.extra.get(CORS_PREFLIGHT):
            return None
        result = self._counters.hit(self.checks(ctx), on_error=self._on_error)
        if result is None or isinstance(result, tuple):
            self._apply(ctx, result)
            return None
        return self._finish(ctx, result)

    async def _finish(self, ctx: RequestContext, pending: Awaitable[Decisions | None]) -> None:
        self._apply(ctx, await pending)

    def _apply(self, ctx: RequestContext, decisions: Decisions | None) -> None:
        if decisions is None:  # backend down and on_backend_error is allow or deny
            if self._on_error == "deny":
                raise ServiceUnavailable(BACKEND_UNAVAILABLE, code="rate_limit_unavailable")
            return
        ctx.state(self)[_DECISIONS] = decisions
        retry = 0
        refused = False
        for decision in decisions:
            if not decision.allowed:
                refused = True
                retry = max(retry, decision.retry_after_us)
        if refused:
            raise RateLimited(TOO_MANY_REQUESTS, retry_after=max(ceil_seconds(retry), 1))

    @override
    def header_filter(self, ctx: RequestContext) -> None:
        if not (self._headers or self._legacy):
            return
        decisions = ctx.state(self).get(_DECISIONS)
        headers = ctx.response_headers
        if self._headers:
            headers.set(b"ratelimit-policy", self._policy_header)
        if not isinstance(decisions, tuple):
            return  # not counted: a preflight, an earlier reject, or the backend was down
        if self._headers:
            value = ", ".join(
                f'"{limit.name}";r={decision.remaining};t={ceil_seconds(decision.reset_us)}'
                for limit, decision in zip(self._limits, decisions, strict=True)
            )
            headers.set(b"ratelimit", value.encode())
        if self._legacy:
            # The legacy trio describes one limit: the one closest to refusing.
            index = min(range(len(decisions)), key=lambda i: decisions[i].remaining)
            decision = decisions[index]
            headers.set(b"x-ratelimit-limit", str(self._limits[index].limit).encode())
            headers.set(b"x-ratelimit-remaining", str(decision.remaining).encode())
            headers.set(b"x-ratelimit-reset", str(ceil_seconds(decision.reset_us)).encode())
