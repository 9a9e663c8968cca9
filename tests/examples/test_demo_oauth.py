"""`bastion demo`'s OAuth side: idempotent provisioning, credentials file, redirect check."""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, strategies as st

from bastion.cli.demo import write_credentials
from bastion.cli.demo_oauth import (
    CUSTOMER_APP_REDIRECT,
    PARTNER_CUSTOMER,
    STATE_FILE,
    FlowError,
    code_from_redirect,
    provision,
)
from bastion.oauth.clients import secret_digest
from bastion.oauth.grant_store import GrantStore
from bastion.store import PasswordRecord
from bastion.store.secrets import hash_password, verify_password
from bastion.store.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    backend = SQLiteStore(tmp_path / "bastion.db")
    await backend.migrate()
    try:
        yield backend
    finally:
        await backend.close()


async def test_provisioning_twice_changes_nothing(store: SQLiteStore, tmp_path: Path) -> None:
    first = await provision(store, tmp_path)
    again = await provision(store, tmp_path)

    assert again == first
    assert len(await store.list_oauth_clients()) == 3
    assert sorted(c.name for c in await store.list_consumers()) == ["alice", "bob"]
    assert (tmp_path / STATE_FILE).stat().st_mode & 0o777 == 0o600


async def test_clients_are_registered_as_the_brief_says(store: SQLiteStore, tmp_path: Path) -> None:
    demo = await provision(store, tmp_path)
    partner = await store.get_oauth_client(demo.partner.id)
    app = await store.get_oauth_client(demo.customer_app.id)
    crm = await store.get_oauth_client(demo.crm.id)

    assert partner is not None
    assert app is not None
    assert crm is not None
    assert partner.grant_types == {"client_credentials"}
    assert partner.scopes == {"accounts:read"}
    assert partner.audience == "bank"
    assert secret_digest(demo.partner.secret) == partner.secret_digest
    assert app.secret_digest == ""  # public: PKCE only
    assert app.grant_types == {"authorization_code", "refresh_token"}
    assert app.scopes == {"accounts:read", "transfers:write"}
    assert app.audience == "bank"
    assert await GrantStore(store).redirect_uris(app.id) == {CUSTOMER_APP_REDIRECT}
    assert crm.audience == "crm"


async def test_logins_map_consumers_to_the_banks_customers(
    store: SQLiteStore, tmp_path: Path
) -> None:
    demo = await provision(store, tmp_path)

    for login in demo.logins:
        found = await store.get_password(login.username)
        assert found is not None
        assert found[1].id == login.consumer_id
        assert found[1].metadata["bank_customer"] == login.customer_id
        assert verify_password(found[0].password_hash, login.password)
    links = dict(demo.links())
    assert links[demo.login("cus_alice0001").consumer_id] == "cus_alice0001"
    assert links[demo.partner.id] == PARTNER_CUSTOMER
    with pytest.raises(KeyError):
        demo.login("cus_mallory01")


async def test_a_secret_that_no_longer_matches_is_rotated_in_place(
    store: SQLiteStore, tmp_path: Path
) -> None:
    demo = await provision(store, tmp_path)
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    saved["partner"]["secret"] = "stale-secret"
    (tmp_path / STATE_FILE).write_text(json.dumps(saved))

    again = await provision(store, tmp_path)
    record = await store.get_oauth_client(demo.partner.id)

    assert again.partner.id == demo.partner.id
    assert again.partner.secret not in (demo.partner.secret, "stale-secret")
    assert record is not None
    assert record.secret_digest == secret_digest(again.partner.secret)


async def test_a_password_changed_in_the_store_is_set_again(
    store: SQLiteStore, tmp_path: Path
) -> None:
    demo = await provision(store, tmp_path)
    alice = demo.login("cus_alice0001")
    changed = PasswordRecord(alice.consumer_id, "alice", hash_password("changed elsewhere"), 1.0)
    await store.set_password(changed, actor="test")

    again = await provision(store, tmp_path)
    found = await store.get_password("alice")

    assert again.login("cus_alice0001").password != alice.password
    assert found is not None
    assert verify_password(found[0].password_hash, again.login("cus_alice0001").password)
    assert again.login("cus_bob00001") == demo.login("cus_bob00001")


