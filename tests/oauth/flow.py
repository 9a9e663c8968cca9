"""Helpers for the authorization-code tests: clients with redirect URIs, users, one login."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from urllib.parse import parse_qs, urlencode, urlsplit

from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.oauth import pkce
from bastion.oauth.authorize import CSRF_COOKIE, AuthorizeEndpoint
from bastion.oauth.clients import new_client_id, new_client_secret, secret_digest
from bastion.oauth.server import AuthorizationServer
from bastion.store.base import OAuthClientRecord, PasswordRecord
from bastion.store.secrets import hash_password
from bastion.store.sql import SQLStore
from tests.oauth.support import Client

REDIRECT = "https://app.example.test/callback"
USERNAME = "alice"
PASSWORD = "correct horse battery staple"
CODE_GRANTS = ("authorization_code", "refresh_token")


async def add_code_client(
    server: AuthorizationServer,
    *,
    public: bool = False,
    scopes: Sequence[str] = ("read", "write"),
    grants: Sequence[str] = CODE_GRANTS,
    redirect_uris: Sequence[str] = (REDIRECT,),
) -> Client:
    """A client registered for the authorization-code flow; `secret` is "" when public."""
    secret = "" if public else new_client_secret()
    record = OAuthClientRecord(
        id=new_client_id(),
        name="Budget <App>",
        secret_digest="" if public else secret_digest(secret),
        scopes=frozenset(scopes),
        grant_types=frozenset(grants),
        created_at=1.0,
    )
    await server.store.add_oauth_client(record, actor="test")
    await server.grants.set_redirect_uris(record.id, list(redirect_uris))
    return Client(record.id, secret)


async def add_user(
    server: AuthorizationServer, username: str = USERNAME, password: str = PASSWORD
) -> str:
    """A consumer with a password; returns the consumer id."""
    store = server.store
    assert isinstance(store, SQLStore)
    consumer = await store.create_consumer(username, actor="test")
    record = PasswordRecord(consumer.id, username, hash_password(password), 1.0)
    await store.set_password(record, actor="test")
    return consumer.id


def new_verifier() -> str:
    return secrets.token_urlsafe(48)


def authorize_params(client: str, verifier: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client,
        "redirect_uri": REDIRECT,
        "scope": "read",
        "state": "st-42",
        "code_challenge": pkce.s256(verifier),
        "code_challenge_method": "S256",
        **overrides,
    }
    return {name: value for name, value in params.items() if value is not None}


def csrf_of(page: Response) -> str:
    match = re.search(rb'name="csrf_token" value="([^"]+)"', page.body)
    assert match is not None, page.body
    cookie = page.headers.get(b"set-cookie") or b""
    assert cookie.startswith(f"{CSRF_COOKIE}=".encode() + match.group(1) + b";")
    return match.group(1).decode()


async def login(
    endpoint: AuthorizeEndpoint,
    params: dict[str, str],
    *,
    username: str = USERNAME,
    password: str = PASSWORD,
    decision: str = "allow",
) -> Response:
    """Load the page for `params`, then submit it with the credentials."""
    page = await endpoint.page(Headers(), urlencode(params).encode())
    assert page.status == 200, page.body
    token = csrf_of(page)
    form = {**params, "csrf_token": token, "username": username, "password": password}
    form["decision"] = decision
    headers = Headers([(b"cookie", f"{CSRF_COOKIE}={token}".encode())])
    return await endpoint.submit(headers, urlencode(form).encode())


def redirect_params(response: Response) -> tuple[str, dict[str, str]]:
    """(URI without query, query parameters) of a 303 redirect."""
    assert response.status == 303, response.body
    location = (response.headers.get(b"location") or b"").decode()
    parts = urlsplit(location)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    return f"{parts.scheme}://{parts.netloc}{parts.path}", query
