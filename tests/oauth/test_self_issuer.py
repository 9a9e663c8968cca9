"""`jwt: {issuer: self}`: the jwt policy accepts the gateway's own tokens, refuses revoked ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bastion.clock import FakeClock
from bastion.core.policy import PolicyDeps
from bastion.errors import Unauthenticated
from bastion.oauth.server import AuthorizationServer
from bastion.policies.jwt.config import JWTConfig
from bastion.policies.jwt.policy import NO_LOCAL_ISSUER, JWTPolicy
from bastion.store.sqlite import SQLiteStore
from tests.oauth.support import add_client, body_of, form_headers, issue, make_server, self_policy
from tests.support import make_ctx

pytestmark = pytest.mark.anyio


def bearer(token: str):
    return make_ctx(
        headers=[(b"host", b"api.test"), (b"authorization", f"Bearer {token}".encode())]
    )


async def run_access(policy: JWTPolicy, token: str):
    ctx = bearer(token)
    pending = policy.access(ctx)
    if pending is not None:
        await pending
    return ctx


async def test_self_issuer_accepts_own_tokens_with_no_other_config(
    server: AuthorizationServer, clock: FakeClock
):
    client = await add_client(server)
    ctx = await run_access(self_policy(server, clock), await issue(server, client, b"&scope=read"))
    assert ctx.identity is not None
    assert ctx.identity.consumer_id == client.id
    assert ctx.identity.scopes == {"read"}


async def test_self_issuer_checks_the_audience_when_one_is_configured(
    server: AuthorizationServer, clock: FakeClock
):
    bank = await add_client(server, audience="bank")
    other = await add_client(server, audience="shop")
    policy = self_policy(server, clock, audience="bank")
    assert (await run_access(policy, await issue(server, bank))).identity is not None
    with pytest.raises(Unauthenticated):
        await run_access(policy, await issue(server, other))


async def test_self_issuer_default_audience_refuses_tokens_for_other_audiences(
    server: AuthorizationServer, clock: FakeClock
):
    client = await add_client(server, audience="bank")
    with pytest.raises(Unauthenticated):
        await run_access(self_policy(server, clock), await issue(server, client))


async def test_self_issuer_refuses_tokens_of_another_server(tmp_path: Path, clock: FakeClock):
    store = SQLiteStore(tmp_path / "other.db")
    try:
        stranger = make_server(store, clock)
        client = await add_client(stranger)
        foreign = await issue(stranger, client)
    finally:
        await store.close()
    own_store = SQLiteStore(tmp_path / "own.db")
    try:
        own = make_server(own_store, clock)
        await add_client(own)
        with pytest.raises(Unauthenticated):
            await run_access(self_policy(own, clock), foreign)
    finally:
        await own_store.close()


async def test_revoked_token_is_refused_even_when_cached(
    server: AuthorizationServer, clock: FakeClock
):
    client = await add_client(server)
    token = await issue(server, client)
    policy = self_policy(server, clock)
    assert (await run_access(policy, token)).identity is not None  # now in the verified cache
    response = await server.revoke(form_headers(client.basic()), f"token={token}".encode())
    assert response.status == 200
    with pytest.raises(Unauthenticated):
        await run_access(policy, token)


async def test_revocation_reaches_a_second_process_through_the_store(
    tmp_path: Path, clock: FakeClock
):
    first_store, second_store = SQLiteStore(tmp_path / "o.db"), SQLiteStore(tmp_path / "o.db")
    try:
        first, second = make_server(first_store, clock), make_server(second_store, clock)
        client = await add_client(first)
        token = await issue(first, client)
        policy = self_policy(second, clock)
        assert (await run_access(policy, token)).identity is not None
        await first.revoke(form_headers(client.basic()), f"token={token}".encode())
        await second.revocations.sync()  # what its background reload does within a second
        with pytest.raises(Unauthenticated):
            await run_access(policy, token)
        introspected = await second.introspect(
            form_headers(client.basic()), f"token={token}".encode()
        )
        assert body_of(introspected) == {"active": False}
    finally:
        await first_store.close()
        await second_store.close()


def test_self_issuer_without_an_oauth_server_is_a_config_error():
    with pytest.raises(ValueError, match="oauth"):
        JWTPolicy(JWTConfig.model_validate({"issuer": "self"}), PolicyDeps())
    assert "oauth" in NO_LOCAL_ISSUER


@pytest.mark.parametrize(
    "extra",
    [
        {"jwks_uri": "https://idp.example/jwks"},
        {"public_key_pem": "x"},
        {"secret": "s" * 40},
        {"algorithms": ["HS256"]},
        {"algorithms": ["ES384"]},
    ],
    ids=["jwks-uri", "pem", "secret", "hmac-algorithm", "other-algorithm"],
)
def test_self_issuer_config_refuses_other_key_sources(extra):
    with pytest.raises(ValidationError):
        JWTConfig.model_validate({"issuer": "self", **extra})


def test_other_issuers_still_require_an_audience():
    with pytest.raises(ValidationError, match="Field required"):
        JWTConfig.model_validate({"issuer": "https://idp.example", "jwks_file": "k.json"})
