"""All in one app: BastionMiddleware answers the OAuth endpoints and accepts their tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bastion.asgi import BastionMiddleware
from tests.asgi.support import QUIET, echo_app
from tests.frontdoor import LOOPBACK_PEER
from tests.oauth.test_gateway import register_client

ISSUER = "https://testserver"


@pytest.fixture
def all_in_one(tmp_path: Path) -> Iterator[tuple[TestClient, str, str]]:
    """An app whose middleware runs the authorization server and a `jwt: {issuer: self}` route."""
    db = tmp_path / "bastion.db"
    client_id, secret = register_client(db, ["accounts:read"])
    config: dict[str, Any] = {
        **QUIET,
        "store": f"sqlite:///{db}",
        "state_dir": str(tmp_path),
        "oauth": {"issuer": ISSUER, "access_token_ttl": 300},
        "global_policies": {"request_id": {}, "security_headers": {}},
        "services": [
            {
                "name": "bank",
                "routes": [
                    {
                        "name": "accounts",
                        "paths": ["/accounts"],
                        "policies": {
                            "jwt": {"issuer": "self"},
                            "scopes": {"required": ["accounts:read"]},
                        },
                    }
                ],
            }
        ],
    }
    app = echo_app()
    app.add_middleware(BastionMiddleware, config=config)
    with TestClient(app, base_url=ISSUER, client=LOOPBACK_PEER) as client:
        yield client, client_id, secret


def _token(client: TestClient, client_id: str, secret: str) -> str:
    response = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "accounts:read"},
        auth=(client_id, secret),
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-request-id"]  # the global chain ran first
    return str(response.json()["access_token"])


def test_a_token_from_the_middleware_is_accepted_by_its_own_routes(all_in_one) -> None:
    client, client_id, secret = all_in_one
    assert client.get("/accounts").status_code == 401
    token = _token(client, client_id, secret)
    reply = client.get("/accounts", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200
    assert reply.json()["identity"]["consumer_id"] == client_id


def test_metadata_jwks_introspection_and_revocation_are_served(all_in_one) -> None:
    client, client_id, secret = all_in_one
    metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert client.get("/.well-known/jwks.json").json()["keys"]
    token = _token(client, client_id, secret)
    active = client.post("/oauth/introspect", data={"token": token}, auth=(client_id, secret))
    assert active.json()["active"] is True
    revoked = client.post("/oauth/revoke", data={"token": token}, auth=(client_id, secret))
    assert revoked.status_code == 200
    refused = client.get("/accounts", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401


def test_oauth_errors_keep_their_rfc_6749_shape(all_in_one) -> None:
    client, client_id, _ = all_in_one
    wrong = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, "wrong")
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    oversized = client.post(
        "/oauth/token",
        content=b"a=" + b"x" * 70_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert oversized.status_code == 413
