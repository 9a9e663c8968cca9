"""Measures the log-phase cost per request: ECS access log line, metrics and security events.

Runs in a few seconds on one core, with no sockets: each figure is the best of several rounds
of `record(ctx)` calls on a ready request context, written to a real file sink on /dev/null
(the buffer, lock and writer thread are the production ones). Budget (DESIGN.md §5): access log
plus metrics at most 5 µs per request.

    .venv/bin/python bench/metrics_cost.py [--rounds 5] [--count 50000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bastion.clock import SystemClock
from bastion.core.context import Identity, PolicyReport, RequestContext
from bastion.errors import RateLimited
from bastion.http.headers import Headers
from bastion.http.request import Request
from bastion.observability.access_log import AccessLog
from bastion.observability.events import SecurityEvents
from bastion.observability.metrics import Metrics, RequestRecorder, new_registry, render
from bastion.observability.sinks import FileSink

BUDGET_US = 5.0


def _context(clock: SystemClock, *, rejected: bool = False) -> RequestContext:
    headers = Headers(
        [
            (b"host", b"api.example.test"),
            (b"user-agent", b"curl/8.5.0"),
            (b"authorization", b"Bearer secret"),
        ]
    )
    request = Request(
        method="GET",
        path="/v1/accounts/42",
        query=b"page=2&limit=50",
        headers=headers,
        target=b"/v1/accounts/42?page=2&limit=50",
        scheme="https",
        host="api.example.test",
        peer_ip="127.0.0.1",
    )
    ctx = RequestContext(request, start=clock.monotonic(), route="accounts", service="bank")
    ctx.request_id = "0123456789abcdef0123456789abcdef"
    ctx.authenticate(Identity("consumer-42"))
    ctx.upstream_target = "http://127.0.0.1:9000"
    ctx.upstream_duration = 0.0012
    ctx.bytes_sent = 512
    if rejected:
        ctx.status = 429
        ctx.rejected_by = "rate_limit"
        ctx.reject = RateLimited("Too many requests.", retry_after=3)
        ctx.reports.append(PolicyReport("ip_filter", 403, "ip_denied", "Address refused."))
    else:
        ctx.status = 200
    return ctx


def _best_us(
    call: Callable[[RequestContext], None], ctx: RequestContext, count: int, rounds: int
) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            call(ctx)
        best = min(best, (time.perf_counter() - started) / count)
    return best * 1_000_000


def main(argv: list[str] | None = None) -> int:
    """Print the figures; exit 1 when access log + metrics exceed the budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=50_000)
    args = parser.parse_args(argv)
    clock = SystemClock()
    sink = FileSink("/dev/null")
    access = AccessLog(sink, clock)
    metrics = Metrics(clock)
    metrics.bind_routes([("accounts", "bank")])
    events = SecurityEvents(sink, clock)
    both = RequestRecorder(access_log=access, metrics=metrics)
    everything = RequestRecorder(access_log=access, metrics=metrics, events=events)
    ok, rejected = _context(clock), _context(clock, rejected=True)
    rows = [
        ("metrics only (200)", _best_us(metrics.observe, ok, args.count, args.rounds)),
        ("access log only (200)", _best_us(access.record, ok, args.count, args.rounds)),
        ("access log + metrics (200)", _best_us(both.record, ok, args.count, args.rounds)),
        (
            "access log + metrics + 2 events (429 + report)",
            _best_us(everything.record, rejected, args.count // 5, args.rounds),
        ),
    ]
    registry = new_registry(metrics)
    for index in range(200):  # a large configuration: 200 routes with traffic
        metrics.bind_routes([(f"route-{index}", "bank")])
        metrics.observe(RequestContext(ok.request, start=clock.monotonic(), route=f"route-{index}"))
    started = time.perf_counter()
    text = render(registry)
    render_ms = (time.perf_counter() - started) * 1000
    sink.close()
    for name, value in rows:
        print(f"{name:<48} {value:6.2f} µs/request")
    print(f"{'/metrics rendering, 201 routes':<48} {render_ms:6.2f} ms ({len(text)} bytes)")
    within = rows[2][1] <= BUDGET_US
    print(f"budget access log + metrics <= {BUDGET_US} µs: {'ok' if within else 'EXCEEDED'}")
    return 0 if within else 1


if __name__ == "__main__":
    raise SystemExit(main())
