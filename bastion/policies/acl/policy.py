"""The acl policy: admit or refuse authenticated callers by consumer group."""

from __future__ import annotations

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import Forbidden, Unauthenticated
from bastion.policies.acl.config import ACLConfig

NOT_AUTHENTICATED = "Authentication is required."
"""Public detail of the 401 when no authentication policy identified the caller."""
GROUP_DENIED = "The caller is not allowed to use this resource."
"""Public detail of the 403 for a caller refused by the ACL (which group is not said)."""


class ACLPolicy(Policy[ACLConfig]):
    """Refuse callers by group: membership of any `deny` group wins over `allow`.

    With a non-empty `allow`, a caller must belong to at least one allowed group. Groups come
    from the authentication policy (the jwt policy's `groups_claim`, or the consumer's groups).
    """

    name = "acl"
    priority = Priority.AUTHORIZE + 10

    def __init__(self, config: ACLConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self._allow = frozenset(config.allow)
        self._deny = frozenset(config.deny)

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        identity = ctx.identity
        if identity is None:
            raise Unauthenticated(
                NOT_AUTHENTICATED, challenge='Bearer realm="bastion"', code="unauthenticated"
            )
        groups = identity.groups
        if not self._deny.isdisjoint(groups) or (self._allow and self._allow.isdisjoint(groups)):
            raise Forbidden(GROUP_DENIED, code="acl_denied")
        return None
