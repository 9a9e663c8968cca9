"""The OAuth endpoints inside the gateway's pipeline: global policies, logs, metrics, lockouts."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.oauth.authorize import LOGIN_FAILED, TOO_MANY_ATTEMPTS
from tests.integration.harness import RunningGateway, running_gateway, running_upstream
from tests.oauth.test_gateway import register_client
from tests.oauth.test_gateway_authorization_code import PASSWORD, USERNAME, browser, register

pytestmark = pytest.mark.integration

ISSUER = "https://localhost:8443"
ADMIN = {"Authorization": "Bearer integration-admin-token"}
DENIED_NET = "203.0.113.0/24"
REDIRECT = "http://127.0.0.1:9/callback"


@dataclass
class Setup:
    gateway: RunningGateway
    state: Path
    client_id: str
    secret: str
    code_client: str

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.gateway.https_port}{path}"

    def post(self, path: str, ip: str, **kwargs: Any) -> httpx.Response:
        """A form POST as if from `ip` (the gateway trusts the loopback proxy's XFF)."""
        headers = {"X-Forwarded-For": ip, **kwargs.pop("headers", {})}
        return httpx.post(self.url(path), headers=headers, verify=False, **kwargs)  # noqa: S501 - self-signed dev cert

    def token(self, ip: str, secret: str | None = None) -> httpx.Response:
        return self.post(
            "/oauth/token",
            ip,
            data={"grant_type": "client_credentials"},
            auth=(self.client_id, self.secret if secret is None else secret),
        )

    def log_lines(self) -> list[dict[str, Any]]:
        """Access log and security event lines written so far (flushed every 0.5 s)."""
        path = self.state / "access.log"
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def wait_for(self, found: Any, timeout: float = 3.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_lines():
                if found(line):
                    return line
            time.sleep(0.1)
        raise AssertionError("no such log line")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    db = tmp_path / "bastion.db"
    code_client, _, _ = register(db, REDIRECT)
    client_id, secret = register_client(db, ["read"])
    with running_upstream() as (port, _seen):
        extra: dict[str, Any] = {
            "store": f"sqlite:///{db}",
            "trusted_proxies": ["127.0.0.1/32"],
            "oauth": {
                "issuer": ISSUER,
                "brute_force": {"max_failures": 3, "max_ip_failures": 6, "lockout": 60},
            },
            "global_policies": {
                "request_id": {},
                "security_headers": {},
                "ip_filter": {"deny": [DENIED_NET]},
                "rate_limit": {
                    "limit": 40,
                    "window": 60,
                    "key": "ip",
                    "algorithm": "sliding_window",
                },
            },
            "services": [
                {
                    "name": "bank",
                    "upstream": {"targets": [f"http://127.0.0.1:{port}"]},
                    "routes": [{"name": "open", "paths": ["/"]}],
                }
            ],
        }
        with running_gateway(tmp_path, extra) as gateway:
            yield Setup(gateway, tmp_path, client_id, secret, code_client)


def test_token_endpoint_runs_the_global_policies_and_keeps_no_store(setup):
    response = setup.token("198.51.100.1")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert "q=40" in response.headers["ratelimit-policy"]  # the global rate limit ran


def test_token_endpoint_is_in_the_access_log_and_metrics(setup):
    response = setup.token("198.51.100.2")
    line = setup.wait_for(
        lambda doc: (
            doc.get("url", {}).get("path") == "/oauth/token"
            and doc.get("event", {}).get("dataset") != "bastion.security"
        )
    )
    assert line["bastion"]["route"] == "oauth.token"
    assert line["client"]["ip"] == "198.51.100.2"
    assert line["http"]["response"]["status_code"] == 200
    assert line["trace"]["id"] == response.headers["x-request-id"]
    metrics = httpx.get(f"http://127.0.0.1:{setup.gateway.admin_port}/metrics", headers=ADMIN)
    assert re.search(r'route="oauth\.token"', metrics.text)


def test_ip_filter_refuses_oauth_endpoints_with_problem_json(setup):
    response = setup.token("203.0.113.9")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "ip_denied"


def test_global_rate_limit_counts_oauth_requests(setup):
    statuses = [
        setup.post("/.well-known/oauth-authorization-server", "198.51.100.3").status_code
        for _ in range(41)
    ]
    assert statuses[:40] == [405] * 40  # a POST: the endpoint's own OAuth error
    assert statuses[40] == 429


def test_a_request_waiting_for_its_body_is_in_flight(setup):
    status = f"http://127.0.0.1:{setup.gateway.admin_port}/status"
    with setup.gateway.connect(tls=True) as sock:
        sock.sendall(
            b"POST /oauth/token HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
            b"grant_type="
        )
        seen = []
        for _ in range(30):
            seen.append(httpx.get(status, headers=ADMIN).json()["in_flight"])
            if seen[-1] == 1:
                break
            time.sleep(0.05)
        assert seen[-1] == 1
    for _ in range(40):  # the client left: the request ends and leaves the count
        if httpx.get(status, headers=ADMIN).json()["in_flight"] == 0:
            break
        time.sleep(0.05)
    assert httpx.get(status, headers=ADMIN).json()["in_flight"] == 0


def test_failed_client_authentication_locks_the_address_and_client_pair(setup):
    attacker, elsewhere = "198.51.100.10", "198.51.100.11"
    assert [setup.token(attacker, "wrong").status_code for _ in range(3)] == [401] * 3
    locked = setup.token(attacker)  # the right secret, but the pair is locked
    assert locked.status_code == 429
    assert locked.json()["error"] == "slow_down"
    assert locked.headers["content-type"] == "application/json"
    assert locked.headers["cache-control"] == "no-store"
    assert 55 <= int(locked.headers["retry-after"]) <= 60
    assert setup.token(elsewhere).status_code == 200  # the client itself is not locked out
    event = setup.wait_for(
        lambda doc: doc.get("rule", {}).get("name") == "brute_force.too_many_failures"
    )
    assert event["event"]["category"] == ["intrusion_detection"]
    assert event["client"]["ip"] == attacker
    assert event["bastion"]["route"] == "oauth.token"
    failure = setup.wait_for(lambda doc: doc.get("rule", {}).get("name") == "oauth.invalid_client")
    assert failure["event"]["category"] == ["authentication"]
    assert "wrong" not in json.dumps(setup.log_lines())


def test_introspection_and_revocation_failures_count_with_the_token_endpoints(setup):
    attacker = "198.51.100.20"
    bad = (setup.client_id, "wrong")
    assert setup.token(attacker, "wrong").status_code == 401
    for path in ("/oauth/introspect", "/oauth/revoke"):
        assert setup.post(path, attacker, data={"token": "x"}, auth=bad).status_code == 401
    refused = setup.post("/oauth/revoke", attacker, data={"token": "x"}, auth=bad)
    assert refused.status_code == 429
    assert refused.json()["error"] == "slow_down"


def test_client_secret_post_failures_and_unknown_clients_lock_the_address(setup):
    attacker = "198.51.100.30"
    statuses = []
    for index in range(6):  # six different client ids: each pair below its threshold
        form = {
            "grant_type": "client_credentials",
            "client_id": f"cl_{index:016x}",
            "client_secret": "guess",
        }
        statuses.append(setup.post("/oauth/token", attacker, data=form).status_code)
    assert statuses == [401] * 6
    assert setup.token(attacker).status_code == 429  # max_ip_failures reached: any client
    assert setup.token("198.51.100.31").status_code == 200


def test_requests_without_any_credential_are_not_counted(setup):
    attacker = "198.51.100.40"
    for _ in range(5):
        response = setup.post("/oauth/token", attacker, data={"grant_type": "client_credentials"})
        assert response.status_code == 401
    assert setup.token(attacker).status_code == 200


def _login_form(session: httpx.Client, setup: Setup, ip: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": setup.code_client,
        "redirect_uri": REDIRECT,
        "scope": "accounts:read",
        "state": "s1",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    page = session.get(
        setup.url("/oauth/authorize"), params=params, headers={"X-Forwarded-For": ip}
    )
    assert page.status_code == 200, page.text
    fields = re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', page.text)
    return {name: value.replace("&amp;", "&") for name, value in fields}


def _sign_in(setup: Setup, ip: str, password: str) -> httpx.Response:
    with browser() as session:
        form = {**_login_form(session, setup, ip), "username": USERNAME, "password": password}
        form["decision"] = "allow"
        return session.post(
            setup.url("/oauth/authorize"), data=form, headers={"X-Forwarded-For": ip}
        )


def test_failed_logins_lock_the_address_and_username_pair(setup):
    attacker = "198.51.100.50"
    for _ in range(3):
        failed = _sign_in(setup, attacker, "not the password")
        assert failed.status_code == 200
        assert LOGIN_FAILED in failed.text
    locked = _sign_in(setup, attacker, PASSWORD)
    assert locked.status_code == 429
    assert TOO_MANY_ATTEMPTS in locked.text
    assert locked.headers["content-type"].startswith("text/html")
    assert int(locked.headers["retry-after"]) > 0
    assert locked.headers["cache-control"] == "no-store"
    assert _sign_in(setup, "198.51.100.51", PASSWORD).status_code == 303


def test_report_only_lockout_logs_instead_of_refusing(tmp_path):
    db = tmp_path / "bastion.db"
    client_id, secret = register_client(db, ["read"])
    extra: dict[str, Any] = {
        "store": f"sqlite:///{db}",
        "oauth": {
            "issuer": ISSUER,
            "brute_force": {"max_failures": 2, "max_ip_failures": 9, "mode": "report_only"},
        },
    }
    with running_gateway(tmp_path, extra) as gateway:
        setup = Setup(gateway, tmp_path, client_id, secret, "")
        assert [setup.token("127.0.0.1", "wrong").status_code for _ in range(2)] == [401, 401]
        assert setup.token("127.0.0.1").status_code == 200
        line = setup.wait_for(
            lambda doc: (
                doc.get("http", {}).get("response", {}).get("status_code") == 200
                and doc.get("bastion", {}).get("route") == "oauth.token"
            )
        )
    assert line["bastion"]["reports"] == [{"policy": "brute_force", "code": "too_many_failures"}]


def test_malformed_basic_credentials_count_against_the_address(setup):
    attacker = "198.51.100.60"
    for _ in range(6):
        response = setup.post(
            "/oauth/token",
            attacker,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": "Basic !!!"},
        )
        assert response.status_code == 401
    assert setup.token(attacker).status_code == 429


def test_a_global_cors_policy_answers_preflights_of_the_token_endpoint(tmp_path):
    db = tmp_path / "bastion.db"
    client_id, secret = register_client(db, ["read"])
    origin = "https://spa.example"
    extra: dict[str, Any] = {
        "store": f"sqlite:///{db}",
        "oauth": {"issuer": ISSUER},
        "global_policies": {
            "cors": {"allow_origins": [origin], "allow_headers": ["content-type"]},
        },
    }
    with running_gateway(tmp_path, extra) as gateway:
        setup = Setup(gateway, tmp_path, client_id, secret, "")
        preflight = httpx.options(
            setup.url("/oauth/token"),
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
            verify=False,  # noqa: S501 - self-signed dev cert
        )
        issued = setup.post(
            "/oauth/token",
            "127.0.0.1",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
            headers={"Origin": origin},
        )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert issued.status_code == 200
    assert issued.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize(
    ("on_backend_error", "expected"),
    [("deny", (503, "temporarily_unavailable")), ("allow", (200, None))],
    ids=["deny", "allow"],
)
def test_unavailable_lockout_counters_follow_on_backend_error(tmp_path, on_backend_error, expected):
    db = tmp_path / "bastion.db"
    code_client, _, _ = register(db, REDIRECT)
    client_id, secret = register_client(db, ["read"])
    extra: dict[str, Any] = {
        "store": f"sqlite:///{db}",
        "counters": "redis://127.0.0.1:1/0?timeout_ms=50",  # nothing listens on port 1
        "oauth": {"issuer": ISSUER, "brute_force": {"on_backend_error": on_backend_error}},
    }
    with running_gateway(tmp_path, extra) as gateway:
        setup = Setup(gateway, tmp_path, client_id, secret, code_client)
        response = setup.token("127.0.0.1")
        login = _sign_in(setup, "127.0.0.1", PASSWORD)
    status, error = expected
    assert response.status_code == status
    if error is not None:
        assert response.json()["error"] == error
        assert login.status_code == 503
        assert "busy" in login.text
    else:
        assert login.status_code == 303


def test_a_token_revoked_before_a_reload_stays_refused_after_it(tmp_path):
    db = tmp_path / "bastion.db"
    client_id, secret = register_client(db, ["read"])
    with running_upstream() as (port, _seen):
        extra: dict[str, Any] = {
            "store": f"sqlite:///{db}",
            "oauth": {"issuer": ISSUER},
            "services": [
                {
                    "name": "bank",
                    "upstream": {"targets": [f"http://127.0.0.1:{port}"]},
                    "routes": [
                        {"name": "api", "paths": ["/v1"], "policies": {"jwt": {"issuer": "self"}}}
                    ],
                }
            ],
        }
        with running_gateway(tmp_path, extra, config_file=True) as gateway:
            setup = Setup(gateway, tmp_path, client_id, secret, "")
            token = setup.token("127.0.0.1").json()["access_token"]
            bearer = {"Authorization": f"Bearer {token}"}
            assert httpx.get(setup.url("/v1"), headers=bearer, verify=False).status_code == 200  # noqa: S501 - self-signed dev cert
            revoked = setup.post(
                "/oauth/revoke", "127.0.0.1", data={"token": token}, auth=(client_id, secret)
            )
            assert revoked.status_code == 200
            gateway.reload()
            # The new configuration's first request: a fresh verified-token cache, and a
            # revoked set that must not start empty.
            assert httpx.get(setup.url("/v1"), headers=bearer, verify=False).status_code == 401  # noqa: S501 - self-signed dev cert
