"""Writes the admin API makes through the store Protocols: deleting consumers, config revisions.

Run on SQLite and on the real PostgreSQL, like every store test.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bastion.store import APIKeyRecord, PasswordRecord, Store, StoreNotFound, open_store
from bastion.store.base import ConfigRevision
from bastion.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

DOCUMENT = {"services": [{"name": "bank", "routes": [{"name": "a", "paths": ["/a"]}]}]}


async def test_delete_consumer_removes_its_credentials_and_audits_each(store: Store) -> None:
    consumer = await store.create_consumer("alice", actor="test")
    key = APIKeyRecord("k1", consumer.id, "d" * 64, "p1", time.time())
    await store.add_api_key(key, actor="test")
    await store.set_password(PasswordRecord(consumer.id, "alice", "$argon2id$x", 1.0), actor="t")
    other = await store.create_consumer("bob", actor="test")
    await store.add_api_key(APIKeyRecord("k2", other.id, "e" * 64, "p1", 1.0), actor="test")
    mark = await store.last_audit_id()

    await store.delete_consumer(consumer.id, actor="admin-api")

    assert await store.get_consumer(consumer.id) is None
    assert await store.get_api_key("k1") is None
    assert await store.get_password("alice") is None
    assert await store.get_api_key("k2") is not None  # another consumer's key stays
    entries = await store.audit_log(mark)
    assert [(e.actor, e.action, e.subject_type, e.subject_id) for e in entries] == [
        ("admin-api", "api_key.delete", "api_key", "k1"),
        ("admin-api", "consumer.delete", "consumer", consumer.id),
    ]
    assert entries[1].before is not None
    assert entries[1].before["name"] == "alice"
    assert entries[1].after is None
    assert "d" * 64 not in repr(entries)
    assert (await store.create_consumer("alice", actor="test")).name == "alice"  # name free


async def test_delete_consumer_refuses_an_unknown_id(store: Store) -> None:
    mark = await store.last_audit_id()
    with pytest.raises(StoreNotFound):
        await store.delete_consumer("c_missing", actor="admin-api")
    assert await store.audit_log(mark) == []


async def test_config_revisions_are_numbered_from_one_and_audited(store: Store) -> None:
    assert await store.latest_config_revision() is None
    assert await store.latest_config_revision_id() == 0

    first = await store.add_config_revision(
        DOCUMENT,
        actor="admin-api",
        origin="node-a",
        before={"revision": 1, "values": {"limits.idle_timeout": 2.0}},
        after={"revision": 2, "values": {"limits.idle_timeout": 7.5}},
    )
    second = await store.add_config_revision(
        {"pepper": "********"}, actor="admin-api", origin="node-b", before=None, after=None
    )

    assert (first.id, second.id) == (1, 2)
    assert await store.latest_config_revision_id() == 2
    latest = await store.latest_config_revision()
    assert latest is not None
    assert latest == ConfigRevision(
        2, {"pepper": "********"}, "admin-api", "node-b", latest.created_at
    )
    assert abs(latest.created_at - time.time()) < 60
    entries = [e for e in await store.audit_log() if e.action == "config.update"]
    assert [(e.subject_type, e.subject_id, e.actor) for e in entries] == [
        ("config", "1", "admin-api"),
        ("config", "2", "admin-api"),
    ]
    assert entries[0].after == {"revision": 2, "values": {"limits.idle_timeout": 7.5}}
    # The document itself is never copied into the audit log.
    assert "bank" not in repr(entries)


async def test_concurrent_config_revisions_get_distinct_numbers(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(3)]
    try:
        for opened in stores:
            await opened.migrate()
        written = await asyncio.gather(
            *(
                opened.add_config_revision(
                    {"n": index}, actor="test", origin=f"p{index}", before=None, after=None
                )
                for index, opened in enumerate(stores)
            )
        )
        assert sorted(revision.id for revision in written) == [1, 2, 3]
        latest = await stores[0].latest_config_revision()
        assert latest is not None
        assert latest.id == 3
        assert {revision.id: revision.document for revision in written}[3] == latest.document
    finally:
        for opened in stores:
            await opened.close()


async def test_sqlite_reading_config_revisions_creates_no_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "bastion.db"
    store = SQLiteStore(path)
    try:
        assert await store.latest_config_revision_id() == 0
        assert await store.latest_config_revision() is None
        assert not path.parent.exists()
        await store.add_config_revision(DOCUMENT, actor="t", origin="o", before=None, after=None)
        assert await store.latest_config_revision_id() == 1
        assert path.exists()
    finally:
        await store.close()
