"""The JWT helpers the auth checks use to forge and crack tokens."""

from __future__ import annotations

import string

from hypothesis import given, strategies as st

from bastion.scanner.checks.auth import WEAK_SECRETS, crack_hmac, parse_jwt, sign_hmac

CLAIMS = st.dictionaries(
    st.text(string.ascii_letters, min_size=1, max_size=8),
    st.one_of(st.integers(), st.text(max_size=20), st.booleans()),
    max_size=5,
)


@given(st.text(max_size=200))
def test_parse_jwt_returns_none_or_three_parts_for_any_text(text: str):
    parsed = parse_jwt(text)
    assert parsed is None or len(parsed) == 3


@given(CLAIMS, st.sampled_from(WEAK_SECRETS), st.sampled_from(["HS256", "HS384", "HS512"]))
def test_crack_hmac_finds_a_wordlist_secret(claims: dict[str, object], secret: str, alg: str):
    token = sign_hmac({"alg": alg, "typ": "JWT"}, claims, secret.encode())
    parsed = parse_jwt(token)
    assert parsed is not None
    assert parsed[1] == claims
    assert crack_hmac(token) == secret


@given(CLAIMS, st.binary(min_size=32, max_size=64))
def test_crack_hmac_gives_up_on_a_random_secret(claims: dict[str, object], secret: bytes):
    token = sign_hmac({"alg": "HS256"}, claims, secret)
    assert crack_hmac(token) is None
