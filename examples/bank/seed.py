"""Demo data for the banking example: two customers, four accounts, a short history each."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

from examples.bank.db import connect, init_schema, to_minor

ALICE = "cus_alice0001"
BOB = "cus_bob00001"
ALICE_EUR = "acc_alice0001"
ALICE_USD = "acc_alice0002"
BOB_EUR = "acc_bob00001"
BOB_USD = "acc_bob00002"


class SeedIds(TypedDict):
    """Identifiers of the demo data; each customer's accounts are listed EUR first, then USD."""

    customers: list[str]
    accounts: dict[str, list[str]]


_CUSTOMERS = ((ALICE, "Alice Example"), (BOB, "Bob Example"))
_ACCOUNTS = (
    (ALICE_EUR, ALICE, "EUR"),
    (ALICE_USD, ALICE, "USD"),
    (BOB_EUR, BOB, "EUR"),
    (BOB_USD, BOB, "USD"),
)
# (account, signed amount, description); Alice's EUR account gets enough rows to paginate.
_HISTORY = (
    (ALICE_EUR, "2500.00", "Opening deposit"),
    (ALICE_USD, "800.00", "Opening deposit"),
    (BOB_EUR, "1200.00", "Opening deposit"),
    (BOB_USD, "150.00", "Opening deposit"),
    (ALICE_EUR, "-42.10", "Card payment: Grocer"),
    (ALICE_EUR, "-3.20", "Card payment: Bakery"),
    (BOB_EUR, "-19.99", "Card payment: Bookshop"),
    (ALICE_EUR, "-120.00", "Card payment: Rail tickets"),
    (ALICE_EUR, "1850.00", "Salary"),
    (ALICE_EUR, "-950.00", "Rent"),
    (BOB_USD, "-12.50", "Card payment: Cinema"),
    (ALICE_EUR, "-15.75", "Card payment: Pharmacy"),
    (ALICE_EUR, "-64.30", "Card payment: Hardware store"),
    (ALICE_USD, "-25.00", "Card payment: Online service"),
    (ALICE_EUR, "-8.40", "Card payment: Coffee"),
    (ALICE_EUR, "-230.00", "Card payment: Electricity"),
    (BOB_EUR, "2100.00", "Salary"),
)
_START = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)


def seed(db_path: str | Path) -> SeedIds:
    """Create the demo customers, accounts and transactions unless they already exist.

    Safe to call repeatedly: the data is written once, in one transaction, and later calls
    change nothing. Balances equal the sum of each account's transactions.

    Returns:
        The customer ids and each customer's account ids (EUR first, then USD).
    """
    init_schema(db_path)
    conn = connect(db_path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            exists = conn.execute("SELECT 1 FROM customers WHERE id = ?", (ALICE,)).fetchone()
            if exists is None:
                _write(conn)
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
    finally:
        conn.close()
    return {
        "customers": [ALICE, BOB],
        "accounts": {ALICE: [ALICE_EUR, ALICE_USD], BOB: [BOB_EUR, BOB_USD]},
    }


def link_identity(db_path: str | Path, subject: str, customer_id: str) -> None:
    """Let the gateway identity `subject` act as the customer `customer_id` (idempotent).

    This is the bank's enrolment step for identities it does not choose itself, such as the
    consumer id in the `sub` of a token from Bastion's OAuth server. Linking a subject again
    moves it to the new customer.

    Raises:
        ValueError: `customer_id` is not a customer of this bank.
    """
    init_schema(db_path)
    conn = connect(db_path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            known = conn.execute("SELECT 1 FROM customers WHERE id = ?", (customer_id,)).fetchone()
            if known is not None:
                conn.execute(
                    "INSERT INTO identities (subject, customer_id) VALUES (?, ?)"
                    " ON CONFLICT (subject) DO UPDATE SET customer_id = excluded.customer_id",
                    (subject, customer_id),
                )
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
    finally:
        conn.close()
    if known is None:
        raise ValueError(f"{customer_id!r} is not a customer of this bank")


def _write(conn: sqlite3.Connection) -> None:
    conn.executemany("INSERT INTO customers (id, name) VALUES (?, ?)", _CUSTOMERS)
    balances = dict.fromkeys((account for account, _, _ in _ACCOUNTS), 0)
    conn.executemany(
        "INSERT INTO accounts (id, customer_id, currency, balance_minor) VALUES (?, ?, ?, 0)",
        _ACCOUNTS,
    )
    for index, (account, amount, description) in enumerate(_HISTORY):
        balances[account] += to_minor(Decimal(amount))
        created_at = (_START + timedelta(hours=6 * index)).strftime("%Y-%m-%dT%H:%M:%SZ")
        conn.execute(
            "INSERT INTO transactions (id, account_id, amount_minor, balance_after_minor,"
            " description, transfer_id, created_at) VALUES (?, ?, ?, ?, ?, NULL, ?)",
            (
                f"txn_seed{index:04d}",
                account,
                to_minor(Decimal(amount)),
                balances[account],
                description,
                created_at,
            ),
        )
    conn.executemany(
        "UPDATE accounts SET balance_minor = ? WHERE id = ?",
        [(balance, account) for account, balance in balances.items()],
    )
