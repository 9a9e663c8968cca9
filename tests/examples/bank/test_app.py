"""Behaviour of the banking example: identity, ownership, money, idempotency, versions, contract."""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from openapi_spec_validator import validate as validate_spec
from starlette.routing import Route
from starlette.testclient import TestClient

from examples.bank import create_app
from examples.bank.app import Problem, parse_transfer
from examples.bank.seed import ALICE, ALICE_EUR, ALICE_USD, BOB, BOB_EUR, BOB_USD
from tests.examples.bank.support import (
    assert_documented,
    balance,
    consumer,
    ecma_pattern,
    schema_errors,
)

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def post_transfer(
    client: TestClient,
    *,
    key: str | None = "key-0000001",
    amount: str = "10.00",
    source: str = ALICE_EUR,
    target: str = BOB_EUR,
    currency: str = "EUR",
    customer: str = ALICE,
    version: str = "v1",
    reference: str | None = None,
) -> httpx2.Response:
    body: dict[str, object] = {"from_account": source, "to_account": target}
    if version == "v1":
        body |= {"amount": amount, "currency": currency}
    else:
        body["amount"] = {"value": amount, "currency": currency}
    if reference is not None:
        body["reference"] = reference
    headers = consumer(customer)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/{version}/transfers", json=body, headers=headers)


def transaction_count(client: TestClient, account: str, customer: str = ALICE) -> int:
    response = client.get(f"/v1/accounts/{account}/transactions", headers=consumer(customer))
    total: int = response.json()["total"]
    return total


def all_balances(client: TestClient) -> Decimal:
    return sum((balance(client, account, owner) for account, owner in OWNERS.items()), Decimal(0))


OWNERS = {ALICE_EUR: ALICE, ALICE_USD: ALICE, BOB_EUR: BOB, BOB_USD: BOB}


# -- identity ------------------------------------------------------------------------------

REQUESTS = [
    pytest.param("GET", "/v1/accounts", id="list-accounts"),
    pytest.param("GET", f"/v1/accounts/{ALICE_EUR}", id="get-account"),
    pytest.param("GET", f"/v2/accounts/{ALICE_EUR}/transactions", id="list-transactions"),
    pytest.param("POST", "/v1/transfers", id="create-transfer"),
    pytest.param("GET", "/v2/transfers/trf_0000000000000000", id="get-transfer"),
]


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_requests_without_consumer_header_are_unauthenticated(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path, json={}, headers={"Idempotency-Key": "key-0000001"})

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unauthenticated"


@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_requests_from_unknown_customer_are_unauthenticated(
    client: TestClient, method: str, path: str
) -> None:
    body = {"from_account": ALICE_EUR, "to_account": BOB_EUR, "amount": "1", "currency": "EUR"}
    headers = {**consumer("cus_mallory01"), "Idempotency-Key": "key-0000001"}

    response = client.request(method, path, json=body, headers=headers)

    assert response.status_code == 401
    assert response.json()["code"] == "unknown_customer"


def test_health_needs_no_consumer(client: TestClient, spec: dict[str, Any]) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert_documented(spec, response, "/healthz")


# -- ownership -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_list_accounts_returns_only_the_callers_accounts(
    client: TestClient, spec: dict[str, Any], version: str
) -> None:
    response = client.get(f"/{version}/accounts", headers=consumer(BOB))

    assert response.status_code == 200
    assert response.json() == {
        "data": [
            {"id": BOB_EUR, "customer_id": BOB, "currency": "EUR", "balance": "3280.01"},
            {"id": BOB_USD, "customer_id": BOB, "currency": "USD", "balance": "137.50"},
        ]
    }
    assert_documented(spec, response, f"/{version}/accounts")


@pytest.mark.parametrize(
    ("path", "template"),
    [
        pytest.param(f"/v1/accounts/{BOB_EUR}", "/v1/accounts/{account_id}", id="account"),
        pytest.param(
            f"/v2/accounts/{BOB_USD}/transactions",
            "/v2/accounts/{account_id}/transactions",
            id="transactions",
        ),
    ],
)
def test_another_customers_account_is_forbidden(
    client: TestClient, spec: dict[str, Any], path: str, template: str
) -> None:
    response = client.get(path, headers=consumer(ALICE))

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert_documented(spec, response, template)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/v1/accounts/acc_nosuchaccount", id="account"),
        pytest.param("/v1/accounts/acc_nosuchaccount/transactions", id="transactions"),
    ],
)
def test_unknown_account_is_not_found(client: TestClient, path: str) -> None:
    response = client.get(path, headers=consumer(ALICE))

    assert response.status_code == 404
    assert response.json()["code"] == "account_not_found"


