"""Lockout bookkeeping of one scope: probe the locks before an attempt, count a failure after.

The brute_force policy and the authorization server's endpoints (token, introspection,
revocation, login page) share it, so both lock the same way: failures are counted per client
address and per (client address, identity attempted); past `max_failures` the pair is locked,
past `max_ip_failures` the address. An identity alone is never locked. Keys carry the scope
(`bf`, NUL, `<service>/<route>`, NUL; `*` for any), so guards built with the same scope and
counters share their counts and locks. See `algorithm.py` for how a lock lives in the counters.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Coroutine
from typing import Final

from bastion.core.policy import PhaseResult
from bastion.counters.base import Check, Counters, Decisions
from bastion.errors import RateLimited, ServiceUnavailable
from bastion.policies.brute_force.algorithm import (
    PROBE,
    failure_rule,
    lock_rule,
    reaches_threshold,
    retry_after_seconds,
)
from bastion.policies.brute_force.config import BruteForceConfig
from bastion.policies.rate_limit.algorithm import Rule

LOCKED_OUT: Final = (
    "Too many failed authentication attempts; retry after the time given in Retry-After."
)
"""Public detail of the 429 for a locked source."""
BACKEND_UNAVAILABLE: Final = "The failed-authentication counter is unavailable."
"""Public detail of the 503 when Redis is down and on_backend_error is deny."""
LOCKED_CODE: Final = "too_many_failures"
"""Stable `code` of the 429 for a locked source."""
UNAVAILABLE_CODE: Final = "brute_force_unavailable"
"""Stable `code` of the 503 when the counters are down and on_backend_error is deny."""

_SEP: Final = "\x00"


def _digest(value: str) -> str:
    """A short fixed-size stand-in for user input inside counter keys."""
    return hashlib.blake2b(value.encode(), digest_size=12).hexdigest()


def scope_prefix(service: str | None, route: str | None) -> str:
    """The key prefix of a scope: a route, a service's routes (`*`) or global (`*/*`)."""
    return f"bf{_SEP}{service or '*'}/{route or '*'}{_SEP}"


class FailureGuard:
    """Probes and counts failed authentications of one scope in the gateway's counters.

    With memory counters every call is synchronous; with Redis `check` returns an awaitable
    (one pipelined round trip) and `failed` counts in a background task.
    """

    def __init__(self, config: BruteForceConfig, counters: Counters, prefix: str) -> None:
        self.config = config
        self._counters = counters
        self._on_error = config.on_backend_error
        self._pair_rule = failure_rule(config.max_failures, config.window)
        self._ip_rule = failure_rule(config.max_ip_failures, config.window)
        self._lock_rule = lock_rule(config.lockout)
        self._prefix = prefix
        self._tasks: set[asyncio.Task[None]] = set()

    def _ip_key(self, kind: str, ip: str) -> str:
        return f"{self._prefix}{kind}{_SEP}{ip}"

    def _pair_key(self, kind: str, ip: str, identity: str) -> str:
        return f"{self._prefix}{kind}{_SEP}{ip}{_SEP}{_digest(identity)}"

    def check(self, ip: str, identity: str | None) -> PhaseResult:
        """Refuse a locked address or (address, identity) pair.

        Returns:
            None when decided at once, or an awaitable that raises when it decides to refuse.

        Raises:
            RateLimited: the source is locked (429 with Retry-After).
            ServiceUnavailable: the counters are down and `on_backend_error` is deny.
        """
        checks: list[Check] = [(self._ip_key("lock-ip", ip), PROBE)]
        if identity is not None:
            checks.append((self._pair_key("lock-pair", ip, identity), PROBE))
        result = self._counters.hit(checks, on_error=self._on_error)
        if result is None or isinstance(result, tuple):
            self._decide(result)
            return None
        return self._decide_later(result)

    async def _decide_later(self, pending: Awaitable[Decisions | None]) -> None:
        self._decide(await pending)

    def _decide(self, decisions: Decisions | None) -> None:
        if decisions is None:  # backend down and on_backend_error is allow or deny
            if self._on_error == "deny":
                raise ServiceUnavailable(BACKEND_UNAVAILABLE, code=UNAVAILABLE_CODE)
            return
        retry = retry_after_seconds(decisions)
        if retry is not None:
            raise RateLimited(LOCKED_OUT, retry_after=retry, code=LOCKED_CODE)

    def failed(self, ip: str, identity: str | None) -> None:
        """Count one failed attempt from `ip` (with `identity`, when one was named)."""
        self._count(self._ip_key("fail-ip", ip), self._ip_rule, self._ip_key("lock-ip", ip))
        if identity is not None:
            self._count(
                self._pair_key("fail-pair", ip, identity),
                self._pair_rule,
                self._pair_key("lock-pair", ip, identity),
            )

    def _count(self, fail_key: str, rule: Rule, lock_key: str) -> None:
        result = self._counters.hit([(fail_key, rule)], on_error=self._on_error)
        if result is None:
            return
        if isinstance(result, tuple):
            if reaches_threshold(result[0]):
                self._lock(lock_key)
            return
        self._spawn(self._count_later(result, lock_key))

    async def _count_later(self, pending: Awaitable[Decisions | None], lock_key: str) -> None:
        decisions = await pending
        if decisions is not None and reaches_threshold(decisions[0]):
            self._lock(lock_key)

    def _lock(self, lock_key: str) -> None:
        result = self._counters.hit([(lock_key, self._lock_rule)], on_error=self._on_error)
        if result is not None and not isinstance(result, tuple):
            self._spawn(self._settle(result))

    @staticmethod
    async def _settle(pending: Awaitable[Decisions | None]) -> None:
        await pending

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