async def test_a_new_store_gets_new_clients(store: SQLiteStore, tmp_path: Path) -> None:
    demo = await provision(store, tmp_path)
    other = SQLiteStore(tmp_path / "other.db")
    try:
        fresh = await provision(other, tmp_path)
        assert await other.get_oauth_client(fresh.partner.id) is not None
    finally:
        await other.close()

    assert fresh.partner.id != demo.partner.id
    assert await store.get_oauth_client(fresh.partner.id) is None


async def test_credentials_file_is_private_and_shell_readable(
    store: SQLiteStore, tmp_path: Path
) -> None:
    demo = await provision(store, tmp_path)
    tokens = {"cus_alice0001": "eyJ.a.b", "partner": "eyJ.c.d"}
    path = write_credentials(tmp_path, "admin-token", demo, tokens)

    values = {}
    for line in path.read_text().splitlines():
        name, eq, rest = line.partition("=")
        if eq and not line.startswith("#"):
            values[name] = shlex.split(rest, comments=True)[0]
    assert path.stat().st_mode & 0o777 == 0o600
    assert values["PARTNER_CLIENT_ID"] == demo.partner.id
    assert values["PARTNER_CLIENT_SECRET"] == demo.partner.secret
    assert values["APP_CLIENT_ID"] == demo.customer_app.id
    assert values["ALICE_PASSWORD"] == demo.login("cus_alice0001").password
    assert values["TOKEN_PARTNER"] == "eyJ.c.d"
    assert values["BASTION_ADMIN_TOKEN"] == "admin-token"
    assert "oauth/token" in path.read_text()


# -- the redirect the login answers with (parsed by the flow, never trusted blindly) ------------

ISSUER = "https://localhost:8443"
REDIRECT = "http://127.0.0.1:8765/callback"


def _answer(location: str, status: int = 303) -> httpx.Response:
    return httpx.Response(status, headers={"location": location})


@pytest.mark.parametrize(
    ("location", "message"),
    [
        (f"{REDIRECT}?error=access_denied&state=s1&iss={ISSUER}", "access_denied"),
        (f"{REDIRECT}?code=abc&state=other&iss={ISSUER}", "state does not match"),
        (f"{REDIRECT}?code=abc&state=s1", "iss does not name"),
        (f"{REDIRECT}?code=abc&state=s1&iss=https://evil.example", "iss does not name"),
        (f"{REDIRECT}?state=s1&iss={ISSUER}", "no code"),
        (f"https://evil.example/callback?code=abc&state=s1&iss={ISSUER}", "somewhere other"),
    ],
    ids=["error", "state", "no_iss", "mix_up", "no_code", "other_redirect"],
)
def test_redirect_without_a_trustworthy_code_is_refused(location: str, message: str) -> None:
    with pytest.raises(FlowError, match=message):
        code_from_redirect(_answer(location), REDIRECT, "s1", ISSUER)


def test_redirect_with_state_and_issuer_gives_the_code() -> None:
    location = f"{REDIRECT}?code=abc&state=s1&iss=https%3A%2F%2Flocalhost%3A8443"
    assert code_from_redirect(_answer(location), REDIRECT, "s1", ISSUER) == "abc"


@given(location=st.text(max_size=300), status=st.sampled_from([200, 303, 400, 429, 503]))
def test_any_login_answer_gives_a_code_or_a_flow_error(location: str, status: int) -> None:
    try:
        answer = _answer(location, status)
    except (ValueError, UnicodeEncodeError):
        return  # not a header value httpx can carry
    try:
        code = code_from_redirect(answer, REDIRECT, "s1", ISSUER)
    except FlowError:
        return
    assert status == 303
    assert code
    assert location.startswith(REDIRECT)
