"""The demo data: stable ids, consistent balances, and seeding twice changes nothing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from examples.bank import create_app, seed
from examples.bank.seed import ALICE, ALICE_EUR, ALICE_USD, BOB, BOB_EUR, BOB_USD
from tests.examples.bank.support import consumer, ecma_pattern


def snapshot(client: TestClient) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for customer in (ALICE, BOB):
        accounts = client.get("/v1/accounts", headers=consumer(customer)).json()["data"]
        for account in accounts:
            page = client.get(
                f"/v1/accounts/{account['id']}/transactions",
                params={"limit": 100},
                headers=consumer(customer),
            ).json()
            state[account["id"]] = (account, page)
    return state


def test_seed_returns_the_demo_ids(tmp_path: Path) -> None:
    assert seed(tmp_path / "bank.db") == {
        "customers": [ALICE, BOB],
        "accounts": {ALICE: [ALICE_EUR, ALICE_USD], BOB: [BOB_EUR, BOB_USD]},
    }


def test_seeding_twice_changes_nothing(tmp_path: Path) -> None:
    db_path = tmp_path / "bank.db"
    first_ids = seed(db_path)
    with TestClient(create_app(db_path)) as client:
        before = snapshot(client)
        second_ids = seed(str(db_path))
        after = snapshot(client)

    assert second_ids == first_ids
    assert after == before
    assert len(after) == 4


def test_seeded_balances_equal_the_sum_of_their_transactions(tmp_path: Path) -> None:
    db_path = tmp_path / "bank.db"
    seed(db_path)
    with TestClient(create_app(db_path)) as client:
        state = snapshot(client)

    for account, page in state.values():
        amounts = [Decimal(t["amount"]) for t in page["data"]]
        assert sum(amounts, Decimal(0)) == Decimal(account["balance"])
        assert page["data"][0]["balance_after"] == account["balance"]


def test_seeded_ids_match_the_contract_patterns(tmp_path: Path, spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    ids = seed(tmp_path / "bank.db")

    for customer, accounts in ids["accounts"].items():
        assert ecma_pattern(schemas["CustomerId"]["pattern"]).search(customer)
        for account in accounts:
            assert ecma_pattern(schemas["AccountId"]["pattern"]).search(account)
