"""The store's behaviour, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from bastion.store import APIKeyRecord, PasswordRecord, Store, StoreConflict, StoreNotFound
from bastion.store.secrets import Pepper, Peppers, new_api_key
from bastion.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

PEPPERS = Peppers(Pepper.from_secret("a-test-pepper-of-at-least-32-characters"))


async def _issue(
    store: Store, consumer_id: str, *, expires_at: float | None = None
) -> tuple[APIKeyRecord, str]:
    key_id, key = new_api_key()
    digest = PEPPERS.digest(key)
    assert digest is not None
    record = APIKeyRecord(key_id, consumer_id, digest, PEPPERS.current.id, time.time(), expires_at)
    await store.add_api_key(record, actor="test")
    return record, key


async def test_consumer_round_trips_with_groups_and_metadata(store: Store) -> None:
    created = await store.create_consumer(
        "alice", actor="test", groups=["admins", "ops"], metadata={"team": "payments"}
    )
    assert await store.get_consumer(created.id) == created
    assert await store.find_consumer("alice") == created
    assert await store.find_consumer(created.id) == created
    assert created.groups == frozenset({"admins", "ops"})
    assert dict(created.metadata) == {"team": "payments"}
    assert await store.find_consumer("nobody") is None


async def test_consumer_names_are_unique(store: Store) -> None:
    await store.create_consumer("alice", actor="test")
    with pytest.raises(StoreConflict):
        await store.create_consumer("alice", actor="test")
    assert [c.name for c in await store.list_consumers()] == ["alice"]


async def test_disabling_a_consumer_is_stored(store: Store) -> None:
    consumer = await store.create_consumer("alice", actor="test")
    disabled = await store.set_consumer_disabled(consumer.id, True, actor="test")
    assert disabled.disabled
    found = await store.get_consumer(consumer.id)
    assert found is not None
    assert found.disabled


async def test_disabling_an_unknown_consumer_fails(store: Store) -> None:
    with pytest.raises(StoreNotFound):
        await store.set_consumer_disabled("c_nobody", True, actor="test")


async def test_api_key_is_found_with_its_consumer(store: Store) -> None:
    consumer = await store.create_consumer("alice", actor="test")
    record, _ = await _issue(store, consumer.id, expires_at=time.time() + 60)
    found = await store.get_api_key(record.id)
    assert found == (record, consumer)
    assert await store.get_api_key("000000000000") is None
    assert await store.list_api_keys(consumer.id) == [record]


async def test_api_key_for_unknown_consumer_is_refused(store: Store) -> None:
    with pytest.raises(StoreNotFound):
        await _issue(store, "c_nobody")


async def test_revoking_keeps_the_first_revocation_time(store: Store) -> None:
    consumer = await store.create_consumer("alice", actor="test")
    record, _ = await _issue(store, consumer.id)
    first = await store.revoke_api_key(record.id, at=1000.0, actor="test")
    second = await store.revoke_api_key(record.id, at=2000.0, actor="test")
    assert first.revoked_at == second.revoked_at == 1000.0
    with pytest.raises(StoreNotFound):
        await store.revoke_api_key("000000000000", at=1.0, actor="test")


async def test_key_expiry_can_be_changed(store: Store) -> None:
    consumer = await store.create_consumer("alice", actor="test")
    record, _ = await _issue(store, consumer.id)
    await store.set_api_key_expiry(record.id, 12345.0, actor="test")
    found = await store.get_api_key(record.id)
    assert found is not None
    assert found[0].expires_at == 12345.0


async def test_password_is_replaced_and_found_by_username(store: Store) -> None:
    consumer = await store.create_consumer("alice", actor="test")
    await store.set_password(PasswordRecord(consumer.id, "alice", "$argon2id$one", 1.0), actor="t")
    await store.set_password(PasswordRecord(consumer.id, "alice", "$argon2id$two", 2.0), actor="t")
    found = await store.get_password("alice")
    assert found is not None
    assert found[0].password_hash == "$argon2id$two"
    assert found[1] == consumer
    assert await store.get_password("bob") is None


async def test_every_change_is_audited_without_secrets(store: Store) -> None:
    consumer = await store.create_consumer("alice", actor="admin-1")
    record, _ = await _issue(store, consumer.id)
    await store.revoke_api_key(record.id, at=5.0, actor="admin-2")
    await store.set_password(PasswordRecord(consumer.id, "alice", "$argon2id$h", 1.0), actor="a")
    await store.set_consumer_disabled(consumer.id, True, actor="admin-3")
    entries = await store.audit_log()
    assert [(e.actor, e.action, e.subject_id) for e in entries] == [
        ("admin-1", "consumer.create", consumer.id),
        ("test", "api_key.issue", record.id),
        ("admin-2", "api_key.revoke", record.id),
        ("a", "password.set", consumer.id),
        ("admin-3", "consumer.disable", consumer.id),
    ]
    revoke = entries[2]
    assert revoke.before is not None
    assert revoke.after is not None
    assert revoke.before["revoked_at"] is None
    assert revoke.after["revoked_at"] == 5.0
    assert all("digest" not in (e.after or {}) for e in entries)
    assert all("password_hash" not in (e.after or {}) for e in entries)
    assert await store.last_audit_id() == entries[-1].id
    assert await store.audit_log(entries[2].id) == entries[3:]


async def test_migrate_is_idempotent(store: Store) -> None:
    assert await store.migrate() == []


async def test_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state" / "bastion.db")
    try:
        await store.create_consumer("alice", actor="test")
        mode = stat.S_IMODE(os.stat(tmp_path / "state" / "bastion.db").st_mode)
        assert mode == 0o600
        wal = tmp_path / "state" / "bastion.db-wal"
        assert stat.S_IMODE(os.stat(wal).st_mode) == 0o600
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "state" / "bastion.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_sqlite_store_in_an_unwritable_place_is_unavailable(tmp_path: Path) -> None:
    from bastion.errors import StoreUnavailable

    blocker = tmp_path / "file"
    blocker.write_text("")
    store = SQLiteStore(blocker / "bastion.db")  # a folder inside a file cannot exist
    with pytest.raises(StoreUnavailable):
        await store.list_consumers()
    await store.close()


async def test_postgres_store_that_cannot_connect_is_unavailable() -> None:
    from bastion.errors import StoreUnavailable
    from bastion.store.postgres import PostgresStore

    store = PostgresStore("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreUnavailable):
        await store.list_consumers()
    await store.close()
