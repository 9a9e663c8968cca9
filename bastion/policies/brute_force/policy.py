"""The brute_force policy: count failed authentications and lock out their source.

Failures are 401 answers on the route: a refusal by an authentication policy (`api_key`,
`basic_auth`, `jwt`, `introspection`) or a 401 from the upstream, for requests that carried a
credential (a first request without one, answered by a challenge, is not an attempt). Each
failure is counted per client address and per (client address, identity attempted: the Basic
username or the API key id) in the gateway's counters, memory or Redis. Past `max_failures`
for a pair, that pair is locked; past `max_ip_failures`, the address is. An identity alone is
never locked: an attacker elsewhere cannot lock a victim out. See `algorithm.py` for how a
lock lives in the counters. With memory counters every phase is synchronous; with Redis the
access phase awaits one pipelined round trip and the log phase counts in a background task.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Awaitable, Coroutine
from typing import Final

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.counters.base import Check, Decisions
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
from bastion.store.secrets import parse_api_key

LOCKED_OUT: Final = (
    "Too many failed authentication attempts; retry after the time given in Retry-After."
)
"""Public detail of the 429 for a locked source."""
BACKEND_UNAVAILABLE: Final = "The failed-authentication counter is unavailable."
"""Public detail of the 503 when Redis is down and on_backend_error is deny."""

AUTH_POLICIES: Final = frozenset({"api_key", "basic_auth", "jwt", "introspection"})
"""Policies whose 401 is a failed authentication."""

_SEP = "\x00"
_MAX_USERNAME_BYTES = 1024
_ATTEMPT = "attempt"


def _digest(value: str) -> str:
    """A short fixed-size stand-in for user input inside counter keys."""
    return hashlib.blake2b(value.encode(), digest_size=12).hexdigest()


class _Attempt:
    """What the access phase learned about one request's credential."""

    __slots__ = ("identity", "ip")

    def __init__(self, ip: str, identity: str | None) -> None:
        self.ip = ip
        self.identity = identity


class BruteForcePolicy(Policy[BruteForceConfig]):
    """Refuse with 429 and Retry-After the sources of repeated failed authentications."""

    name = "brute_force"
    priority = Priority.AUTHENTICATE + 40

    def __init__(self, config: BruteForceConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self._counters = deps.counters
        self._on_error = config.on_backend_error
        self._api_key_header = config.api_key_header.lower().encode()
        self._pair_rule = failure_rule(config.max_failures, config.window)
        self._ip_rule = failure_rule(config.max_ip_failures, config.window)
        self._lock_rule = lock_rule(config.lockout)
        self._prefix = f"bf{_SEP}{deps.service or '*'}/{deps.route or '*'}{_SEP}"
        self._tasks: set[asyncio.Task[None]] = set()

    def _attempted(self, ctx: RequestContext) -> _Attempt | None:
        """The identity a request's credential names; None when it carries no credential."""
        headers = ctx.request.headers
        ip = ctx.request.client_ip
        key = headers.get(self._api_key_header)
        if key is not None:
            key_id = parse_api_key(key.decode("latin-1"))
            return _Attempt(ip, None if key_id is None else f"key:{key_id}")
        authorization = headers.get(b"authorization")
        if authorization is None:
            return None
        scheme, _, rest = authorization.partition(b" ")
        if scheme.lower() != b"basic":
            return _Attempt(ip, None)  # a bearer token names no identity before it is verified
        try:
            decoded = base64.b64decode(rest.strip(b" \t"), validate=True)
        except binascii.Error:
            return _Attempt(ip, None)
        username, colon, _ = decoded.partition(b":")
        if not colon or not username or len(username) > _MAX_USERNAME_BYTES:
            return _Attempt(ip, None)
        return _Attempt(ip, "user:" + username.decode("utf-8", "replace"))

    def _ip_key(self, kind: str, ip: str) -> str:
        return f"{self._prefix}{kind}{_SEP}{ip}"

    def _pair_key(self, kind: str, ip: str, identity: str) -> str:
        return f"{self._prefix}{kind}{_SEP}{ip}{_SEP}{_digest(identity)}"

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        attempt = self._attempted(ctx)
        if attempt is None:
            return None  # no credential: nothing to guess with, nothing to count
        ctx.state(self)[_ATTEMPT] = attempt
        ip = attempt.ip
        checks: list[Check] = [(self._ip_key("lock-ip", ip), PROBE)]
        if attempt.identity is not None:
            checks.append((self._pair_key("lock-pair", ip, attempt.identity), PROBE))
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
                raise ServiceUnavailable(BACKEND_UNAVAILABLE, code="brute_force_unavailable")
            return
        retry = retry_after_seconds(decisions)
        if retry is not None:
            raise RateLimited(LOCKED_OUT, retry_after=retry, code="too_many_failures")

    @staticmethod
    def failed(ctx: RequestContext) -> bool:
        """Whether the request ended in a failed authentication (a 401)."""
        if ctx.status == 401:
            return True
        reject = ctx.reject
        return ctx.rejected_by in AUTH_POLICIES and reject is not None and reject.status == 401

    @override
    def log(self, ctx: RequestContext) -> None:
        attempt = ctx.state(self).get(_ATTEMPT)
        if not isinstance(attempt, _Attempt) or ctx.rejected_by == self.name:
            return
        if not self.failed(ctx):
            return
        ip = attempt.ip
        self._count(self._ip_key("fail-ip", ip), self._ip_rule, self._ip_key("lock-ip", ip))
        if attempt.identity is not None:
            self._count(
                self._pair_key("fail-pair", ip, attempt.identity),
                self._pair_rule,
                self._pair_key("lock-pair", ip, attempt.identity),
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
