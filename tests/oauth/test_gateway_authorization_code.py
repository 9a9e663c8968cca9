"""Authorization code + PKCE on a running gateway: Authlib's client, headless Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token  # type: ignore[import-untyped]  # no stubs
from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]  # no stubs
    OAuth2Client,
)

from bastion.oauth import pkce
from bastion.oauth.clients import new_client_id, new_client_secret, secret_digest
from bastion.oauth.grant_store import GrantStore
from bastion.store.base import OAuthClientRecord, PasswordRecord
from bastion.store.secrets import hash_password
from bastion.store.sqlite import SQLiteStore
from tests.integration.harness import RunningGateway, free_port, running_gateway, running_upstream
from tests.oauth.cdp import CHROMIUM, headless_page

pytestmark = pytest.mark.integration

ISSUER = "https://localhost:8443"
USERNAME = "alice"
PASSWORD = "correct horse battery staple"


@dataclass
class Setup:
    gateway: RunningGateway
    seen: list[dict[str, Any]]
    client_id: str
    secret: str
    consumer_id: str
    redirect_uri: str

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.gateway.https_port}{path}"


def register(db: Path, redirect_uri: str) -> tuple[str, str, str]:
    """A confidential client for the code flow and a consumer with a password."""
    secret = new_client_secret()
    record = OAuthClientRecord(
        id=new_client_id(),
        name="Budget app",
        secret_digest=secret_digest(secret),
        scopes=frozenset({"accounts:read", "accounts:write"}),
        grant_types=frozenset({"authorization_code", "refresh_token"}),
        created_at=1.0,
    )

    async def write() -> str:
        store = SQLiteStore(db)
        try:
            await store.add_oauth_client(record, actor="test")
            await GrantStore(store).set_redirect_uris(record.id, [redirect_uri])
            consumer = await store.create_consumer(USERNAME, actor="test")
            password = PasswordRecord(consumer.id, USERNAME, hash_password(PASSWORD), 1.0)
            await store.set_password(password, actor="test")
            return consumer.id
        finally:
            await store.close()

    consumer_id = asyncio.run(write())
    return record.id, secret, consumer_id


@contextlib.contextmanager
def callback_server() -> Iterator[tuple[str, list[str], threading.Event]]:
    """A loopback HTTP server standing for the client app's redirect URI."""
    hits: list[str] = []
    arrived = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            arrived.set()
            body = b"<!doctype html><title>done</title><p>signed in</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/callback", hits, arrived
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def code_flow_gateway(tmp_path: Path, redirect_uri: str) -> Iterator[Setup]:
    db = tmp_path / "bastion.db"
    client_id, secret, consumer_id = register(db, redirect_uri)
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
        with running_gateway(tmp_path, extra) as gateway:
            yield Setup(gateway, seen, client_id, secret, consumer_id, redirect_uri)


def browser() -> httpx.Client:
    """A cookie-keeping client for the login page (self-signed development certificate)."""
    return httpx.Client(verify=False, follow_redirects=False)  # noqa: S501 - see docstring


