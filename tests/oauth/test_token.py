"""The token endpoint: the client-credentials grant and every RFC 6749 §5.2 refusal."""

from __future__ import annotations

import base64
import json

import pytest

from bastion.clock import FakeClock
from bastion.http.headers import Headers
from bastion.oauth.errors import OAuthError
from bastion.oauth.server import AuthorizationServer
from tests.oauth.support import ISSUER, add_client, body_of, claims_of, form_headers, issue

pytestmark = pytest.mark.anyio


async def test_token_issues_an_rfc9068_access_token_for_client_credentials(
    server: AuthorizationServer, clock: FakeClock
):
    client = await add_client(server)
    response = await server.token(
        form_headers(client.basic()), b"grant_type=client_credentials&scope=read"
    )
    assert response.status == 200
    assert response.headers.get(b"cache-control") == b"no-store"
    document = body_of(response)
    assert document["token_type"] == "Bearer"
    assert document["expires_in"] == 900
    assert document["scope"] == "read"
    token = document["access_token"]
    assert isinstance(token, str)
    header, claims = claims_of(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["kid"] == server.keys.keys[0].kid
    now = int(clock.time())
    assert claims["iss"] == ISSUER
    assert claims["sub"] == client.id
    assert claims["client_id"] == client.id
    assert claims["aud"] == ISSUER
    assert claims["scope"] == "read"
    assert claims["iat"] == now
    assert claims["exp"] == now + 900
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16


async def test_token_accepts_client_secret_post_and_grants_all_allowed_scopes_by_default(
    server: AuthorizationServer,
):
    client = await add_client(server, scopes=["write", "read"], audience="bank")
    body = f"grant_type=client_credentials&client_id={client.id}&client_secret={client.secret}"
    response = await server.token(form_headers(), body.encode())
    assert response.status == 200
    document = body_of(response)
    assert document["scope"] == "read write"
    _, claims = claims_of(str(document["access_token"]))
    assert claims["aud"] == "bank"


async def test_token_gives_each_token_its_own_jti(server: AuthorizationServer):
    client = await add_client(server)
    first, second = await issue(server, client), await issue(server, client)
    assert claims_of(first)[1]["jti"] != claims_of(second)[1]["jti"]


def _basic(client_id: str, secret: str) -> tuple[bytes, bytes]:
    return b"authorization", b"Basic " + base64.b64encode(f"{client_id}:{secret}".encode())


GRANT = b"grant_type=client_credentials"

# (id, how to build headers/body from the client, status, error, expects a Basic challenge)
CASES = [
    ("no-client-auth", lambda c: ([], GRANT), 401, "invalid_client", True),
    ("wrong-secret-basic", lambda c: ([_basic(c.id, "nope")], GRANT), 401, "invalid_client", True),
    (
        "wrong-secret-post",
        lambda c: ([], GRANT + f"&client_id={c.id}&client_secret=nope".encode()),
        401,
        "invalid_client",
        True,
    ),
    (
        "unknown-client",
        lambda c: ([_basic("cl_0000000000000000", c.secret)], GRANT),
        401,
        "invalid_client",
        True,
    ),
    (
        "post-secret-without-id",
        lambda c: ([], GRANT + f"&client_secret={c.secret}".encode()),
        401,
        "invalid_client",
        True,
    ),
    (
        "basic-not-base64",
        lambda c: ([(b"authorization", b"Basic %%%")], GRANT),
        401,
        "invalid_client",
        True,
    ),
    (
        "basic-without-colon",
        lambda c: ([(b"authorization", b"Basic " + base64.b64encode(c.id.encode()))], GRANT),
        401,
        "invalid_client",
        True,
    ),
    (
        "bearer-instead-of-basic",
        lambda c: ([(b"authorization", b"Bearer abc")], GRANT),
        401,
        "invalid_client",
        True,
    ),
    (
        "basic-and-post",
        lambda c: ([c.basic()], GRANT + f"&client_id={c.id}&client_secret={c.secret}".encode()),
        400,
        "invalid_request",
        False,
    ),
    (
        "two-authorization-fields",
        lambda c: ([c.basic(), c.basic()], GRANT),
        400,
        "invalid_request",
        False,
    ),
    ("missing-grant-type", lambda c: ([c.basic()], b"scope=read"), 400, "invalid_request", False),
    (
        "empty-grant-type",
        lambda c: ([c.basic()], b"grant_type=&scope=read"),
        400,
        "invalid_request",
        False,
    ),
    (
        "password-grant",
        lambda c: ([c.basic()], b"grant_type=password&username=a&password=b"),
        400,
        "unsupported_grant_type",
        False,
    ),
    (
        "implicit-grant",
        lambda c: ([c.basic()], b"grant_type=implicit"),
        400,
        "unsupported_grant_type",
        False,
    ),
    (
        "unknown-scope",
        lambda c: ([c.basic()], GRANT + b"&scope=read+admin"),
        400,
        "invalid_scope",
        False,
    ),
    (
        "malformed-scope",
        lambda c: ([c.basic()], GRANT + b"&scope=%22read%22"),
        400,
        "invalid_scope",
        False,
    ),
    (
        "double-space-scope",
        lambda c: ([c.basic()], GRANT + b"&scope=read++write"),
        400,
        "invalid_scope",
        False,
    ),
    (
        "duplicate-parameter",
        lambda c: ([c.basic()], GRANT + b"&" + GRANT),
        400,
        "invalid_request",
        False,
    ),
    (
        "bad-utf8",
        lambda c: ([c.basic()], GRANT + b"&scope=%ff%fe"),
        400,
        "invalid_request",
        False,
    ),
    ("not-a-form", lambda c: ([c.basic()], b'{"grant_type": "x"}'), 400, "invalid_request", False),
    (
        "control-character",
        lambda c: ([c.basic()], GRANT + b"&scope=read%00"),
        400,
        "invalid_request",
        False,
    ),
    (
        "non-ascii-body",
        lambda c: ([c.basic()], GRANT + "&scope=lé".encode()),
        400,
        "invalid_request",
        False,
    ),
]


@pytest.mark.parametrize(
    ("build", "status", "error", "challenge"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_token_refuses_with_the_rfc6749_error(
    server: AuthorizationServer, build, status, error, challenge
):
    client = await add_client(server)
    headers, body = build(client)
    with pytest.raises(OAuthError) as caught:
        await server.token(form_headers(*headers), body)
    response = caught.value.response()
    assert response.status == status
    assert response.headers.get(b"cache-control") == b"no-store"
    assert response.headers.get(b"content-type") == b"application/json"
    document = json.loads(response.body)
    assert set(document) == {"error", "error_description"}
    assert document["error"] == error
    assert client.secret not in document["error_description"]
    challenge_header = response.headers.get(b"www-authenticate")
    if challenge:
        assert challenge_header is not None
        assert challenge_header.startswith(b"Basic ")
    else:
        assert challenge_header is None


async def test_token_refuses_a_disabled_client(server: AuthorizationServer):
    client = await add_client(server, disabled=True)
    with pytest.raises(OAuthError) as caught:
        await server.token(form_headers(client.basic()), GRANT)
    assert caught.value.error == "invalid_client"
    assert caught.value.status == 401


async def test_token_refuses_a_grant_the_client_may_not_use(server: AuthorizationServer):
    client = await add_client(server, grants=[])
    with pytest.raises(OAuthError) as caught:
        await server.token(form_headers(client.basic()), GRANT)
    assert caught.value.error == "unauthorized_client"


async def test_token_decodes_form_urlencoded_basic_credentials(server: AuthorizationServer):
    # RFC 6749 §2.3.1: the id and secret are form-urlencoded before Basic encoding.
    client = await add_client(server)
    encoded = client.secret.replace("-", "%2D")
    headers = Headers([(b"content-type", b"application/x-www-form-urlencoded")])
    headers.add(*_basic(client.id, encoded))
    response = await server.token(headers, GRANT)
    assert response.status == 200


async def test_token_wrong_secret_and_unknown_client_look_the_same(server: AuthorizationServer):
    client = await add_client(server)
    bodies = []
    for headers in ([_basic(client.id, "wrong")], [_basic("cl_ffffffffffffffff", "wrong")]):
        with pytest.raises(OAuthError) as caught:
            await server.token(form_headers(*headers), GRANT)
        bodies.append(caught.value.response().body)
    assert bodies[0] == bodies[1]