def test_transfer_from_another_customers_account_is_forbidden_and_moves_nothing(
    client: TestClient,
) -> None:
    response = post_transfer(client, source=BOB_EUR, target=ALICE_EUR, customer=ALICE)

    assert response.status_code == 403
    assert balance(client, BOB_EUR, BOB) == Decimal("3280.01")
    assert balance(client, ALICE_EUR) == Decimal("2916.25")


def test_transfer_of_another_customer_is_forbidden_and_unknown_one_not_found(
    client: TestClient, spec: dict[str, Any]
) -> None:
    transfer_id = post_transfer(client).json()["id"]

    forbidden = client.get(f"/v1/transfers/{transfer_id}", headers=consumer(BOB))
    missing = client.get("/v1/transfers/trf_0000000000000000", headers=consumer(ALICE))

    assert forbidden.status_code == 403
    assert missing.status_code == 404
    assert missing.json()["code"] == "transfer_not_found"
    assert_documented(spec, forbidden, "/v1/transfers/{transfer_id}")
    assert_documented(spec, missing, "/v1/transfers/{transfer_id}")


# -- money ---------------------------------------------------------------------------------


def test_transfers_move_money_exactly(client: TestClient, spec: dict[str, Any]) -> None:
    # 0.10 + 0.20 is not 0.30 in binary floating point; it must be here.
    for index, amount in enumerate(["0.10", "0.20", "0.1", "12.3"]):
        response = post_transfer(client, key=f"exact-{index:04d}", amount=amount)
        assert response.status_code == 201, response.text
        assert_documented(spec, response, "/v1/transfers")

    assert balance(client, ALICE_EUR) == Decimal("2916.25") - Decimal("12.70")
    assert balance(client, BOB_EUR, BOB) == Decimal("3280.01") + Decimal("12.70")
    page = client.get(f"/v1/accounts/{ALICE_EUR}/transactions?limit=2", headers=consumer(ALICE))
    assert [(t["amount"], t["balance_after"]) for t in page.json()["data"]] == [
        ("-12.30", "2903.55"),
        ("-0.10", "2915.85"),
    ]


def test_transfer_records_both_legs_with_the_reference(client: TestClient) -> None:
    transfer = post_transfer(client, amount="25", reference="Dinner").json()

    debit = client.get(f"/v1/accounts/{ALICE_EUR}/transactions?limit=1", headers=consumer(ALICE))
    credit = client.get(f"/v1/accounts/{BOB_EUR}/transactions?limit=1", headers=consumer(BOB))

    assert transfer["amount"] == "25.00"
    assert transfer["reference"] == "Dinner"
    for page, amount in [(debit, "-25.00"), (credit, "25.00")]:
        (leg,) = page.json()["data"]
        assert (leg["amount"], leg["description"], leg["transfer_id"]) == (
            amount,
            "Dinner",
            transfer["id"],
        )
        assert leg["created_at"] == "2024-05-06T07:08:09Z"


def test_transfer_to_another_customers_account_is_allowed(client: TestClient) -> None:
    response = post_transfer(
        client, source=BOB_USD, target=ALICE_USD, customer=BOB, amount="7.5", currency="USD"
    )

    assert response.status_code == 201
    assert balance(client, ALICE_USD) == Decimal("782.50")


