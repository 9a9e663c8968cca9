"""Blocked sources through real listeners: admin API CRUD, 403 before routing, auto-block, Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.integration.harness import (
    RunningGateway,
    free_ports,
    read_response,
    running_gateway,
    running_upstream,
    status_of,
    wait_ready,
)
from tests.integration.redis_support import delete_prefix, require_redis, unique_prefix
from tests.integration.test_metrics_workers import BASTION, _config as worker_config
from tests.observability.ecs import ecs_errors

pytestmark = pytest.mark.integration

TOKEN = "integration-admin-token"


def _admin(gw: RunningGateway) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{gw.admin_port}",
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )


def _get(gw: RunningGateway, path: str = "/open", **kwargs: Any) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{gw.http_port}{path}", timeout=5, **kwargs)


def _lines(state: Path) -> list[dict[str, Any]]:
    log = state / "access.log"
    if not log.exists():
        return []
    return [orjson.loads(line) for line in log.read_bytes().splitlines() if line.strip()]


def _until(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _services(upstream_port: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "echo",
            "upstream": {"targets": [f"http://127.0.0.1:{upstream_port}"]},
            "routes": [
                {
                    "name": "denied",
                    "paths": ["/denied"],
                    "policies": {"ip_filter": {"deny": ["127.0.0.1/32"]}},
                },
                {"name": "all", "paths": ["/"]},
            ],
        }
    ]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[RunningGateway, Path]]:
    """A gateway with a SQLite store (for the audit log)."""
    extra = {"store": f"sqlite:///{tmp_path / 'bastion.db'}"}
    with running_gateway(tmp_path, extra) as running:
        yield running, tmp_path


def test_blocked_address_is_refused_before_routing_until_lifted(
    gateway: tuple[RunningGateway, Path],
) -> None:
    gw, state = gateway
    assert _get(gw).status_code == 200
    with _admin(gw) as admin:
        created = admin.post(
            "/admin/blocked-sources", json={"ip": "127.0.0.1", "seconds": 600, "reason": "test"}
        )
        assert created.status_code == 201, created.text
        block = created.json()
        assert block["source"] == "127.0.0.1"
        assert block["by"] == "admin-api"
        assert 590 < block["until"] - time.time() <= 600

        refused = _get(gw, "/no/such/route/either")
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["connection"] == "close"
        problem = refused.json()
        assert problem["code"] == "source_blocked"
        assert problem["request_id"]
        assert gw.seen[-1]["path"] != "/no/such/route/either"  # never reached the upstream

        listed = admin.get("/admin/blocked-sources").json()["blocked_sources"]
        assert [b["source"] for b in listed] == ["127.0.0.1"]

        assert admin.delete("/admin/blocked-sources/127.0.0.1").status_code == 204
        assert _get(gw).status_code == 200
        assert admin.delete("/admin/blocked-sources/127.0.0.1").status_code == 404
        assert admin.get("/admin/blocked-sources").json() == {"blocked_sources": []}

        audit = admin.get("/admin/audit").json()["entries"]
        actions = [(e["action"], e["subject_id"], e["actor"]) for e in audit]
        assert ("blocked_source.add", "127.0.0.1", "admin-api") in actions
        assert ("blocked_source.remove", "127.0.0.1", "admin-api") in actions

    def logged() -> bool:
        actions = {line["event"].get("action") for line in _lines(state)}
        return {"source-unblocked", "admin-unblockSource"} <= actions

    assert _until(logged)
    lines = _lines(state)
    access = [line for line in lines if line["event"]["dataset"] == "bastion.access"]
    refusal = next(line for line in access if line["url"]["path"] == "/no/such/route/either")
    assert refusal["http"]["response"]["status_code"] == 403
    assert refusal["bastion"]["policy"] == "blocked_sources"
    security = [line for line in lines if line["event"]["dataset"] == "bastion.security"]
    seen = {line["event"].get("action") for line in security}
    expected = {"source-blocked", "source_blocked", "source-unblocked"}
    assert expected | {"admin-blockSource", "admin-unblockSource"} <= seen
    for line in security:
        assert ecs_errors(line) == [], line
    denied = next(line for line in security if line["event"].get("action") == "source_blocked")
    assert denied["event"]["kind"] == "alert"
    assert denied["event"]["category"] == ["intrusion_detection"]


def test_cidr_block_covers_the_network_and_is_lifted_by_its_path(
    gateway: tuple[RunningGateway, Path],
) -> None:
    gw, _ = gateway
    with _admin(gw) as admin:
        response = admin.post("/admin/blocked-sources", json={"cidr": "127.0.0.0/8"})
        assert response.status_code == 201
        assert response.json()["source"] == "127.0.0.0/8"
        # Keep-alive is refused too: the connection closes after the 403.
        with socket.create_connection(("127.0.0.1", gw.http_port), timeout=5) as sock:
            sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
            first = read_response(sock)
            assert status_of(first) == 403
            assert b"source_blocked" in first
            assert sock.recv(4096) == b""
        assert admin.delete("/admin/blocked-sources/127.0.0.0/8").status_code == 204
    assert _get(gw).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"ip": "not-an-address"}, 400, "invalid_source"),
        ({"cidr": "10.0.0.1/8"}, 400, "invalid_source"),
        ({"ip": "10.0.0.0/8"}, 400, "invalid_source"),
        ({"ip": "10.0.0.1", "cidr": "10.0.0.0/8"}, 422, None),
        ({}, 422, None),
        ({"ip": "10.0.0.1", "seconds": 0}, 422, None),
        ({"ip": "10.0.0.1", "extra": 1}, 422, None),
    ],
    ids=[
        "bad-ip",
        "host-bits",
        "network-as-ip",
        "both",
        "neither",
        "zero-seconds",
        "unknown-field",
    ],
)
def test_invalid_blocks_are_refused_with_problem_json(
    gateway: tuple[RunningGateway, Path], body: dict[str, Any], status: int, code: str | None
) -> None:
    gw, _ = gateway
    with _admin(gw) as admin:
        response = admin.post("/admin/blocked-sources", json=body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        if code is not None:
            assert response.json()["code"] == code
        assert admin.get("/admin/blocked-sources").json() == {"blocked_sources": []}
    assert _get(gw).status_code == 200


def test_ipv6_and_bad_paths_on_delete(gateway: tuple[RunningGateway, Path]) -> None:
    gw, _ = gateway
    with _admin(gw) as admin:
        assert admin.post("/admin/blocked-sources", json={"ip": "2001:db8::7"}).status_code == 201
        assert admin.delete("/admin/blocked-sources/2001:db8::7").status_code == 204
        assert admin.delete("/admin/blocked-sources/999.1.1.1").status_code == 400
        assert admin.delete("/admin/blocked-sources/not-an-ip").status_code == 404  # no route


def test_block_expires_on_its_own(gateway: tuple[RunningGateway, Path]) -> None:
    gw, _ = gateway
    with _admin(gw) as admin:
        assert admin.post(
            "/admin/blocked-sources", json={"ip": "127.0.0.1", "seconds": 1}
        ).is_success
        assert _get(gw).status_code == 403
        assert _until(lambda: _get(gw).status_code == 200, 4.0)
        assert admin.get("/admin/blocked-sources").json() == {"blocked_sources": []}


def test_openapi_document_lists_the_blocked_source_operations(
    gateway: tuple[RunningGateway, Path],
) -> None:
    gw, _ = gateway
    with _admin(gw) as admin:
        paths = admin.get("/admin/openapi.json").json()["paths"]
    assert set(paths["/admin/blocked-sources"]) == {"get", "post"}
    assert set(paths["/admin/blocked-sources/{source}"]) == {"delete"}
    assert set(paths["/admin/blocked-sources/{source}/{prefix}"]) == {"delete"}


def test_anomaly_auto_block_refuses_the_client_and_is_liftable(tmp_path: Path) -> None:
    anomaly = {
        "min_requests": 5,
        "threshold": 0.5,
        "block": {"enabled": True, "seconds": 120},
    }
    with running_gateway(tmp_path, {"anomaly": anomaly}, config_file=True) as gw:
        document_services(tmp_path, gw)
        gw.reload()
        for _ in range(6):  # decay makes five requests count a hair under five
            assert _get(gw, "/denied").status_code == 403
        refused = _get(gw, "/fine")
        assert refused.status_code == 403
        assert refused.json()["code"] == "source_blocked"
        with _admin(gw) as admin:
            (block,) = admin.get("/admin/blocked-sources").json()["blocked_sources"]
            assert block["source"] == "127.0.0.1"
            assert block["by"] == "anomaly"
            assert block["reason"] == "anomaly.error_ratio"
            assert admin.delete("/admin/blocked-sources/127.0.0.1").status_code == 204
        assert _get(gw, "/fine").status_code == 200
    events = [line for line in _lines(tmp_path) if line["event"].get("action") == "source-blocked"]
    assert events[0]["bastion"]["blocked_by"] == "anomaly"
    assert events[0]["source"]["ip"] == "127.0.0.1"


def test_anomaly_block_is_off_by_default(tmp_path: Path) -> None:
    with running_gateway(tmp_path, {"anomaly": {"min_requests": 5}}, config_file=True) as gw:
        document_services(tmp_path, gw)
        gw.reload()
        for _ in range(8):
            assert _get(gw, "/denied").status_code == 403
        assert _get(gw, "/fine").status_code == 200
    assert any(line["event"].get("action") == "anomaly-detected" for line in _lines(tmp_path))


def document_services(state: Path, gw: RunningGateway) -> None:
    """Give the config file the /denied route (ip_filter refuses 127.0.0.1) before a reload."""
    path = state / "bastion.yaml"
    document = yaml.safe_load(path.read_text())
    document["services"] = _services(gw.upstream_port)
    path.write_text(yaml.safe_dump(document))


def test_block_behind_a_trusted_proxy_applies_to_the_forwarded_client(tmp_path: Path) -> None:
    extra = {"trusted_proxies": ["127.0.0.1/32"]}
    with running_gateway(tmp_path, extra) as gw, _admin(gw) as admin:
        assert admin.post("/admin/blocked-sources", json={"ip": "203.0.113.9"}).is_success
        assert _get(gw, headers={"x-forwarded-for": "203.0.113.9"}).status_code == 403
        assert _get(gw, headers={"x-forwarded-for": "198.51.100.1"}).status_code == 200
        assert _get(gw).status_code == 200  # the proxy itself is not blocked


@pytest.mark.redis
def test_blocks_are_shared_between_nodes_through_redis(tmp_path: Path) -> None:
    require_redis()
    prefix = unique_prefix()
    counters = {"counters": f"redis://127.0.0.1:6379/0?prefix={prefix}"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        with (
            running_gateway(tmp_path / "a", counters) as node_a,
            running_gateway(tmp_path / "b", counters) as node_b,
            _admin(node_a) as admin,
        ):
            assert admin.post("/admin/blocked-sources", json={"ip": "127.0.0.1"}).is_success
            started = time.monotonic()
            assert _until(lambda: _get(node_b).status_code == 403, 3.0)
            assert time.monotonic() - started < 2.5
            with _admin(node_b) as admin_b:
                listed = admin_b.get("/admin/blocked-sources").json()["blocked_sources"]
                assert [b["source"] for b in listed] == ["127.0.0.1"]
            assert admin.delete("/admin/blocked-sources/127.0.0.1").status_code == 204
            assert _until(lambda: _get(node_b).status_code == 200, 3.0)
    finally:
        delete_prefix(prefix)


def test_workers_of_one_node_share_blocks_without_redis(tmp_path: Path) -> None:
    with running_upstream() as (upstream_port, _seen):
        port, admin_port = free_ports(2)
        config_path = tmp_path / "bastion.yaml"
        document = worker_config(upstream_port, port, admin_port)
        document["admin"]["token"] = TOKEN
        config_path.write_text(yaml.safe_dump(document))
        process = subprocess.Popen(
            [*BASTION, "run", "-c", str(config_path), "--workers", "2"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def statuses() -> tuple[set[int], set[str]]:
            found, workers = set(), set()
            for _ in range(12):
                with httpx.Client(timeout=5) as client:  # a new connection each time
                    response = client.get(f"http://127.0.0.1:{port}/ok")
                found.add(response.status_code)
                workers.add(response.headers.get("x-request-id", "")[:16])
            return found, workers

        try:
            wait_ready(admin_port, process)
            admin = httpx.Client(
                base_url=f"http://127.0.0.1:{admin_port}",
                headers={"authorization": f"Bearer {TOKEN}"},
                timeout=5,
            )
            with admin:
                assert admin.post("/admin/blocked-sources", json={"ip": "127.0.0.1"}).is_success
                assert _until(lambda: statuses()[0] == {403}, 5.0)
                assert admin.delete("/admin/blocked-sources/127.0.0.1").status_code == 204
                assert _until(lambda: statuses()[0] == {200}, 5.0)
                found, workers = statuses()
                assert found == {200}
                assert len(workers) == 2  # both workers answered, and both let the client in
        finally:
            os.kill(process.pid, signal.SIGTERM)
            assert process.wait(15) == 0
