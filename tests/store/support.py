"""Test stores: a fresh schema in the real PostgreSQL (SQLite needs only tmp_path)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest

# Trust authentication on the machine's PostgreSQL; override for other setups.
POSTGRES_URL = os.environ.get("BASTION_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_or_skip() -> None:
    """Skip when PostgreSQL is unreachable, except under CI=true, where that is a failure."""
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required under CI=true: {exc}")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A unique schema for one test, dropped afterwards; yields a store URL that uses it."""
    postgres_or_skip()
    schema = f"bastion_test_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        _drop_schema(schema)


def _drop_schema(schema: str) -> None:
    """Drop `schema`; a test that left a connection idle inside a transaction (holding a lock
    on one of its tables) must fail that test's run visibly, not hang the whole suite."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        try:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
        except psycopg.errors.LockNotAvailable:
            # Free the schema from the test's stuck connections, then drop it.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND state = 'idle in transaction'"
            )
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
            raise AssertionError(
                f"a connection was left idle in a transaction on schema {schema}"
            ) from None


def postgres_dump(schema_url: str) -> str:
    """Every row of every Bastion table in the schema, as text."""
    lines: list[str] = []
    with psycopg.connect(schema_url) as conn:
        for table in (
            "bastion_consumers",
            "bastion_api_keys",
            "bastion_passwords",
            "bastion_audit",
            "bastion_schema_migrations",
        ):
            query = f"SELECT * FROM {table}"  # noqa: S608 - fixed table names
            for row in conn.execute(query).fetchall():
                lines.append(f"{table}: {row!r}")
    return "\n".join(lines)
