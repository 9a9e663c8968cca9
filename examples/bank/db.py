"""SQLite schema, connections and money conversions for the banking example.

Money is stored as INTEGER minor units (cents) so SQLite never holds a binary float; the API
speaks decimal strings, converted here through `decimal.Decimal` only.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

# Every supported currency has two decimal places, which is what the amount pattern allows.
CURRENCIES = frozenset({"EUR", "USD", "GBP"})
_MINOR_PER_UNIT = 100
_CENT = Decimal("0.01")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
-- Identities a gateway forwards (X-Bastion-Consumer) that are not customer ids themselves, e.g.
-- the consumer id an OAuth login puts in `sub`: linked to a customer once, at enrolment.
CREATE TABLE IF NOT EXISTS identities (
    subject     TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(id)
);
CREATE TABLE IF NOT EXISTS accounts (
    id            TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL REFERENCES customers(id),
    currency      TEXT NOT NULL,
    balance_minor INTEGER NOT NULL CHECK (balance_minor >= 0)
);
CREATE INDEX IF NOT EXISTS accounts_by_customer ON accounts(customer_id);
CREATE TABLE IF NOT EXISTS transfers (
    id           TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers(id),
    from_account TEXT NOT NULL REFERENCES accounts(id),
    to_account   TEXT NOT NULL REFERENCES accounts(id),
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    currency     TEXT NOT NULL,
    reference    TEXT,
    status       TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transactions (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    account_id          TEXT NOT NULL REFERENCES accounts(id),
    amount_minor        INTEGER NOT NULL,
    balance_after_minor INTEGER NOT NULL,
    description         TEXT NOT NULL,
    transfer_id         TEXT REFERENCES transfers(id),
    created_at          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transactions_by_account ON transactions(account_id, seq);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    customer_id TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    transfer_id TEXT NOT NULL REFERENCES transfers(id),
    PRIMARY KEY (customer_id, key)
);
"""


def connect(db_path: str | Path) -> sqlite3.Connection:
    """Open a connection in autocommit mode; callers open transactions explicitly.

    Each call returns a new connection, so connections are never shared between threads.
    """
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=10.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def init_schema(db_path: str | Path) -> None:
    """Create the tables if they do not exist yet (safe to call on every start)."""
    conn = connect(db_path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA)
    finally:
        conn.close()


def to_minor(amount: Decimal) -> int:
    """Convert a decimal amount with at most two decimal places to minor units, exactly.

    Raises:
        ValueError: `amount` has more than two decimal places.
    """
    if amount != amount.quantize(_CENT):
        raise ValueError("amount has more than two decimal places")
    return int(amount * _MINOR_PER_UNIT)


def to_decimal_string(minor: int) -> str:
    """Render minor units as a decimal string with exactly two decimals (`-12.30`, `0.00`)."""
    return str(Decimal(minor).scaleb(-2))
