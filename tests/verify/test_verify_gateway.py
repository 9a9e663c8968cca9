"""`bastion verify` against a real gateway: passes on a matching config, names what is missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bastion.cli.main import main
from tests.integration.harness import free_ports, running_gateway

pytestmark = pytest.mark.integration

PEPPER = "verify-integration-pepper-with-32-chars-or-more"
SECRET = "verify-integration-hmac-secret-of-at-least-32-bytes"
GLOBAL = {"request_id": {}, "security_headers": {}, "size_limit": {"max_body_bytes": 65536}}
ROUTES: list[dict[str, Any]] = [
    {"name": "bank-v1", "paths": ["/v1"], "policies": {"api_key": {}, "brute_force": {}}},
    {
        "name": "bank-v2",
        "paths": ["/v2"],
        "policies": {
            "jwt": {"issuer": "https://issuer.test", "audience": "bank", "secret": SECRET},
            "rate_limit": {"limit": 5, "window": 60, "burst": 4},
            "injection_guard": {},
            "cors": {"allow_origins": ["https://app.bank.example"]},
        },
    },
    {"name": "bank-v3", "paths": ["/v3"], "policies": {"basic_auth": {}, "brute_force": {}}},
    {
        "name": "bank-v4",
        "paths": ["/v4"],
        "policies": {
            "jwt": {"issuer": "https://issuer.test", "audience": "bank", "secret": SECRET},
            "scopes": {"methods": {"GET": {"required": ["accounts:read"]}}},
            "acl": {"allow": ["customers"]},
        },
    },
    {
        "name": "internal",
        "paths": ["/internal"],
        "policies": {"ip_filter": {"deny": ["127.0.0.0/8"]}},
    },
    {
        "name": "health",
        "paths": ["/healthz"],
        "path_match": "exact",
        "methods": ["GET"],
        "policies": {"rate_limit": {"limit": 3, "window": 60}},
    },
]


def _document(base: dict[str, Any], drop: tuple[str, str] | None = None) -> dict[str, Any]:
    """The demo-like config with the test routes; `drop` = (route or "global", policy) removed."""
    document: dict[str, Any] = json.loads(json.dumps(base))
    document["global_policies"] = json.loads(json.dumps(GLOBAL))
    document["services"][0]["routes"] = json.loads(json.dumps(ROUTES))
    if drop is not None:
        where, policy = drop
        if where == "global":
            del document["global_policies"][policy]
        else:
            route = next(r for r in document["services"][0]["routes"] if r["name"] == where)
            del route["policies"][policy]
    return document


@pytest.fixture
def started(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A running gateway (store and pepper set) and the config document it was started with."""
    extra = {"store": f"sqlite:///{tmp_path / 'bastion.db'}", "pepper": PEPPER}
    with running_gateway(tmp_path, extra, config_file=True) as gateway:
        document = yaml.safe_load((tmp_path / "bastion.yaml").read_text())
        yield {"gateway": gateway, "base": document, "dir": tmp_path}


def _serve(started: dict[str, Any], document: dict[str, Any]) -> None:
    """Make the running gateway serve `document` (the echo port is known only once it runs)."""
    (started["dir"] / "bastion.yaml").write_text(yaml.safe_dump(document))
    started["gateway"].reload()


def _verify(started: dict[str, Any], document: dict[str, Any], fmt: str) -> tuple[int, str]:
    path = started["dir"] / "verify.yaml"
    path.write_text(yaml.safe_dump(document))
    log = started["dir"] / "access.log"
    args = ["verify", "-c", str(path), "--access-log", str(log), "--format", fmt]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


