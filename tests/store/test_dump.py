"""A database dump holds no usable secret: no issued key, no password, in any table."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from bastion.store import APIKeyRecord, PasswordRecord, Store, open_store
from bastion.store.secrets import Pepper, Peppers, hash_password, new_api_key
from tests.store.support import postgres_dump, postgres_schema

pytestmark = pytest.mark.anyio

PEPPERS = Peppers(Pepper.from_secret("a-test-pepper-of-at-least-32-characters"))
PASSWORDS = ["correct horse battery staple", "pässwörd-ünïcode", "hunter2hunter2"]


async def _fill(store: Store) -> list[str]:
    """Issue keys and set passwords the way the CLI does; returns every secret used."""
    issued: list[str] = []
    for index, password in enumerate(PASSWORDS):
        consumer = await store.create_consumer(f"user{index}", actor="test")
        for _ in range(2):
            key_id, key = new_api_key()
            digest = PEPPERS.digest(key)
            assert digest is not None
            record = APIKeyRecord(key_id, consumer.id, digest, PEPPERS.current.id, time.time())
            await store.add_api_key(record, actor="test")
            issued.append(key)
        await store.revoke_api_key(key_id, at=time.time(), actor="test")
        record_pw = PasswordRecord(consumer.id, consumer.name, hash_password(password), 1.0)
        await store.set_password(record_pw, actor="test")
    return issued + PASSWORDS


def _assert_no_secret(dump: str, secrets: list[str]) -> None:
    assert "bastion_api_keys" in dump or "CREATE TABLE bastion_api_keys" in dump
    for secret in secrets:
        assert secret not in dump
        if secret.startswith("bst_"):  # not even the secret half of a key on its own
            assert secret[len("bst_") + 13 :] not in dump
    assert "$argon2id$v=19$m=19456,t=2,p=1$" in dump  # the hashes are there, and argon2id


async def test_sqlite_dump_contains_no_key_or_password(tmp_path: Path) -> None:
    path = tmp_path / "bastion.db"
    store = open_store(f"sqlite:///{path}")
    try:
        secrets = await _fill(store)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        dump = "\n".join(conn.iterdump())
    _assert_no_secret(dump, secrets)


@pytest.mark.postgres
async def test_postgres_dump_contains_no_key_or_password() -> None:
    with postgres_schema() as url:
        store = open_store(url)
        try:
            secrets = await _fill(store)
        finally:
            await store.close()
        dump = postgres_dump(url)
    _assert_no_secret(dump, secrets)
