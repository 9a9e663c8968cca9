"""Rate-limit accuracy across gateway processes, and Redis failure and recovery under load.

These tests run `bastion run` processes; the sliding-log test holds paced load for a little
more than a whole 60 s window (the accuracy figures in docs/rate-limiting.md come from them):

    .venv/bin/python -m pytest -p no:cacheprovider -s tests/integration/test_rate_limit_cluster.py
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.harness import free_ports, running_upstream, wait_ready
from tests.integration.redis_support import (
    delete_prefix,
    private_redis,
    require_redis,
    unique_prefix,
)

pytestmark = pytest.mark.integration

BASTION = [sys.executable, "-m", "bastion"]
WINDOW = 60
LIMIT = 100
BURST = 1  # with burst 0 a late request moves GCRA's schedule (see docs); 1 absorbs jitter
EXACT = LIMIT + BURST  # GCRA's bound for any window, reached exactly under constant demand
POLICY = {"limit": LIMIT, "window": WINDOW, "burst": BURST}
CLIENTS = 20


def _document(
    port: int,
    admin_port: int,
    upstream_port: int,
    counters: str,
    policy: dict[str, Any],
    *,
    warm_up_apart: bool,
) -> dict[str, Any]:
    """A gateway config limiting every path by `policy`, or with `warm_up_apart` only /item.

    Apart, /warm-up has its own limit: it still opens the Redis connection and loads the
    script, but is not counted against the limit under test.
    """
    document: dict[str, Any] = {
        "listeners": [{"bind": f"127.0.0.1:{port}", "plaintext": True}],
        "admin": {"bind": f"127.0.0.1:{admin_port}"},
        "access_log": {"sink": "off"},
        "counters": counters,
    }
    upstream = {"targets": [f"http://127.0.0.1:{upstream_port}"]}
    if not warm_up_apart:
        document["global_policies"] = {"rate_limit": policy}
        routes: list[dict[str, Any]] = [{"name": "all", "paths": ["/"]}]
    else:
        warm_up = {"limit": 10, "window": 1, "burst": 9}
        routes = [
            {"name": "item", "paths": ["/item"], "policies": {"rate_limit": policy}},
            {"name": "warm", "paths": ["/warm-up"], "policies": {"rate_limit": warm_up}},
        ]
    document["services"] = [{"name": "echo", "upstream": upstream, "routes": routes}]
    return document


@contextlib.contextmanager
def _gateways(
    tmp_path: Path,
    upstream_port: int,
    counters: str,
    policy: dict[str, Any],
    count: int,
    *,
    warm_up_apart: bool = False,
    name: str = "bastion",
) -> Iterator[list[int]]:
    """`count` bastion processes limited by `policy` (see `_document`); yields their ports."""
    processes: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    logs = []
    try:
        for index in range(count):
            port, admin_port = free_ports(2)
            document = _document(
                port, admin_port, upstream_port, counters, policy, warm_up_apart=warm_up_apart
            )
            path = tmp_path / f"{name}-{index}.yaml"
            path.write_text(yaml.safe_dump(document))
            log = (tmp_path / f"{name}-{index}.log").open("wb")
            logs.append(log)
            process = subprocess.Popen([*BASTION, "run", "-c", str(path)], stdout=log, stderr=log)
            processes.append(process)
            wait_ready(admin_port, process)
            # One request first, as a deployed gateway would have served: it opens the
            # Redis connection and caches the script before the load starts.
            httpx.get(f"http://127.0.0.1:{port}/warm-up", timeout=5)
            ports.append(port)
        yield ports
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        for log in logs:
            log.close()


@dataclass(frozen=True, slots=True)
class _Answer:
    """One request of the load: when it was sent and answered (`time.monotonic()`)."""

    sent: float
    answered: float
    status: int
    """0 when the request failed at the HTTP level."""
    retry_after: int | None


def _requests(ports: list[int], seconds: float, pause: Callable[[int], float]) -> list[_Answer]:
    """CLIENTS threads sending GET /item round-robin over `ports` for `seconds`.

    Client `index` sleeps `pause(index)` seconds after each answer.
    """
    results: list[_Answer] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    barrier = threading.Barrier(CLIENTS)

    def client(index: int) -> None:
        mine: list[_Answer] = []
        wait = pause(index)
        with httpx.Client(timeout=5) as http:
            barrier.wait()
            turn = index
            while time.monotonic() < stop_at:
                port = ports[turn % len(ports)]
                turn += 1
                sent = time.monotonic()
                retry_after = None
                try:
                    response = http.get(f"http://127.0.0.1:{port}/item")
                    status = response.status_code
                    if "retry-after" in response.headers:
                        retry_after = int(response.headers["retry-after"])
                except httpx.HTTPError:
                    status = 0
                mine.append(_Answer(sent, time.monotonic(), status, retry_after))
                time.sleep(wait)
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _load(ports: list[int], seconds: float, pause: float) -> list[tuple[float, float, int]]:
    """(sent, answered, status) of every request of `_requests` with one fixed pause."""
    answers = _requests(ports, seconds, lambda _: pause)
    return [(answer.sent, answer.answered, answer.status) for answer in answers]


def _admitted_in_first_window(results: list[tuple[float, float, int]]) -> tuple[int, int]:
    """(admitted within WINDOW s of the first admission, most admitted in any WINDOW s)."""
    admitted = sorted(answered for _, answered, status in results if status == 200)
    assert admitted, "nothing was admitted"
    first = admitted[0]
    in_window = sum(1 for when in admitted if when < first + WINDOW)
    most = 0
    start = 0
    for end, when in enumerate(admitted):
        while admitted[start] <= when - WINDOW:
            start += 1
        most = max(most, end - start + 1)
    return in_window, most


def _report(name: str, results: list[tuple[float, float, int]], in_window: int) -> None:
    refused = sum(1 for _, _, status in results if status == 429)
    print(  # noqa: T201 - the figure the docs quote, shown with -s
        f"\n{name}: {len(results)} requests from {CLIENTS} clients, {in_window} admitted "
        f"in the {WINDOW} s window, {refused} refused with 429"
    )


# A bucket of exactly LIMIT that refills one request per 36 s: a few seconds of concurrent
# demand from two processes must be admitted exactly LIMIT times — one more means two processes
# raced on the counter, one fewer means a lost update. No client clock is involved.
BUCKET = {"limit": LIMIT, "window": 3600, "burst": LIMIT - 1}
HAMMER_SECONDS = 5


def _exact_bucket(ports: list[int]) -> list[tuple[float, float, int]]:
    results = _load(ports, HAMMER_SECONDS, pause=0.0)
    admitted = sum(1 for _, _, status in results if status == 200)
    _report_bucket(results, admitted + len(ports))
    assert {status for _, _, status in results} <= {200, 429}
    assert admitted + len(ports) == LIMIT  # each gateway's warm-up request counted too
    return results


def _report_bucket(results: list[tuple[float, float, int]], admitted: int) -> None:
    print(  # noqa: T201 - the figure the docs quote, shown with -s
        f"\n{len(results)} requests from {CLIENTS} clients in {HAMMER_SECONDS} s: "
        f"{admitted} admitted counting the warm-up requests (limit {LIMIT})"
    )


@pytest.mark.redis
def test_two_processes_sharing_redis_admit_exactly_the_limit(tmp_path: Path) -> None:
    require_redis()
    prefix = unique_prefix()
    counters = f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=1000"
    try:
        with (
            running_upstream() as (upstream_port, _),
            _gateways(tmp_path, upstream_port, counters, BUCKET, 2) as ports,
        ):
            _exact_bucket(ports)
    finally:
        delete_prefix(prefix)


def test_one_process_with_memory_counters_admits_exactly_the_limit(tmp_path: Path) -> None:
    with (
        running_upstream() as (upstream_port, _),
        _gateways(tmp_path, upstream_port, "memory", BUCKET, 1) as ports,
    ):
        _exact_bucket(ports)


@pytest.mark.skipif(
    not os.environ.get("BASTION_LONG_TESTS"),
    reason="holds load for a whole 60 s window; set BASTION_LONG_TESTS=1 to run",
)
@pytest.mark.redis
def test_steady_demand_over_a_60_s_window_across_two_processes(tmp_path: Path) -> None:
    require_redis()
    prefix = unique_prefix()
    counters = f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=1000"
    try:
        with (
            running_upstream() as (upstream_port, _),
            _gateways(tmp_path, upstream_port, counters, POLICY, 2) as ports,
        ):
            results = _load(ports, WINDOW + 1, pause=0.05)
    finally:
        delete_prefix(prefix)
    in_window, most = _admitted_in_first_window(results)
    _report("redis, 2 processes", results, in_window)
    assert {status for _, _, status in results} <= {200, 429}
    # Client-side timestamps: a loaded machine can shift a few answers across the boundary.
    assert abs(in_window - EXACT) <= 2
    assert most <= EXACT + 2


# Sliding log, issue 5's acceptance test: exactly LIMIT per rolling WINDOW, whatever the demand.
LOG_POLICY = {"limit": LIMIT, "window": WINDOW, "algorithm": "sliding_log"}
LOG_SECONDS = WINDOW + 4  # the first window, then the first slots freeing again


def _pace(index: int) -> float:
    """50 to 97.5 ms between requests, spread over the clients: ~13 requests/s each."""
    return 0.05 + 0.05 * index / CLIENTS


@dataclass(frozen=True, slots=True)
class _LogFigures:
    """What a sliding-log run measured (client clock; admission lies in [sent, answered])."""

    sent: int
    admitted: int
    refused: int
    first_window: int
    """Admitted in the WINDOW s from the first admission."""
    busiest: int
    """Most admissions certainly inside one WINDOW s span (sent and answered within it)."""
    retry_after: tuple[int, int]
    """Smallest and largest Retry-After of the refusals."""
    first_spread: float
    """Seconds from the first admitted request's sending to the last first-window answer."""


