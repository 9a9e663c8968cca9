"""Whole-config rule for quotas: on a route without authentication, only per-address quotas.

A quota per consumer on a route where nobody authenticates would count every anonymous caller
by address instead (the shared key builder's fallback), which is not what a per-consumer quota
promises; a quota keyed by route or header alone would let one anonymous client use up (or
pick) the quota of others. This check finds such routes before the gateway starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bastion.config.models import GatewayConfig
    from bastion.config.policies import PoliciesConfig

AUTHENTICATORS = ("api_key", "basic_auth", "jwt", "introspection")
"""Policies that establish the caller's identity."""


def anonymous_quota(config: GatewayConfig) -> tuple[str, str] | None:
    """The first quota that needs identified callers on a route without enforcing authn.

    Returns:
        (dotted path of the quota, message), or None when every such quota is safe. A route
        merges global, service and route policies, the most specific winning by name.
    """
    global_block = config.global_policies
    for s_index, service in enumerate(config.services):
        for r_index, route in enumerate(service.routes):
            chosen: tuple[str, object] | None = None
            for where, block in (
                ("global_policies", global_block),
                (f"services[{s_index}].policies", service.policies),
                (f"services[{s_index}].routes[{r_index}].policies", route.policies),
            ):
                quota = getattr(block, "quota", None)
                if quota is not None:
                    chosen = (f"{where}.quota", quota)
            if chosen is None or not getattr(chosen[1], "needs_identity", False):
                continue
            blocks = (global_block, service.policies, route.policies)
            if not _authenticates_merged(blocks):
                message = (
                    f"route {route.name!r} has no enforcing authentication policy, so callers "
                    "are anonymous; add one (api_key, basic_auth, jwt, introspection) or key "
                    "the quota by ip"
                )
                return chosen[0], message
    return None


def _authenticates_merged(blocks: tuple[PoliciesConfig, ...]) -> bool:
    """Whether the merged policies (the most specific winning by name) authenticate."""
    merged: dict[str, object] = {}
    for block in blocks:
        merged.update(block.configured())
    return any(
        name in merged and getattr(merged[name], "mode", "enforce") == "enforce"
        for name in AUTHENTICATORS
    )