def sign_in(setup: Setup, authorization_url: str) -> str:
    """Load the login page, submit the form, return the Location of the redirect."""
    with browser() as session:
        page = session.get(authorization_url)
        assert page.status_code == 200
        assert page.headers["x-frame-options"] == "DENY"
        fields = dict(
            re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page.text)
        )
        fields = {name: value.replace("&amp;", "&") for name, value in fields.items()}
        form = {**fields, "username": USERNAME, "password": PASSWORD, "decision": "allow"}
        response = session.post(setup.url("/oauth/authorize"), data=form)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def test_authlib_completes_authorization_code_with_pkce_and_refresh(tmp_path):
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    with code_flow_gateway(tmp_path, redirect_uri) as setup:
        token_url = setup.url("/oauth/token")
        with OAuth2Client(
            setup.client_id,
            setup.secret,
            scope="accounts:read",
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            verify=False,
        ) as client:
            verifier = generate_token(48)
            url, state = client.create_authorization_url(
                setup.url("/oauth/authorize"), code_verifier=verifier
            )
            assert "code_challenge_method=S256" in url
            location = sign_in(setup, url)
            assert location.startswith(redirect_uri + "?")
            query = parse_qs(urlsplit(location).query)
            assert query["state"] == [state]
            token = client.fetch_token(
                token_url, authorization_response=location, code_verifier=verifier
            )
            assert token["scope"] == "accounts:read"
            assert token["refresh_token"]
            response = client.get(setup.url("/v1/accounts"))
            assert response.status_code == 200
            assert dict(setup.seen[-1]["headers"])["x-bastion-consumer"] == setup.consumer_id

            first_refresh = token["refresh_token"]
            renewed = client.refresh_token(token_url)
            assert renewed["refresh_token"] != first_refresh
            assert client.get(setup.url("/v1/accounts")).status_code == 200

        # The spent refresh token again: refused, and the family (incl. the new one) revoked.
        with browser() as raw:
            reuse = raw.post(
                token_url,
                data={"grant_type": "refresh_token", "refresh_token": first_refresh},
                auth=(setup.client_id, setup.secret),
            )
            assert reuse.status_code == 400
            assert reuse.json()["error"] == "invalid_grant"
            assert reuse.headers["cache-control"] == "no-store"
            after = raw.post(
                token_url,
                data={"grant_type": "refresh_token", "refresh_token": renewed["refresh_token"]},
                auth=(setup.client_id, setup.secret),
            )
            assert after.json()["error"] == "invalid_grant"


def test_login_page_refuses_an_oversized_form_with_413(tmp_path):
    with code_flow_gateway(tmp_path, "http://127.0.0.1:9/callback") as setup, browser() as raw:
        response = raw.post(
            setup.url("/oauth/authorize"),
            content=b"username=a&pad=" + b"a" * 20_000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 413
        get_token = raw.get(setup.url("/oauth/authorize"))
        assert get_token.status_code == 400
        assert "location" not in get_token.headers


@pytest.mark.skipif(
    not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
    reason="chromium is not installed (scripts/system-deps.sh installs it)",
)
def test_headless_chromium_walks_the_login_and_consent_page(tmp_path):
    with (
        callback_server() as (redirect_uri, hits, arrived),
        code_flow_gateway(tmp_path / "gw", redirect_uri) as setup,
    ):
        verifier = generate_token(48)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": setup.client_id,
                "redirect_uri": redirect_uri,
                "scope": "accounts:read",
                "state": "chromium-state",
                "code_challenge": pkce.s256(verifier),
                "code_challenge_method": "S256",
            }
        )
        page_url = setup.url(f"/oauth/authorize?{query}")
        profile = tmp_path / "profile"
        with headless_page(profile) as page:
            page.send("Page.navigate", {"url": page_url})
            page.wait_for("Page.loadEventFired")
            page.drain(0.3)
            assert page.evaluate("document.title") == "Sign in"
            responses = [
                event["params"]["response"]
                for event in page.events
                if event.get("method") == "Network.responseReceived"
                and event["params"]["response"]["url"] == page_url
            ]
            assert responses, "the login page's response was not seen"
            headers = {k.lower(): v for k, v in responses[0]["headers"].items()}
            assert headers["content-security-policy"].startswith("default-src 'none'")
            assert headers["x-frame-options"] == "DENY"
            assert page.console_errors() == []
            page.evaluate(
                f"document.getElementById('username').value = {USERNAME!r};"
                f"document.getElementById('password').value = {PASSWORD!r};"
                "document.getElementById('allow').click(); true"
            )
            assert arrived.wait(15), "the browser never reached the redirect URI"
            page.wait_for("Page.loadEventFired")
            landed = page.evaluate("location.href")
            page.drain(0.3)
            assert page.console_errors() == []
        (path,) = [hit for hit in hits if hit.startswith("/callback?")]  # not /favicon.ico
        assert landed.startswith(redirect_uri + "?")
        params = parse_qs(urlsplit(path).query)
        assert params["state"] == ["chromium-state"]
        assert params["iss"] == [ISSUER]
        with browser() as raw:
            exchanged = raw.post(
                setup.url("/oauth/token"),
                data={
                    "grant_type": "authorization_code",
                    "code": params["code"][0],
                    "redirect_uri": redirect_uri,
                    "code_verifier": verifier,
                },
                auth=(setup.client_id, setup.secret),
            )
        assert exchanged.status_code == 200
        assert exchanged.json()["scope"] == "accounts:read"
