"""The `bastion run` process: reload on SIGHUP, graceful shutdown, workers, the demo."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bastion.proxy.tls import client_context
from tests.integration.harness import free_ports, running_upstream, wait_ready

pytestmark = pytest.mark.integration

BASTION = [sys.executable, "-m", "bastion"]


def _config(upstream_port: int, port: int, admin_port: int, routes: list[str]) -> dict[str, Any]:
    return {
        "listeners": [{"bind": f"127.0.0.1:{port}", "plaintext": True}],
        "admin": {"bind": f"127.0.0.1:{admin_port}"},
        "access_log": {"sink": "off"},
        "limits": {"shutdown_timeout": 5},
        "services": [
            {
                "name": "echo",
                "upstream": {"targets": [f"http://127.0.0.1:{upstream_port}"]},
                "routes": [
                    {"name": f"r{index}", "paths": [path]} for index, path in enumerate(routes)
                ],
            }
        ],
    }


@pytest.fixture
def started(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A `bastion run` process on a config file, with an echo upstream."""
    with running_upstream() as (upstream_port, seen):
        port, admin_port = free_ports(2)
        config_path = tmp_path / "bastion.yaml"
        config_path.write_text(yaml.safe_dump(_config(upstream_port, port, admin_port, ["/a"])))
        log = (tmp_path / "bastion.log").open("wb")
        process = subprocess.Popen(
            [*BASTION, "run", "-c", str(config_path)], stdout=log, stderr=log
        )
        try:
            wait_ready(admin_port, process)
            yield {
                "process": process,
                "port": port,
                "admin_port": admin_port,
                "upstream_port": upstream_port,
                "config_path": config_path,
                "log": tmp_path / "bastion.log",
                "seen": seen,
            }
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
            log.close()


def _get(port: int, path: str) -> int:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code


def _wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sighup_reloads_a_changed_config(started: dict[str, Any]) -> None:
    port = started["port"]
    assert _get(port, "/a") == 200
    assert _get(port, "/b") == 404
    document = _config(started["upstream_port"], port, started["admin_port"], ["/a", "/b"])
    started["config_path"].write_text(yaml.safe_dump(document))
    started["process"].send_signal(signal.SIGHUP)
    assert _wait_for(lambda: _get(port, "/b") == 200)
    status = httpx.get(f"http://127.0.0.1:{started['admin_port']}/status").json()
    assert status["config_revision"] == 2


def test_sighup_with_a_broken_config_keeps_serving_the_old_one(started: dict[str, Any]) -> None:
    port = started["port"]
    started["config_path"].write_text("listeners: [{bind: nowhere}]\n")
    started["process"].send_signal(signal.SIGHUP)
    assert _wait_for(lambda: b"reload refused" in started["log"].read_bytes())
    assert _get(port, "/a") == 200
    status = httpx.get(f"http://127.0.0.1:{started['admin_port']}/status").json()
    assert status["config_revision"] == 1


def test_sigterm_drains_in_flight_requests_then_exits(started: dict[str, Any]) -> None:
    port = started["port"]
    results: list[int] = []

    def slow_request() -> None:
        results.append(_get(port, "/a/slow/800"))

    worker = threading.Thread(target=slow_request)
    worker.start()
    assert _wait_for(lambda: any(r["path"] == "/a/slow/800" for r in started["seen"]))
    started["process"].send_signal(signal.SIGTERM)
    worker.join(10)
    assert results == [200]  # the in-flight request finished
    assert started["process"].wait(10) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/a", timeout=2)


def test_two_workers_share_the_listener(tmp_path: Path) -> None:
    with running_upstream() as (upstream_port, _seen):
        port, admin_port = free_ports(2)
        config_path = tmp_path / "bastion.yaml"
        config_path.write_text(yaml.safe_dump(_config(upstream_port, port, admin_port, ["/"])))
        process = subprocess.Popen(
            [*BASTION, "run", "-c", str(config_path), "--workers", "2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(admin_port, process)
            prefixes: set[str] = set()
            deadline = time.monotonic() + 10
            # Each worker's request ids share a random per-process prefix: two prefixes seen
            # means two processes answered on the one port.
            while len(prefixes) < 2 and time.monotonic() < deadline:
                with httpx.Client() as client:  # a new connection each time
                    response = client.get(f"http://127.0.0.1:{port}/x")
                prefixes.add(response.headers["x-request-id"][:16])
            assert len(prefixes) == 2
        finally:
            os.kill(process.pid, signal.SIGTERM)
            assert process.wait(15) == 0


def _shell_values(text: str) -> dict[str, str]:
    """NAME=value lines of the demo's credentials file (values are shell-quoted)."""
    values = {}
    for line in text.splitlines():
        name, eq, rest = line.partition("=")
        if eq and name.isidentifier() and not line.startswith("#"):
            values[name] = shlex.split(rest, comments=True)[0]
    return values


def test_demo_serves_the_bank_through_https(tmp_path: Path) -> None:
    for port in (8443, 8080, 9901, 9000):
        with __import__("socket").socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} is in use (a demo is already running)")
    repo = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [*BASTION, "demo", "--state-dir", str(tmp_path / "var")],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(9901, process, timeout=40)
        # The demo's self-signed certificate is the trust anchor: verification stays on.
        trust = client_context(ca_file=tmp_path / "var" / "dev-cert.pem")
        response = httpx.get("https://127.0.0.1:8443/healthz", verify=trust)
        assert response.status_code == 200
        assert "strict-transport-security" in response.headers
        redirect = httpx.get("http://127.0.0.1:8080/v1/accounts")
        assert redirect.status_code == 308
        assert redirect.headers["location"] == "https://127.0.0.1:8443/v1/accounts"
        # The demo obtains its tokens through the OAuth flows once the gateway answers, then
        # writes them with the client ids, secrets and logins to a file only the user can read.
        credentials = tmp_path / "var" / "demo-credentials.txt"
        assert _wait_for(credentials.exists, timeout=30)
        assert credentials.stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "var" / "demo-oauth.json").stat().st_mode & 0o777 == 0o600
        values = _shell_values(credentials.read_text())
        assert {"PARTNER_CLIENT_SECRET", "APP_CLIENT_ID", "ALICE_PASSWORD"} <= values.keys()
        alice = httpx.get(
            "https://127.0.0.1:8443/v2/accounts",
            headers={"Authorization": f"Bearer {values['TOKEN_CUS_ALICE0001']}"},
            verify=trust,
        )
        assert alice.status_code == 200, alice.text
        assert {a["customer_id"] for a in alice.json()["data"]} == {"cus_alice0001"}
        # The partner app (client credentials) is Bob's bookkeeping service: it reads his
        # accounts, and nothing else.
        partner = httpx.get(
            "https://127.0.0.1:8443/v2/accounts",
            headers={"Authorization": f"Bearer {values['TOKEN_PARTNER']}"},
            verify=trust,
        )
        assert partner.status_code == 200, partner.text
        assert {a["customer_id"] for a in partner.json()["data"]} == {"cus_bob00001"}
        # `make demo-attacks`: every threat blocked, the bank alone has findings, the gateway none.
        attacks = subprocess.run(
            [*BASTION, "demo", "attacks", "--state-dir", str(tmp_path / "var")],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert attacks.returncode == 0, attacks.stdout + attacks.stderr
        assert "NOT BLOCKED" not in attacks.stdout
        assert "TRANSPORT-001" in attacks.stdout  # the bank alone, without TLS
        assert "all attacks blocked" in attacks.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
