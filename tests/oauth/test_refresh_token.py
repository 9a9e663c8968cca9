"""The refresh-token grant: rotation, reuse detection (the whole family revoked), scope, expiry."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from bastion.clock import FakeClock
from bastion.oauth.authorize import AuthorizeEndpoint
from bastion.oauth.errors import OAuthError
from bastion.oauth.redirects import check_redirect_uri
from bastion.oauth.server import AuthorizationServer
from tests.oauth.flow import (
    REDIRECT,
    add_code_client,
    add_user,
    authorize_params,
    login,
    new_verifier,
    redirect_params,
)
from tests.oauth.support import Client, body_of, claims_of, form_headers

pytestmark = pytest.mark.anyio


async def first_tokens(server: AuthorizationServer, client: Client) -> dict[str, object]:
    """Log in through the page and redeem the code: the first access and refresh token."""
    verifier = new_verifier()
    response = await login(
        AuthorizeEndpoint(server), authorize_params(client.id, verifier, scope="read write")
    )
    _, query = redirect_params(response)
    body = urlencode(
        {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
    ).encode()
    response = await server.token(form_headers(client.basic()), body)
    assert response.status == 200, response.body
    return body_of(response)


async def refresh(
    server: AuthorizationServer, client: Client, token: object, scope: str | None = None
) -> dict[str, object]:
    response = await server.token(form_headers(client.basic()), refresh_body(token, scope))
    assert response.status == 200, response.body
    return body_of(response)


def refresh_body(token: object, scope: str | None = None) -> bytes:
    params = {"grant_type": "refresh_token", "refresh_token": str(token)}
    if scope is not None:
        params["scope"] = scope
    return urlencode(params).encode()


async def refused(server: AuthorizationServer, client: Client, body: bytes) -> str:
    with pytest.raises(OAuthError) as caught:
        await server.token(form_headers(client.basic()), body)
    assert caught.value.response().headers.get(b"cache-control") == b"no-store"
    return caught.value.error


@pytest.fixture
async def client(server: AuthorizationServer) -> Client:
    await add_user(server)
    return await add_code_client(server)


async def test_refresh_rotates_the_token_and_keeps_subject_and_scope(
    server: AuthorizationServer, client: Client
):
    first = await first_tokens(server, client)
    second = await refresh(server, client, first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "read write"
    _, before = claims_of(str(first["access_token"]))
    _, after = claims_of(str(second["access_token"]))
    assert after["sub"] == before["sub"]
    assert after["jti"] != before["jti"]
    third = await refresh(server, client, second["refresh_token"])
    assert isinstance(third["refresh_token"], str)


async def test_reused_refresh_token_is_refused_and_revokes_the_whole_family(
    server: AuthorizationServer, client: Client
):
    first = await first_tokens(server, client)
    second = await refresh(server, client, first["refresh_token"])
    assert await refused(server, client, refresh_body(first["refresh_token"])) == "invalid_grant"
    # The legitimate holder's newest token dies too: an attacker may hold it.
    assert await refused(server, client, refresh_body(second["refresh_token"])) == "invalid_grant"


async def test_reuse_in_one_family_leaves_other_logins_working(
    server: AuthorizationServer, client: Client
):
    mine = await first_tokens(server, client)
    other = await first_tokens(server, client)
    await refresh(server, client, mine["refresh_token"])
    await refused(server, client, refresh_body(mine["refresh_token"]))
    await refresh(server, client, other["refresh_token"])


async def test_refresh_token_of_another_client_is_refused_and_its_family_revoked(
    server: AuthorizationServer, client: Client
):
    tokens = await first_tokens(server, client)
    thief = await add_code_client(server)
    assert await refused(server, thief, refresh_body(tokens["refresh_token"])) == "invalid_grant"
    assert await refused(server, client, refresh_body(tokens["refresh_token"])) == "invalid_grant"


async def test_refresh_may_narrow_but_not_widen_the_scope(
    server: AuthorizationServer, client: Client
):
    tokens = await first_tokens(server, client)
    narrowed = await refresh(server, client, tokens["refresh_token"], scope="read")
    assert narrowed["scope"] == "read"
    # The narrowing applies to that access token only: the family keeps the original grant.
    wider = await refresh(server, client, narrowed["refresh_token"], scope="read write")
    assert wider["scope"] == "read write"
    body = refresh_body(wider["refresh_token"], scope="read admin")
    assert await refused(server, client, body) == "invalid_scope"


async def test_refresh_family_ends_at_its_absolute_lifetime(
    server: AuthorizationServer, client: Client, clock: FakeClock
):
    tokens = await first_tokens(server, client)
    clock.advance(86_000)
    tokens = await refresh(server, client, tokens["refresh_token"])
    clock.advance(401)
    assert await refused(server, client, refresh_body(tokens["refresh_token"])) == "invalid_grant"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"grant_type=refresh_token", "invalid_request"),
        (b"grant_type=refresh_token&refresh_token=made-up", "invalid_grant"),
    ],
    ids=["missing", "unknown"],
)
async def test_refresh_refuses_missing_and_unknown_tokens(
    server: AuthorizationServer, client: Client, body, error
):
    assert await refused(server, client, body) == error


async def test_client_without_the_refresh_grant_gets_no_refresh_token(
    server: AuthorizationServer,
):
    await add_user(server)
    client = await add_code_client(server, grants=("authorization_code",))
    tokens = await first_tokens(server, client)
    assert "refresh_token" not in tokens
    assert await refused(server, client, refresh_body("x")) == "unauthorized_client"


async def test_revoking_a_refresh_token_ends_its_family(
    server: AuthorizationServer, client: Client
):
    first = await first_tokens(server, client)
    second = await refresh(server, client, first["refresh_token"])
    response = await server.revoke(
        form_headers(client.basic()), f"token={second['refresh_token']}".encode()
    )
    assert response.status == 200
    assert await refused(server, client, refresh_body(second["refresh_token"])) == "invalid_grant"


async def test_revoking_another_clients_refresh_token_does_nothing(
    server: AuthorizationServer, client: Client
):
    tokens = await first_tokens(server, client)
    other = await add_code_client(server)
    response = await server.revoke(
        form_headers(other.basic()), f"token={tokens['refresh_token']}".encode()
    )
    assert response.status == 200
    await refresh(server, client, tokens["refresh_token"])


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.test/cb",
        "https://app.example.test:8443/cb?tenant=1",
        "http://127.0.0.1:5173/cb",
        "http://[::1]/cb",
        "http://localhost/cb",
    ],
    ids=["https", "port-and-query", "loopback-v4", "loopback-v6", "localhost"],
)
def test_redirect_uri_registration_accepts(uri):
    assert check_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "/callback",
        "http://app.example.test/cb",
        "https://app.example.test/cb#frag",
        "https://user:pw@app.example.test/cb",
        "https://app.example.test/cb?a=b;c",
        "https://app.example.test/c b",
        "javascript:alert(1)",
        "com.example.app:/cb",
    ],
    ids=[
        "relative",
        "plain-http",
        "fragment",
        "credentials",
        "semicolon",
        "space",
        "javascript",
        "custom-scheme",
    ],
)
def test_redirect_uri_registration_refuses(uri):
    with pytest.raises(ValueError, match="redirect URI"):
        check_redirect_uri(uri)
