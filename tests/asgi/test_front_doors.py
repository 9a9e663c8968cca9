"""Behaviours shared by both front doors, specified once: the proxy and the ASGI middleware.

Each test runs twice: through a real gateway (listeners, echo upstream) and through
BastionMiddleware in front of an echo app that answers in the echo upstream's shape. Both get
the same policies from the same config document.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import yaml

from tests.asgi.support import client, jwt_settings, provision_api_key, store_settings
from tests.integration.harness import running_gateway
from tests.policies.jwt.tokens import claims, sign

pytestmark = pytest.mark.integration

GLOBAL_POLICIES: dict[str, Any] = {
    "request_id": {},
    "security_headers": {},
    "cors": {"allow_origins": ["https://app.example"], "allow_methods": ["GET", "POST"]},
}
ROUTES: list[dict[str, Any]] = [
    {"name": "limited", "paths": ["/limited"], "policies": {"size_limit": {"max_body_bytes": 8}}},
    {"name": "secured", "paths": ["/secured"], "policies": {"jwt": jwt_settings()}},
    {
        "name": "rated",
        "paths": ["/rated"],
        "policies": {
            "rate_limit": {
                "limit": 2,
                "window": 60,
                "key": ["ip"],
                "algorithm": "sliding_window",
            }
        },
    },
    {"name": "keyed", "paths": ["/keyed"], "policies": {"api_key": {}}},
    {"name": "rest", "paths": ["/"]},
]


class Reply(Protocol):
    """What both clients' responses offer."""

    status_code: int

    @property
    def headers(self) -> Any: ...

    def json(self) -> Any: ...


class Door(Protocol):
    """A front door under test."""

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply: ...

    def calls(self) -> int: ...


class ProxyDoor:
    """The standalone gateway over loopback."""

    def __init__(self, port: int, seen: list[dict[str, Any]]) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.seen = seen

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        return httpx.request(method, self.base + path, headers=headers, content=body or None)

    def calls(self) -> int:
        return len(self.seen)


class MiddlewareDoor:
    """BastionMiddleware in-process."""

    def __init__(self, store: dict[str, Any]) -> None:
        config = {
            **store,
            "global_policies": GLOBAL_POLICIES,
            "services": [{"name": "echo", "routes": ROUTES}],
        }
        self.client, self.app = client(config, clock=None)

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        return self.client.request(method, path, headers=headers, content=body or None)

    def calls(self) -> int:
        return int(self.app.state.calls)


@dataclass
class Opened:
    """A door and the API key provisioned in its credential store."""

    door: Door
    api_key: str


@pytest.fixture(scope="module", params=["proxy", "middleware"])
def opened(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Opened]:
    """The same policies behind either front door, each with its own credential store."""
    state_dir: Path = tmp_path_factory.mktemp("doors")
    key, _ = provision_api_key(state_dir / "bastion.db")
    store = store_settings(state_dir / "bastion.db")
    if request.param == "middleware":
        yield Opened(MiddlewareDoor(store), key)
        return
    extra = {**store, "global_policies": GLOBAL_POLICIES}
    with running_gateway(state_dir, extra, config_file=True) as gw:
        config_path = state_dir / "bastion.yaml"
        document = yaml.safe_load(config_path.read_text())
        document["services"][0]["routes"] = ROUTES
        config_path.write_text(yaml.safe_dump(document))
        gw.reload()
        yield Opened(ProxyDoor(gw.http_port, gw.seen), key)


@pytest.fixture
def door(opened: Opened) -> Door:
    """The front door under test."""
    return opened.door


def seen_headers(reply: Reply) -> dict[str, str]:
    return {name: value for name, value in reply.json()["headers"]}


def test_security_headers_reach_answers_and_rejections(door: Door) -> None:
    ok = door.request("GET", "/anything")
    refused = door.request("POST", "/limited", body=b"123456789")
    assert (ok.status_code, refused.status_code) == (200, 413)
    for reply in (ok, refused):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-request-id"]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["request_id"] == refused.headers["x-request-id"]


def test_the_app_gets_the_request_id_and_no_spoofed_identity(door: Door) -> None:
    reply = door.request("GET", "/who", headers={"X-Bastion-Consumer": "mallory"})
    seen = seen_headers(reply)
    assert seen["x-request-id"] == reply.headers["x-request-id"]
    assert "x-bastion-consumer" not in seen


@pytest.mark.parametrize(
    ("raw", "status", "path"),
    [("/a//b", 200, "/a/b"), ("/a/%7Eb", 200, "/a/~b"), ("/a%2Fb", 400, None)],
    ids=["slash-run", "unreserved-escape", "encoded-slash"],
)
def test_one_canonical_path(door: Door, raw: str, status: int, path: str | None) -> None:
    reply = door.request("GET", raw)
    assert reply.status_code == status
    if path is not None:
        assert reply.json()["path"] == path


def test_cors_preflight_is_answered_at_the_door(door: Door) -> None:
    before = door.calls()
    reply = door.request(
        "OPTIONS",
        "/anything",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert reply.status_code == 204
    assert reply.headers["access-control-allow-origin"] == "https://app.example"
    assert door.calls() == before


def test_jwt_guards_the_route_and_forwards_the_consumer(door: Door) -> None:
    before = door.calls()
    assert door.request("GET", "/secured").status_code == 401
    assert door.calls() == before
    token = sign(claims(now=time.time()))
    reply = door.request("GET", "/secured", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200
    assert seen_headers(reply)["x-bastion-consumer"] == "alice"


def test_rate_limit_refuses_past_the_limit(door: Door) -> None:
    statuses = [door.request("GET", "/rated").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = door.request("GET", "/rated")
    assert int(refused.headers["retry-after"]) > 0


def test_api_key_admits_a_stored_key_and_refuses_others(opened: Opened) -> None:
    door = opened.door
    assert door.request("GET", "/keyed").status_code == 401
    assert door.request("GET", "/keyed", headers={"X-API-Key": "not-a-key"}).status_code == 401
    reply = door.request("GET", "/keyed", headers={"X-API-Key": opened.api_key})
    assert reply.status_code == 200
    seen = seen_headers(reply)
    assert seen["x-bastion-consumer"]
    assert "x-api-key" not in seen
