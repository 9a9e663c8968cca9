"""Behaviours shared by both front doors, specified once: the proxy and the ASGI middleware.

Each test runs twice (tests/frontdoor.py): through a real gateway (listeners, echo upstream)
and through BastionMiddleware in front of an echo app that answers in the echo upstream's
shape. Both get the same policies from the same config document.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.asgi.support import jwt_settings, provision_api_key, store_settings
from tests.frontdoor import FRONT_DOORS, FrontDoor, Reply, open_front_door
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
    {
        "name": "internal",
        "paths": ["/internal"],
        "policies": {"ip_filter": {"deny": ["127.0.0.0/8"]}},
    },
    {
        "name": "partners",
        "paths": ["/partners"],
        "policies": {
            "trusted_proxy": {"proxies": ["127.0.0.1/32"]},
            "ip_filter": {"allow": ["198.51.100.0/24"]},
        },
    },
    {"name": "rest", "paths": ["/"]},
]


@dataclass
class Opened:
    """A door and the API key provisioned in its credential store."""

    door: FrontDoor
    api_key: str


@pytest.fixture(scope="module", params=FRONT_DOORS)
def opened(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Opened]:
    """The same policies behind either front door, each with its own credential store."""
    state_dir: Path = tmp_path_factory.mktemp("doors")
    key, _ = provision_api_key(state_dir / "bastion.db")
    document = {
        **store_settings(state_dir / "bastion.db"),
        "global_policies": GLOBAL_POLICIES,
        "services": [{"name": "echo", "routes": ROUTES}],
    }
    with open_front_door(request.param, state_dir, document) as door:
        yield Opened(door, key)


@pytest.fixture
def door(opened: Opened) -> FrontDoor:
    """The front door under test."""
    return opened.door


def seen_headers(reply: Reply) -> dict[str, str]:
    return {name: value for name, value in reply.json()["headers"]}


def test_security_headers_reach_answers_and_rejections(door: FrontDoor) -> None:
    ok = door.request("GET", "/anything")
    refused = door.request("POST", "/limited", body=b"123456789")
    assert (ok.status_code, refused.status_code) == (200, 413)
    for reply in (ok, refused):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-request-id"]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["request_id"] == refused.headers["x-request-id"]


def test_the_app_gets_the_request_id_and_no_spoofed_identity(door: FrontDoor) -> None:
    reply = door.request("GET", "/who", headers={"X-Bastion-Consumer": "mallory"})
    seen = seen_headers(reply)
    assert seen["x-request-id"] == reply.headers["x-request-id"]
    assert "x-bastion-consumer" not in seen


@pytest.mark.parametrize(
    ("raw", "status", "path"),
    [("/a//b", 200, "/a/b"), ("/a/%7Eb", 200, "/a/~b"), ("/a%2Fb", 400, None)],
    ids=["slash-run", "unreserved-escape", "encoded-slash"],
)
def test_one_canonical_path(door: FrontDoor, raw: str, status: int, path: str | None) -> None:
    reply = door.request("GET", raw)
    assert reply.status_code == status
    if path is not None:
        assert reply.json()["path"] == path


def test_cors_preflight_is_answered_at_the_door(door: FrontDoor) -> None:
    before = door.upstream_calls()
    reply = door.request(
        "OPTIONS",
        "/anything",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert reply.status_code == 204
    assert reply.headers["access-control-allow-origin"] == "https://app.example"
    assert door.upstream_calls() == before


def test_jwt_guards_the_route_and_forwards_the_consumer(door: FrontDoor) -> None:
    before = door.upstream_calls()
    assert door.request("GET", "/secured").status_code == 401
    assert door.upstream_calls() == before
    token = sign(claims(now=time.time()))
    reply = door.request("GET", "/secured", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200
    assert seen_headers(reply)["x-bastion-consumer"] == "alice"


def test_rate_limit_refuses_past_the_limit(door: FrontDoor) -> None:
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


def test_ip_filter_refuses_the_denied_peer_whatever_it_forwards(door: FrontDoor) -> None:
    before = door.upstream_calls()
    for headers in ({}, {"X-Forwarded-For": "198.51.100.7"}):
        refused = door.request("GET", "/internal", headers=headers)
        assert refused.status_code == 403
        assert refused.json()["code"] == "ip_denied"
    assert door.upstream_calls() == before


def test_a_trusted_proxy_sets_the_client_address_from_x_forwarded_for(door: FrontDoor) -> None:
    assert door.request("GET", "/partners").status_code == 403  # the peer itself: loopback
    forwarded = door.request("GET", "/partners", headers={"X-Forwarded-For": "198.51.100.7"})
    assert forwarded.status_code == 200
    outsider = door.request("GET", "/partners", headers={"X-Forwarded-For": "203.0.113.9"})
    assert outsider.status_code == 403
