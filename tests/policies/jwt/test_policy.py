"""JWTPolicy.access: bearer extraction, RFC 6750 challenges, the cache, key rotation via file."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from bastion.clock import FakeClock
from bastion.core.policy import PolicyDeps
from bastion.errors import Reject, Unauthenticated
from bastion.policies.jwt.config import JWTConfig
from bastion.policies.jwt.policy import TOKEN_INVALID, TOKEN_MISSING, JWTPolicy
from tests.policies.jwt.tokens import AUDIENCE, ISSUER, claims, ec_key, jwks, rsa_key, sign
from tests.support import make_ctx

pytestmark = pytest.mark.anyio

MISSING = b'Bearer realm="bastion"'
INVALID = b'Bearer realm="bastion", error="invalid_token"'


def make_policy(clock: FakeClock, **extra: object) -> JWTPolicy:
    settings: dict[str, object] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "public_key_pem": rsa_key().as_pem(private=False).decode(),
    }
    settings.update(extra)
    return JWTPolicy(JWTConfig.model_validate(settings), PolicyDeps(clock=clock))


def ctx_with(*authorization: bytes, clock: FakeClock | None = None):
    headers = [(b"host", b"api.example.test")]
    headers += [(b"authorization", value) for value in authorization]
    return make_ctx(headers=headers, clock=clock)


def reject_of(policy: JWTPolicy, ctx) -> Reject:
    with pytest.raises(Reject) as caught:
        policy.access(ctx)
    return caught.value


def test_access_authenticates_a_valid_token_synchronously():
    clock = FakeClock()
    ctx = ctx_with(b"Bearer " + sign(claims()).encode())
    assert make_policy(clock).access(ctx) is None
    assert ctx.identity is not None
    assert ctx.identity.consumer_id == "alice"
    assert ctx.identity.method == "jwt"


@pytest.mark.parametrize(
    "value",
    [b"bearer ", b"BEARER ", b"Bearer    "],
    ids=["lower-case", "upper-case", "extra-spaces"],
)
def test_access_accepts_any_case_of_the_scheme_and_extra_spaces(value):
    ctx = ctx_with(value + sign(claims()).encode())
    assert make_policy(FakeClock()).access(ctx) is None
    assert ctx.identity is not None


@pytest.mark.parametrize(
    "authorization",
    [(), (b"Basic YWxpY2U6c2VjcmV0",), (b"ApiKey abc",), (b"",), (b"Bearerxyz",)],
    ids=["no-header", "basic", "other-scheme", "empty", "scheme-without-space"],
)
def test_access_without_a_bearer_token_challenges_without_an_error_code(authorization):
    reject = reject_of(make_policy(FakeClock()), ctx_with(*authorization))
    assert isinstance(reject, Unauthenticated)
    assert reject.status == 401
    assert reject.error_code == "missing_token"
    assert reject.detail == TOKEN_MISSING
    assert reject.headers == [(b"www-authenticate", MISSING)]


@pytest.mark.parametrize(
    "authorization",
    [
        (b"Bearer",),
        (b"Bearer ",),
        (b"Bearer \xff\xfe\x00",),
        (b"Bearer a.b.c",),
        (b"Bearer " + b"a" * 9000,),
        (b"Bearer " + sign(claims()).encode() + b" extra",),
        (b"Bearer " + sign(claims()).encode(), b"Bearer " + sign(claims()).encode()),
        (b"Bearer " + sign(claims(exp=1)).encode(),),
        (b"Bearer " + sign(claims(aud="other")).encode(),),
        (b"Bearer " + sign(claims(), ec_key(), alg="ES256").encode(),),
    ],
    ids=[
        "scheme-only",
        "scheme-and-space",
        "non-utf8",
        "garbage-token",
        "oversized",
        "two-tokens",
        "duplicate-header",
        "expired",
        "wrong-audience",
        "unknown-key",
    ],
)
def test_access_with_a_bad_bearer_token_answers_invalid_token_and_nothing_more(authorization):
    ctx = ctx_with(*authorization)
    reject = reject_of(make_policy(FakeClock()), ctx)
    assert reject.status == 401
    assert reject.error_code == "invalid_token"
    assert reject.detail == TOKEN_INVALID
    assert reject.headers == [(b"www-authenticate", INVALID)]
    assert ctx.identity is None
    assert ctx.error is not None
    assert ctx.error.startswith("jwt: ")


def test_access_records_the_precise_reason_for_the_log_only():
    ctx = ctx_with(b"Bearer " + sign(claims(exp=1)).encode())
    reject = reject_of(make_policy(FakeClock()), ctx)
    assert ctx.error == "jwt: expired"
    assert "expired" not in reject.detail


def test_access_uses_the_configured_realm():
    reject = reject_of(make_policy(FakeClock(), realm="bank"), ctx_with())
    assert reject.headers == [(b"www-authenticate", b'Bearer realm="bank"')]


def test_access_answers_a_repeated_token_from_the_cache():
    clock = FakeClock()
    policy = make_policy(clock)
    header = b"Bearer " + sign(claims()).encode()
    first, second = ctx_with(header), ctx_with(header)
    policy.access(first)
    policy.access(second)
    assert second.identity is first.identity  # the cached object, not a re-verification


def test_access_re_verifies_after_the_cache_ttl_and_refuses_after_exp():
    clock = FakeClock()
    policy = make_policy(clock, cache_ttl=60, leeway=0)
    header = b"Bearer " + sign(claims(exp=int(clock.time()) + 100)).encode()
    first = ctx_with(header)
    policy.access(first)
    clock.advance(61)
    again = ctx_with(header)
    policy.access(again)
    assert again.identity is not first.identity
    assert again.identity == first.identity
    clock.advance(40)
    assert reject_of(policy, ctx_with(header)).error_code == "invalid_token"


def test_access_with_the_cache_off_verifies_every_time():
    policy = make_policy(FakeClock(), cache_size=0)
    header = b"Bearer " + sign(claims()).encode()
    first, second = ctx_with(header), ctx_with(header)
    policy.access(first)
    policy.access(second)
    assert second.identity is not first.identity


def test_access_with_an_hmac_secret():
    from joserfc.jwk import OctKey

    secret = "k" * 40
    policy = make_policy(FakeClock(), public_key_pem=None, secret=secret)
    token = sign(claims(), OctKey.import_key(secret.encode()), alg="HS256", kid=None)
    ctx = ctx_with(b"Bearer " + token.encode())
    assert policy.access(ctx) is None
    assert ctx.identity is not None


def write_jwks(path: Path, *keys) -> None:
    path.write_bytes(jwks(*keys))


def file_policy(tmp_path: Path, clock: FakeClock, **extra: object) -> tuple[JWTPolicy, Path]:
    path = tmp_path / "jwks.json"
    write_jwks(path, rsa_key())
    policy = make_policy(clock, public_key_pem=None, jwks_file=str(path), **extra)
    return policy, path


async def test_access_picks_up_a_new_kid_from_the_jwks_file_without_restart(tmp_path):
    clock = FakeClock()
    policy, path = file_policy(tmp_path, clock, algorithms=["RS256", "ES256"])
    write_jwks(path, rsa_key(), ec_key())
    clock.advance(60)  # the default minimum interval since the load at start-up
    ctx = ctx_with(b"Bearer " + sign(claims(), ec_key(), alg="ES256").encode())
    pending = policy.access(ctx)
    assert inspect.isawaitable(pending)
    await pending
    assert ctx.identity is not None


async def test_access_bounds_refetches_for_unknown_kids(tmp_path):
    clock = FakeClock()
    policy, _ = file_policy(tmp_path, clock, jwks_min_refetch_interval=60)
    token = b"Bearer " + sign(claims(), kid="made-up-1").encode()
    clock.advance(60)
    pending = policy.access(ctx_with(token))
    assert inspect.isawaitable(pending)
    with pytest.raises(Unauthenticated):
        await pending
    # Within the interval, further unknown kids are refused at once, with no fetch.
    other = b"Bearer " + sign(claims(), kid="made-up-2").encode()
    assert reject_of(policy, ctx_with(other)).error_code == "invalid_token"
    assert policy.keys.fetches == 1


async def test_removing_a_key_from_the_set_drops_cached_tokens(tmp_path):
    clock = FakeClock()
    policy, path = file_policy(tmp_path, clock, algorithms=["RS256", "ES256"], cache_ttl=3600)
    header = b"Bearer " + sign(claims()).encode()
    policy.access(ctx_with(header))
    write_jwks(path, ec_key())  # rsa-1 withdrawn
    clock.advance(60)
    pending = policy.access(ctx_with(b"Bearer " + sign(claims(), ec_key(), alg="ES256").encode()))
    assert pending is not None
    await pending
    assert reject_of(policy, ctx_with(header)).error_code == "invalid_token"


def test_policy_refuses_a_missing_or_unusable_jwks_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        make_policy(FakeClock(), public_key_pem=None, jwks_file=str(tmp_path / "absent.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys": []}')
    with pytest.raises(ValueError, match="no key usable"):
        make_policy(FakeClock(), public_key_pem=None, jwks_file=str(bad))
