"""The brute_force policy: count failed authentications and lock out their source.

Failures are 401 answers on the route: a refusal by an authentication policy (`api_key`,
`basic_auth`, `jwt`, `introspection`) or a 401 from the upstream, for requests that carried a
credential (a first request without one, answered by a challenge, is not an attempt). Each
failure is counted per client address and per (client address, identity attempted: the Basic
username or the API key id) in the gateway's counters, memory or Redis. Past `max_failures`
for a pair, that pair is locked; past `max_ip_failures`, the address is. An identity alone is
never locked: an attacker elsewhere cannot lock a victim out. The counting lives in
`guard.FailureGuard`, shared with the authorization server's endpoints, which count their own
failures: the policy leaves requests on `oauth.*` routes to them. With memory counters every
phase is synchronous; with Redis the access phase awaits one pipelined round trip and the log
phase counts in a background task.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.policies.brute_force.config import BruteForceConfig
from bastion.policies.brute_force.guard import (
    BACKEND_UNAVAILABLE,
    LOCKED_OUT,
    FailureGuard,
    scope_prefix,
)
from bastion.store.secrets import parse_api_key

__all__ = ["AUTH_POLICIES", "BACKEND_UNAVAILABLE", "LOCKED_OUT", "BruteForcePolicy"]

AUTH_POLICIES: Final = frozenset({"api_key", "basic_auth", "jwt", "introspection"})
"""Policies whose 401 is a failed authentication."""
SELF_COUNTING_ROUTES: Final = "oauth."
"""Route-name prefix of the gateway's own endpoints, which count their failures themselves."""

_MAX_USERNAME_BYTES = 1024
_ATTEMPT = "attempt"


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
        self._api_key_header = config.api_key_header.lower().encode()
        self.guard = FailureGuard(config, deps.counters, scope_prefix(deps.service, deps.route))

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

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        attempt = self._attempted(ctx)
        if attempt is None:
            return None  # no credential: nothing to guess with, nothing to count
        route = ctx.route
        if route is not None and route.startswith(SELF_COUNTING_ROUTES):
            return None  # the authorization server checks and counts these itself
        ctx.state(self)[_ATTEMPT] = attempt
        return self.guard.check(attempt.ip, attempt.identity)

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
        if self.failed(ctx):
            self.guard.failed(attempt.ip, attempt.identity)
