"""OAuth clients, signing keys and revocations in both stores (SQLite and the real PostgreSQL)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.clock import FakeClock
from bastion.oauth.grant_store import CodeGrant, GrantStore, RefreshGrant
from bastion.store import open_store
from bastion.store.base import OAuthClientRecord, StoreConflict, StoreNotFound
from bastion.store.sql import SQLStore
from tests.oauth.support import add_client, issue, make_server
from tests.store.support import postgres_schema

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SQLStore]:
    if request.param == "sqlite":
        store = open_store(f"sqlite:///{tmp_path / 'bastion.db'}")
        assert isinstance(store, SQLStore)
        yield store
        await store.close()
        return
    with postgres_schema() as url:
        store = open_store(url)
        assert isinstance(store, SQLStore)
        try:
            yield store
        finally:
            await store.close()


def record(client_id: str = "cl_00000000000000aa") -> OAuthClientRecord:
    return OAuthClientRecord(
        id=client_id,
        name="billing",
        secret_digest="d" * 64,
        scopes=frozenset({"a", "b"}),
        audience="bank",
        created_at=5.0,
    )


async def test_store_keeps_clients_and_audits_changes_without_secrets(sql_store: SQLStore):
    await sql_store.add_oauth_client(record(), actor="test")
    assert await sql_store.get_oauth_client(record().id) == record()
    assert await sql_store.list_oauth_clients() == [record()]
    with pytest.raises(StoreConflict):
        await sql_store.add_oauth_client(record(), actor="test")
    rotated = await sql_store.set_oauth_client_secret(record().id, "e" * 64, actor="test")
    assert rotated == dataclasses.replace(record(), secret_digest="e" * 64)
    await sql_store.remove_oauth_client(record().id, actor="test")
    assert await sql_store.get_oauth_client(record().id) is None
    with pytest.raises(StoreNotFound):
        await sql_store.remove_oauth_client(record().id, actor="test")
    entries = await sql_store.audit_log()
    assert [entry.action for entry in entries] == [
        "oauth_client.create",
        "oauth_client.rotate_secret",
        "oauth_client.remove",
    ]
    assert all("d" * 64 not in str(entry) and "e" * 64 not in str(entry) for entry in entries)


async def test_store_keeps_revocations_until_the_token_expires(sql_store: SQLStore):
    await sql_store.add_revocation("jti-1", "cl_1", expires_at=100.0, revoked_at=50.0)
    await sql_store.add_revocation("jti-1", "cl_1", expires_at=100.0, revoked_at=60.0)
    await sql_store.add_revocation("jti-2", "cl_1", expires_at=200.0, revoked_at=50.0)
    assert sorted(await sql_store.list_revocations(0)) == [("jti-1", 100.0), ("jti-2", 200.0)]
    assert await sql_store.list_revocations(150.0) == [("jti-2", 200.0)]


async def test_server_issues_tokens_on_either_store(sql_store: SQLStore):
    server = make_server(sql_store, FakeClock())
    client = await add_client(server)
    assert await issue(server, client)
    (key,) = await sql_store.list_signing_keys(0)
    assert key.alg == "ES256"


async def test_codes_are_single_use_in_both_stores(sql_store: SQLStore):
    server = make_server(sql_store, FakeClock())
    client = await add_client(server, grants=["authorization_code"])
    grants = GrantStore(sql_store)
    grant = CodeGrant(client.id, "c_1", "https://app.example.test/cb", "read", "x" * 43, "fam1")
    await grants.add_code("the-code", grant, now=100.0)
    assert await grants.use_code("the-code", now=101.0) == ("ok", grant)
    assert await grants.use_code("the-code", now=102.0) == ("reused", None)
    assert await grants.use_code("other-code", now=102.0) == ("invalid", None)
    await grants.add_code("late-code", grant, now=100.0)
    assert await grants.use_code("late-code", now=161.0) == ("invalid", None)


async def test_refresh_token_reuse_revokes_the_family_in_both_stores(sql_store: SQLStore):
    server = make_server(sql_store, FakeClock())
    client = await add_client(server, grants=["authorization_code", "refresh_token"])
    grants = GrantStore(sql_store)
    family = RefreshGrant("fam1", client.id, "c_1", "read", expires_at=1_000.0)
    await grants.add_refresh_token("rt-1", family, now=100.0)
    assert await grants.use_refresh_token("rt-1", now=101.0) == ("ok", family)
    await grants.add_refresh_token("rt-2", family, now=101.0)
    assert not await grants.family_is_revoked("fam1")
    assert await grants.use_refresh_token("rt-1", now=102.0) == ("reused", None)
    assert await grants.family_is_revoked("fam1")
    assert await grants.use_refresh_token("rt-2", now=103.0) == ("invalid", None)


async def test_redirect_uris_follow_their_client_in_both_stores(sql_store: SQLStore):
    server = make_server(sql_store, FakeClock())
    client = await add_client(server)
    grants = GrantStore(sql_store)
    await grants.set_redirect_uris(client.id, ["https://a.example/cb", "https://a.example/cb"])
    assert await grants.redirect_uris(client.id) == {"https://a.example/cb"}
    with pytest.raises(ValueError, match="redirect URI"):
        await grants.set_redirect_uris(client.id, ["http://a.example/cb"])
    await sql_store.remove_oauth_client(client.id, actor="test")
    assert await grants.redirect_uris(client.id) == frozenset()
