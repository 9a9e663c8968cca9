"""Tests of the node view of metrics: worker snapshots, their files and the sums at scrape time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, strategies as st

from bastion.clock import FakeClock
from bastion.core.context import RequestContext
from bastion.errors import Forbidden
from bastion.observability.metrics import (
    DEPRECATED_API_VERSION,
    LATENCY_BUCKETS,
    Metrics,
    WorkerSnapshots,
    new_registry,
    render,
)
from bastion.policies.versioning.policy import DEPRECATED_API_VERSION as POLICY_KEY
from tests.observability.prom import Samples, parse_samples, value
from tests.support import make_ctx


def _scrape(metrics: Metrics) -> Samples:
    return parse_samples(render(new_registry(metrics, process=False)).decode())


def _request(clock: FakeClock, status: int, route: str = "accounts") -> RequestContext:
    ctx = make_ctx(clock=clock, route=route)
    ctx.service = "bank"
    ctx.status = status
    clock.advance(0.002)
    return ctx


def _worker(connections: int = 0, degraded: int = 0) -> Metrics:
    metrics = Metrics(FakeClock())
    metrics.bind_routes([("accounts", "bank")])
    metrics.gauge("bastion_connections_active", "Connections.", lambda: connections)
    metrics.gauge("bastion_flag", "A state.", lambda: degraded, merge="max")
    metrics.labelled_gauge(
        "bastion_backend_degraded", "Degraded.", "backend", lambda: {"store": degraded}
    )
    metrics.watch_log("access", lambda: 2)
    return metrics


def test_the_versioning_policy_and_the_metrics_use_one_key() -> None:
    assert DEPRECATED_API_VERSION == POLICY_KEY


def test_deprecated_version_requests_are_counted_by_route_and_version() -> None:
    clock = FakeClock()
    metrics = Metrics(clock)
    metrics.bind_routes([("accounts", "bank")])
    for version in ("v1", "v1", "v0"):
        ctx = _request(clock, 200)
        ctx.request.extra[DEPRECATED_API_VERSION] = version
        metrics.observe(ctx)
    metrics.observe(_request(clock, 200))  # a current version: no mark
    samples = _scrape(metrics)
    name = "bastion_deprecated_version_requests_total"
    assert value(samples, name, route="accounts", version="v1") == 2
    assert value(samples, name, route="accounts", version="v0") == 1


def test_tls_handshake_failures_are_counted_by_listener_and_reason() -> None:
    metrics = Metrics(FakeClock())
    metrics.tls_handshake_failed("127.0.0.1:8443", "no_shared_cipher")
    metrics.tls_handshake_failed("127.0.0.1:8443", "no_shared_cipher")
    metrics.tls_handshake_failed("127.0.0.1:8443", "timeout")
    samples = _scrape(metrics)
    name = "bastion_tls_handshake_failures_total"
    listener = "127.0.0.1:8443"
    assert value(samples, name, listener=listener, reason="no_shared_cipher") == 2
    assert value(samples, name, listener=listener, reason="timeout") == 1


def test_the_admin_worker_reports_every_workers_numbers(tmp_path: Path) -> None:
    admin, other = _worker(connections=3), _worker(connections=4, degraded=1)
    clock = FakeClock()
    for status in (200, 200, 404):
        admin.observe(_request(clock, status))
    for status in (200, 500):
        other.observe(_request(clock, status))
    refused = _request(clock, 403)
    refused.reject, refused.rejected_by = Forbidden("no"), "ip_filter"
    other.observe(refused)
    other.tls_handshake_failed("127.0.0.1:8443", "not_tls")
    WorkerSnapshots(tmp_path, 1).publish(other)
    admin.peers = WorkerSnapshots(tmp_path, 0).read_peers

    samples = _scrape(admin)

    def requests(status_class: str) -> float:
        labels = {"route": "accounts", "service": "bank", "status_class": status_class}
        return value(samples, "bastion_requests_total", **labels)

    assert requests("2xx") == 3
    assert requests("4xx") == 2
    assert requests("5xx") == 1
    assert value(samples, "bastion_request_duration_seconds_count", route="accounts") == 6
    assert value(samples, "bastion_rejections_total", policy="ip_filter", code="forbidden") == 1
    tls = value(
        samples, "bastion_tls_handshake_failures_total", listener="127.0.0.1:8443", reason="not_tls"
    )
    assert tls == 1
    assert value(samples, "bastion_connections_active") == 7  # summed
    assert value(samples, "bastion_flag") == 1  # the worst state
    assert value(samples, "bastion_backend_degraded", backend="store") == 1
    assert value(samples, "bastion_log_dropped_lines_total", log="access") == 4


def test_publish_writes_only_when_numbers_change(tmp_path: Path) -> None:
    metrics = _worker()
    snapshots = WorkerSnapshots(tmp_path, 2)
    snapshots.publish(metrics)
    path = tmp_path / "worker-2.json"
    first = path.stat().st_mtime_ns
    path.write_bytes(b"{}")  # were it rewritten, this would be replaced
    snapshots.publish(metrics)
    assert path.read_bytes() == b"{}"
    metrics.observe(_request(FakeClock(), 200))
    snapshots.publish(metrics)
    assert path.stat().st_mtime_ns >= first
    assert orjson.loads(path.read_bytes())["routes"]
    snapshots.remove()
    assert not path.exists()
    snapshots.remove()  # twice is fine


def test_unreadable_or_foreign_snapshots_are_skipped(tmp_path: Path) -> None:
    admin = _worker()
    admin.observe(_request(FakeClock(), 200))
    (tmp_path / "worker-1.json").write_bytes(b"{not json")
    (tmp_path / "worker-2.json").write_bytes(b'{"routes": [["accounts"]], "counters": {}}')
    (tmp_path / "worker-3.json").write_bytes(b"[1, 2]")
    admin.peers = WorkerSnapshots(tmp_path, 0).read_peers
    samples = _scrape(admin)
    labels = {"route": "accounts", "service": "bank", "status_class": "2xx"}
    assert value(samples, "bastion_requests_total", **labels) == 1


def test_a_missing_directory_means_no_peers(tmp_path: Path) -> None:
    snapshots = WorkerSnapshots(tmp_path / "gone", 1)
    assert snapshots.read_peers() == []
    snapshots.publish(_worker())  # the node is stopping: nothing to write to, no error


_COUNTS = st.lists(st.integers(min_value=0, max_value=10**9), min_size=6, max_size=6)


@given(
    st.lists(
        st.tuples(_COUNTS, st.lists(st.integers(0, 10**6), min_size=16, max_size=16)),
        min_size=1,
        max_size=4,
    )
)
def test_node_totals_are_the_sum_of_the_snapshots(workers: list[tuple[list[int], Any]]) -> None:
    admin = Metrics(FakeClock())
    peers: list[object] = []
    for requests, buckets in workers:
        peers.append(
            {
                "routes": [["r", "s", requests, buckets, 1.5, [0] * 16, 0.0]],
                "counters": {"rejections": [["p", "c", sum(requests)]]},
            }
        )
    admin.peers = lambda: peers
    samples = _scrape(admin)
    for index, status_class in enumerate(("1xx", "2xx", "3xx", "4xx", "5xx"), start=1):
        expected = sum(requests[index] for requests, _ in workers)
        labels = {"route": "r", "service": "s", "status_class": status_class}
        assert value(samples, "bastion_requests_total", **labels) == expected
    total = sum(sum(buckets) for _, buckets in workers)
    assert value(samples, "bastion_request_duration_seconds_count", route="r") == total
    assert len(LATENCY_BUCKETS) + 1 == 16
    rejected = sum(sum(requests) for requests, _ in workers)
    assert value(samples, "bastion_rejections_total", policy="p", code="c") == rejected


@pytest.mark.parametrize(
    "snapshot",
    [
        None,
        {"routes": "x", "counters": {}},
        {"routes": [], "counters": {"rejections": [["a"]]}},
        {"routes": [], "counters": {}, "logs": []},
        {"routes": [], "counters": {}, "labelled_gauges": []},
        {"routes": [["r", "s", [1] * 5, [0] * 16, 0, [0] * 16, 0]], "counters": {}},
    ],
    ids=["not-a-dict", "routes", "counter-row", "logs", "labelled", "short-requests"],
)
def test_malformed_snapshots_add_nothing(snapshot: object) -> None:
    admin = Metrics(FakeClock())
    admin.peers = lambda: [snapshot]
    samples = _scrape(admin)
    assert not [key for key in samples if key[0] == "bastion_requests_total"]
