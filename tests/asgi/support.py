"""An echo app and client helpers for the middleware tests (no sockets: in-process ASGI)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from bastion.asgi import BastionMiddleware
from bastion.clock import FakeClock
from bastion.core.context import Identity
from bastion.store import APIKeyRecord, open_store
from bastion.store.secrets import Pepper, Peppers, new_api_key
from tests.policies.jwt.tokens import AUDIENCE, ISSUER, rsa_key

QUIET: dict[str, Any] = {"access_log": {"sink": "off"}}
"""Config keys that keep the middleware's access log off stdout during tests."""
PEPPER = "asgi-test-pepper-with-at-least-32-characters"


def provision_api_key(db: Path) -> tuple[str, str]:
    """Create consumer `alice` with one API key in the SQLite store at `db`: (key, consumer id)."""

    async def main() -> tuple[str, str]:
        store = open_store(f"sqlite:///{db}")
        try:
            consumer = await store.create_consumer("alice", actor="test")
            peppers = Peppers(Pepper.from_secret(PEPPER))
            key_id, key = new_api_key()
            digest = peppers.digest(key)
            assert digest is not None
            record = APIKeyRecord(key_id, consumer.id, digest, peppers.current.id, time.time())
            await store.add_api_key(record, actor="test")
            return key, consumer.id
        finally:
            await store.close()

    return asyncio.run(main())


def store_settings(db: Path) -> dict[str, Any]:
    """Config keys pointing the credential store at `db`, with the pepper."""
    return {"store": f"sqlite:///{db}", "pepper": PEPPER}


def jwt_settings() -> dict[str, Any]:
    """A jwt policy that trusts the test RSA key."""
    return {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "public_key_pem": rsa_key().as_pem(private=False).decode(),
    }


def identity_doc(identity: Identity | None) -> dict[str, Any] | None:
    """The JSON form of what the app received in request.state.bastion_identity."""
    if identity is None:
        return None
    return {"consumer_id": identity.consumer_id, "scopes": sorted(identity.scopes)}


async def echo(request: Request) -> JSONResponse:
    """Echo what the app saw, in the echo upstream's shape (plus the identity)."""
    body = await request.body()
    request.app.state.calls += 1
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.headers.raw],
            "body": body.decode("latin-1"),
            "identity": identity_doc(request.state.bastion_identity),
        }
    )


def echo_app() -> Starlette:
    """A Starlette app answering every path and method with `echo`; counts its calls."""
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    app = Starlette(routes=[Route("/{rest:path}", echo, methods=methods)])
    app.state.calls = 0
    return app


def client(
    config: dict[str, Any], *, app: Starlette | None = None, **options: Any
) -> tuple[TestClient, Starlette]:
    """A TestClient for `app` (default: the echo app) behind BastionMiddleware with `config`."""
    inner = app if app is not None else echo_app()
    options.setdefault("clock", FakeClock())
    inner.add_middleware(BastionMiddleware, config={**QUIET, **config}, **options)
    return TestClient(inner, raise_server_exceptions=False), inner
