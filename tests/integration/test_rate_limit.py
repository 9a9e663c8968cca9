"""Rate limiting through both front doors: 429 with headers, spoofing, preflights, report-only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.config.loader import parse_config
from bastion.errors import ConfigError
from bastion.server.run import serve
from tests.frontdoor import FRONT_DOORS, FrontDoor, Kind, Reply, open_front_door

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def _door(kind: Kind, tmp_path: Path, policies: dict[str, Any]) -> Iterator[FrontDoor]:
    document = {
        "global_policies": policies,
        "services": [{"name": "echo", "routes": [{"name": "all", "paths": ["/"]}]}],
    }
    with open_front_door(kind, tmp_path, document) as door:
        yield door


def _get(door: FrontDoor, headers: dict[str, str] | None = None) -> Reply:
    return door.request("GET", "/x", headers)


doors = pytest.mark.parametrize("kind", FRONT_DOORS)


@doors
def test_sixth_request_gets_429_with_retry_after_and_headers(kind: Kind, tmp_path: Path) -> None:
    policies = {"rate_limit": {"limit": 5, "window": 60, "burst": 4}}
    with _door(kind, tmp_path, policies) as door:
        responses = [_get(door) for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    assert [r.headers["ratelimit"] for r in responses[:5]] == [
        f'"default";r={left};t={12 * (5 - left)}' for left in (4, 3, 2, 1, 0)
    ]
    refused = responses[5]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    assert refused.json()["status"] == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 12
    assert refused.headers["ratelimit-policy"] == '"default";q=5;w=60'
    assert refused.headers["ratelimit"] == '"default";r=0;t=60'


@doors
def test_rotating_x_forwarded_for_from_an_untrusted_peer_keeps_one_key(
    kind: Kind, tmp_path: Path
) -> None:
    policies = {"rate_limit": {"limit": 3, "window": 60, "burst": 2}}
    with _door(kind, tmp_path, policies) as door:
        statuses = [
            _get(
                door,
                {
                    "X-Forwarded-For": f"198.51.100.{i}",
                    "Forwarded": f"for=203.0.113.{i}",
                    "X-Real-IP": f"192.0.2.{i}",
                },
            ).status_code
            for i in range(6)
        ]
    assert statuses == [200, 200, 200, 429, 429, 429]


@doors
def test_cors_preflights_are_not_counted(kind: Kind, tmp_path: Path) -> None:
    policies = {
        "cors": {"allow_origins": ["https://app.example"]},
        "rate_limit": {"limit": 2, "window": 60, "burst": 1},
    }
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    with _door(kind, tmp_path, policies) as door:
        answers = [door.request("OPTIONS", "/x", preflight).status_code for _ in range(5)]
        statuses = [_get(door).status_code for _ in range(3)]
    assert answers == [204] * 5
    assert statuses == [200, 200, 429]


@doors
def test_report_only_logs_but_never_blocks(kind: Kind, tmp_path: Path) -> None:
    policies = {"rate_limit": {"limit": 1, "window": 60, "mode": "report_only"}}
    with _door(kind, tmp_path, policies) as door:
        responses = [_get(door) for _ in range(4)]
    assert [r.status_code for r in responses] == [200] * 4
    assert responses[0].headers["ratelimit"] == '"default";r=0;t=60'
    assert responses[3].headers["ratelimit"].startswith('"default";r=0;')


def _document(counters: str, policies: dict[str, Any]) -> dict[str, Any]:
    return {
        "listeners": [{"bind": "127.0.0.1:18080", "plaintext": True}],
        "counters": counters,
        "global_policies": policies,
    }


@pytest.mark.parametrize(
    "policies",
    [
        {"rate_limit": {"limit": 100, "window": 60}},
        {"concurrency_limit": {"max": 10}},
        {"quota": {"limit": 1000, "period": "day", "key": "ip"}},
    ],
    ids=["rate_limit", "concurrency_limit", "quota"],
)
def test_several_workers_with_memory_counters_refuse_to_start(policies: dict[str, Any]) -> None:
    config = parse_config(_document("memory", policies))
    with pytest.raises(ConfigError) as caught:
        serve(config, None, workers=2)
    assert caught.value.path == "counters"
    assert "multiply" in caught.value.message