def test_transfer_of_the_whole_balance_empties_the_account(client: TestClient) -> None:
    response = post_transfer(client, source=ALICE_USD, target=BOB_USD, amount="775", currency="USD")

    assert response.status_code == 201
    assert balance(client, ALICE_USD) == Decimal("0.00")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        pytest.param({"amount": "2916.26"}, "insufficient_funds", id="one-cent-too-much"),
        pytest.param({"amount": "999999999999.99"}, "insufficient_funds", id="largest-amount"),
        pytest.param({"target": ALICE_EUR}, "same_account", id="same-account"),
        pytest.param({"target": "acc_nosuchaccount"}, "unknown_account", id="unknown-target"),
        pytest.param({"target": BOB_USD}, "currency_mismatch", id="target-currency"),
        pytest.param({"currency": "USD"}, "currency_mismatch", id="request-currency"),
        pytest.param({"currency": "CHF"}, "currency_mismatch", id="unsupported-currency"),
        pytest.param({"amount": "0"}, "invalid_amount", id="zero"),
        pytest.param({"amount": "0.00"}, "invalid_amount", id="zero-with-decimals"),
    ],
)
def test_transfer_that_cannot_be_made_is_unprocessable_and_moves_nothing(
    client: TestClient, spec: dict[str, Any], overrides: dict[str, str], code: str
) -> None:
    before = transaction_count(client, ALICE_EUR)

    response = post_transfer(client, **overrides)

    assert response.status_code == 422
    assert response.json()["code"] == code
    assert_documented(spec, response, "/v1/transfers")
    assert balance(client, ALICE_EUR) == Decimal("2916.25")
    assert transaction_count(client, ALICE_EUR) == before


MALFORMED_BODIES = [
    pytest.param("v1", b"{", id="not-json"),
    pytest.param("v1", b"[]", id="not-an-object"),
    pytest.param("v1", b"[" * 100_000 + b"]" * 100_000, id="deeply-nested"),
    pytest.param("v1", b'{"amount": NaN}', id="nan"),
    pytest.param("v1", b'{"reference": "\xc3\x28"}', id="not-utf8"),
    pytest.param(
        "v1",
        b'{"from_account": "acc_alice0001", "to_account": "acc_bob00001", "amount": 12.5,'
        b' "currency": "EUR"}',
        id="amount-as-number",
    ),
    pytest.param(
        "v1",
        b'{"from_account": "acc_alice0001", "to_account": "acc_bob00001", "amount": "1.234",'
        b' "currency": "EUR"}',
        id="three-decimals",
    ),
    pytest.param(
        "v1",
        b'{"from_account": "acc_alice0001", "to_account": "acc_bob00001", "amount": "1",'
        b' "currency": "EUR", "reference": "\\ud800"}',
        id="lone-surrogate",
    ),
    pytest.param(
        "v1",
        b'{"from_account": "acc_alice0001", "amount": "1", "currency": "EUR"}',
        id="missing-target",
    ),
    pytest.param(
        "v1",
        b'{"from_account": "acc_alice0001", "to_account": "acc_bob00001",'
        b' "amount": {"value": "1", "currency": "EUR"}}',
        id="v2-body-on-v1",
    ),
    pytest.param(
        "v2",
        b'{"from_account": "acc_alice0001", "to_account": "acc_bob00001", "amount": "1",'
        b' "currency": "EUR"}',
        id="v1-body-on-v2",
    ),
    pytest.param(
        "v2",
        b'{"from_account": "acc_alice0001", "to_account": "acc_bob00001",'
        b' "amount": {"value": "1"}}',
        id="v2-amount-without-currency",
    ),
]


@pytest.mark.parametrize(("version", "body"), MALFORMED_BODIES)
def test_malformed_transfer_body_is_a_bad_request(
    client: TestClient, spec: dict[str, Any], version: str, body: bytes
) -> None:
    headers = {**consumer(ALICE), "Idempotency-Key": "key-0000001"}

    response = client.post(f"/{version}/transfers", content=body, headers=headers)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_body"
    assert_documented(spec, response, f"/{version}/transfers")
    assert balance(client, ALICE_EUR) == Decimal("2916.25")


def test_concurrent_transfers_never_spend_the_same_money_twice(db_path: Path) -> None:
    # Two app instances on one file stand for two worker processes; 8 x 400 > 2916.25.
    apps = [create_app(db_path), create_app(db_path)]

    def send(index: int) -> int:
        with TestClient(apps[index % 2]) as test_client:
            return post_transfer(
                test_client, key=f"concurrent-{index:04d}", amount="400"
            ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(send, range(8)))

    assert statuses == [201] * 7 + [422]
    with TestClient(apps[0]) as test_client:
        assert balance(test_client, ALICE_EUR) == Decimal("116.25")
        assert balance(test_client, BOB_EUR, BOB) == Decimal("6080.01")


