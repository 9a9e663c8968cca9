"""Starts a real gateway whose routes carry jwt, scopes and acl policies (integration tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.integration.harness import RunningGateway, running_gateway
from tests.policies.jwt.tokens import AUDIENCE, ISSUER


def jwt_settings(**overrides: Any) -> dict[str, Any]:
    """The jwt policy settings shared by the integration tests."""
    return {"issuer": ISSUER, "audience": AUDIENCE, **overrides}


def auth_routes() -> list[dict[str, Any]]:
    """Routes: /api (jwt only), /transfers (+ scopes), /staff (+ acl); jwt is the service's."""
    return [
        {"name": "api", "paths": ["/api"]},
        {
            "name": "transfers",
            "paths": ["/transfers"],
            "policies": {
                "scopes": {
                    "required": ["transfers:read"],
                    "methods": {"POST": {"required": ["transfers:write"]}},
                },
            },
        },
        {
            "name": "staff",
            "paths": ["/staff"],
            "policies": {"acl": {"allow": ["staff"], "deny": ["suspended"]}},
        },
    ]


@contextlib.contextmanager
def gateway_with_jwt(state_dir: Path, jwt: dict[str, Any]) -> Iterator[RunningGateway]:
    """A running gateway whose service authenticates with `jwt`, routes as in `auth_routes()`.

    The jwt policy sits at the service level, so one instance (one key source, one token
    cache) serves every route, as the docs recommend.
    """
    with running_gateway(state_dir, config_file=True) as running:
        config_path = state_dir / "bastion.yaml"
        document = yaml.safe_load(config_path.read_text())
        service = document["services"][0]
        service["policies"] = {"jwt": jwt}
        service["routes"][:0] = auth_routes()
        config_path.write_text(yaml.safe_dump(document))
        running.reload()
        probe = httpx.get(f"http://127.0.0.1:{running.http_port}/api")
        assert probe.status_code == 401, "the reload with the jwt routes was refused"
        yield running


def call(
    gateway: RunningGateway,
    path: str = "/api",
    token: str | bytes | None = None,
    *,
    method: str = "GET",
    authorization: bytes | None = None,
) -> httpx.Response:
    """One request through the plaintext listener with a bearer token (or a raw header)."""
    headers: dict[bytes, bytes] = {}
    if token is not None:
        headers[b"authorization"] = b"Bearer " + (
            token.encode() if isinstance(token, str) else token
        )
    if authorization is not None:
        headers[b"authorization"] = authorization
    return httpx.request(
        method, f"http://127.0.0.1:{gateway.http_port}{path}", headers=headers, timeout=5
    )
