"""The ip_filter policy: allow and deny lists of client networks."""

from __future__ import annotations

from typing_extensions import override

from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyDeps, Priority
from bastion.errors import Forbidden
from bastion.http.cidr import CIDRSet
from bastion.policies.ip_filter.config import IPFilterConfig

IP_DENIED = "Requests from this address are not allowed."
"""Public detail of the 403 for a client address refused by the filter."""


class IPFilterPolicy(Policy[IPFilterConfig]):
    """Refuse clients by address: `deny` always wins, and a non-empty `allow` admits only itself.

    Checks `ctx.request.client_ip`, which is the socket peer unless the trusted_proxy policy
    took it from a trusted proxy's forwarding header. An address that cannot be parsed is in
    neither list, so it is refused whenever `allow` is set.
    """

    name = "ip_filter"
    priority = Priority.HARDEN + 50

    def __init__(self, config: IPFilterConfig, deps: PolicyDeps) -> None:
        super().__init__(config, deps)
        self._allow = CIDRSet(config.allow)
        self._deny = CIDRSet(config.deny)

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        ip = ctx.request.client_ip
        if self._deny.contains(ip) or not (self._allow.is_empty or self._allow.contains(ip)):
            raise Forbidden(IP_DENIED, code="ip_denied")
        return None