# -- idempotency ---------------------------------------------------------------------------


def test_repeated_idempotency_key_with_same_body_replays_the_response(client: TestClient) -> None:
    first = post_transfer(client, key="retry-0001", amount="50")
    second = post_transfer(client, key="retry-0001", amount="50")

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.content == first.content
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert balance(client, ALICE_EUR) == Decimal("2866.25")
    assert transaction_count(client, BOB_EUR, BOB) == 4


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param({"amount": "12.3"}, {"amount": "12.30"}, id="same-amount-other-spelling"),
        pytest.param({"version": "v1"}, {"version": "v2"}, id="same-transfer-other-version"),
    ],
)
def test_idempotency_compares_the_meaning_of_the_request(
    client: TestClient, first: dict[str, str], second: dict[str, str]
) -> None:
    original = post_transfer(client, key="meaning-01", **first)
    replay = post_transfer(client, key="meaning-01", **second)

    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == original.json()["id"]
    assert transaction_count(client, BOB_EUR, BOB) == 4


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"amount": "10.01"}, id="amount"),
        pytest.param({"target": ALICE_USD, "currency": "USD"}, id="target"),
        pytest.param({"reference": "other"}, id="reference"),
    ],
)
def test_repeated_idempotency_key_with_different_body_is_unprocessable(
    client: TestClient, spec: dict[str, Any], changed: dict[str, str]
) -> None:
    post_transfer(client, key="reuse-0001")

    response = post_transfer(client, key="reuse-0001", **changed)

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert_documented(spec, response, "/v1/transfers")
    assert balance(client, ALICE_EUR) == Decimal("2906.25")


def test_idempotency_keys_belong_to_one_customer(client: TestClient) -> None:
    alices = post_transfer(client, key="shared-0001", source=ALICE_EUR, target=BOB_EUR)
    bobs = post_transfer(client, key="shared-0001", source=BOB_EUR, target=ALICE_EUR, customer=BOB)

    assert bobs.status_code == 201
    assert "idempotent-replayed" not in bobs.headers
    assert bobs.json()["id"] != alices.json()["id"]


def test_refused_transfer_does_not_use_up_its_idempotency_key(client: TestClient) -> None:
    refused = post_transfer(client, key="later-0001", amount="5000")
    accepted = post_transfer(client, key="later-0001", amount="50")

    assert refused.status_code == 422
    assert accepted.status_code == 201
    assert "idempotent-replayed" not in accepted.headers


def test_transfer_without_idempotency_key_is_a_bad_request(
    client: TestClient, spec: dict[str, Any]
) -> None:
    response = post_transfer(client, key=None)

    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_missing"
    assert_documented(spec, response, "/v1/transfers")
    assert balance(client, ALICE_EUR) == Decimal("2916.25")


# -- pagination ----------------------------------------------------------------------------


def test_transactions_paginate_newest_first_without_gaps_or_overlap(
    client: TestClient, spec: dict[str, Any]
) -> None:
    url = f"/v1/accounts/{ALICE_EUR}/transactions"
    everything = client.get(url, params={"limit": 100}, headers=consumer(ALICE)).json()
    pages = [
        client.get(url, params={"limit": 4, "offset": offset}, headers=consumer(ALICE))
        for offset in (0, 4, 8)
    ]

    assert everything["total"] == 10
    assert [len(page.json()["data"]) for page in pages] == [4, 4, 2]
    assert [t for page in pages for t in page.json()["data"]] == everything["data"]
    assert pages[1].json() | {"data": None} == {
        "data": None,
        "limit": 4,
        "offset": 4,
        "total": 10,
    }
    stamps = [t["created_at"] for t in everything["data"]]
    assert stamps == sorted(stamps, reverse=True)
    assert everything["data"][-1]["description"] == "Opening deposit"
    for page in pages:
        assert_documented(spec, page, "/v1/accounts/{account_id}/transactions")


