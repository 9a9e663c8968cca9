"""The introspection policy's phases against a scripted endpoint (no sockets): cache, 401, 503."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from bastion.clock import FakeClock
from bastion.core.context import RequestContext
from bastion.core.policy import PolicyDeps
from bastion.errors import ServiceUnavailable, Unauthenticated
from bastion.policies.introspection.client import (
    IntrospectionClient,
    IntrospectionFetchError,
    Reply,
    basic_credentials,
)
from bastion.policies.introspection.config import IntrospectionConfig
from bastion.policies.introspection.policy import TOKEN_INVALID, TOKEN_MISSING, IntrospectionPolicy
from tests.support import make_ctx

pytestmark = pytest.mark.anyio


class ScriptedEndpoint(IntrospectionClient):
    """Stands in for the authorization server: answers from a table, counts calls."""

    def __init__(self) -> None:
        super().__init__(
            "https://as.example/introspect",
            authorization=None,
            ssl_context=None,
            timeout=1.0,
            max_bytes=1000,
        )
        self.answers: dict[str, Reply | Exception] = {}
        self.asked: list[str] = []
        self.gate: asyncio.Event | None = None

    async def introspect(self, token: str) -> Reply:
        self.asked.append(token)
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers.get(token, Reply(200, b'{"active": false}'))
        if isinstance(answer, Exception):
            raise answer
        return answer


def active(clock: FakeClock, *, ttl: float = 600, **members: object) -> Reply:
    document = {"active": True, "sub": "alice", "scope": "read", "exp": clock.time() + ttl}
    return Reply(200, orjson.dumps({**document, **members}))


def make_policy(
    clock: FakeClock, **settings: object
) -> tuple[IntrospectionPolicy, ScriptedEndpoint]:
    config = IntrospectionConfig.model_validate(
        {
            "introspection_endpoint": "https://as.example/introspect",
            "client_id": "gateway",
            "client_secret": "secret",
            **settings,
        }
    )
    policy = IntrospectionPolicy(config, PolicyDeps(clock=clock))
    endpoint = ScriptedEndpoint()
    policy.client = endpoint
    return policy, endpoint


def bearer(token: str) -> RequestContext:
    return make_ctx(headers=[(b"authorization", f"Bearer {token}".encode())])


async def run(policy: IntrospectionPolicy, ctx: RequestContext) -> None:
    pending = policy.access(ctx)
    if pending is not None:
        await pending


async def test_active_token_authenticates_and_is_served_from_cache():
    clock = FakeClock()
    policy, endpoint = make_policy(clock)
    endpoint.answers["tok"] = active(clock)
    ctx = bearer("tok")
    await run(policy, ctx)
    assert ctx.identity is not None
    assert ctx.identity.consumer_id == "alice"
    assert ctx.identity.scopes == frozenset({"read"})
    again = bearer("tok")
    assert policy.access(again) is None  # a cache hit needs no coroutine
    assert again.identity == ctx.identity
    assert endpoint.asked == ["tok"]


async def test_cache_ttl_is_bounded_by_the_configured_maximum():
    clock = FakeClock()
    policy, endpoint = make_policy(clock, cache_ttl=30)
    endpoint.answers["tok"] = active(clock, ttl=600)
    await run(policy, bearer("tok"))
    clock.advance(29)
    assert policy.access(bearer("tok")) is None
    clock.advance(2)
    endpoint.answers["tok"] = Reply(200, b'{"active": false}')  # revoked meanwhile
    with pytest.raises(Unauthenticated):
        await run(policy, bearer("tok"))
    assert len(endpoint.asked) == 2


async def test_cache_ttl_is_bounded_by_the_token_expiry():
    clock = FakeClock()
    policy, endpoint = make_policy(clock, cache_ttl=300)
    endpoint.answers["tok"] = active(clock, ttl=10)
    await run(policy, bearer("tok"))
    clock.advance(11)
    pending = policy.access(bearer("tok"))
    assert pending is not None  # expired in the cache: asked again
    with pytest.raises(Unauthenticated):
        await pending


async def test_inactive_token_is_refused_with_invalid_token():
    policy, _ = make_policy(FakeClock())
    ctx = bearer("unknown")
    with pytest.raises(Unauthenticated) as caught:
        await run(policy, ctx)
    assert caught.value.detail == TOKEN_INVALID
    assert caught.value.error_code == "invalid_token"
    assert (b"www-authenticate", b'Bearer realm="bastion", error="invalid_token"') in (
        caught.value.headers
    )
    assert ctx.identity is None


async def test_inactive_answers_are_cached_briefly():
    clock = FakeClock()
    policy, endpoint = make_policy(clock, inactive_cache_ttl=5)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await run(policy, bearer("bad"))
    assert endpoint.asked == ["bad"]
    clock.advance(6)
    with pytest.raises(Unauthenticated):
        await run(policy, bearer("bad"))
    assert endpoint.asked == ["bad", "bad"]


@pytest.mark.parametrize(
    "failure",
    [
        OSError("connection refused"),
        TimeoutError(),
        IntrospectionFetchError("too large"),
        Reply(500, b"oops"),
        Reply(401, b'{"error": "invalid_client"}'),
        Reply(200, b"<html>"),
        Reply(200, b'{"active": "yes"}'),
    ],
    ids=[
        "refused",
        "timeout",
        "too-large",
        "server-error",
        "client-auth",
        "not-json",
        "bad-active",
    ],
)
async def test_endpoint_failures_fail_closed_with_503_and_are_not_cached(failure):
    policy, endpoint = make_policy(FakeClock())
    endpoint.answers["tok"] = failure
    for _ in range(2):
        ctx = bearer("tok")
        with pytest.raises(ServiceUnavailable) as caught:
            await run(policy, ctx)
        assert caught.value.error_code == "introspection_unavailable"
        assert ctx.identity is None
    assert endpoint.asked == ["tok", "tok"]
    assert policy.failures == 2


async def test_concurrent_requests_with_one_token_share_one_call():
    clock = FakeClock()
    policy, endpoint = make_policy(clock)
    endpoint.answers["tok"] = active(clock)
    endpoint.gate = asyncio.Event()
    contexts = [bearer("tok") for _ in range(5)]
    waiting = [asyncio.ensure_future(run(policy, ctx)) for ctx in contexts]
    await asyncio.sleep(0)
    endpoint.gate.set()
    await asyncio.gather(*waiting)
    assert endpoint.asked == ["tok"]
    assert all(ctx.identity is not None for ctx in contexts)


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ([], TOKEN_MISSING),
        ([(b"authorization", b"Basic YTpi")], TOKEN_MISSING),
        ([(b"authorization", b"Bearer ")], TOKEN_INVALID),
        ([(b"authorization", b"Bearer a\x01b")], TOKEN_INVALID),
        ([(b"authorization", b"Bearer " + b"a" * 5000)], TOKEN_INVALID),
        ([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")], TOKEN_INVALID),
    ],
    ids=["none", "basic", "empty", "control-character", "oversized", "duplicate"],
)
async def test_malformed_authorization_is_refused_without_calling_the_endpoint(headers, detail):
    policy, endpoint = make_policy(FakeClock())
    with pytest.raises(Unauthenticated) as caught:
        await run(policy, make_ctx(headers=headers))
    assert caught.value.detail == detail
    assert endpoint.asked == []


def test_client_credentials_are_form_encoded_before_base64():
    value = basic_credentials("client:1", "p@ss word")
    assert value == "Basic Y2xpZW50JTNBMTpwJTQwc3MlMjB3b3Jk"
