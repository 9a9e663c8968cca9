"""concurrency_limit and quota through real listeners: 429s, Retry-After, and no leaked slots.

In-process gateways (memory counters) prove the slot of every request comes back whichever way
it ends: response sent, client abort before or during the response, upstream timeout, upstream
refused. Two `bastion run` processes on real Redis prove both policies hold across nodes.
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from bastion.counters.leases import MemoryLeases, leases_for
from tests.integration.harness import (
    RunningGateway,
    free_port,
    free_ports,
    running_gateway,
    running_upstream,
    wait_ready,
)
from tests.integration.redis_support import delete_prefix, require_redis, unique_prefix

pytestmark = pytest.mark.integration


def _get(port: int, path: str = "/x", **kwargs: Any) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5, **kwargs)


def _leases(gateway: RunningGateway) -> MemoryLeases:
    assert gateway.server is not None
    store = leases_for(gateway.server.counters)
    assert isinstance(store, MemoryLeases)
    return store


def _wait_released(gateway: RunningGateway, timeout: float = 3.0) -> int:
    """Leases still held once the gateway settled (0 = every slot came back)."""
    store = _leases(gateway)
    deadline = time.monotonic() + timeout
    while len(store) and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(store)


def _abort(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a client that crashes or gives up does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _wait_seen(seen: list[dict[str, Any]], count: int, timeout: float = 5.0) -> None:
    """Wait until the upstream received `count` requests (they hold their slots by then)."""
    deadline = time.monotonic() + timeout
    while len(seen) < count:
        assert time.monotonic() < deadline, "the upstream did not receive the requests"
        time.sleep(0.01)


def _concurrency(max_in_flight: int) -> dict[str, Any]:
    return {"global_policies": {"concurrency_limit": {"max": max_in_flight}}}


def test_a_request_over_max_in_flight_gets_429_problem_json(tmp_path: Path) -> None:
    with running_gateway(tmp_path, _concurrency(2)) as gateway, ThreadPoolExecutor(2) as pool:
        slow = [pool.submit(_get, gateway.http_port, "/slow/900") for _ in range(2)]
        _wait_seen(gateway.seen, 2)
        refused = _get(gateway.http_port)
        assert [future.result().status_code for future in slow] == [200, 200]
        after = _get(gateway.http_port)
        assert _wait_released(gateway) == 0
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "1"
    body = refused.json()
    assert (body["code"], body["status"]) == ("concurrency_limited", 429)
    assert body["request_id"]
    assert after.status_code == 200


def test_no_slot_leaks_after_clients_abort_before_and_during_the_response(tmp_path: Path) -> None:
    with running_gateway(tmp_path, _concurrency(1)) as gateway:
        for _ in range(3):
            # Mid-response: the head and part of a large body arrived, then the client is gone.
            sock = gateway.connect()
            sock.sendall(b"GET /big/8000000 HTTP/1.1\r\nhost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            _abort(sock)
            assert _wait_released(gateway) == 0
            # Before the response: the upstream is still thinking.
            sock = gateway.connect()
            sock.sendall(b"GET /slow/1500 HTTP/1.1\r\nhost: x\r\n\r\n")
            time.sleep(0.2)
            _abort(sock)
            assert _wait_released(gateway) == 0
        # The one slot is free: requests are admitted one after another.
        assert [_get(gateway.http_port).status_code for _ in range(3)] == [200, 200, 200]


def test_no_slot_leaks_after_upstream_timeouts_and_refused_connections(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens here: connections are refused
    with running_upstream() as (upstream, _):
        extra = _concurrency(1) | {
            "services": [
                {
                    "name": "echo",
                    "upstream": {
                        "targets": [f"http://127.0.0.1:{upstream}"],
                        "read_timeout": 0.5,
                    },
                    "routes": [{"name": "all", "paths": ["/"]}],
                },
                {
                    "name": "dead",
                    "upstream": {"targets": [f"http://127.0.0.1:{dead}"]},
                    "routes": [{"name": "dead", "paths": ["/dead"]}],
                },
            ]
        }
        with running_gateway(tmp_path, extra) as gateway:
            timeouts = [_get(gateway.http_port, "/slow/1500").status_code for _ in range(3)]
            assert _wait_released(gateway) == 0
            refused = [_get(gateway.http_port, "/dead").status_code for _ in range(3)]
            assert _wait_released(gateway) == 0
            ok = _get(gateway.http_port).status_code
    assert timeouts == [504, 504, 504]
    assert refused == [502, 502, 502]
    assert ok == 200


def test_quota_over_limit_gets_429_with_retry_after_to_midnight_utc(tmp_path: Path) -> None:
    policies = {"quota": {"limit": 2, "period": "day", "key": "ip", "name": "daily"}}
    with running_gateway(tmp_path, {"global_policies": policies}) as gateway:
        admitted = [_get(gateway.http_port) for _ in range(2)]
        refused = _get(gateway.http_port)
        now = time.time()
    midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    expected = math.ceil((midnight + timedelta(days=1)).timestamp() - now)
    assert [r.status_code for r in admitted] == [200, 200]
    assert [r.headers["ratelimit"].rsplit(";", 1)[0] for r in admitted] == [
        '"daily";r=1',
        '"daily";r=0',
    ]
    assert admitted[0].headers["ratelimit-policy"] == '"daily";q=2;w=86400'
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "quota_exceeded"
    assert expected - 2 <= int(refused.headers["retry-after"]) <= expected + 1


BASTION = [sys.executable, "-m", "bastion"]


@contextlib.contextmanager
def _nodes(tmp_path: Path, upstream: int, counters: str, count: int) -> Iterator[list[int]]:
    """`count` `bastion run` processes sharing `counters`; yields their proxy ports.

    Route `cc` (everything) has concurrency_limit max 2 per IP, route `q` (/quota) a daily
    quota of 3 per IP.
    """
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    ports: list[int] = []
    try:
        for index in range(count):
            port, admin_port = free_ports(2)
            document = {
                "listeners": [{"bind": f"127.0.0.1:{port}", "plaintext": True}],
                "admin": {"bind": f"127.0.0.1:{admin_port}"},
                "access_log": {"sink": "off"},
                "counters": counters,
                "services": [
                    {
                        "name": "echo",
                        "upstream": {
                            "targets": [f"http://127.0.0.1:{upstream}"],
                            "read_timeout": 2.0,
                        },
                        "routes": [
                            {
                                "name": "q",
                                "paths": ["/quota"],
                                "policies": {"quota": {"limit": 3, "period": "day", "key": "ip"}},
                            },
                            {
                                "name": "cc",
                                "paths": ["/"],
                                "policies": {"concurrency_limit": {"max": 2, "lease_seconds": 5}},
                            },
                        ],
                    }
                ],
            }
            path = tmp_path / f"node-{index}.yaml"
            path.write_text(yaml.safe_dump(document))
            log = (tmp_path / f"node-{index}.log").open("wb")
            logs.append(log)
            process = subprocess.Popen([*BASTION, "run", "-c", str(path)], stdout=log, stderr=log)
            processes.append(process)
            wait_ready(admin_port, process)
            ports.append(port)
        yield ports
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        for log in logs:
            log.close()


def _held_in_redis(prefix: str) -> int:
    """Unexpired leases under `prefix`, summed over every lease key."""
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        now = client.time()
        now_us = int(now[0]) * 1_000_000 + int(now[1])
        return sum(
            int(client.zcount(key, f"({now_us}", "+inf"))
            for key in client.scan_iter(match=f"{prefix}cc:*")
        )
    finally:
        client.close()


def _wait_redis_released(prefix: str, timeout: float = 3.0) -> int:
    deadline = time.monotonic() + timeout
    held = _held_in_redis(prefix)
    while held and time.monotonic() < deadline:
        time.sleep(0.05)
        held = _held_in_redis(prefix)
    return held


@pytest.mark.redis
def test_two_processes_on_redis_share_the_slots_and_the_quota(tmp_path: Path) -> None:
    require_redis()
    prefix = unique_prefix()
    counters = f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=1000"
    try:
        with (
            running_upstream() as (upstream, seen),
            _nodes(tmp_path, upstream, counters, 2) as ports,
        ):
            node_a, node_b = ports
            # Concurrency: two slow requests on A hold both slots; B refuses a third.
            with ThreadPoolExecutor(2) as pool:
                slow = [pool.submit(_get, node_a, "/slow/1200") for _ in range(2)]
                _wait_seen(seen, 2)
                refused = _get(node_b)
                statuses = [future.result().status_code for future in slow]
            assert statuses == [200, 200]
            assert refused.status_code == 429
            assert refused.json()["code"] == "concurrency_limited"
            assert refused.headers["retry-after"] == "1"
            assert _wait_redis_released(prefix) == 0
            assert _get(node_b).status_code == 200
            # No lease outlives its request: client abort mid-response, upstream timeout.
            sock = socket.create_connection(("127.0.0.1", node_a), timeout=5)
            sock.sendall(b"GET /big/8000000 HTTP/1.1\r\nhost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            _abort(sock)
            assert _wait_redis_released(prefix) == 0
            assert _get(node_b, "/slow/2500").status_code == 504  # read_timeout is 2 s
            assert _wait_redis_released(prefix) == 0
            # Quota: 3 a day per client across both nodes.
            quota = [_get(port, "/quota") for port in (node_a, node_b, node_a, node_b, node_a)]
            assert [r.status_code for r in quota] == [200, 200, 200, 429, 429]
            assert {r.json()["code"] for r in quota[3:]} == {"quota_exceeded"}
            assert [r.headers["ratelimit"].split(";")[1] for r in quota] == [
                "r=2",
                "r=1",
                "r=0",
                "r=0",
                "r=0",
            ]
            assert int(quota[3].headers["retry-after"]) <= 86_400
    finally:
        delete_prefix(prefix)


def test_a_request_in_flight_across_a_reload_keeps_and_then_returns_its_slot(
    tmp_path: Path,
) -> None:
    with (
        running_gateway(tmp_path, _concurrency(1), config_file=True) as gateway,
        ThreadPoolExecutor(1) as pool,
    ):
        slow = pool.submit(_get, gateway.http_port, "/slow/900")
        _wait_seen(gateway.seen, 1)
        gateway.reload()  # new policy instances; the slow request still runs on the old ones
        assert gateway.server is not None
        assert gateway.server.revision == 2
        refused = _get(gateway.http_port).status_code
        assert slow.result().status_code == 200
        assert _wait_released(gateway) == 0
        after = _get(gateway.http_port).status_code
    assert (refused, after) == (429, 200)