def _log_figures(answers: list[_Answer]) -> _LogFigures:
    admitted = sorted((a for a in answers if a.status == 200), key=lambda a: a.sent)
    assert admitted, "nothing was admitted"
    start = admitted[0].sent
    # Admission happens between sending and answering; the first one at or after `start`,
    # the first re-admission a whole window after it, so at or after start + WINDOW. Counting
    # the admitted requests answered before start + WINDOW is thus exact despite latency.
    in_first = [a.answered for a in admitted if a.answered < start + WINDOW]
    busiest = max(
        sum(1 for later in admitted[index:] if later.answered < first.sent + WINDOW)
        for index, first in enumerate(admitted)
    )
    delays = [a.retry_after for a in answers if a.status == 429 and a.retry_after is not None]
    return _LogFigures(
        sent=len(answers),
        admitted=len(admitted),
        refused=sum(1 for a in answers if a.status == 429),
        first_window=len(in_first),
        busiest=busiest,
        retry_after=(min(delays, default=0), max(delays, default=0)),
        first_spread=max(in_first) - start,
    )


def _check_sliding_log(name: str, answers: list[_Answer]) -> None:
    figures = _log_figures(answers)
    print(  # noqa: T201 - the figures the docs quote, shown with -s
        f"\nsliding_log {name}: {figures.sent} requests from {CLIENTS} clients in "
        f"{LOG_SECONDS} s, {figures.first_window} admitted in the first {WINDOW} s window "
        f"(all within {figures.first_spread:.2f} s), "
        f"at most {figures.busiest} in any {WINDOW} s, {figures.admitted} admitted in all, "
        f"{figures.refused} refused with 429 (Retry-After {figures.retry_after[0]}-"
        f"{figures.retry_after[1]} s)"
    )
    assert {a.status for a in answers} <= {200, 429}, name
    assert figures.first_window == LIMIT, name
    assert figures.busiest <= LIMIT, name
    # The window slides: the first slots free up at start + WINDOW and are taken again.
    assert LIMIT < figures.admitted <= 2 * LIMIT, name
    # Retry-After is exact to the second: the refusals of the first window are told to come
    # back when the first admission leaves it (the bounds allow for each request's latency).
    admitted = [a for a in answers if a.status == 200]
    start = min(a.sent for a in admitted)
    first_answered = min(a.answered for a in admitted)
    refusals = [a for a in answers if a.status == 429 and a.answered < start + WINDOW]
    assert refusals, name
    for refusal in refusals:
        assert refusal.retry_after is not None
        back = refusal.sent + refusal.retry_after
        latency = refusal.answered - refusal.sent
        assert start + WINDOW - latency - 0.01 <= back <= first_answered + WINDOW + 1.01, name


