"""The authorization server on a running gateway: a real OAuth client library, real TLS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]  # no stubs
    OAuth2Client,
)

from bastion.oauth.clients import new_client_id, new_client_secret, secret_digest
from bastion.store.base import OAuthClientRecord
from bastion.store.sqlite import SQLiteStore
from tests.integration.harness import (
    RunningGateway,
    read_response,
    running_gateway,
    running_upstream,
    status_of,
)

pytestmark = pytest.mark.integration

ISSUER = "https://localhost:8443"


def register_client(db: Path, scopes: list[str]) -> tuple[str, str]:
    """Write a client to the store before the gateway starts; returns (id, secret)."""
    secret = new_client_secret()
    record = OAuthClientRecord(
        id=new_client_id(),
        name="integration",
        secret_digest=secret_digest(secret),
        scopes=frozenset(scopes),
        created_at=1.0,
    )

    async def write() -> None:
        store = SQLiteStore(db)
        try:
            await store.add_oauth_client(record, actor="test")
        finally:
            await store.close()

    asyncio.run(write())
    return record.id, secret


@pytest.fixture
def oauth_gateway(
    tmp_path: Path,
) -> Iterator[tuple[RunningGateway, list[dict[str, Any]], str, str]]:
    """A gateway with `oauth:` set, a `jwt: {issuer: self}` route and a registered client."""
    db = tmp_path / "bastion.db"
    client_id, secret = register_client(db, ["accounts:read", "accounts:write"])
    with running_upstream() as (port, seen):
        extra: dict[str, Any] = {
            "store": f"sqlite:///{db}",
            "oauth": {"issuer": ISSUER, "access_token_ttl": 300},
            "services": [
                {
                    "name": "bank",
                    "upstream": {"targets": [f"http://127.0.0.1:{port}"]},
                    "routes": [
                        {
                            "name": "accounts",
                            "paths": ["/v1/accounts"],
                            "policies": {"jwt": {"issuer": "self"}},
                        },
                        {"name": "open", "paths": ["/"]},
                    ],
                }
            ],
        }
        with running_gateway(tmp_path, extra) as running:
            yield running, seen, client_id, secret


def https(gateway: RunningGateway, path: str) -> str:
    return f"https://127.0.0.1:{gateway.https_port}{path}"


def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request to the test gateway, whose development certificate is self-signed."""
    return httpx.request(method, url, verify=False, **kwargs)  # noqa: S501 - see docstring


def test_authlib_client_credentials_token_is_accepted_on_a_self_issuer_route(oauth_gateway):
    gateway, seen, client_id, secret = oauth_gateway
    with OAuth2Client(client_id, secret, scope="accounts:read", verify=False) as client:
        token = client.fetch_token(https(gateway, "/oauth/token"), grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "accounts:read"
        response = client.get(https(gateway, "/v1/accounts"))
    assert response.status_code == 200
    headers = dict(seen[-1]["headers"])
    assert headers["x-bastion-consumer"] == client_id
    assert headers["x-bastion-scopes"] == "accounts:read"
    anonymous = call("GET", https(gateway, "/v1/accounts"))
    assert anonymous.status_code == 401
    forged = call(
        "GET",
        https(gateway, "/v1/accounts"),
        headers={"Authorization": f"Bearer {token['access_token']}x"},
    )
    assert forged.status_code == 401


def post_form(gateway: RunningGateway, path: str, body: bytes, **kwargs: Any) -> httpx.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded", **kwargs.pop("headers", {})}
    return call("POST", https(gateway, path), content=body, headers=headers, **kwargs)


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == error


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=client_credentials&grant_type=client_credentials",
        b"grant_type=%zz",
        b"\xff\xfe\x00",
        b"=",
        b"&&&",
        b"grant_type=client_credentials&" + b"a=1&" * 100,
        "grant_type=é".encode(),
    ],
    ids=["duplicate", "bad-percent", "binary", "empty-name", "separators", "many-fields", "utf8"],
)
def test_token_endpoint_answers_malformed_forms_with_invalid_request(oauth_gateway, body):
    gateway, _, client_id, secret = oauth_gateway
    response = post_form(gateway, "/oauth/token", body, auth=(client_id, secret))
    assert_oauth_error(response, 400, "invalid_request")


