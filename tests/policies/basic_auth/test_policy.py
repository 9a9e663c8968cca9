"""The basic_auth policy: HTTPS only, every malformed and wrong credential, the verified cache."""

from __future__ import annotations

import base64
import time

import pytest

from bastion.clock import FakeClock
from bastion.core.context import RequestContext
from bastion.core.policy import PolicyDeps
from bastion.errors import Forbidden, Reject, ServiceUnavailable, Unauthenticated
from bastion.http.request import Scheme
from bastion.policies.basic_auth.config import BasicAuthConfig
from bastion.policies.basic_auth.policy import (
    HTTPS_REQUIRED,
    INVALID_CREDENTIALS,
    MISSING_CREDENTIALS,
    BasicAuthPolicy,
)
from bastion.store import CachedStore, PasswordRecord
from bastion.store.secrets import hash_password
from bastion.store.sqlite import SQLiteStore
from tests.support import make_ctx

pytestmark = pytest.mark.anyio

CHALLENGE = b'Basic realm="bastion", charset="UTF-8"'
PASSWORD = "correct horse battery staple"


def _policy(cached: CachedStore, clock: FakeClock, **settings: object) -> BasicAuthPolicy:
    return BasicAuthPolicy(
        BasicAuthConfig.model_validate(settings), PolicyDeps(clock=clock, store=cached)
    )


async def _user(cached: CachedStore, name: str = "alice", password: str = PASSWORD) -> str:
    consumer = await cached.backend.find_consumer(name)
    if consumer is None:
        consumer = await cached.backend.create_consumer(name, actor="test", groups=["staff"])
    record = PasswordRecord(consumer.id, name, hash_password(password), time.time())
    await cached.backend.set_password(record, actor="test")
    return consumer.id


def _basic(user: str, password: str, *, scheme: Scheme = "https") -> RequestContext:
    token = base64.b64encode(f"{user}:{password}".encode())
    return make_ctx(headers=[(b"authorization", b"Basic " + token)], scheme=scheme)


def _raw(value: bytes) -> RequestContext:
    return make_ctx(headers=[(b"authorization", value)])


async def _access(policy: BasicAuthPolicy, ctx: RequestContext) -> None:
    pending = policy.access(ctx)
    if pending is not None:
        await pending


async def _rejected(policy: BasicAuthPolicy, ctx: RequestContext) -> Reject:
    with pytest.raises(Reject) as caught:
        await _access(policy, ctx)
    return caught.value


async def test_access_accepts_the_right_password(cached, clock):
    consumer_id = await _user(cached)
    ctx = _basic("alice", PASSWORD)
    await _access(_policy(cached, clock), ctx)
    assert ctx.identity is not None
    assert ctx.identity.consumer_id == consumer_id
    assert ctx.identity.groups == frozenset({"staff"})
    assert ctx.identity.method == "basic_auth"
    assert ctx.request.headers.get(b"authorization") is None


async def test_a_verified_password_is_answered_from_the_cache_synchronously(cached, clock):
    await _user(cached)
    policy = _policy(cached, clock)
    await _access(policy, _basic("alice", PASSWORD))
    ctx = _basic("alice", PASSWORD)
    assert policy.access(ctx) is None
    assert ctx.identity is not None


async def test_the_verified_cache_never_holds_the_password(cached, clock):
    await _user(cached)
    await _access(_policy(cached, clock), _basic("alice", PASSWORD))
    keys = [repr(key) for key in cached.cache._data]
    assert keys
    assert not any(PASSWORD in key or "alice" in key for key in keys)


async def test_a_cached_verification_expires_after_cache_ttl(cached, clock):
    await _user(cached)
    policy = _policy(cached, clock, cache_ttl=1)
    await _access(policy, _basic("alice", PASSWORD))
    clock.advance(1.5)
    # Keep the cache fresh as the watcher would, so only the entry's own TTL is tested.
    await cached.sync()
    cached._synced_at = clock.monotonic()
    pending = policy.access(_basic("alice", PASSWORD))
    assert pending is not None
    await pending


