"""What `bastion verify` reads from a `--limited-auth` credential, and how it judges it."""

from __future__ import annotations

import base64

import orjson
from hypothesis import given, strategies as st

from bastion.verify.authz import jwt_claims


def _token(payload: object) -> str:
    body = base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.c2ln"


def test_claims_of_a_bearer_jwt_are_read() -> None:
    claims = {"scope": "accounts:read", "groups": ["customers"]}
    assert jwt_claims([("Authorization", "Bearer " + _token(claims))]) == claims


def test_non_bearer_and_malformed_credentials_have_no_claims() -> None:
    assert jwt_claims([("X-API-Key", "bst_0123456789ab_x")]) is None
    assert jwt_claims([("Authorization", "Basic dTpw")]) is None
    assert jwt_claims([("Authorization", "Bearer not-a-jwt")]) is None
    assert jwt_claims([("Authorization", "Bearer a.!!!.c")]) is None
    assert jwt_claims([("Authorization", "Bearer " + _token(["a", "list"]))]) is None


@given(st.text(max_size=300))
def test_any_bearer_value_yields_claims_or_none_without_raising(value: str) -> None:
    claims = jwt_claims([("Authorization", "Bearer " + value)])
    assert claims is None or isinstance(claims, dict)
