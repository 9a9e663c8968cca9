"""The api_key policy: every accept and reject path, the cache and fail-closed behaviour."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bastion.clock import FakeClock
from bastion.core.context import RequestContext
from bastion.core.policy import PolicyDeps
from bastion.errors import Reject, ServiceUnavailable, Unauthenticated
from bastion.policies.api_key.config import APIKeyConfig
from bastion.policies.api_key.policy import INVALID_KEY, MISSING_KEY, APIKeyPolicy
from bastion.store import APIKeyRecord, CachedStore
from bastion.store.secrets import Pepper, Peppers, new_api_key
from bastion.store.sqlite import SQLiteStore
from tests.policies.api_key.conftest import PEPPER
from tests.support import make_ctx

pytestmark = pytest.mark.anyio

CHALLENGE = b'ApiKey realm="bastion"'


def _policy(cached: CachedStore, clock: FakeClock, **settings: object) -> APIKeyPolicy:
    return APIKeyPolicy(
        APIKeyConfig.model_validate(settings), PolicyDeps(clock=clock, store=cached)
    )


async def _issue(
    cached: CachedStore,
    *,
    name: str = "alice",
    pepper: Pepper = PEPPER,
    expires_at: float | None = None,
) -> tuple[APIKeyRecord, str]:
    consumer = await cached.backend.find_consumer(name)
    if consumer is None:
        consumer = await cached.backend.create_consumer(name, actor="test", groups=["staff"])
    key_id, key = new_api_key()
    digest = Peppers(pepper).digest(key)
    assert digest is not None
    record = APIKeyRecord(key_id, consumer.id, digest, pepper.id, time.time(), expires_at)
    await cached.backend.add_api_key(record, actor="test")
    return record, key


async def _access(policy: APIKeyPolicy, ctx: RequestContext) -> None:
    pending = policy.access(ctx)
    if pending is not None:
        await pending


def _with_key(key: str, header: bytes = b"x-api-key") -> RequestContext:
    return make_ctx(headers=[(b"host", b"api.test"), (header, key.encode())])


async def _rejected(policy: APIKeyPolicy, ctx: RequestContext) -> Reject:
    with pytest.raises(Reject) as caught:
        await _access(policy, ctx)
    return caught.value


async def test_access_accepts_a_valid_key_and_sets_the_identity(cached, clock):
    record, key = await _issue(cached)
    policy = _policy(cached, clock)
    ctx = _with_key(key)
    await _access(policy, ctx)
    assert ctx.identity is not None
    assert ctx.identity.consumer_name == "alice"
    assert ctx.identity.groups == frozenset({"staff"})
    assert ctx.identity.credential_id == record.id
    assert ctx.identity.method == "api_key"
    assert ctx.request.headers.get(b"x-api-key") is None  # stripped before forwarding


async def test_access_answers_a_cached_key_synchronously(cached, clock):
    _, key = await _issue(cached)
    policy = _policy(cached, clock)
    await _access(policy, _with_key(key))
    ctx = _with_key(key)
    assert policy.access(ctx) is None  # no awaitable: a dict hit
    assert ctx.identity is not None


async def test_access_rejects_a_missing_key_with_a_challenge(cached, clock):
    reject = await _rejected(_policy(cached, clock), make_ctx())
    assert isinstance(reject, Unauthenticated)
    assert reject.error_code == "missing_credentials"
    assert reject.detail == MISSING_KEY
    assert reject.headers == [(b"www-authenticate", CHALLENGE)]


@pytest.mark.parametrize(
    "value",
    [
        "bst_0123456789ab_short",
        "xyz_0123456789ab_" + "A" * 43,
        "bst_0123456789AB_" + "A" * 43,
        "bst_0123456789ab_" + "A" * 42 + "!",
        "bst_0123456789ab_" + "A" * 44,
        "",
    ],
    ids=["short", "wrong-prefix", "upper-case-id", "bad-char", "too-long", "empty"],
)
async def test_access_rejects_malformed_keys(cached, clock, value):
    reject = await _rejected(_policy(cached, clock), _with_key(value))
    assert reject.status == 401
    assert reject.error_code == "invalid_credentials"
    assert reject.detail == INVALID_KEY


async def test_access_rejects_non_ascii_bytes(cached, clock):
    ctx = make_ctx(headers=[(b"x-api-key", b"bst_0123456789ab_" + b"\xff" * 43)])
    reject = await _rejected(_policy(cached, clock), ctx)
    assert reject.error_code == "invalid_credentials"


async def test_access_rejects_an_unknown_key_id(cached, clock):
    _, key = new_api_key()
    reject = await _rejected(_policy(cached, clock), _with_key(key))
    assert reject.error_code == "invalid_credentials"


async def test_access_rejects_a_known_id_with_a_wrong_secret(cached, clock):
    record, _ = await _issue(cached)
    _, other = new_api_key(record.id)
    reject = await _rejected(_policy(cached, clock), _with_key(other))
    assert reject.error_code == "invalid_credentials"
    assert reject.detail == INVALID_KEY


async def test_a_verified_key_does_not_vouch_for_another_secret_with_its_id(cached, clock):
    # After the real key is accepted, the policy remembers that verification; a key with the
    # same id and another secret must still be refused on the (cached) fast path.
    record, key = await _issue(cached)
    policy = _policy(cached, clock)
    await _access(policy, _with_key(key))  # loads the key and remembers the verification
    assert policy.access(_with_key(key)) is None  # now answered from memory
    _, other = new_api_key(record.id)
    reject = await _rejected(policy, _with_key(other))
    assert reject.detail == INVALID_KEY
    accepted = _with_key(key)
    await _access(policy, accepted)
    assert accepted.identity is not None


async def test_access_rejects_an_expired_key(cached, clock):
    _, key = await _issue(cached, expires_at=clock.time() - 1)
    reject = await _rejected(_policy(cached, clock), _with_key(key))
    assert reject.detail == INVALID_KEY


async def test_access_rejects_a_key_once_its_expiry_passes(cached, clock):
    _, key = await _issue(cached, expires_at=clock.time() + 1)
    policy = _policy(cached, clock)
    await _access(policy, _with_key(key))
    clock.advance(1.5)
    reject = await _rejected(policy, _with_key(key))
    assert reject.detail == INVALID_KEY


async def test_access_rejects_a_key_of_an_unconfigured_pepper(cached, clock):
    other = Pepper.from_secret("another-pepper-that-is-32-characters-long")
    _, key = await _issue(cached, pepper=other)
    reject = await _rejected(_policy(cached, clock), _with_key(key))
    assert reject.detail == INVALID_KEY


async def test_access_accepts_keys_of_a_previous_pepper_while_it_is_listed(tmp_path, clock):
    old = Pepper.from_secret("the-old-pepper-that-is-32-characters-long")
    cached = CachedStore(
        SQLiteStore(tmp_path / "b.db"), peppers=Peppers(PEPPER, [old]), clock=clock
    )
    try:
        _, key = await _issue(cached, pepper=old)
        ctx = _with_key(key)
        await _access(_policy(cached, clock), ctx)
        assert ctx.identity is not None
    finally:
        await cached.close()


async def test_access_rejects_a_revoked_key_after_the_cache_syncs(cached, clock):
    record, key = await _issue(cached)
    policy = _policy(cached, clock)
    await _access(policy, _with_key(key))
    await cached.backend.revoke_api_key(record.id, at=time.time(), actor="test")
    await cached.sync()
    reject = await _rejected(policy, _with_key(key))
    assert reject.detail == INVALID_KEY


async def test_access_rejects_keys_of_a_disabled_consumer(cached, clock):
    record, key = await _issue(cached)
    policy = _policy(cached, clock)
    await _access(policy, _with_key(key))
    await cached.backend.set_consumer_disabled(record.consumer_id, True, actor="test")
    await cached.sync()
    reject = await _rejected(policy, _with_key(key))
    assert reject.detail == INVALID_KEY


async def test_a_stale_cache_is_not_trusted(cached, clock):
    _, key = await _issue(cached)
    policy = _policy(cached, clock)
    await _access(policy, _with_key(key))
    clock.advance(cached.max_staleness + 0.1)  # the watcher has not synced since
    pending = policy.access(_with_key(key))
    assert pending is not None  # goes back to the store
    await pending


async def test_access_fails_closed_with_503_when_the_store_is_down(tmp_path, clock):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cached = CachedStore(SQLiteStore(blocker / "b.db"), peppers=Peppers(PEPPER), clock=clock)
    try:
        _, key = new_api_key()
        reject = await _rejected(_policy(cached, clock), _with_key(key))
        assert isinstance(reject, ServiceUnavailable)
        assert reject.status == 503
        assert reject.error_code == "store_unavailable"
    finally:
        await cached.close()


async def test_query_string_keys_are_ignored_unless_allowed(cached, clock):
    _, key = await _issue(cached)
    ctx = make_ctx(query=b"api_key=" + key.encode())
    reject = await _rejected(_policy(cached, clock), ctx)
    assert reject.error_code == "missing_credentials"


async def test_query_string_key_is_accepted_when_allowed_and_removed(cached, clock):
    _, key = await _issue(cached)
    ctx = make_ctx(query=b"a=1&k=" + key.encode() + b"&b=2")
    await _access(_policy(cached, clock, allow_query=True, query_param="k"), ctx)
    assert ctx.identity is not None
    assert ctx.request.query == b"a=1&b=2"


async def test_a_custom_header_is_read(cached, clock):
    _, key = await _issue(cached)
    ctx = _with_key(key, header=b"x-key")
    await _access(_policy(cached, clock, header="X-Key", strip_credential=False), ctx)
    assert ctx.identity is not None
    assert ctx.request.headers.get(b"x-key") == key.encode()


def test_policy_needs_a_store_and_a_pepper(tmp_path, clock):
    with pytest.raises(ValueError, match="store"):
        APIKeyPolicy(APIKeyConfig(), PolicyDeps(clock=clock))
    no_pepper = CachedStore(SQLiteStore(Path(tmp_path) / "b.db"), clock=clock)
    with pytest.raises(ValueError, match="pepper"):
        APIKeyPolicy(APIKeyConfig(), PolicyDeps(clock=clock, store=no_pepper))