@pytest.mark.redis
def test_sliding_log_admits_exactly_the_limit_per_window_over_redis_and_in_memory(
    tmp_path: Path,
) -> None:
    require_redis()
    prefix = unique_prefix()
    counters = f"redis://127.0.0.1:6379/0?prefix={prefix}&timeout_ms=1000"
    try:
        with (
            running_upstream() as (upstream_port, _),
            _gateways(
                tmp_path, upstream_port, counters, LOG_POLICY, 2, warm_up_apart=True, name="redis"
            ) as redis_ports,
            _gateways(
                tmp_path, upstream_port, "memory", LOG_POLICY, 1, warm_up_apart=True, name="memory"
            ) as memory_ports,
            ThreadPoolExecutor(2) as pool,
        ):
            # Both deployments under load at once: CI waits for one window, not two.
            over_redis = pool.submit(_requests, redis_ports, LOG_SECONDS, _pace)
            in_memory = pool.submit(_requests, memory_ports, LOG_SECONDS, _pace)
            redis_answers, memory_answers = over_redis.result(), in_memory.result()
    finally:
        delete_prefix(prefix)
    _check_sliding_log("redis, 2 processes", redis_answers)
    _check_sliding_log("memory, 1 process", memory_answers)


@pytest.mark.redis
def test_killing_redis_under_load_applies_the_failure_mode_and_recovers(tmp_path: Path) -> None:
    policy = {"limit": 100_000, "window": 1, "burst": 100_000, "on_backend_error": "deny"}
    with private_redis() as redis_server, running_upstream() as (upstream_port, _):
        # A dead Redis refuses connections at once; the timeout only has to outlast a busy
        # machine's scheduling delays, or healthy calls degrade (and deny) before the kill.
        counters = f"redis://127.0.0.1:{redis_server.port}/0?timeout_ms=500"
        with _gateways(tmp_path, upstream_port, counters, policy, 1) as ports:
            timeline: dict[str, float] = {}

            def outage() -> None:
                time.sleep(1.5)
                timeline["killed"] = time.monotonic()
                redis_server.kill()
                time.sleep(2.0)
                timeline["restarted"] = time.monotonic()
                redis_server.start()
                timeline["up"] = time.monotonic()

            chaos = threading.Thread(target=outage)
            chaos.start()
            results = _load(ports, 9.0, pause=0.05)
            chaos.join()
    log = (tmp_path / "bastion-0.log").read_text()
    killed, restarted = timeline["killed"], timeline["restarted"]
    statuses = {status for _, _, status in results}
    assert statuses <= {200, 503}, "no request failed otherwise (no 500, no hang)"
    latency = max(answered - sent for sent, answered, _ in results)
    assert latency < 1.0, f"a request waited {latency:.3f} s"
    # A request sent just before the kill can still reach Redis after it, so "before" means
    # answered before the kill.
    before = [s for _, answered, s in results if answered < killed]
    during = [s for sent, _, s in results if killed + 0.2 < sent < restarted]
    # A probe every second; the first one may find a dead pooled connection and the next
    # reconnects, so recovery takes at most about two seconds.
    after = [s for sent, _, s in results if sent > timeline["up"] + 2.5]
    first = min(sent for sent, _, _ in results)
    early = sorted(
        round(sent - first, 3) for sent, answered, s in results if answered < killed and s != 200
    )
    assert not early, (early[:20], len(early), log[-3000:])
    assert before
    assert set(before) == {200}
    assert during, "no request during the outage"
    assert set(during) == {503}  # on_backend_error: deny
    assert after, "no request after the recovery"
    assert set(after) == {200}  # recovered by itself
    assert "counters degraded" in log
    assert "counters recovered" in log
