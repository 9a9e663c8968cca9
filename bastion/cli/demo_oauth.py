"""The bank demo's OAuth 2.0 side: its clients and logins, and a client that walks the flows.

`provision()` registers, idempotently, what examples/bank/bastion.yaml needs in the gateway's
store: a confidential *partner* client (client credentials, `accounts:read`), a public
*customer app* (authorization code + PKCE, loopback redirect URI), a confidential client of
another API (audience `crm`, the demo's "stolen token"), and one consumer with a password per
bank customer. Secrets live only as digests in the store, so the plain values the demo prints
are kept in `demo-oauth.json` (mode 0600) in the demo's state folder and reused on the next run.

`client_credentials()` and `authorization_code()` obtain tokens over HTTPS the way a real client
does. The code flow is the whole browser walk without a browser: GET the login page, take its
CSRF token and cookie, POST the login with *Allow*, check the 303 (`state`, RFC 9207 `iss`),
redeem the code with the PKCE verifier. Nothing here signs a token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import secrets
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bastion.config.models import GatewayConfig
from bastion.errors import BastionError
from bastion.oauth import pkce
from bastion.oauth.authorize import CSRF_COOKIE
from bastion.oauth.clients import new_client_id, new_client_secret, secret_digest
from bastion.oauth.grant_store import GrantStore
from bastion.store import PasswordRecord, open_store
from bastion.store.base import OAuthClientRecord
from bastion.store.secrets import hash_password, verify_password
from bastion.store.sql import SQLStore

BANK_AUDIENCE = "bank"
"""`aud` of the bank's tokens (the `jwt` policy in examples/bank/bastion.yaml requires it)."""
CUSTOMER_APP_REDIRECT = "http://127.0.0.1:8765/callback"
"""The customer app's redirect URI: a loopback listener of a native app (RFC 8252 §7.3)."""
PARTNER_SCOPE = "accounts:read"
CUSTOMER_SCOPE = "accounts:read transfers:write"
CUSTOMERS = {"alice": "cus_alice0001", "bob": "cus_bob00001"}
"""Login name → the bank's customer id (examples/bank/seed.py)."""
PARTNER_CUSTOMER = "cus_bob00001"
"""The partner is Bob's bookkeeping service: its client id is linked to Bob at the bank."""
STATE_FILE = "demo-oauth.json"
_ACTOR = "demo"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class FlowError(BastionError):
    """An OAuth flow did not end with a token; the message says at which step."""


@dataclass(frozen=True, slots=True)
class DemoClient:
    """A registered client; `secret` is empty for a public client."""

    id: str
    secret: str = ""


@dataclass(frozen=True, slots=True)
class DemoLogin:
    """A person who can sign in on the login page, and the bank customer they are."""

    username: str
    password: str
    consumer_id: str
    customer_id: str


@dataclass(frozen=True, slots=True)
class DemoOAuth:
    """Everything `provision()` registered, with the plain secrets."""

    partner: DemoClient
    customer_app: DemoClient
    crm: DemoClient
    logins: tuple[DemoLogin, ...]

    def login(self, customer_id: str) -> DemoLogin:
        """The login of a bank customer.

        Raises:
            KeyError: no login for that customer.
        """
        for login in self.logins:
            if login.customer_id == customer_id:
                return login
        raise KeyError(customer_id)

    def links(self) -> list[tuple[str, str]]:
        """(gateway identity, bank customer id) pairs the bank must know (`--link`)."""
        pairs = [(login.consumer_id, login.customer_id) for login in self.logins]
        return [*pairs, (self.partner.id, PARTNER_CUSTOMER)]


@dataclass(frozen=True, slots=True)
class TokenSet:
    """A token endpoint's successful answer (RFC 6749 §5.1)."""

    access_token: str
    scope: str
    expires_in: int
    refresh_token: str | None = None


# -- provisioning -----------------------------------------------------------------------------


def provision_demo(config: GatewayConfig, state_dir: Path) -> DemoOAuth:
    """`provision()` on the store of `config` (SQLite or PostgreSQL), from synchronous code.

    Raises:
        StoreUnavailable: the store could not answer.
        ValueError: the store cannot hold OAuth clients.
    """

    async def main() -> DemoOAuth:
        store = open_store(config.store)
        try:
            if not isinstance(store, SQLStore):  # pragma: no cover - every shipped store is SQL
                raise ValueError("the demo needs an SQLite or PostgreSQL store")
            await store.migrate()
            return await provision(store, state_dir)
        finally:
            await store.close()

    return asyncio.run(main())


