"""`auth: any`: several authenticators on one route, the first that succeeds wins."""

from __future__ import annotations

import asyncio

import pytest
from typing_extensions import override

from bastion.core.auth import AnyOf, any_of_chain
from bastion.core.chain import Chain
from bastion.core.context import Identity, RequestContext
from bastion.core.policy import PhaseResult, Policy, PolicyConfig, PolicyDeps, Priority
from bastion.errors import Reject, ServiceUnavailable, Unauthenticated
from tests.support import make_ctx

pytestmark = pytest.mark.anyio


class _Auth(Policy[PolicyConfig]):
    """A test authenticator: accepts `x-<name>: ok`, refuses anything else."""

    authenticates = True
    priority = Priority.AUTHENTICATE

    def __init__(self, name: str, *, slow: bool = False, priority: int = 0) -> None:
        super().__init__(PolicyConfig(), PolicyDeps())
        self.name = name  # type: ignore[misc]  # test policies are named per instance
        self.priority = Priority.AUTHENTICATE + priority  # type: ignore[assignment,misc]  # per-instance order
        self.slow = slow
        self.calls = 0

    @override
    def access(self, ctx: RequestContext) -> PhaseResult:
        self.calls += 1
        if self.slow:
            return self._later(ctx)
        self._decide(ctx)
        return None

    async def _later(self, ctx: RequestContext) -> None:
        await asyncio.sleep(0)
        self._decide(ctx)

    def _decide(self, ctx: RequestContext) -> None:
        if ctx.request.headers.get(f"x-{self.name}".encode()) == b"ok":
            ctx.authenticate(Identity(consumer_id=self.name, method=self.name))
            return
        raise Unauthenticated("no", challenge=f'{self.name.title()} realm="bastion"')


class _Down(_Auth):
    @override
    def _decide(self, ctx: RequestContext) -> None:
        raise ServiceUnavailable("store down")


async def _access(chain: Chain, ctx: RequestContext) -> None:
    pending = chain.access(ctx)
    if pending is not None:
        await pending


def _ctx(*present: str) -> RequestContext:
    return make_ctx(headers=[(b"host", b"a"), *((f"x-{n}".encode(), b"ok") for n in present)])


@pytest.mark.parametrize("slow", [False, True], ids=["sync", "async"])
async def test_the_second_authenticator_succeeds_when_the_first_refuses(slow: bool) -> None:
    key, token = _Auth("key", slow=slow, priority=30), _Auth("token", slow=slow, priority=10)
    chain = any_of_chain([key, token], PolicyDeps())
    ctx = _ctx("token")
    await _access(chain, ctx)
    assert ctx.identity is not None
    assert ctx.identity.consumer_id == "token"
    assert ctx.reject is None


async def test_the_first_success_stops_the_search() -> None:
    key, token = _Auth("key", priority=30), _Auth("token", priority=10)
    ctx = _ctx("key", "token")
    await _access(any_of_chain([key, token], PolicyDeps()), ctx)
    assert ctx.identity is not None
    assert ctx.identity.consumer_id == "key"
    assert token.calls == 0


@pytest.mark.parametrize("slow", [False, True], ids=["sync", "async"])
async def test_when_all_refuse_the_401_carries_every_challenge(slow: bool) -> None:
    chain = any_of_chain(
        [_Auth("key", slow=slow, priority=30), _Auth("token", slow=slow, priority=10)],
        PolicyDeps(),
    )
    ctx = _ctx()
    with pytest.raises(Unauthenticated) as refused:
        await _access(chain, ctx)
    challenges = [v for n, v in refused.value.headers if n == b"www-authenticate"]
    assert challenges == [b'Key realm="bastion"', b'Token realm="bastion"']
    assert ctx.identity is None
    assert ctx.rejected_by == AnyOf.name


async def test_a_store_outage_fails_closed_instead_of_trying_the_next() -> None:
    chain = any_of_chain([_Down("key", priority=30), _Auth("token", priority=10)], PolicyDeps())
    ctx = _ctx("token")
    with pytest.raises(ServiceUnavailable):
        await _access(chain, ctx)
    assert ctx.identity is None


async def test_a_shared_authenticator_still_enforces_on_routes_without_any() -> None:
    shared, other = _Auth("key", priority=30), _Auth("token", priority=10)
    any_of_chain([shared, other], PolicyDeps())  # another route groups the same instance
    ctx = _ctx("token")
    with pytest.raises(Reject):
        await _access(Chain([shared, other]), ctx)  # `all`: the key is still required


async def test_a_single_authenticator_is_not_grouped() -> None:
    only = _Auth("key")
    chain = any_of_chain([only], PolicyDeps())
    assert not any(isinstance(p, AnyOf) for p in chain.policies)


def test_members_run_in_priority_order() -> None:
    group = AnyOf([_Auth("low", priority=1), _Auth("high", priority=30)], PolicyDeps())
    assert [m.name for m in group.members] == ["high", "low"]
    assert group.priority == Priority.AUTHENTICATE + 30
