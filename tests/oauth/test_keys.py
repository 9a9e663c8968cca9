"""Signing keys: kept in the store, rotated on schedule, old ones published until tokens expire."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.clock import FakeClock
from bastion.errors import Unauthenticated
from bastion.oauth.keys import EXPIRY_MARGIN
from bastion.oauth.server import AuthorizationServer
from bastion.store.sqlite import SQLiteStore
from tests.oauth.support import add_client, claims_of, issue, make_server, self_policy
from tests.support import make_ctx

pytestmark = pytest.mark.anyio

DAY = 86_400.0
PEPPER = b"a-pepper-of-at-least-thirty-two-characters"


def bearer(token: str):
    return make_ctx(
        headers=[(b"host", b"api.test"), (b"authorization", f"Bearer {token}".encode())]
    )


def published_keys(server: AuthorizationServer) -> list[dict[str, object]]:
    keys = server.keys.jwks()["keys"]
    assert isinstance(keys, list)
    return keys


async def accepts(policy, token: str) -> bool:
    ctx = bearer(token)
    try:
        pending = policy.access(ctx)
        if pending is not None:
            await pending
    except Unauthenticated:
        return False
    return ctx.identity is not None


async def test_rotation_signs_with_a_new_key_and_keeps_old_tokens_valid_until_expiry(
    server: AuthorizationServer, clock: FakeClock
):
    client = await add_client(server)
    policy = self_policy(server, clock)
    old_token = await issue(server, client)
    old_kid = claims_of(old_token)[0]["kid"]
    # Just before the first key retires, then just after: the next token needs a new key.
    clock.advance(30 * DAY - 60)
    last_old = await issue(server, client)
    assert claims_of(last_old)[0]["kid"] == old_kid
    clock.advance(120)
    new_token = await issue(server, client)
    new_kid = claims_of(new_token)[0]["kid"]
    assert new_kid != old_kid
    published = {key["kid"] for key in published_keys(server)}
    assert published == {old_kid, new_kid}
    assert await accepts(policy, last_old)
    assert await accepts(policy, new_token)
    # Once every token of the old key has expired, the key leaves the published set.
    clock.advance(900 + EXPIRY_MARGIN)
    assert not await accepts(policy, last_old)
    published = {key["kid"] for key in published_keys(server)}
    assert published == {new_kid}


async def test_a_second_process_signs_with_the_stored_key(tmp_path: Path, clock: FakeClock):
    first_store, second_store = SQLiteStore(tmp_path / "o.db"), SQLiteStore(tmp_path / "o.db")
    try:
        first, second = make_server(first_store, clock), make_server(second_store, clock)
        client = await add_client(first)
        token_a, token_b = await issue(first, client), await issue(second, client)
        assert claims_of(token_a)[0]["kid"] == claims_of(token_b)[0]["kid"]
        # The other process's policy accepts the first one's tokens.
        assert await accepts(self_policy(second, clock), token_a)
    finally:
        await first_store.close()
        await second_store.close()


async def test_a_key_rotated_by_another_process_is_fetched_on_an_unknown_kid(
    tmp_path: Path, clock: FakeClock
):
    first_store, second_store = SQLiteStore(tmp_path / "o.db"), SQLiteStore(tmp_path / "o.db")
    try:
        first, second = make_server(first_store, clock), make_server(second_store, clock)
        client = await add_client(first)
        policy = self_policy(second, clock)
        first_token = await issue(first, client)
        clock.advance(2)  # past the policy's least interval between two key reloads
        assert await accepts(policy, first_token)
        clock.advance(30 * DAY + 1)
        rotated = await issue(first, client)  # the first process makes the new key
        clock.advance(2)  # past the policy's least interval between two key reloads
        assert await accepts(policy, rotated)
    finally:
        await first_store.close()
        await second_store.close()


async def test_private_keys_are_encrypted_with_the_pepper(tmp_path: Path, clock: FakeClock):
    store = SQLiteStore(tmp_path / "o.db")
    try:
        server = make_server(store, clock, pepper=PEPPER)
        client = await add_client(server)
        token = await issue(server, client)
        (record,) = await store.list_signing_keys(0)
        assert record.encrypted
        assert "ENCRYPTED PRIVATE KEY" in record.private_pem
        assert "d" not in json.loads(record.public_jwk)  # the published JWK has no private part
        # A process without the pepper cannot use the key: it makes its own.
        other = make_server(store, clock)
        other_token = await issue(other, client)
        assert claims_of(other_token)[0]["kid"] != claims_of(token)[0]["kid"]
    finally:
        await store.close()


async def test_rs256_servers_sign_with_rsa_keys(tmp_path: Path, clock: FakeClock):
    store = SQLiteStore(tmp_path / "o.db")
    try:
        server = make_server(store, clock, signing_alg="RS256")
        client = await add_client(server)
        token = await issue(server, client)
        assert claims_of(token)[0]["alg"] == "RS256"
        assert published_keys(server)[0]["kty"] == "RSA"
        assert await accepts(self_policy(server, clock), token)
    finally:
        await store.close()