async def provision(store: SQLStore, state_dir: Path) -> DemoOAuth:
    """Register the demo's clients and logins unless the store already has them.

    Safe to run on every start and from several nodes' points of view: what exists (and whose
    secret in `demo-oauth.json` still matches) is kept; what is missing is made; a client whose
    saved secret no longer matches gets a new one.
    """
    path = state_dir / STATE_FILE
    saved: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    partner = await _confidential(
        store, saved.get("partner"), "Bank partner (Bob's bookkeeping)", BANK_AUDIENCE
    )
    crm = await _confidential(store, saved.get("crm"), "CRM sync (another API)", "crm")
    app = await _customer_app(store, saved.get("customer_app"))
    passwords: dict[str, str] = saved.get("passwords", {})
    logins = []
    for username, customer in CUSTOMERS.items():
        logins.append(await _login(store, username, customer, passwords.get(username)))
    demo = DemoOAuth(partner, app, crm, tuple(logins))
    document = {
        "partner": {"id": partner.id, "secret": partner.secret},
        "crm": {"id": crm.id, "secret": crm.secret},
        "customer_app": {"id": app.id},
        "passwords": {login.username: login.password for login in logins},
    }
    write_private(path, json.dumps(document, indent=2) + "\n")
    return demo


async def _confidential(
    store: SQLStore, saved: dict[str, str] | None, name: str, audience: str
) -> DemoClient:
    # Both confidential clients may read accounts; only the audience tells their tokens apart.
    if saved:
        record = await store.get_oauth_client(saved["id"])
        if record is not None:
            if hmac.compare_digest(record.secret_digest, secret_digest(saved["secret"])):
                return DemoClient(record.id, saved["secret"])
            secret = new_client_secret()
            await store.set_oauth_client_secret(record.id, secret_digest(secret), actor=_ACTOR)
            return DemoClient(record.id, secret)
    secret = new_client_secret()
    record = OAuthClientRecord(
        id=new_client_id(),
        name=name,
        secret_digest=secret_digest(secret),
        scopes=frozenset({PARTNER_SCOPE}),
        grant_types=frozenset({"client_credentials"}),
        audience=audience,
        created_at=time.time(),
    )
    await store.add_oauth_client(record, actor=_ACTOR)
    return DemoClient(record.id, secret)


async def _customer_app(store: SQLStore, saved: dict[str, str] | None) -> DemoClient:
    record = await store.get_oauth_client(saved["id"]) if saved else None
    if record is None:
        record = OAuthClientRecord(
            id=new_client_id(),
            name="Bank customer app",
            secret_digest="",  # public: a native app cannot keep a secret; PKCE instead
            scopes=frozenset(CUSTOMER_SCOPE.split()),
            grant_types=frozenset({"authorization_code", "refresh_token"}),
            audience=BANK_AUDIENCE,
            created_at=time.time(),
        )
        await store.add_oauth_client(record, actor=_ACTOR)
    await GrantStore(store).set_redirect_uris(record.id, [CUSTOMER_APP_REDIRECT])
    return DemoClient(record.id)


async def _login(store: SQLStore, username: str, customer: str, password: str | None) -> DemoLogin:
    consumer = await store.find_consumer(username)
    if consumer is None:
        consumer = await store.create_consumer(
            username, actor=_ACTOR, metadata={"bank_customer": customer}
        )
    found = await store.get_password(username)
    usable = (
        password is not None
        and found is not None
        and found[1].id == consumer.id
        and await asyncio.to_thread(verify_password, found[0].password_hash, password)
    )
    if password is None or not usable:
        password = secrets.token_urlsafe(12)
        record = PasswordRecord(consumer.id, username, hash_password(password), time.time())
        await store.set_password(record, actor=_ACTOR)
    return DemoLogin(username, password, consumer.id, customer)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by the current user only (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


# -- the flows, over HTTP ---------------------------------------------------------------------


def _client(base_url: str, verify: ssl.SSLContext | bool) -> httpx.Client:
    # A fresh client per flow: no cookie or connection outlives one login.
    return httpx.Client(base_url=base_url, verify=verify, timeout=10, follow_redirects=False)


def _tokens(response: httpx.Response, step: str) -> TokenSet:
    if response.status_code != 200:
        raise FlowError(f"{step}: token endpoint answered {response.status_code}")
    body = response.json()
    return TokenSet(
        access_token=str(body["access_token"]),
        scope=str(body.get("scope", "")),
        expires_in=int(body.get("expires_in", 0)),
        refresh_token=body.get("refresh_token"),
    )


def client_credentials(
    base_url: str,
    client: DemoClient,
    scope: str,
    *,
    verify: ssl.SSLContext | bool = True,
) -> TokenSet:
    """A token for a confidential client by the client-credentials grant (RFC 6749 §4.4).

    Raises:
        FlowError: the token endpoint refused.
        httpx.HTTPError: the gateway could not be reached.
    """
    with _client(base_url, verify) as http:
        response = http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": scope},
            auth=(client.id, client.secret),
        )
    return _tokens(response, "client_credentials")