def test_token_endpoint_refuses_an_oversized_body_with_413(oauth_gateway):
    gateway, _, client_id, secret = oauth_gateway
    body = b"grant_type=client_credentials&pad=" + b"a" * 20_000
    response = post_form(gateway, "/oauth/token", body, auth=(client_id, secret))
    assert_oauth_error(response, 413, "invalid_request")


def test_token_endpoint_refuses_an_oversized_chunked_body(oauth_gateway):
    gateway, _, _, _ = oauth_gateway
    chunk = b"a" * 8000
    with gateway.connect(tls=True) as sock:
        sock.sendall(
            b"POST /oauth/token HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 3
            + b"0\r\n\r\n"
        )
        response = read_response(sock)
    assert status_of(response) == 413


def test_token_endpoint_sends_a_basic_challenge_for_a_wrong_secret(oauth_gateway):
    gateway, seen, client_id, _ = oauth_gateway
    response = post_form(
        gateway, "/oauth/token", b"grant_type=client_credentials", auth=(client_id, "wrong")
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert seen == []  # nothing about the token endpoint reaches an upstream


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("GET", "/oauth/token", "POST"), ("POST", "/.well-known/jwks.json", "GET, HEAD")],
    ids=["get-token", "post-jwks"],
)
def test_oauth_endpoints_refuse_other_methods_with_405(oauth_gateway, method, path, allow):
    gateway, _, _, _ = oauth_gateway
    response = call(method, https(gateway, path))
    assert_oauth_error(response, 405, "invalid_request")
    assert response.headers["allow"] == allow


def test_token_endpoint_refuses_a_json_body(oauth_gateway):
    gateway, _, client_id, secret = oauth_gateway
    response = call(
        "POST",
        https(gateway, "/oauth/token"),
        json={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    assert_oauth_error(response, 400, "invalid_request")


def test_oauth_endpoints_refuse_plain_http(oauth_gateway):
    gateway, seen, client_id, secret = oauth_gateway
    response = httpx.post(
        f"http://127.0.0.1:{gateway.http_port}/oauth/token",
        content=b"grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=(client_id, secret),
    )
    assert_oauth_error(response, 400, "invalid_request")
    assert seen == []


def test_metadata_and_key_set_are_published(oauth_gateway):
    gateway, _, _, _ = oauth_gateway
    metadata = call("GET", https(gateway, "/.well-known/oauth-authorization-server"))
    assert metadata.status_code == 200
    assert metadata.json()["token_endpoint"] == f"{ISSUER}/oauth/token"
    jwks = call("GET", https(gateway, "/.well-known/jwks.json")).json()
    (key,) = jwks["keys"]
    assert key["kty"] == "EC"
    assert key["alg"] == "ES256"
    assert "d" not in key


def test_revoked_token_is_refused_by_the_self_issuer_route(oauth_gateway):
    gateway, _, client_id, secret = oauth_gateway
    with OAuth2Client(client_id, secret, verify=False) as client:
        token = client.fetch_token(https(gateway, "/oauth/token"), grant_type="client_credentials")
        assert client.get(https(gateway, "/v1/accounts")).status_code == 200
        revoked = client.revoke_token(https(gateway, "/oauth/revoke"), token["access_token"])
        assert revoked.status_code == 200
        assert client.get(https(gateway, "/v1/accounts")).status_code == 401
    introspected = post_form(
        gateway,
        "/oauth/introspect",
        f"token={token['access_token']}".encode(),
        auth=(client_id, secret),
    )
    assert introspected.json() == {"active": False}
    assert json.loads(introspected.content) == {"active": False}
