"""Introspection (RFC 7662), revocation (RFC 7009) and metadata (RFC 8414)."""

from __future__ import annotations

import pytest

from bastion.clock import FakeClock
from bastion.oauth.errors import OAuthError
from bastion.oauth.server import AuthorizationServer
from tests.oauth.support import ISSUER, add_client, body_of, form_headers, issue

pytestmark = pytest.mark.anyio


async def test_introspect_reports_an_active_token_and_its_claims(server: AuthorizationServer):
    client = await add_client(server)
    token = await issue(server, client, b"&scope=read")
    response = await server.introspect(form_headers(client.basic()), f"token={token}".encode())
    document = body_of(response)
    assert response.headers.get(b"cache-control") == b"no-store"
    assert document["active"] is True
    assert document["client_id"] == client.id
    assert document["scope"] == "read"
    assert document["iss"] == ISSUER
    assert document["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."],
    ids=["garbage", "three-parts", "alg-none"],
)
async def test_introspect_reports_invalid_tokens_as_inactive(
    server: AuthorizationServer, token: str
):
    client = await add_client(server)
    response = await server.introspect(form_headers(client.basic()), f"token={token}".encode())
    assert body_of(response) == {"active": False}


async def test_introspect_reports_expired_tokens_as_inactive(
    server: AuthorizationServer, clock: FakeClock
):
    client = await add_client(server)
    token = await issue(server, client)
    clock.advance(900 + 60)
    response = await server.introspect(form_headers(client.basic()), f"token={token}".encode())
    assert body_of(response) == {"active": False}


@pytest.mark.parametrize("endpoint", ["introspect", "revoke"], ids=["introspect", "revoke"])
async def test_introspect_and_revoke_require_client_authentication(
    server: AuthorizationServer, endpoint: str
):
    client = await add_client(server)
    token = await issue(server, client)
    with pytest.raises(OAuthError) as caught:
        await getattr(server, endpoint)(form_headers(), f"token={token}".encode())
    assert caught.value.error == "invalid_client"
    assert caught.value.status == 401


@pytest.mark.parametrize("endpoint", ["introspect", "revoke"], ids=["introspect", "revoke"])
async def test_introspect_and_revoke_require_the_token_parameter(
    server: AuthorizationServer, endpoint: str
):
    client = await add_client(server)
    with pytest.raises(OAuthError) as caught:
        await getattr(server, endpoint)(form_headers(client.basic()), b"token_type_hint=x")
    assert caught.value.error == "invalid_request"


async def test_revoke_makes_the_token_inactive(server: AuthorizationServer):
    client = await add_client(server)
    token = await issue(server, client)
    body = f"token={token}&token_type_hint=access_token".encode()
    response = await server.revoke(form_headers(client.basic()), body)
    assert response.status == 200
    after = await server.introspect(form_headers(client.basic()), f"token={token}".encode())
    assert body_of(after) == {"active": False}


async def test_revoke_ignores_another_clients_token_and_answers_the_same(
    server: AuthorizationServer,
):
    owner, other = await add_client(server), await add_client(server)
    token = await issue(server, owner)
    response = await server.revoke(form_headers(other.basic()), f"token={token}".encode())
    unknown = await server.revoke(form_headers(other.basic()), b"token=not-a-token")
    assert response.status == unknown.status == 200
    assert response.body == unknown.body
    still = await server.introspect(form_headers(owner.basic()), f"token={token}".encode())
    assert body_of(still)["active"] is True


async def test_metadata_describes_the_endpoints(server: AuthorizationServer):
    document = server.metadata()
    assert document["issuer"] == ISSUER
    assert document["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert document["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert document["authorization_endpoint"] == f"{ISSUER}/oauth/authorize"
    assert document["grant_types_supported"] == [
        "client_credentials",
        "authorization_code",
        "refresh_token",
    ]
    assert "password" not in str(document["grant_types_supported"])
    assert "implicit" not in str(document["grant_types_supported"])
    assert document["response_types_supported"] == ["code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert "none" in str(document["token_endpoint_auth_methods_supported"])