def test_transactions_default_to_twenty_and_end_empty(client: TestClient) -> None:
    url = f"/v1/accounts/{ALICE_EUR}/transactions"
    for index in range(15):
        post_transfer(client, key=f"many-{index:05d}", amount="1")

    first = client.get(url, headers=consumer(ALICE)).json()
    beyond = client.get(url, params={"offset": 25}, headers=consumer(ALICE)).json()

    assert (len(first["data"]), first["limit"], first["offset"], first["total"]) == (20, 20, 0, 25)
    assert beyond["data"] == []


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("limit=0", id="limit-zero"),
        pytest.param("limit=-1", id="limit-negative"),
        pytest.param("limit=1001", id="limit-above-app-maximum"),
        pytest.param("limit=abc", id="limit-not-a-number"),
        pytest.param("limit=1.5", id="limit-fraction"),
        pytest.param("limit=%D9%A3", id="limit-arabic-digit"),
        pytest.param("offset=-1", id="offset-negative"),
        pytest.param("offset=99999999999", id="offset-huge"),
    ],
)
def test_invalid_page_parameters_are_a_bad_request(client: TestClient, query: str) -> None:
    response = client.get(f"/v1/accounts/{ALICE_EUR}/transactions?{query}", headers=consumer(ALICE))

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_query"


# -- versions ------------------------------------------------------------------------------


def test_v2_transfer_nests_the_amount_and_adds_created_at(
    client: TestClient, spec: dict[str, Any]
) -> None:
    created = post_transfer(client, version="v2", amount="12.3", reference="Book")
    transfer_id = created.json()["id"]

    v2 = client.get(f"/v2/transfers/{transfer_id}", headers=consumer(ALICE))
    v1 = client.get(f"/v1/transfers/{transfer_id}", headers=consumer(ALICE))

    assert created.status_code == 201
    assert created.headers["location"] == f"/v2/transfers/{transfer_id}"
    assert (
        created.json()
        == v2.json()
        == {
            "id": transfer_id,
            "status": "completed",
            "from_account": ALICE_EUR,
            "to_account": BOB_EUR,
            "amount": {"value": "12.30", "currency": "EUR"},
            "reference": "Book",
            "created_at": "2024-05-06T07:08:09Z",
        }
    )
    assert v1.json() == {
        "id": transfer_id,
        "status": "completed",
        "from_account": ALICE_EUR,
        "to_account": BOB_EUR,
        "amount": "12.30",
        "currency": "EUR",
        "reference": "Book",
    }
    assert_documented(spec, created, "/v2/transfers")
    assert_documented(spec, v2, "/v2/transfers/{transfer_id}")
    assert_documented(spec, v1, "/v1/transfers/{transfer_id}")


def test_accounts_and_transactions_are_identical_in_both_versions(client: TestClient) -> None:
    for path in [
        "/accounts",
        f"/accounts/{ALICE_EUR}",
        f"/accounts/{ALICE_EUR}/transactions?limit=3",
    ]:
        v1 = client.get("/v1" + path, headers=consumer(ALICE))
        v2 = client.get("/v2" + path, headers=consumer(ALICE))
        assert v1.status_code == v2.status_code == 200
        assert v1.json() == v2.json()


# -- errors --------------------------------------------------------------------------------


def test_unknown_route_and_method_answer_problem_json(client: TestClient) -> None:
    missing = client.get("/v3/accounts", headers=consumer(ALICE))
    wrong_method = client.delete("/v1/accounts", headers=consumer(ALICE))

    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "method_not_allowed")
    assert set(wrong_method.headers["allow"].split(", ")) == {"GET", "HEAD"}
    for response in (missing, wrong_method):
        assert response.headers["content-type"] == "application/problem+json"


def test_problem_echoes_the_gateway_request_id(client: TestClient) -> None:
    response = client.get("/v1/accounts", headers={"X-Request-ID": "req-123"})

    assert response.json() == {
        "type": "https://bank.example/problems/unauthenticated",
        "title": "Unauthorized",
        "status": 401,
        "detail": "No authenticated consumer.",
        "code": "unauthenticated",
        "request_id": "req-123",
    }


def test_internal_error_is_a_problem_without_internals(db_path: Path) -> None:
    app = create_app(db_path)
    with closing(sqlite3.connect(db_path)) as conn:
        conn.execute("DROP TABLE idempotency_keys")
    with TestClient(app, raise_server_exceptions=False) as broken:
        response = post_transfer(broken)

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "internal_error"
    assert "idempotency_keys" not in response.text


# -- fuzzing: no input makes the app fail or lose money ------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


