"""`bastion run --workers 2`: /metrics reports the whole node, not the admin worker's share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.harness import free_ports, running_upstream, wait_ready
from tests.observability.prom import Samples, parse_samples, value

pytestmark = pytest.mark.integration

BASTION = [sys.executable, "-m", "bastion"]
REQUESTS = 60


def _config(upstream_port: int, port: int, admin_port: int) -> dict[str, Any]:
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
                    {
                        "name": "blocked",
                        "paths": ["/blocked"],
                        "policies": {"ip_filter": {"deny": ["127.0.0.1/32"]}},
                    },
                    {"name": "all", "paths": ["/"]},
                ],
            }
        ],
    }


def _scrape(admin_port: int) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=5)
    assert response.status_code == 200
    return parse_samples(response.text)


def test_two_workers_report_the_node_totals(tmp_path: Path) -> None:
    with running_upstream() as (upstream_port, _seen):
        port, admin_port = free_ports(2)
        config_path = tmp_path / "bastion.yaml"
        config_path.write_text(yaml.safe_dump(_config(upstream_port, port, admin_port)))
        process = subprocess.Popen(
            [*BASTION, "run", "-c", str(config_path), "--workers", "2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(admin_port, process)
            prefixes: set[str] = set()
            for index in range(REQUESTS):
                path = "/blocked" if index % 3 == 0 else "/ok"
                with httpx.Client(timeout=5) as client:  # a new connection each time
                    response = client.get(f"http://127.0.0.1:{port}{path}")
                assert response.status_code == (403 if path == "/blocked" else 200)
                prefixes.add(response.headers["x-request-id"][:16])
            assert len(prefixes) == 2  # both workers answered some of them

            def totals() -> tuple[float, float, float]:
                samples = _scrape(admin_port)
                ok = value(
                    samples,
                    "bastion_requests_total",
                    route="all",
                    service="echo",
                    status_class="2xx",
                )
                refused = value(
                    samples, "bastion_rejections_total", policy="ip_filter", code="ip_denied"
                )
                count = value(samples, "bastion_request_duration_seconds_count", route="all")
                return ok, refused, count

            expected = (REQUESTS * 2 // 3, REQUESTS // 3, REQUESTS * 2 // 3)
            deadline = time.monotonic() + 5
            while totals() != expected and time.monotonic() < deadline:
                time.sleep(0.2)  # other workers publish on their sweep (every 0.5 s)
            assert totals() == expected
            samples = _scrape(admin_port)
            assert value(samples, "bastion_requests_in_flight") == 0
        finally:
            os.kill(process.pid, signal.SIGTERM)
            assert process.wait(15) == 0
