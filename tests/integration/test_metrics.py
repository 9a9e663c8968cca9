"""Metrics and security events through a real gateway: `/metrics` moves with traffic."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.integration.harness import RunningGateway, free_port, running_gateway
from tests.observability.ecs import ecs_errors
from tests.observability.prom import Samples, parse_samples, value

pytestmark = pytest.mark.integration

TOKEN = "integration-admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def services(upstream_port: int) -> list[dict[str, Any]]:
    """Routes that each end differently: proxied, refused, reported, and a dead upstream."""
    echo = f"http://127.0.0.1:{upstream_port}"
    deny_me = {"ip_filter": {"deny": ["127.0.0.1/32"]}}
    watch_me = {"ip_filter": {"deny": ["127.0.0.1/32"], "mode": "report_only"}}
    return [
        {
            "name": "echo",
            "upstream": {"targets": [echo], "read_timeout": 1.0},
            "routes": [
                {"name": "open", "paths": ["/open"]},
                {"name": "blocked", "paths": ["/blocked"], "policies": deny_me},
                {"name": "watched", "paths": ["/watched"], "policies": watch_me},
            ],
        },
        {
            "name": "down",
            "upstream": {"targets": [f"http://127.0.0.1:{free_port()}"], "max_fails": 100},
            "routes": [{"name": "dead", "paths": ["/dead"]}],
        },
    ]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway whose routes are set up after its upstream port is known."""
    with running_gateway(tmp_path, config_file=True) as running:
        write_config(tmp_path, running, services(running.upstream_port))
        running.reload()
        yield running


def write_config(state_dir: Path, gw: RunningGateway, service_list: Any) -> None:
    """Rewrite the gateway's config file with other services (read on the next reload)."""
    path = state_dir / "bastion.yaml"
    document = yaml.safe_load(path.read_text())
    document["services"] = service_list
    path.write_text(yaml.safe_dump(document))


