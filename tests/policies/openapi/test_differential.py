"""Differential test: Bastion and openapi-core (the oracle) judge generated requests alike.

Requests are generated from the bank's OpenAPI document, mixing valid and invalid values for
path, query and header parameters and for JSON bodies. Both validators must agree on accept or
refuse. Documented exceptions, kept out of the generated inputs:

- integer literals: Bastion accepts only `-?[0-9]+` (no `+5`, ` 5`, `5_0`), openapi-core
  whatever `int()` takes, so generated integers are plain decimal;
- control characters: Python's `re` lets `$` match before a final newline, ECMA-262 (and
  jsonschema-rs) does not, so generated strings have none;
- repeated primitive query parameters (refused by Bastion against parameter pollution) and
  security schemes (another policy's job; an `X-API-Key` is always sent) are not generated.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bastion.clock import FakeClock
from bastion.core.policy import PolicyDeps
from bastion.errors import Reject
from bastion.policies.openapi import OpenAPIConfig, OpenAPIPolicy
from tests.support import make_ctx

openapi_core = pytest.importorskip("openapi_core")
from openapi_core import OpenAPI  # noqa: E402 - after the importorskip guard
from openapi_core.testing import MockRequest  # noqa: E402

BANK = Path(__file__).resolve().parents[3] / "examples/bank/openapi.yaml"
EXAMPLES = 700

_bastion = OpenAPIPolicy(
    OpenAPIConfig(spec=BANK, additional="allow"), PolicyDeps(clock=FakeClock())
)
_oracle = OpenAPI.from_file_path(str(BANK))

ids = st.one_of(
    st.from_regex(r"\Aacc_[0-9a-z]{8,32}\Z"),
    st.from_regex(r"\A[a-z]{3}_[0-9a-zA-Z]{0,40}\Z"),
    st.text("acc_019xyzXYZ-", min_size=1, max_size=40),
)
ints = st.one_of(
    st.integers(-20, 20_000).map(str), st.text("0123456789x.-", min_size=1, max_size=6)
)
safe_text = st.text(
    st.characters(min_codepoint=0x20, exclude_categories=["Cs", "Cc"]), max_size=150
)
amounts = st.one_of(
    st.from_regex(r"\A[0-9]{1,12}(\.[0-9]{1,2})?\Z"),
    safe_text.map(lambda s: s[:16]),
    st.integers(0, 99),
)
currencies = st.sampled_from(["EUR", "USD", "GBP", "JPY", "eur", ""])
keys = st.one_of(
    st.from_regex(r"\A[A-Za-z0-9_-]{8,64}\Z"), st.text("ab-_!1", max_size=70), st.none()
)


def _oracle_accepts(request: MockRequest) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openapi-core warns about the oauth2 scheme it skips
        try:
            _oracle.validate_request(request)
        except Exception:  # noqa: BLE001 - any oracle error is a refusal
            return False
    return True


def _bastion_accepts(
    method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes | None
) -> bool:
    raw_headers = [(b"host", b"localhost")]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if body is not None:
        raw_headers.append((b"content-type", b"application/json"))
    ctx = make_ctx(method, path, query=urlencode(query).encode(), headers=raw_headers, body=body)
    try:
        _bastion.access(ctx)
    except Reject:
        return False
    return True


def _judge(
    method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes | None
) -> None:
    request = MockRequest(
        "https://localhost:8443",
        method.lower(),
        path,
        args=query,
        headers={**headers, "X-API-Key": "k"},
        data=body,
        content_type="application/json",
    )
    expected = _oracle_accepts(request)
    assert _bastion_accepts(method, path, query, headers, body) == expected


COMMON = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@COMMON
@given(account=ids, version=st.sampled_from(["v1", "v2"]))
def test_account_lookups_are_judged_like_openapi_core(account, version):
    _judge("GET", f"/{version}/accounts/{account}", {}, {}, None)


@COMMON
@given(account=ids, limit=st.none() | ints, offset=st.none() | ints)
def test_transaction_pages_are_judged_like_openapi_core(account, limit, offset):
    query = {
        name: value for name, value in (("limit", limit), ("offset", offset)) if value is not None
    }
    _judge("GET", f"/v1/accounts/{account}/transactions", query, {}, None)


@COMMON
@given(
    from_account=ids,
    to_account=ids,
    amount=amounts,
    currency=currencies,
    reference=st.none() | safe_text,
    key=keys,
    drop=st.sampled_from([None, "from_account", "amount", "currency"]),
    extra=st.booleans(),
)
def test_transfers_are_judged_like_openapi_core(
    from_account, to_account, amount, currency, reference, key, drop, extra
):
    body: dict[str, Any] = {
        "from_account": from_account,
        "to_account": to_account,
        "amount": amount,
        "currency": currency,
    }
    if reference is not None:
        body["reference"] = reference
    if drop:
        del body[drop]
    if extra:
        body["status"] = "approved"
    headers = {"Idempotency-Key": key} if key is not None else {}
    _judge("POST", "/v1/transfers", {}, headers, json.dumps(body).encode())