def _field(*valid: object) -> st.SearchStrategy[object]:
    return st.one_of(st.sampled_from(valid), _JSON)


_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "from_account": _field(ALICE_EUR, ALICE_USD, BOB_EUR),
        "to_account": _field(ALICE_EUR, BOB_EUR, BOB_USD),
        "amount": _field("0.01", "1", "0", "3000", {"value": "1", "currency": "EUR"}),
        "currency": _field("EUR", "USD"),
        "reference": _field(None, "rent"),
    },
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=_BODIES, version=st.sampled_from(["v1", "v2"]), key=st.uuids())
def test_arbitrary_transfer_bodies_never_fail_the_app_or_create_money(
    client: TestClient, body: dict[str, object], version: str, key: object
) -> None:
    before = all_balances(client)
    headers = {**consumer(ALICE), "Idempotency-Key": str(key)}

    response = client.post(f"/{version}/transfers", content=json.dumps(body), headers=headers)

    assert response.status_code in {201, 400, 403, 422}
    if response.status_code != 201:
        assert response.headers["content-type"] == "application/problem+json"
    assert all_balances(client) == before


@example(value="\u0661\u0662")  # Arabic-Indic digits: Python's \d and Decimal accept them
@example(value="12\n")  # Python's $ matches before a final newline
@example(value="0.00")
@given(
    value=st.one_of(
        st.from_regex(r"[0-9]{1,13}(\.[0-9]{1,3})?", fullmatch=True),
        st.text(alphabet="0123456789.-+eE \n", max_size=16),
        st.text(max_size=16),
    )
)
def test_amount_parser_accepts_exactly_the_contract_pattern(
    spec: dict[str, Any], value: str
) -> None:
    pattern = ecma_pattern(spec["components"]["schemas"]["Amount"]["pattern"])
    body = {"from_account": ALICE_EUR, "to_account": BOB_EUR, "amount": value, "currency": "EUR"}

    try:
        parsed: int | None = parse_transfer(body, "v1").amount_minor
        status = 200
    except Problem as problem:
        parsed, status = None, problem.status

    if pattern.search(value) is None:
        assert status == 400
    elif Decimal(value) == 0:
        assert status == 422
    else:
        assert parsed == int(Decimal(value) * 100)


# -- the contract --------------------------------------------------------------------------


def test_openapi_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    validate_spec(spec)


def test_every_served_route_is_documented_and_every_documented_route_is_served(
    db_path: Path, spec: dict[str, Any]
) -> None:
    served = set()
    for route in create_app(db_path).routes:
        assert isinstance(route, Route)
        served |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
    documented = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }

    assert served == documented


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        pytest.param(
            "TransferRequestV1",
            {"from_account": ALICE_EUR, "to_account": BOB_EUR, "amount": "1", "currency": "EUR"},
            id="v1",
        ),
        pytest.param(
            "TransferRequestV2",
            {
                "from_account": ALICE_EUR,
                "to_account": BOB_EUR,
                "amount": {"value": "12.34", "currency": "EUR"},
                "reference": "Rent",
            },
            id="v2",
        ),
    ],
)
def test_contract_accepts_the_transfer_bodies_the_app_accepts(
    spec: dict[str, Any], schema: str, body: dict[str, object]
) -> None:
    assert schema_errors(spec, schema, body) == []


_V1 = {"from_account": ALICE_EUR, "to_account": BOB_EUR, "amount": "1", "currency": "EUR"}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_V1 | {"admin": True}, id="unknown-member"),
        pytest.param(_V1 | {"reference": "x" * 141}, id="long-reference"),
        pytest.param(_V1 | {"reference": "line\nbreak"}, id="control-character"),
        pytest.param(_V1 | {"amount": "1.234"}, id="three-decimals"),
        pytest.param(_V1 | {"currency": "XAU"}, id="unsupported-currency"),
        pytest.param(_V1 | {"from_account": "acc_" + "a" * 40}, id="long-account-id"),
        pytest.param(_V1 | {"to_account": "ACC_BOB00001"}, id="bad-account-id"),
    ],
)
def test_contract_refuses_what_only_the_gateway_enforces(
    spec: dict[str, Any], body: dict[str, object]
) -> None:
    assert schema_errors(spec, "TransferRequestV1", body) != []
