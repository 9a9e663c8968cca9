"""`bastion clients add|list|rotate-secret|remove` against a real SQLite store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bastion.cli.main import main
from bastion.errors import Reject
from bastion.oauth.clients import ClientCredentials, authenticate_client
from bastion.oauth.errors import OAuthError
from bastion.oauth.grant_store import GrantStore
from bastion.store.sqlite import SQLiteStore


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bastion.yaml"
    path.write_text(
        'listeners: [{bind: "127.0.0.1:18443", tls: {}}]\n'
        'store: "sqlite:///var/bastion.db"\n'
        'oauth: {issuer: "https://localhost:18443"}\n'
    )
    return path


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "-c", str(config)])
    return result.exit_code, result.stdout, result.stderr


def authenticates(config: Path, client_id: str, secret: str) -> bool:
    async def check() -> bool:
        store = SQLiteStore(config.parent / "var" / "bastion.db")
        try:
            credentials = ClientCredentials(client_id, secret, "client_secret_basic")
            await authenticate_client(store, credentials)
        except (OAuthError, Reject):
            return False
        finally:
            await store.close()
        return True

    return asyncio.run(check())


def test_clients_add_prints_the_secret_once_and_stores_only_its_digest(config: Path):
    code, secret, err = run(config, "clients", "add", "billing", "--scope", "invoices:read")
    assert code == 0
    secret = secret.strip()
    client_id = err.split("client id: ")[1].split()[0]
    assert authenticates(config, client_id, secret)
    assert secret.encode() not in (config.parent / "var" / "bastion.db").read_bytes()
    code, listed, _ = run(config, "clients", "list", "--json")
    (client,) = json.loads(listed)
    assert client["id"] == client_id
    assert client["scopes"] == ["invoices:read"]
    assert client["grant_types"] == ["client_credentials"]
    assert "secret" not in listed


def test_clients_rotate_secret_replaces_the_old_secret(config: Path):
    _, old, err = run(config, "clients", "add", "billing")
    client_id = err.split("client id: ")[1].split()[0]
    code, new, _ = run(config, "clients", "rotate-secret", client_id)
    assert code == 0
    assert authenticates(config, client_id, new.strip())
    assert not authenticates(config, client_id, old.strip())


def test_clients_remove_deletes_the_client(config: Path):
    _, secret, err = run(config, "clients", "add", "billing")
    client_id = err.split("client id: ")[1].split()[0]
    assert run(config, "clients", "remove", client_id)[0] == 0
    assert not authenticates(config, client_id, secret.strip())
    assert run(config, "clients", "list")[1] == ""
    code, _, err = run(config, "clients", "remove", client_id)
    assert code == 1
    assert "no such OAuth client" in err


def test_clients_add_refuses_a_malformed_scope(config: Path):
    code, _, err = run(config, "clients", "add", "billing", "--scope", 'bad"scope')
    assert code == 2
    assert "scope" in err


def test_clients_add_registers_a_public_client_with_exact_redirect_uris(config: Path):
    code, out, err = run(
        config,
        "clients",
        "add",
        "spa",
        "--public",
        "--grant",
        "authorization_code",
        "--redirect-uri",
        "https://app.example.test/cb",
        "--redirect-uri",
        "http://127.0.0.1:5173/cb",
    )
    assert code == 0, err
    assert out == ""  # no secret to show
    client_id = err.split("client id: ")[1].split()[0]

    async def stored() -> tuple[str, frozenset[str]]:
        store = SQLiteStore(config.parent / "var" / "bastion.db")
        try:
            record = await store.get_oauth_client(client_id)
            assert record is not None
            return record.secret_digest, await GrantStore(store).redirect_uris(client_id)
        finally:
            await store.close()

    digest, uris = asyncio.run(stored())
    assert digest == ""
    assert uris == {"https://app.example.test/cb", "http://127.0.0.1:5173/cb"}


@pytest.mark.parametrize(
    "args",
    [
        ("--redirect-uri", "http://app.example.test/cb"),
        ("--redirect-uri", "https://app.example.test/cb#x"),
        ("--public", "--grant", "client_credentials"),
    ],
    ids=["plain-http", "fragment", "public-client-credentials"],
)
def test_clients_add_refuses_bad_redirect_uris_and_public_client_credentials(
    config: Path, args: tuple[str, ...]
):
    code, out, _ = run(config, "clients", "add", "bad", *args)
    assert code == 2
    assert out == ""
