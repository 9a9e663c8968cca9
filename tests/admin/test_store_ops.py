"""Admin-only store writes: deleting a consumer and auditing config changes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.admin.store_ops import ADMIN_ACTOR, delete_consumer, record_config_change
from bastion.store import APIKeyRecord, PasswordRecord, Store, StoreNotFound, open_store

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store."""
    opened = open_store(f"sqlite:///{tmp_path / 'bastion.db'}")
    await opened.migrate()
    try:
        yield opened
    finally:
        await opened.close()


async def test_delete_consumer_removes_its_credentials_and_audits_each(store: Store) -> None:
    consumer = await store.create_consumer("alice", actor="test")
    key = APIKeyRecord("k1", consumer.id, "d" * 64, "p1", time.time())
    await store.add_api_key(key, actor="test")
    await store.set_password(PasswordRecord(consumer.id, "alice", "$argon2id$x", 1.0), actor="t")
    mark = await store.last_audit_id()

    await delete_consumer(store, consumer.id)

    assert await store.get_consumer(consumer.id) is None
    assert await store.get_api_key("k1") is None
    assert await store.get_password("alice") is None
    entries = await store.audit_log(mark)
    assert [(e.actor, e.action, e.subject_id) for e in entries] == [
        (ADMIN_ACTOR, "api_key.delete", "k1"),
        (ADMIN_ACTOR, "consumer.delete", consumer.id),
    ]
    assert entries[1].before is not None
    assert entries[1].before["name"] == "alice"
    assert "d" * 64 not in repr(entries)
    # The name is free again.
    assert (await store.create_consumer("alice", actor="test")).name == "alice"


async def test_delete_consumer_refuses_an_unknown_id(store: Store) -> None:
    with pytest.raises(StoreNotFound):
        await delete_consumer(store, "c_missing")


async def test_config_change_is_appended_to_the_audit_log(store: Store) -> None:
    await record_config_change(
        store,
        revision=3,
        before={"values": {"limits.idle_timeout": 2.0}},
        after={"values": {"limits.idle_timeout": 7.5}},
    )
    (entry,) = await store.audit_log()
    assert entry.actor == ADMIN_ACTOR
    assert entry.action == "config.update"
    assert entry.subject_id == "3"
    assert entry.after == {"values": {"limits.idle_timeout": 7.5}}
