"""Rate limiting through a real gateway: 429 with headers, spoofing, preflights, report-only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.config.loader import parse_config
from bastion.errors import ConfigError
from bastion.server.run import serve
from tests.integration.harness import RunningGateway, running_gateway

pytestmark = pytest.mark.integration


def _with_policies(gateway_policies: dict[str, Any]) -> dict[str, Any]:
    return {"global_policies": gateway_policies}


def _get(gateway: RunningGateway, path: str = "/x", **kwargs: Any) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{gateway.http_port}{path}", timeout=5, **kwargs)


def test_sixth_request_gets_429_with_retry_after_and_headers(tmp_path: Path) -> None:
    policies = {"rate_limit": {"limit": 5, "window": 60, "burst": 4}}
    with running_gateway(tmp_path, _with_policies(policies)) as gateway:
        responses = [_get(gateway) for _ in range(6)]
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


def test_rotating_x_forwarded_for_from_an_untrusted_peer_keeps_one_key(tmp_path: Path) -> None:
    policies = {"rate_limit": {"limit": 3, "window": 60, "burst": 2}}
    with running_gateway(tmp_path, _with_policies(policies)) as gateway:
        statuses = [
            _get(
                gateway,
                headers={
                    "X-Forwarded-For": f"198.51.100.{i}",
                    "Forwarded": f"for=203.0.113.{i}",
                    "X-Real-IP": f"192.0.2.{i}",
                },
            ).status_code
            for i in range(6)
        ]
    assert statuses == [200, 200, 200, 429, 429, 429]


def test_cors_preflights_are_not_counted(tmp_path: Path) -> None:
    policies = {
        "cors": {"allow_origins": ["https://app.example"]},
        "rate_limit": {"limit": 2, "window": 60, "burst": 1},
    }
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    with running_gateway(tmp_path, _with_policies(policies)) as gateway:
        answers = [
            httpx.options(
                f"http://127.0.0.1:{gateway.http_port}/x", headers=preflight, timeout=5
            ).status_code
            for _ in range(5)
        ]
        statuses = [_get(gateway).status_code for _ in range(3)]
    assert answers == [204] * 5
    assert statuses == [200, 200, 429]


def test_report_only_logs_but_never_blocks(tmp_path: Path) -> None:
    policies = {"rate_limit": {"limit": 1, "window": 60, "mode": "report_only"}}
    with running_gateway(tmp_path, _with_policies(policies)) as gateway:
        responses = [_get(gateway) for _ in range(4)]
    assert [r.status_code for r in responses] == [200] * 4
    assert responses[0].headers["ratelimit"] == '"default";r=0;t=60'
    assert responses[3].headers["ratelimit"].startswith('"default";r=0;')


def _document(counters: str) -> dict[str, Any]:
    return {
        "listeners": [{"bind": "127.0.0.1:18080", "plaintext": True}],
        "counters": counters,
        "global_policies": {"rate_limit": {"limit": 100, "window": 60}},
    }


def test_several_workers_with_memory_counters_refuse_to_start() -> None:
    config = parse_config(_document("memory"))
    with pytest.raises(ConfigError) as caught:
        serve(config, None, workers=2)
    assert caught.value.path == "counters"
    assert "multiply" in caught.value.message
