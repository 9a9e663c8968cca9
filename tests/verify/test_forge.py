"""Credentials the probes send: forged ones fail the gateway's own verifier, minted ones pass."""

from __future__ import annotations

import base64

import pytest

from bastion.clock import FakeClock, SystemClock
from bastion.policies.jwt.config import JWTConfig
from bastion.policies.jwt.keys import secret_key_set
from bastion.policies.jwt.verify import TokenError, TokenRules, verify_access_token
from bastion.verify import forge
from bastion.verify.runner import parse_auth

SECRET = "a-test-hmac-secret-that-is-long-enough-0123"
CONFIG = JWTConfig(
    issuer="https://issuer.test",
    audience="bank",
    secret=SECRET,
    required_claims=["tenant"],
)
RULES = TokenRules(
    issuer="https://issuer.test",
    audiences=frozenset({"bank"}),
    algorithms=frozenset({"HS256"}),
    required_claims=("tenant",),
)
KEYS = secret_key_set(SECRET.encode(), "HS256")


def test_minted_token_passes_the_gateway_verifier() -> None:
    token = forge.signed_token(CONFIG, expired=False)
    assert token is not None
    verified = verify_access_token(token, KEYS, RULES, SystemClock())
    assert verified.subject == "bastion-verify"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(
            lambda: forge.throwaway_token(CONFIG, expired=False), "signature", id="forged"
        ),
        pytest.param(
            lambda: forge.throwaway_token(CONFIG, expired=True), "signature", id="forged-expired"
        ),
        pytest.param(lambda: forge.signed_token(CONFIG, expired=True), "expired", id="expired"),
    ],
)
def test_probe_tokens_fail_the_gateway_verifier(make: object, reason: str) -> None:
    token = make()  # type: ignore[operator]
    with pytest.raises(TokenError):
        verify_access_token(token, KEYS, RULES, SystemClock())


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "ES384", "PS256", "EdDSA"])
def test_throwaway_tokens_use_the_configured_algorithm(algorithm: str) -> None:
    from joserfc.jwk import ECKey

    pem = ECKey.generate_key("P-256").as_pem(private=False).decode()
    if algorithm != "ES256":
        config = JWTConfig(
            issuer="https://i", audience="a", jwks_uri="https://i/jwks", algorithms=[algorithm]
        )
    else:
        config = JWTConfig(
            issuer="https://i", audience="a", public_key_pem=pem, algorithms=[algorithm]
        )
    token = forge.throwaway_token(config, expired=False)
    header = token.split(".")[0]
    assert algorithm in base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)).decode()


def test_no_minted_token_without_a_secret() -> None:
    config = JWTConfig(issuer="https://i", audience="a", jwks_uri="https://i/jwks")
    assert forge.signed_token(config, expired=False) is None


def test_basic_credentials_carry_the_recorded_password() -> None:
    value, password = forge.basic_credentials()
    scheme, _, encoded = value.partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode().endswith(":" + password)


def test_forged_api_keys_are_distinct_256_bit_values() -> None:
    keys = {forge.random_api_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(key) >= 43 for key in keys)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("Bearer abc", ("Authorization", "Bearer abc"), id="bearer"),
        pytest.param("Basic dXNlcjpw", ("Authorization", "Basic dXNlcjpw"), id="basic"),
        pytest.param("X-API-Key: k1", ("X-API-Key", "k1"), id="header"),
    ],
)
def test_parse_auth_accepts_the_documented_forms(value: str, expected: tuple[str, str]) -> None:
    assert parse_auth(value) == expected


@pytest.mark.parametrize(
    "value", ["token", "X Key: v", "X-Key:", ": v"], ids=["bare", "space", "empty", "no-name"]
)
def test_parse_auth_refuses_other_forms(value: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_auth(value)


def test_minted_token_is_short_lived() -> None:
    # Valid for minutes on the wall clock: far in the future the gateway refuses it.
    token = forge.signed_token(CONFIG, expired=False)
    assert token is not None
    with pytest.raises(TokenError):
        verify_access_token(token, KEYS, RULES, FakeClock(wall=10**10))
