"""PKCE S256: the RFC 7636 example, and verifiers and challenges of every shape."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from bastion.oauth import pkce

UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


def test_s256_matches_the_rfc7636_appendix_b_example():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce.s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce.verifier_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")


@given(st.text(alphabet=UNRESERVED, min_size=43, max_size=128))
def test_every_valid_verifier_matches_its_own_challenge_only(verifier):
    challenge = pkce.s256(verifier)
    assert pkce.is_valid_challenge(challenge)
    assert pkce.verifier_matches(verifier, challenge)
    assert not pkce.verifier_matches(
        verifier, challenge[:-1] + ("A" if challenge[-1] != "A" else "B")
    )
    # `plain` would compare the verifier itself: S256 never accepts that.
    assert not pkce.verifier_matches(verifier, verifier)


@given(st.text(max_size=200))
def test_verifiers_outside_the_rfc_shape_never_match(text):
    if pkce.is_valid_verifier(text):
        assert 43 <= len(text) <= 128
        assert set(text) <= set(UNRESERVED)
    else:
        assert not pkce.verifier_matches(text, pkce.s256("a" * 43))


@pytest.mark.parametrize(
    "verifier",
    ["a" * 42, "a" * 129, "a" * 42 + " ", "a" * 42 + "+", "é" * 43],
    ids=["too-short", "too-long", "space", "plus", "non-ascii"],
)
def test_malformed_verifiers_are_refused(verifier):
    assert not pkce.is_valid_verifier(verifier)
    assert not pkce.verifier_matches(verifier, pkce.s256("a" * 43))
