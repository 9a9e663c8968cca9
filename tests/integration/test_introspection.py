"""The introspection policy against Bastion's own OAuth server as the external authorization server.

Two gateways: the first runs the authorization server (`oauth:`, clients in its store) on its
TLS listener; the second protects an upstream with `introspection` pointed at the first's
`/oauth/introspect`, verifying its development certificate through `ca_file`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.proxy.tls import ensure_dev_certificate
from tests.integration.harness import RunningGateway, running_gateway, running_upstream
from tests.oauth.test_gateway import register_client

pytestmark = pytest.mark.integration

ISSUER = "https://localhost:8443"
CACHE_TTL = 1.0


@dataclass
class Pair:
    """The authorization server, the resource gateway and the credentials in play."""

    auth: RunningGateway
    resource: RunningGateway
    seen: list[dict[str, Any]]
    app: tuple[str, str]


def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request from the test client; the development certificates are self-signed."""
    return httpx.request(method, url, verify=False, **kwargs)  # noqa: S501 - see docstring


def https(gateway: RunningGateway, path: str) -> str:
    return f"https://127.0.0.1:{gateway.https_port}{path}"


def resource_dir(tmp_path: Path) -> Path:
    path = tmp_path / "resource"
    path.mkdir()
    return path


def resource_config(auth: RunningGateway, ca_file: Path, secret: tuple[str, str], port: int):
    return {
        "services": [
            {
                "name": "api",
                "upstream": {"targets": [f"http://127.0.0.1:{port}"]},
                "routes": [
                    {
                        "name": "accounts",
                        "paths": ["/v1/accounts"],
                        "policies": {
                            "introspection": {
                                "introspection_endpoint": https(auth, "/oauth/introspect"),
                                "client_id": secret[0],
                                "client_secret": secret[1],
                                "ca_file": str(ca_file),
                                "cache_ttl": CACHE_TTL,
                                "inactive_cache_ttl": 0,
                            },
                            "scopes": {"required": ["accounts:read"]},
                        },
                    }
                ],
            }
        ]
    }


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    auth_dir, resource_dir = tmp_path / "auth", tmp_path / "resource"
    resource_dir.mkdir()
    cert, _ = ensure_dev_certificate(auth_dir)  # the auth gateway reuses it on its listener
    db = auth_dir / "bastion.db"
    app = register_client(db, ["accounts:read", "accounts:write"])
    resource_server = register_client(db, [])
    auth_extra: dict[str, Any] = {
        "store": f"sqlite:///{db}",
        "oauth": {"issuer": ISSUER, "access_token_ttl": 300},
    }
    with (
        running_gateway(auth_dir, auth_extra) as auth,
        running_upstream() as (port, seen),
        running_gateway(
            resource_dir, resource_config(auth, cert, resource_server, port)
        ) as resource,
    ):
        yield Pair(auth, resource, seen, app)


def issue(pair: Pair, scope: str = "accounts:read") -> str:
    response = call(
        "POST",
        https(pair.auth, "/oauth/token"),
        content=f"grant_type=client_credentials&scope={scope}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=pair.app,
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert isinstance(token, str)
    return token


def get_accounts(pair: Pair, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return call("GET", https(pair.resource, "/v1/accounts"), headers=headers)


def test_active_token_reaches_the_upstream_with_its_identity(pair: Pair):
    response = get_accounts(pair, issue(pair))
    assert response.status_code == 200
    headers = dict(pair.seen[-1]["headers"])
    assert headers["x-bastion-consumer"] == pair.app[0]
    assert headers["x-bastion-scopes"] == "accounts:read"
    assert "authorization" in headers  # an opaque token is passed on as sent


def test_unknown_token_is_refused_with_invalid_token(pair: Pair):
    response = get_accounts(pair, "not-a-token-the-server-issued")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert pair.seen == []


def test_missing_token_is_challenged_without_an_error_code(pair: Pair):
    response = get_accounts(pair, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="bastion"'


def test_scopes_from_the_answer_are_enforced(pair: Pair):
    response = get_accounts(pair, issue(pair, "accounts:write"))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


def test_revoked_token_is_refused_once_the_cached_answer_expires(pair: Pair):
    token = issue(pair)
    assert get_accounts(pair, token).status_code == 200
    revoked = call(
        "POST",
        https(pair.auth, "/oauth/revoke"),
        content=f"token={token}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=pair.app,
    )
    assert revoked.status_code == 200
    # Within cache_ttl the cached answer still admits it: that is the documented bound.
    assert get_accounts(pair, token).status_code == 200
    time.sleep(CACHE_TTL + 0.2)
    response = get_accounts(pair, token)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_wrong_resource_server_credentials_fail_closed_with_503(tmp_path: Path):
    auth_dir = tmp_path / "auth"
    cert, _ = ensure_dev_certificate(auth_dir)
    db = auth_dir / "bastion.db"
    app = register_client(db, ["accounts:read"])
    auth_extra: dict[str, Any] = {
        "store": f"sqlite:///{db}",
        "oauth": {"issuer": ISSUER, "access_token_ttl": 300},
    }
    with (
        running_gateway(auth_dir, auth_extra) as auth,
        running_upstream() as (port, seen),
        running_gateway(
            resource_dir(tmp_path),
            resource_config(auth, cert, (app[0], "wrong-secret"), port),
        ) as resource,
    ):
        pair = Pair(auth, resource, seen, app)
        response = get_accounts(pair, issue(pair))
    assert response.status_code == 503
    assert response.json()["code"] == "introspection_unavailable"
    assert seen == []


def test_unreachable_endpoint_fails_closed_with_503(tmp_path: Path):
    cert, _ = ensure_dev_certificate(tmp_path / "nowhere")
    dead = RunningGateway(0, 1, 0, 0, 0)  # https port 1: nothing listens there
    with (
        running_upstream() as (port, seen),
        running_gateway(tmp_path, resource_config(dead, cert, ("cl_x", "s"), port)) as resource,
    ):
        response = call(
            "GET",
            https(resource, "/v1/accounts"),
            headers={"Authorization": "Bearer some-opaque-token"},
        )
    assert response.status_code == 503
    assert seen == []


def test_endpoint_with_an_untrusted_certificate_fails_closed(tmp_path: Path):
    auth_dir = tmp_path / "auth"
    ensure_dev_certificate(auth_dir)
    other_ca, _ = ensure_dev_certificate(tmp_path / "other")  # trusted, but not the server's
    db = auth_dir / "bastion.db"
    app = register_client(db, ["accounts:read"])
    auth_extra: dict[str, Any] = {
        "store": f"sqlite:///{db}",
        "oauth": {"issuer": ISSUER, "access_token_ttl": 300},
    }
    with (
        running_gateway(auth_dir, auth_extra) as auth,
        running_upstream() as (port, seen),
        running_gateway(
            resource_dir(tmp_path), resource_config(auth, other_ca, app, port)
        ) as resource,
    ):
        pair = Pair(auth, resource, seen, app)
        response = get_accounts(pair, issue(pair))
    assert response.status_code == 503
    assert seen == []
