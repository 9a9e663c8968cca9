"""`auth: any` on a route: several authenticators tried in order, the first success wins.

How this works: the route's authenticating policies stay in the chain for their other phases
(rewrite, header filters, log), but their access phases run only through one `AnyOf` group,
placed at the highest member's priority. The group calls each member's `access` until one sets
the identity; a member's `Unauthenticated` is remembered and the next one tried. When none
succeeds the first failure is raised, carrying every member's `WWW-Authenticate` challenge
(RFC 9110 §11.6.1 allows several). Any other rejection (a store outage: 503) ends the attempt
at once, so authentication still fails closed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

from typing_extensions import override

from bastion.core.chain import Chain
from bastion.core.context import RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyConfig, PolicyDeps
from bastion.errors import Unauthenticated

AnyPolicy = Policy[Any]


class AnyOf(Policy[PolicyConfig]):
    """The authenticators of a route tried in order; the first that succeeds wins."""

    name = "auth_any"
    priority = 0  # set per instance from the members

    def __init__(self, members: Sequence[AnyPolicy], deps: PolicyDeps) -> None:
        super().__init__(PolicyConfig(), deps)
        self.members = tuple(sorted(members, key=lambda p: p.priority, reverse=True))
        self.priority = max(p.priority for p in self.members)  # type: ignore[misc]  # per group

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        failures: list[Unauthenticated] = []
        for index, member in enumerate(self.members):
            try:
                pending = member.access(ctx)
            except Unauthenticated as failure:
                failures.append(failure)
                continue
            if pending is not None:
                return self._rest(ctx, pending, index, failures)
            if ctx.identity is not None:
                return None
        raise _combined(failures)

    async def _rest(
        self,
        ctx: RequestContext,
        pending: Awaitable[None],
        index: int,
        failures: list[Unauthenticated],
    ) -> None:
        try:
            await pending
        except Unauthenticated as failure:
            failures.append(failure)
        if ctx.identity is not None:
            return
        for member in self.members[index + 1 :]:
            try:
                result = member.access(ctx)
                if result is not None:
                    await result
            except Unauthenticated as failure:
                failures.append(failure)
                continue
            if ctx.identity is not None:
                return
        raise _combined(failures)


NO_CREDENTIAL = "Authentication is required."


def _combined(failures: list[Unauthenticated]) -> Unauthenticated:
    """The first failure, with the challenges of the others added."""
    if not failures:  # every member passed without establishing an identity: fail closed
        return Unauthenticated(NO_CREDENTIAL, challenge='Bearer realm="bastion"')
    first = failures[0]
    seen = {value for name, value in first.headers if name == b"www-authenticate"}
    for other in failures[1:]:
        for name, value in other.headers:
            if name == b"www-authenticate" and value not in seen:
                first.headers.append((name, value))
                seen.add(value)
    return first


def any_of_chain(policies: list[AnyPolicy], deps: PolicyDeps) -> Chain:
    """A chain where the authenticators among `policies` are tried as one `AnyOf` group."""
    members = [p for p in policies if p.authenticates]
    if len(members) < 2:
        return Chain(policies)
    return Chain([*policies, AnyOf(members, deps)], grouped=members)