def test_verify_passes_when_the_gateway_enforces_its_config(started: dict[str, Any]) -> None:
    document = _document(started["base"])
    _serve(started, document)
    code, output = _verify(started, document, "json")
    report = json.loads(output)
    failures = [c for c in report["checks"] if c["outcome"] == "fail"]
    assert failures == [], json.dumps(failures, indent=1)
    assert code == 0
    passed = {
        (c["policy"], c["target"], c["check"]) for c in report["checks"] if c["outcome"] == "pass"
    }
    expected = {
        (
            "redirect",
            f"listener 127.0.0.1:{started['gateway'].redirect_port}",
            "HTTP redirected with 308",
        ),
        ("security_headers", "route bank-v1", "HSTS over HTTPS"),
        ("security_headers", "route health", "x-content-type-options: nosniff"),
        ("api_key", "route bank-v1", "missing credential"),
        ("api_key", "route bank-v1", "forged API key"),
        ("jwt", "route bank-v2", "missing credential"),
        ("jwt", "route bank-v2", "token signed by a throwaway key"),
        ("jwt", "route bank-v2", "expired token, throwaway key"),
        ("jwt", "route bank-v2", "expired token, real secret"),
        ("size_limit", "route bank-v1", "65537-byte body"),
        ("basic_auth", "route bank-v3", "missing credential"),
        ("basic_auth", "route bank-v3", "wrong password"),
        ("cors", "route bank-v2", "foreign origin not allowed"),
        ("ip_filter", "route internal", "client 127.0.0.1 refused"),
        ("injection_guard", "route bank-v2", "sqli payload in the query"),
        ("rate_limit", "route bank-v2", "10 requests limited"),
        ("rate_limit", "route health", "4 requests limited"),
        ("trusted_proxy", "route health", "spoofed X-Forwarded-For ignored"),
        ("scopes", "route bank-v4", "credential without accounts:read"),
        ("acl", "route bank-v4", "caller outside the allowed groups"),
        ("brute_force", "route bank-v1", "5 failures lock the address and identity pair"),
        (
            "brute_force",
            "route bank-v1",
            "another identity from the same address is not locked out",
        ),
        ("brute_force", "route bank-v3", "5 failures lock the address and identity pair"),
        ("access_log", f"access log {started['dir'] / 'access.log'}", "no probe credential logged"),
    }
    assert expected <= passed
    tls = {c["check"] for c in report["checks"] if c["policy"] == "tls" and c["outcome"] == "pass"}
    assert {"TLS 1.2 accepted", "TLS 1.3 accepted"} <= tls


@pytest.mark.parametrize(
    ("drop", "line"),
    [
        pytest.param(
            ("bank-v2", "rate_limit"),
            "FAIL rate_limit on route bank-v2: 10 requests limited: no 429 after 10 requests",
            id="rate-limit",
        ),
        pytest.param(
            ("bank-v2", "jwt"),
            "FAIL jwt on route bank-v2: missing credential: expected 401, got 200",
            id="jwt",
        ),
        pytest.param(
            ("bank-v1", "api_key"),
            "FAIL api_key on route bank-v1: forged API key: expected 401, got 200",
            id="api-key",
        ),
        pytest.param(
            ("global", "size_limit"),
            "FAIL size_limit on route bank-v1: 65537-byte body: expected 413, got 401",
            id="size-limit",
        ),
        pytest.param(
            ("bank-v3", "basic_auth"),
            "FAIL basic_auth on route bank-v3: missing credential: expected 401, got 200",
            id="basic-auth",
        ),
        pytest.param(
            ("bank-v4", "scopes"),
            "FAIL scopes on route bank-v4: credential without accounts:read: expected 403, got 200",
            id="scopes",
        ),
        pytest.param(
            ("bank-v4", "acl"),
            "FAIL acl on route bank-v4: caller outside the allowed groups: expected 403, got 200",
            id="acl",
        ),
        pytest.param(
            ("bank-v1", "brute_force"),
            "FAIL brute_force on route bank-v1: 5 failures lock the address and identity pair: "
            "no 429 after 6 failed attempts",
            id="brute-force",
        ),
        pytest.param(
            ("internal", "ip_filter"),
            "FAIL ip_filter on route internal: client 127.0.0.1 refused: expected 403, got 200",
            id="ip-filter",
        ),
        pytest.param(
            ("global", "security_headers"),
            "FAIL security_headers on route bank-v1: HSTS over HTTPS: Strict-Transport-Security",
            id="hsts",
        ),
    ],
)
def test_verify_names_the_policy_the_gateway_does_not_enforce(
    started: dict[str, Any], drop: tuple[str, str], line: str
) -> None:
    _serve(started, _document(started["base"], drop))  # the gateway runs WITHOUT the policy
    code, output = _verify(started, _document(started["base"]), "text")
    assert code == 1
    assert line in output


def test_verify_fails_with_a_reason_when_no_gateway_answers(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    config = tmp_path / "bastion.yaml"
    config.write_text(
        f'listeners: [{{bind: "127.0.0.1:{port}", plaintext: true}}]\n'
        "services:\n"
        "  - name: s\n"
        '    upstream: {targets: ["http://127.0.0.1:9"]}\n'
        '    routes: [{name: r, paths: ["/"]}]\n'
    )
    result = CliRunner().invoke(main, ["verify", "-c", str(config)])
    assert result.exit_code == 1
    assert (
        f"FAIL route on route r: route answers: cannot connect to 127.0.0.1:{port}" in result.output
    )
