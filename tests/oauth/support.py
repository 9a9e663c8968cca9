"""Helpers for the authorization server's tests: a server on a temporary SQLite store."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.clock import FakeClock
from bastion.core.policy import PolicyDeps
from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.oauth.clients import new_client_id, new_client_secret, secret_digest
from bastion.oauth.config import OAuthConfig
from bastion.oauth.server import AuthorizationServer
from bastion.policies.jwt.config import JWTConfig
from bastion.policies.jwt.policy import JWTPolicy
from bastion.store.base import OAuthClientRecord, OAuthStore

ISSUER = "https://auth.example.test"


@dataclass
class Client:
    """A registered client and its plain secret."""

    id: str
    secret: str

    def basic(self) -> tuple[bytes, bytes]:
        """The `Authorization: Basic` field for this client."""
        raw = f"{self.id}:{self.secret}".encode()
        return b"authorization", b"Basic " + base64.b64encode(raw)


def make_server(
    store: OAuthStore, clock: FakeClock, *, pepper: bytes | None = None, **settings: object
) -> AuthorizationServer:
    config = OAuthConfig.model_validate({"issuer": ISSUER, **settings})
    return AuthorizationServer(config, store, clock, pepper=pepper)


async def add_client(
    server: AuthorizationServer,
    *,
    scopes: Sequence[str] = ("read", "write"),
    grants: Sequence[str] = ("client_credentials",),
    audience: str | None = None,
    disabled: bool = False,
) -> Client:
    secret = new_client_secret()
    record = OAuthClientRecord(
        id=new_client_id(),
        name="test-client",
        secret_digest=secret_digest(secret),
        scopes=frozenset(scopes),
        grant_types=frozenset(grants),
        audience=audience,
        disabled=disabled,
        created_at=1.0,
    )
    await server.store.add_oauth_client(record, actor="test")
    return Client(record.id, secret)


def form_headers(*extra: tuple[bytes, bytes]) -> Headers:
    return Headers([(b"content-type", b"application/x-www-form-urlencoded"), *extra])


def body_of(response: Response) -> dict[str, object]:
    document = json.loads(response.body)
    assert isinstance(document, dict)
    return document


async def issue(server: AuthorizationServer, client: Client, body: bytes = b"") -> str:
    """An access token for `client` by the client-credentials grant."""
    response = await server.token(
        form_headers(client.basic()), b"grant_type=client_credentials" + body
    )
    assert response.status == 200, response.body
    token = body_of(response)["access_token"]
    assert isinstance(token, str)
    return token


def self_policy(server: AuthorizationServer, clock: FakeClock, **settings: object) -> JWTPolicy:
    """A jwt policy with `issuer: self` served by `server`."""
    config = JWTConfig.model_validate({"issuer": "self", **settings})
    return JWTPolicy(config, PolicyDeps(clock=clock, extras={"oauth": server}))


def claims_of(token: str) -> tuple[dict[str, object], dict[str, object]]:
    """(header, claims) of a compact JWS, unverified (for assertions only)."""
    header, payload, _ = token.split(".")

    def decode(part: str) -> dict[str, object]:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        assert isinstance(value, dict)
        return value

    return decode(header), decode(payload)
