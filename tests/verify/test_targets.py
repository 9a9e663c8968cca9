"""What `bastion verify` probes, derived from a config: endpoints, routes, merged policies."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.config.loader import parse_config
from bastion.verify.targets import (
    effective_policies,
    endpoint_from_url,
    listener_endpoints,
    loopback_host,
    probe_endpoint,
)


def _config(**extra: Any) -> Any:
    document: dict[str, Any] = {
        "listeners": [
            {"bind": "0.0.0.0:8443", "tls": {}},
            {"bind": "[::1]:8080"},
            {"bind": "192.0.2.10:9443", "tls": {}},
            {"bind": "127.0.0.1:8000", "plaintext": True},
        ],
        "global_policies": {"security_headers": {}, "rate_limit": {"limit": 100, "window": 60}},
        "services": [
            {
                "name": "bank",
                "upstream": {"targets": ["http://127.0.0.1:9000"]},
                "policies": {"rate_limit": {"limit": 10, "window": 60}},
                "routes": [
                    {
                        "name": "lookup",
                        "paths": ["/v1/transfers/{transfer_id}"],
                        "methods": ["GET"],
                        "hosts": ["*.bank.example"],
                    },
                    {
                        "name": "transfers",
                        "paths": ["/v1/transfers"],
                        "methods": ["PATCH", "POST"],
                        "policies": {"rate_limit": {"limit": 2, "window": 1}},
                    },
                ],
            }
        ],
    }
    document.update(extra)
    return parse_config(document)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", id="loopback-v4"),
        pytest.param("127.0.0.2", "127.0.0.2", id="loopback-range"),
        pytest.param("::1", "::1", id="loopback-v6"),
        pytest.param("0.0.0.0", "127.0.0.1", id="wildcard-v4"),  # noqa: S104 - a bind address under test
        pytest.param("::", "::1", id="wildcard-v6"),
        pytest.param("localhost", "127.0.0.1", id="localhost"),
        pytest.param("192.0.2.10", None, id="remote"),
        pytest.param("api.example.com", None, id="name"),
    ],
)
def test_loopback_host_never_yields_a_remote_address(host: str, expected: str | None) -> None:
    assert loopback_host(host) == expected


def test_listener_endpoints_keep_loopback_listeners_and_name_the_others() -> None:
    endpoints, skipped = listener_endpoints(_config())
    assert [(e.kind, e.host, e.port) for e in endpoints] == [
        ("https", "127.0.0.1", 8443),
        ("redirect", "::1", 8080),
        ("plaintext", "127.0.0.1", 8000),
    ]
    assert skipped == ["192.0.2.10:9443"]
    chosen = probe_endpoint(endpoints)
    assert chosen is not None
    assert chosen.kind == "https"
    assert endpoints[1].authority == "[::1]:8080"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://192.0.2.1:8443", id="remote-ip"),
        pytest.param("https://api.example.com", id="remote-name"),
        pytest.param("ftp://127.0.0.1", id="scheme"),
        pytest.param("127.0.0.1:8443", id="no-scheme"),
    ],
)
def test_base_url_must_be_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="must"):
        endpoint_from_url(url)


def test_base_url_on_loopback_gives_the_endpoint() -> None:
    endpoint = endpoint_from_url("https://localhost:9443/")
    assert (endpoint.kind, endpoint.host, endpoint.port) == ("https", "127.0.0.1", 9443)
    assert endpoint_from_url("http://[::1]:80").kind == "plaintext"


def test_route_policies_merge_like_the_gateway_route_over_service_over_global() -> None:
    plans = {plan.name: plan for plan in effective_policies(_config())}
    lookup, transfers = plans["lookup"], plans["transfers"]
    assert set(lookup.policies) == {"security_headers", "rate_limit"}
    assert lookup.policies["rate_limit"].limit == 10  # type: ignore[attr-defined]
    assert transfers.policies["rate_limit"].limit == 2  # type: ignore[attr-defined]


def test_route_plan_fills_templates_hosts_and_methods() -> None:
    plans = {plan.name: plan for plan in effective_policies(_config())}
    lookup, transfers = plans["lookup"], plans["transfers"]
    assert lookup.path == "/v1/transfers/verify"
    assert lookup.host == "verify.bank.example"
    assert (lookup.method, lookup.body_method) == ("GET", None)
    assert (transfers.method, transfers.body_method) == ("PATCH", "POST")