def scrape(gw: RunningGateway, headers: dict[str, str] | None = None) -> Samples:
    """GET /metrics with the admin token and parse it."""
    response = httpx.get(f"http://127.0.0.1:{gw.admin_port}/metrics", headers=headers or AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse_samples(response.text)


def get(gw: RunningGateway, path: str) -> int:
    """Status of GET path on the plaintext proxy listener."""
    return httpx.get(f"http://127.0.0.1:{gw.http_port}{path}", timeout=5).status_code


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Whether `check()` becomes true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def log_lines(path: Path) -> list[dict[str, Any]]:
    """Every JSON line written so far to a log file."""
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def security_lines(path: Path) -> list[dict[str, Any]]:
    """The security events of a log file."""
    return [doc for doc in log_lines(path) if doc["event"]["dataset"] == "bastion.security"]


def test_metrics_move_with_traffic_through_the_gateway(gateway: RunningGateway) -> None:
    before = scrape(gateway)
    statuses = [get(gateway, path) for path in ("/open/a", "/open/b", "/open/c")]
    statuses += [get(gateway, "/blocked"), get(gateway, "/watched"), get(gateway, "/nowhere")]
    statuses.append(get(gateway, "/dead"))
    after = scrape(gateway)

    assert statuses == [200, 200, 200, 403, 200, 404, 502]

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "bastion_requests_total"
    assert delta(requests, route="open", service="echo", status_class="2xx") == 3
    assert delta(requests, route="blocked", service="echo", status_class="4xx") == 1
    assert delta(requests, route="watched", service="echo", status_class="2xx") == 1
    assert delta(requests, route="_unmatched", service="", status_class="4xx") == 1
    assert delta(requests, route="dead", service="down", status_class="5xx") == 1
    assert delta("bastion_request_duration_seconds_count", route="open") == 3
    assert delta("bastion_upstream_duration_seconds_count", route="open") == 3
    assert delta("bastion_upstream_duration_seconds_count", route="blocked") == 0
    assert delta("bastion_rejections_total", policy="ip_filter", code="ip_denied") == 1
    assert delta("bastion_rejections_total", policy="router", code="not_found") == 1
    assert delta("bastion_policy_reports_total", policy="ip_filter", code="ip_denied") == 1
    assert delta("bastion_upstream_errors_total", service="down", code="upstream_unreachable") == 1
    assert value(after, "bastion_log_dropped_lines_total", log="access") == 0
    assert value(after, "process_cpu_seconds_total") > 0


def test_metrics_show_open_connections_and_certificate_expiry(gateway: RunningGateway) -> None:
    baseline = value(scrape(gateway), "bastion_connections_active")
    clients = [gateway.connect() for _ in range(3)]
    try:
        for sock in clients:  # a request each proves the connection was accepted
            sock.sendall(b"GET /open HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert eventually(
            lambda: value(scrape(gateway), "bastion_connections_active") == baseline + 3
        )
    finally:
        for sock in clients:
            sock.close()
    assert eventually(lambda: value(scrape(gateway), "bastion_connections_active") == baseline)
    expiry = value(
        scrape(gateway),
        "bastion_tls_certificate_expiry_timestamp_seconds",
        listener=f"127.0.0.1:{gateway.https_port}",
    )
    assert expiry > time.time() + 86400  # the development certificate is valid for a while


def test_metrics_require_the_admin_token_when_one_is_configured(gateway: RunningGateway) -> None:
    url = f"http://127.0.0.1:{gateway.admin_port}/metrics"
    missing = httpx.get(url)
    wrong = httpx.get(url, headers={"authorization": "Bearer not-the-admin-token!!"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="bastion-admin"'
    assert "bastion_requests_total" not in missing.text


def test_metrics_are_open_without_an_admin_token(tmp_path: Path) -> None:
    port = free_port()
    with running_gateway(tmp_path, {"admin": {"bind": f"127.0.0.1:{port}"}}):
        response = httpx.get(f"http://127.0.0.1:{port}/metrics")
        denied = httpx.get(f"http://127.0.0.1:{port}/admin/anything")
    assert response.status_code == 200
    assert "bastion_config_reloads_total" in response.text
    assert denied.status_code == 401  # the admin API itself stays closed without a token


def test_concurrent_scrapes_all_get_a_complete_exposition(gateway: RunningGateway) -> None:
    get(gateway, "/open")
    results: list[Samples] = []

    def one() -> None:
        results.append(scrape(gateway))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 8
    labels = {"route": "open", "service": "echo", "status_class": "2xx"}
    assert all(value(samples, "bastion_requests_total", **labels) >= 1 for samples in results)


def test_security_events_follow_rejections_into_the_access_log(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    assert get(gateway, "/blocked") == 403
    assert get(gateway, "/watched") == 200
    assert get(gateway, "/open") == 200

    assert eventually(lambda: len(security_lines(log)) >= 2)
    events = [e for e in security_lines(log) if e["event"]["action"] == "ip_denied"]
    assert [e["bastion"]["mode"] for e in events] == ["enforce", "report_only"]
    assert [e["event"]["kind"] for e in events] == ["alert", "alert"]
    assert {e["bastion"]["route"] for e in events} == {"blocked", "watched"}
    access = [doc for doc in log_lines(log) if doc["event"]["dataset"] == "bastion.access"]
    by_trace = {doc["trace"]["id"]: doc for doc in access}
    for event in events:
        assert by_trace[event["trace"]["id"]]["url"]["path"] == event["url"]["path"]
    for doc in log_lines(log):
        assert ecs_errors(doc) == [], doc


def test_config_reloads_are_counted_and_logged(gateway: RunningGateway, tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    good = config.read_text()
    before = scrape(gateway)
    config.write_text("listeners: []\n")  # refused: no listener
    gateway.reload()
    refused = scrape(gateway)
    config.write_text(good)
    gateway.reload()
    accepted = scrape(gateway)

    name = "bastion_config_reloads_total"
    assert value(refused, name, outcome="failure") - value(before, name, outcome="failure") == 1
    assert value(refused, "bastion_config_last_reload_successful") == 0
    assert value(accepted, name, outcome="success") - value(refused, name, outcome="success") == 1
    assert value(accepted, "bastion_config_last_reload_successful") == 1
    log = tmp_path / "access.log"

    def reload_events() -> list[dict[str, Any]]:
        lines = security_lines(log)
        return [e for e in lines if e["event"]["action"] == "config-reload"]

    assert eventually(lambda: len(reload_events()) >= 3)  # the fixture's reload, then ours
    outcomes = [e["event"]["outcome"] for e in reload_events()]
    assert outcomes[-2:] == ["failure", "success"]
    assert all(ecs_errors(e) == [] for e in reload_events())


def test_security_events_can_go_to_their_own_file(tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    security = tmp_path / "security.log"
    extra = {
        "access_log": {"sink": str(access), "security_log": str(security)},
        "services": [
            {
                "name": "private",
                "upstream": {"targets": [f"http://127.0.0.1:{free_port()}"]},
                "routes": [
                    {
                        "name": "internal",
                        "paths": ["/"],
                        "policies": {"ip_filter": {"deny": ["127.0.0.0/8"]}},
                    }
                ],
            }
        ],
    }
    with running_gateway(tmp_path, extra) as gw:
        assert get(gw, "/internal") == 403
        assert eventually(lambda: len(log_lines(security)) == 1)
        assert eventually(lambda: len(log_lines(access)) == 1)
    [event] = log_lines(security)
    assert event["event"]["dataset"] == "bastion.security"
    assert event["rule"]["name"] == "ip_filter.ip_denied"
    assert [doc["event"]["dataset"] for doc in log_lines(access)] == ["bastion.access"]


def test_degraded_rate_limit_backend_shows_in_the_metrics(tmp_path: Path) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: every call fails
    limited = {"rate_limit": {"limit": 100, "window": 60, "on_backend_error": "allow"}}
    with running_gateway(tmp_path, {"counters": dead_redis, "global_policies": limited}) as running:
        assert value(scrape(running), "bastion_backend_degraded", backend="counters") == 0
        assert get(running, "/anything") == 200  # allowed while the backend is down
        assert eventually(
            lambda: value(scrape(running), "bastion_backend_degraded", backend="counters") == 1
        )