async def test_plain_http_is_refused(cached, clock):
    await _user(cached)
    reject = await _rejected(_policy(cached, clock), _basic("alice", PASSWORD, scheme="http"))
    assert isinstance(reject, Forbidden)
    assert reject.error_code == "https_required"
    assert reject.detail == HTTPS_REQUIRED


async def test_plain_http_from_a_trusted_proxy_that_saw_https_is_accepted(cached, clock):
    await _user(cached)
    ctx = _basic("alice", PASSWORD, scheme="http")
    ctx.request.extra["forwarded_proto"] = "https"
    await _access(_policy(cached, clock), ctx)
    assert ctx.identity is not None


async def test_access_rejects_a_missing_header_with_a_challenge(cached, clock):
    reject = await _rejected(_policy(cached, clock), make_ctx())
    assert isinstance(reject, Unauthenticated)
    assert reject.error_code == "missing_credentials"
    assert reject.detail == MISSING_CREDENTIALS
    assert reject.headers == [(b"www-authenticate", CHALLENGE)]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"Bearer abc.def.ghi", "missing_credentials"),
        (b"Basic", "invalid_credentials"),
        (b"Basic !!!notbase64", "invalid_credentials"),
        (b"Basic " + base64.b64encode(b"no-colon"), "invalid_credentials"),
        (b"Basic " + base64.b64encode(b":password"), "invalid_credentials"),
        (b"Basic " + base64.b64encode(b"alice:"), "invalid_credentials"),
        (b"Basic " + base64.b64encode(b"alice:\xff\xfe"), "invalid_credentials"),
        (b"Basic " + b"A" * 10_000, "invalid_credentials"),
    ],
    ids=[
        "wrong-scheme",
        "no-credentials",
        "bad-base64",
        "no-colon",
        "empty-user",
        "empty-password",
        "non-utf8",
        "oversized",
    ],
)
async def test_access_rejects_malformed_credentials(cached, clock, value, code):
    reject = await _rejected(_policy(cached, clock), _raw(value))
    assert reject.status == 401
    assert reject.error_code == code
    assert reject.headers == [(b"www-authenticate", CHALLENGE)]


async def test_access_rejects_a_wrong_password(cached, clock):
    await _user(cached)
    reject = await _rejected(_policy(cached, clock), _basic("alice", "wrong"))
    assert reject.detail == INVALID_CREDENTIALS


async def test_access_rejects_an_unknown_user_with_the_same_answer(cached, clock):
    reject = await _rejected(_policy(cached, clock), _basic("mallory", PASSWORD))
    assert reject.detail == INVALID_CREDENTIALS
    assert reject.error_code == "invalid_credentials"


async def test_access_rejects_a_disabled_consumer_even_from_the_cache(cached, clock):
    consumer_id = await _user(cached)
    policy = _policy(cached, clock)
    await _access(policy, _basic("alice", PASSWORD))
    await cached.backend.set_consumer_disabled(consumer_id, True, actor="test")
    await cached.sync()
    reject = await _rejected(policy, _basic("alice", PASSWORD))
    assert reject.detail == INVALID_CREDENTIALS


async def test_a_changed_password_drops_the_cached_verification(cached, clock):
    await _user(cached)
    policy = _policy(cached, clock)
    await _access(policy, _basic("alice", PASSWORD))
    await _user(cached, password="a brand new password")
    await cached.sync()
    reject = await _rejected(policy, _basic("alice", PASSWORD))
    assert reject.detail == INVALID_CREDENTIALS


async def test_access_fails_closed_with_503_when_the_store_is_down(tmp_path, clock):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cached = CachedStore(SQLiteStore(blocker / "b.db"), clock=clock)
    try:
        reject = await _rejected(_policy(cached, clock), _basic("alice", PASSWORD))
        assert isinstance(reject, ServiceUnavailable)
        assert reject.error_code == "store_unavailable"
    finally:
        await cached.close()


def test_policy_needs_a_store(clock):
    with pytest.raises(ValueError, match="store"):
        BasicAuthPolicy(BasicAuthConfig(), PolicyDeps(clock=clock))
