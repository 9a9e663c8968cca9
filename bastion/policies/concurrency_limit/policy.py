"""The concurrency_limit policy: a slot per request in flight, taken in access, freed in log.

How this works: `access` takes a lease on the request's key (built exactly as rate_limit builds
its keys) from the lease store beside the gateway's counters: process memory, or Redis sorted
sets shared by every node (`bastion.counters.leases`). Over `max`, the request is refused with
429 and `Retry-After: 1` (a slot frees when any request ends, which cannot be predicted). The
lease is kept in the request's state and released in `log`, which the gateway runs once at the
end of every request that reached the chain: response sent, client gone, upstream error or
timeout, or refused by a later policy. `Lease.release` is idempotent, so a slot is freed once.
"""

from __future__ import annotations

from collections.abc import Awaitable

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.counters.leases import Grant, Lease, leases_for
from bastion.errors import RateLimited, ServiceUnavailable
from bastion.policies.concurrency_limit.config import ConcurrencyLimitConfig
from bastion.policies.rate_limit.algorithm import MICROS, Rule
from bastion.policies.rate_limit.policy import _Limit  # rate_limit's key builder, shared

TOO_MANY_IN_FLIGHT = "Too many requests in progress; retry after the time given in Retry-After."
"""Public detail of the 429."""
BACKEND_UNAVAILABLE = "The concurrency limiter is unavailable; the request was refused."
"""Public detail of the 503 when Redis is down and on_backend_error is deny."""
CODE = "concurrency_limited"
RETRY_AFTER = 1
_LEASE = "lease"


class ConcurrencyLimitPolicy(Policy[ConcurrencyLimitConfig]):
    """Admit at most `max` requests in flight per key; answer 429 beyond it."""

    name = "concurrency_limit"
    # After rate_limit (a request it refuses never takes a slot), before validation.
    priority = Priority.RATE_LIMIT - 10

    def __init__(self, config: ConcurrencyLimitConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        scope = f"{deps.service or '*'}/{deps.route or '*'}"
        # The rule is unused by the key builder; it carries the limit for completeness.
        self._keys = _Limit(scope, self.name, Rule(config.max, MICROS), config.key)
        self._max = config.max
        self._lease_us = config.lease_seconds * MICROS
        self._on_error = config.on_backend_error
        self.leases = leases_for(deps.counters, deps.clock)

    def key(self, ctx: RequestContext) -> str:
        """The lease key of `ctx`."""
        return self._keys.key(ctx)

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        result = self.leases.acquire(
            self._keys.key(ctx), self._max, lease_us=self._lease_us, on_error=self._on_error
        )
        if result is None or isinstance(result, Grant):
            self._apply(ctx, result)
            return None
        return self._finish(ctx, result)

    async def _finish(self, ctx: RequestContext, pending: Awaitable[Grant | None]) -> None:
        self._apply(ctx, await pending)

    def _apply(self, ctx: RequestContext, grant: Grant | None) -> None:
        if grant is None:  # Redis down and on_backend_error is allow or deny
            if self._on_error == "deny":
                raise ServiceUnavailable(BACKEND_UNAVAILABLE, code="concurrency_limit_unavailable")
            return
        if grant.lease is not None:
            ctx.state(self)[_LEASE] = grant.lease
        if not grant.allowed:
            raise RateLimited(TOO_MANY_IN_FLIGHT, retry_after=RETRY_AFTER, code=CODE)

    @override
    def log(self, ctx: RequestContext) -> None:
        lease = ctx.state(self).pop(_LEASE, None)
        if isinstance(lease, Lease):
            lease.release()
