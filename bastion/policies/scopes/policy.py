"""The scopes policy: the authenticated caller's OAuth scopes must cover the route's."""

from __future__ import annotations

from dataclasses import dataclass

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import InsufficientScope, Unauthenticated
from bastion.policies.scopes.config import ScopesConfig

NOT_AUTHENTICATED = "Authentication is required."
"""Public detail of the 401 when no authentication policy identified the caller."""
SCOPE_MISSING = "The access token does not carry the scope this request requires."
"""Public detail of the 403 `insufficient_scope` (RFC 6750 §3.1)."""


@dataclass(frozen=True, slots=True)
class _Rule:
    scopes: frozenset[str]
    match_all: bool
    challenge: str

    def allows(self, granted: frozenset[str]) -> bool:
        if not self.scopes:
            return True
        if self.match_all:
            return self.scopes <= granted
        return not self.scopes.isdisjoint(granted)


def _rule(required: list[str], match: str) -> _Rule:
    # RFC 6750 §3: the challenge names the scopes needed, space-separated, in config order.
    challenge = f'Bearer realm="bastion", error="insufficient_scope", scope="{" ".join(required)}"'
    return _Rule(frozenset(required), match == "all", challenge)


class ScopesPolicy(Policy[ScopesConfig]):
    """Require OAuth scopes per route (and per method), after authentication.

    No identity is a 401 (an authentication policy must run first on the route); scopes that
    do not satisfy the rule are a 403 with `WWW-Authenticate: Bearer error="insufficient_scope"`
    naming the scopes needed (RFC 6750 §3.1).
    """

    name = "scopes"
    priority = Priority.AUTHORIZE

    def __init__(self, config: ScopesConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self._default = _rule(config.required, config.match)
        self._by_method = {
            method: _rule(rule.required, rule.match) for method, rule in config.methods.items()
        }

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        identity = ctx.identity
        if identity is None:
            raise Unauthenticated(
                NOT_AUTHENTICATED, challenge='Bearer realm="bastion"', code="unauthenticated"
            )
        rule = self._by_method.get(ctx.request.method, self._default)
        if not rule.allows(identity.scopes):
            raise InsufficientScope(
                SCOPE_MISSING, headers=[(b"www-authenticate", rule.challenge.encode())]
            )
        return None