def authorization_code(
    base_url: str,
    client: DemoClient,
    login: DemoLogin,
    scope: str,
    *,
    redirect_uri: str = CUSTOMER_APP_REDIRECT,
    verify: ssl.SSLContext | bool = True,
    redeem_at: str | None = None,
) -> TokenSet:
    """Tokens by the authorization-code grant with PKCE S256, walking the login page over HTTP.

    `redeem_at` is the base URL whose token endpoint redeems the code (default `base_url`;
    another node of a cluster, to show codes live in the shared store).

    The steps a browser and the app would take (RFC 6749 §4.1, RFC 7636): authorize → login
    form (CSRF token + cookie) → sign in and allow → 303 to `redirect_uri` with `code`, `state`
    and `iss` (checked against the server's metadata) → redeem the code with the verifier.

    Raises:
        FlowError: a step did not give what the flow needs.
        httpx.HTTPError: the gateway could not be reached.
    """
    verifier = secrets.token_urlsafe(48)
    state = secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": client.id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "code_challenge": pkce.s256(verifier),
        "code_challenge_method": "S256",
    }
    with _client(base_url, verify) as http:
        metadata = http.get("/.well-known/oauth-authorization-server")
        if metadata.status_code != 200:
            raise FlowError(f"metadata: answered {metadata.status_code}")
        issuer = str(metadata.json()["issuer"])
        page = http.get("/oauth/authorize", params=params)
        if page.status_code == 303:  # refused before the login: the error comes back by redirect
            code_from_redirect(page, redirect_uri, state, issuer)
            raise FlowError("authorize: redirected before the login")
        found = _CSRF_FIELD.search(page.text)
        if page.status_code != 200 or found is None:
            raise FlowError(f"login page: answered {page.status_code} without a form")
        csrf = found.group(1)
        form = {**params, "csrf_token": csrf, "decision": "allow"}
        form |= {"username": login.username, "password": login.password}
        # The CSRF cookie is sent explicitly: `__Host-` cookies and IP hosts are not what every
        # cookie jar agrees on, and the double-submit check needs exactly this value.
        answer = http.post(
            "/oauth/authorize", data=form, headers={"Cookie": f"{CSRF_COOKIE}={csrf}"}
        )
        code = code_from_redirect(answer, redirect_uri, state, issuer)
        response = http.post(
            f"{redeem_at or base_url}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
                "client_id": client.id,
            },
        )
    return _tokens(response, "authorization_code")


def code_from_redirect(answer: httpx.Response, redirect_uri: str, state: str, issuer: str) -> str:
    """The `code` of the authorization endpoint's 303, checked as a client must.

    The redirect goes to `redirect_uri`, carries no `error`, returns our `state` (CSRF of the
    client, RFC 6749 §10.12) and names `issuer` (RFC 9207 mix-up defence).

    Raises:
        FlowError: any of that is not so (the message says which).
    """
    if answer.status_code == 200:  # the form again, with its error message
        raise FlowError("login: answered 200 with the form again (wrong username or password)")
    if answer.status_code != 303:
        raise FlowError(f"login: answered {answer.status_code}")
    location = answer.headers.get("location", "")
    parts = urlsplit(location)
    if f"{parts.scheme}://{parts.netloc}{parts.path}" != redirect_uri:
        raise FlowError("login: redirected somewhere other than the redirect URI")
    query: dict[str, str] = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if "error" in query:
        raise FlowError(f"authorize: {query['error']}")
    if not hmac.compare_digest(query.get("state", ""), state):
        raise FlowError("authorize: state does not match (a forged redirect?)")
    if query.get("iss") != issuer:  # RFC 9207: a code from another server is not ours
        raise FlowError("authorize: iss does not name this server")
    code = query.get("code")
    if not code:
        raise FlowError("authorize: no code")
    return code


def refresh(
    base_url: str,
    client: DemoClient,
    refresh_token: str,
    *,
    verify: ssl.SSLContext | bool = True,
) -> TokenSet:
    """New tokens for a refresh token (RFC 6749 §6); the old refresh token is spent.

    Raises:
        FlowError: the token endpoint refused.
        httpx.HTTPError: the gateway could not be reached.
    """
    with _client(base_url, verify) as http:
        response = http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": client.id,
            },
        )
    return _tokens(response, "refresh_token")
