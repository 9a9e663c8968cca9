"""A real Prometheus (Debian's `prometheus` package) scrapes the admin listener's `/metrics`.

Prometheus runs on a free loopback port with a generated config that scrapes the gateway every
second with the admin bearer token; the test then asks Prometheus's HTTP API for the route and
rejection series. Skipped when the binary is missing, except under CI, where it must run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.harness import RunningGateway, free_port, running_gateway
from tests.integration.test_metrics import TOKEN, get, services, write_config

PROMETHEUS = shutil.which("prometheus")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        PROMETHEUS is None and os.environ.get("CI") != "true",
        reason="no prometheus binary (apt-get install prometheus); required when CI=true",
    ),
]


@contextlib.contextmanager
def running_prometheus(workdir: Path, admin_port: int) -> Iterator[str]:
    """Start Prometheus scraping `admin_port` every second; yields its base URL."""
    assert PROMETHEUS is not None, "CI must have the prometheus binary (apt-get install prometheus)"
    port = free_port()
    token_file = workdir / "admin-token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "bastion",
                "metrics_path": "/metrics",
                "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                "static_configs": [{"targets": [f"127.0.0.1:{admin_port}"]}],
            }
        ],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (workdir / "prometheus.log").read_text()[-2000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "prometheus did not become ready in 30 s"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    """The instant vector result of `promql`."""
    response = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for(base: str, promql: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Poll until `promql` returns a non-empty result."""
    deadline = time.monotonic() + timeout
    while True:
        result = query(base, promql)
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    """The gateway of test_metrics, with routes that proxy, refuse and report."""
    with running_gateway(tmp_path, config_file=True) as running:
        write_config(tmp_path, running, services(running.upstream_port))
        running.reload()
        yield running


def test_prometheus_scrapes_route_and_rejection_series(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    for path in ("/open/a", "/open/b", "/blocked", "/watched", "/nowhere"):
        get(gateway, path)
    with running_prometheus(workdir, gateway.admin_port) as base:
        up = wait_for(base, 'up{job="bastion"} == 1')
        assert up, "the scrape never succeeded: check the token and the exposition format"
        routes = wait_for(base, 'bastion_requests_total{route="open",status_class="2xx"}')
        rejections = wait_for(base, 'bastion_rejections_total{policy="ip_filter",code="ip_denied"}')
        reports = wait_for(base, "bastion_policy_reports_total")
        latency = wait_for(
            base,
            "histogram_quantile(0.99, rate(bastion_request_duration_seconds_bucket[1m]))",
        )
        targets = httpx.get(f"{base}/api/v1/targets", timeout=5).json()

    assert [float(s["value"][1]) for s in routes] == [2.0]
    assert routes[0]["metric"]["service"] == "echo"
    assert [float(s["value"][1]) for s in rejections] == [1.0]
    assert {s["metric"]["policy"] for s in reports} == {"ip_filter"}
    assert latency, "no latency histogram series"
    [target] = targets["data"]["activeTargets"]
    assert target["health"] == "up"
    assert target["lastError"] == ""
