"""Pass-through benchmark: CPU per request of Bastion against nginx and the bare upstream.

How this works: one nginx upstream (CPU 1) answers a fixed body; nginx and Bastion proxies (CPU 0)
sit in front of it; wrk (CPU 1) drives each target in interleaved rounds. Around every wrk run the
harness reads utime+stime of the proxy's whole process tree from /proc, so the figure that matters,
CPU microseconds per proxied request, does not depend on how fast the load generator is. Medians of
the rounds are compared against the budgets of DESIGN.md §5 and printed as a Markdown table; the raw
rounds go to bench/results/<date>.json. Every process is started here, on loopback, and stopped here
by its own PID (or the process group it leads).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Literal

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
TEMPLATES = BENCH_DIR / "templates"

HOST = "127.0.0.1"
UPSTREAM_PORT = 18080
NGINX_HTTP_PORT = 18081
NGINX_TLS_PORT = 18443
BASTION_HTTP_PORT = 18082
BASTION_TLS_PORT = 18444
BASTION_ADMIN_PORT = 18901
BASTION2_HTTP_PORT = 18083
BASTION2_TLS_PORT = 18445
BASTION2_ADMIN_PORT = 18902
FLOOR_HTTP_PORT = 18084
FLOOR_PROXY = BENCH_DIR / "floor_proxy.py"
ADMIN_TOKEN = "bench-admin-token-0123456789"  # noqa: S105  throwaway loopback benchmark instance

PROXY_CPU = 0
LOAD_CPU = 1

# Exactly 100 bytes, no quotes, `$` or backslashes: it is pasted into an nginx string literal.
UPSTREAM_BODY = ("bastion pass-through benchmark upstream body " + "0123456789" * 6)[:100].encode()

PLAIN_LIMIT = 1.3
TLS_LIMIT = 1.5
WORKERS_LIMIT = 1.10
SPREAD_MIN_SHARE = 0.2
MAX_ERROR_RATE = 0.001

ServiceKey = Literal["upstream", "nginx", "floor", "bastion", "bastion2"]
# INFO: a ratio shown for calibration, with no budget to pass or fail.
Verdict = Literal["PASS", "FAIL", "INVALID", "n/a", "INFO"]


class BenchError(Exception):
    """The harness cannot go on: a tool is missing, a port is taken, the upstream is down."""


# ---------------------------------------------------------------------------------------------
# Settings and targets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """What one benchmark run does; see `parse_args` for the flags and environment variables."""

    duration: int
    rounds: int
    connections: int
    threads: int
    warmup: int
    ready_timeout: float
    only: tuple[str, ...]
    bastion: Path
    results_dir: Path
    keep_temp: bool
    pin: bool


@dataclass(frozen=True, slots=True)
class Target:
    """One URL that wrk loads, and the process tree whose CPU it costs."""

    key: str
    label: str
    scheme: Literal["http", "https"]
    port: int
    service: ServiceKey

    @property
    def url(self) -> str:
        """The URL wrk requests."""
        return f"{self.scheme}://{HOST}:{self.port}/"


TARGETS: tuple[Target, ...] = (
    Target("direct", "direct upstream", "http", UPSTREAM_PORT, "upstream"),
    Target("nginx-http", "nginx HTTP", "http", NGINX_HTTP_PORT, "nginx"),
    Target("nginx-tls", "nginx TLS 1.3", "https", NGINX_TLS_PORT, "nginx"),
    Target("floor-http", "Python floor HTTP", "http", FLOOR_HTTP_PORT, "floor"),
    Target("bastion-http", "Bastion HTTP", "http", BASTION_HTTP_PORT, "bastion"),
    Target("bastion-tls", "Bastion TLS 1.3", "https", BASTION_TLS_PORT, "bastion"),
    Target("bastion2-http", "Bastion, 2 workers, HTTP", "http", BASTION2_HTTP_PORT, "bastion2"),
    Target("bastion2-tls", "Bastion, 2 workers, TLS 1.3", "https", BASTION2_TLS_PORT, "bastion2"),
)
TARGET_KEYS = tuple(t.key for t in TARGETS)

# Targets whose run also samples which process holds each client connection.
MULTI_WORKER: Mapping[ServiceKey, int] = {"bastion2": 2}


@dataclass(frozen=True, slots=True)
class Comparison:
    """CPU per request of `subject` divided by that of `reference`.

    With a `limit` it is a budget (the ratio stays ≤ `limit`); without one it is a calibration
    ratio that is reported and never fails the run.
    """

    subject: str
    reference: str
    limit: float | None
    check_spread: bool = False


# The minimal Python proxy on Bastion's stack (bench/floor_proxy.py): what any proxy written on
# uvloop + httptools costs. Bastion's cost above it is Bastion's own work.
FLOOR = "floor-http"

COMPARISONS: tuple[Comparison, ...] = (
    Comparison("bastion-http", "nginx-http", PLAIN_LIMIT),
    Comparison("bastion-tls", "nginx-tls", TLS_LIMIT),
    Comparison("bastion2-http", "bastion-http", WORKERS_LIMIT, check_spread=True),
    Comparison("bastion2-tls", "bastion-tls", WORKERS_LIMIT, check_spread=True),
    Comparison(FLOOR, "nginx-http", None),
    Comparison("bastion-http", FLOOR, None),
    Comparison("bastion2-http", FLOOR, None),
)


def wanted_comparisons(only: Iterable[str]) -> list[Comparison]:
    """The comparisons a run of the targets `only` reports.

    A budget is reported whenever its subject runs (as `n/a` when its reference did not); a
    calibration ratio only when both sides run.
    """
    keys = set(only)
    return [
        c for c in COMPARISONS if c.subject in keys and (c.limit is not None or c.reference in keys)
    ]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"bench: {name}={raw!r} is not an integer") from None
    if value < 1:
        raise SystemExit(f"bench: {name} must be at least 1")
    return value


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Read flags; their defaults come from BENCH_* environment variables."""
    parser = argparse.ArgumentParser(
        prog="bench/run.sh",
        description="Pass-through benchmark of Bastion against nginx and the bare upstream.",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round x 3 s")
    parser.add_argument("--duration", type=int, default=_env_int("BENCH_DURATION", 10))
    parser.add_argument("--rounds", type=int, default=_env_int("BENCH_ROUNDS", 3))
    parser.add_argument("--connections", type=int, default=_env_int("BENCH_CONNECTIONS", 50))
    parser.add_argument("--threads", type=int, default=_env_int("BENCH_THREADS", 1))
    parser.add_argument("--warmup", type=int, default=_env_int("BENCH_WARMUP", 2))
    parser.add_argument("--ready-timeout", type=float, default=10.0)
    parser.add_argument(
        "--only",
        default=os.environ.get("BENCH_ONLY", ""),
        help=f"comma-separated subset of: {', '.join(TARGET_KEYS)}",
    )
    parser.add_argument("--bastion", type=Path, default=REPO_DIR / ".venv" / "bin" / "bastion")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--keep-temp", action="store_true", help="keep configs and logs")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    ns = parser.parse_args(argv)

    only = tuple(k.strip() for k in str(ns.only).split(",") if k.strip())
    unknown = sorted(set(only) - set(TARGET_KEYS))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGET_KEYS)}")
    duration, rounds, warmup = int(ns.duration), int(ns.rounds), int(ns.warmup)
    if ns.quick:
        duration, rounds, warmup = 3, 1, 1
    for name, value in (
        ("duration", duration),
        ("rounds", rounds),
        ("connections", ns.connections),
    ):
        if value < 1:
            parser.error(f"--{name} must be at least 1")
    return Settings(
        duration=duration,
        rounds=rounds,
        connections=int(ns.connections),
        threads=max(1, int(ns.threads)),
        warmup=max(0, warmup),
        ready_timeout=float(ns.ready_timeout),
        only=only or TARGET_KEYS,
        bastion=Path(ns.bastion),
        results_dir=Path(ns.results_dir),
        keep_temp=bool(ns.keep_temp),
        pin=not ns.no_pin,
    )


# ---------------------------------------------------------------------------------------------
# Pure helpers: templates, wrk output, /proc accounting, verdicts (tested in test_passthrough.py)
# ---------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill `@NAME@` placeholders.

    Raises:
        KeyError: a placeholder has no value, or a value names no placeholder.
    """
    used: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        used.add(name)
        if name not in values:
            raise KeyError(f"no value for placeholder @{name}@")
        return values[name]

    text = _PLACEHOLDER.sub(fill, template)
    unused = set(values) - used
    if unused:
        raise KeyError(f"values without a placeholder: {', '.join(sorted(unused))}")
    return text


def nginx_path(path: Path) -> str:
    """A path safe inside a double-quoted nginx string.

    Raises:
        BenchError: the path holds a character nginx would read as syntax.
    """
    text = str(path)
    if any(c in text for c in '"\\$;{}\n\r') or not path.is_absolute():
        raise BenchError(f"unsupported characters in temporary path {text!r}")
    return text


_UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_WRK_PERCENTILE = re.compile(r"^\s*(50|75|90|99)%\s+([0-9.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_WRK_REQUESTS = re.compile(r"^\s*(\d+) requests in ([0-9.]+)(us|ms|s|m|h)", re.MULTILINE)
_WRK_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)\s*$", re.MULTILINE)
_WRK_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run reported."""

    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int

    @property
    def error_rate(self) -> float:
        """Failed responses and socket errors per request."""
        return (self.socket_errors + self.non_2xx) / max(1, self.requests)


def parse_wrk_output(text: str) -> WrkResult:
    """Parse the report of `wrk --latency`.

    Raises:
        ValueError: the report lacks the request count, the rate or the latency distribution.
    """
    percentiles = {
        int(m.group(1)): float(m.group(2)) * _UNIT_TO_MS[m.group(3)]
        for m in _WRK_PERCENTILE.finditer(text)
    }
    requests = _WRK_REQUESTS.search(text)
    rps = _WRK_RPS.search(text)
    missing = [p for p in (50, 75, 90, 99) if p not in percentiles]
    if requests is None or rps is None or missing:
        raise ValueError("not a complete `wrk --latency` report:\n" + text.strip())
    sock = _WRK_SOCKET.search(text)
    non_2xx = _WRK_NON_2XX.search(text)
    return WrkResult(
        requests=int(requests.group(1)),
        duration_s=float(requests.group(2)) * _UNIT_TO_MS[requests.group(3)] / 1000.0,
        rps=float(rps.group(1)),
        p50_ms=percentiles[50],
        p75_ms=percentiles[75],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


@dataclass(frozen=True, slots=True)
class ProcStat:
    """CPU clock ticks of one process from /proc/<pid>/stat (proc(5))."""

    pid: int
    ppid: int
    own: int  # utime + stime: this process and all its threads
    reaped: int  # cutime + cstime: children it has waited for


def parse_proc_stat(text: str) -> ProcStat:
    """Parse one /proc/<pid>/stat line; the command name may hold spaces and parentheses.

    Raises:
        ValueError: the line is not in the proc(5) format.
    """
    head, sep, rest = text.rpartition(")")
    if not sep or "(" not in head:
        raise ValueError(f"not a /proc/<pid>/stat line: {text!r}")
    pid = int(head.split("(", 1)[0])
    fields = rest.split()
    # After the command: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    if len(fields) < 15:
        raise ValueError(f"not a /proc/<pid>/stat line: {text!r}")
    return ProcStat(
        pid=pid,
        ppid=int(fields[1]),
        own=int(fields[11]) + int(fields[12]),
        reaped=int(fields[13]) + int(fields[14]),
    )


def tree_members(stats: Iterable[ProcStat], root: int) -> dict[int, ProcStat]:
    """The processes under `root` (itself included) among `stats`."""
    by_parent: dict[int, list[ProcStat]] = {}
    by_pid: dict[int, ProcStat] = {}
    for st in stats:
        by_pid[st.pid] = st
        by_parent.setdefault(st.ppid, []).append(st)
    if root not in by_pid:
        return {}
    found: dict[int, ProcStat] = {}
    todo = [by_pid[root]]
    while todo:
        st = todo.pop()
        if st.pid in found:
            continue
        found[st.pid] = st
        todo.extend(by_parent.get(st.pid, ()))
    return found


def tree_cpu_delta(
    before: Mapping[int, ProcStat], after: Mapping[int, ProcStat]
) -> tuple[int, dict[int, int]]:
    """Ticks a process tree spent between two samples: (total, per live process).

    A worker that exited in between was either reaped by a member (its time moved into that
    member's `reaped` count) or not; counting own + reaped on both sides keeps the total right.
    """
    total = sum(s.own + s.reaped for s in after.values()) - sum(
        s.own + s.reaped for s in before.values()
    )
    per_pid = {pid: st.own - (before[pid].own if pid in before else 0) for pid, st in after.items()}
    return total, per_pid


def spread_ok(counts: Mapping[int, int], workers: int, min_share: float = SPREAD_MIN_SHARE) -> bool:
    """Whether the `workers` busiest processes each carry at least `min_share` of the total."""
    total = sum(counts.values())
    if total <= 0 or len(counts) < workers:
        return False
    busiest = sorted(counts.values(), reverse=True)[:workers]
    return all(c >= min_share * total for c in busiest)


def tcp_connections_by_inode(table: str, port: int) -> set[int]:
    """Socket inodes of ESTABLISHED connections whose local port is `port` in /proc/net/tcp{,6}."""
    inodes: set[int] = set()
    for line in table.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10:
            continue
        local, state, inode = cols[1], cols[3], cols[9]
        if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
            inodes.add(int(inode))
    return inodes


@dataclass(slots=True)
class RoundResult:
    """One wrk run against one target."""

    target: str
    round: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int
    cpu_ticks: int
    cpu_us_per_request: float
    upstream_cpu_us_per_request: float
    cpu_ticks_by_pid: dict[int, int]
    connections_by_pid: dict[int, int] | None


@dataclass(slots=True)
class Summary:
    """Medians over the rounds of one target."""

    rounds: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    upstream_cpu_us_per_request: float
    error_rate: float
    spread: bool | None
    workers_share: list[float] | None


def summarize(rounds: Sequence[RoundResult], workers: int | None) -> Summary:
    """Medians of the rounds; for multi-worker targets, whether work was spread over the workers.

    Raises:
        ValueError: no rounds.
    """
    if not rounds:
        raise ValueError("no rounds to summarize")
    requests = sum(r.requests for r in rounds)
    spread: bool | None = None
    shares: list[float] | None = None
    if workers is not None:
        cpu: dict[int, int] = {}
        conns: dict[int, int] = {}
        for r in rounds:
            for pid, ticks in r.cpu_ticks_by_pid.items():
                cpu[pid] = cpu.get(pid, 0) + ticks
            for pid, n in (r.connections_by_pid or {}).items():
                conns[pid] = conns.get(pid, 0) + n
        spread = spread_ok(cpu, workers) and spread_ok(conns, workers)
        total = sum(cpu.values())
        shares = [round(c / total, 3) for c in sorted(cpu.values(), reverse=True)] if total else []
    return Summary(
        rounds=len(rounds),
        requests=requests,
        rps=statistics.median(r.rps for r in rounds),
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
        cpu_us_per_request=statistics.median(r.cpu_us_per_request for r in rounds),
        upstream_cpu_us_per_request=statistics.median(
            r.upstream_cpu_us_per_request for r in rounds
        ),
        error_rate=sum(r.socket_errors + r.non_2xx for r in rounds) / max(1, requests),
        spread=spread,
        workers_share=shares,
    )


@dataclass(slots=True)
class Outcome:
    """A budget checked against this run."""

    subject: str
    reference: str
    limit: float | None
    ratio: float | None
    verdict: Verdict
    note: str


def judge(comparison: Comparison, summaries: Mapping[str, Summary]) -> Outcome:
    """Compare CPU per request of the subject with its reference (`INFO`: there is no budget)."""
    subject = summaries.get(comparison.subject)
    reference = summaries.get(comparison.reference)

    def outcome(ratio: float | None, verdict: Verdict, note: str) -> Outcome:
        return Outcome(
            comparison.subject, comparison.reference, comparison.limit, ratio, verdict, note
        )

    if subject is None or reference is None:
        missing = comparison.subject if subject is None else comparison.reference
        return outcome(None, "n/a", f"{missing} not measured")
    if reference.cpu_us_per_request <= 0:
        return outcome(None, "INVALID", f"{comparison.reference} used no measurable CPU")
    ratio = subject.cpu_us_per_request / reference.cpu_us_per_request
    for key, s in ((comparison.subject, subject), (comparison.reference, reference)):
        if s.error_rate > MAX_ERROR_RATE:
            return outcome(ratio, "INVALID", f"{key}: {s.error_rate:.2%} failed requests")
    if comparison.limit is None:
        return outcome(ratio, "INFO", "")
    if comparison.check_spread and not subject.spread:
        shares = ", ".join(f"{x:.0%}" for x in subject.workers_share or [])
        return outcome(ratio, "FAIL", f"load not spread over the workers (CPU shares {shares})")
    if ratio > comparison.limit:
        return outcome(ratio, "FAIL", "")
    return outcome(ratio, "PASS", "")


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

_LABELS = {t.key: t.label for t in TARGETS}


def markdown_table(
    summaries: Mapping[str, Summary],
    outcomes: Sequence[Outcome],
    skipped: Mapping[str, str],
    heading: str,
) -> str:
    """The results as a Markdown section ready to paste into docs/benchmarks.md.

    The Ratio column holds each target's budget (or, for the floor, its ratio to nginx); when the
    floor was measured, a "÷ floor" column and a line under the table split Bastion's cost into
    the floor and Bastion's own work.
    """
    by_subject = {o.subject: o for o in outcomes if o.reference != FLOOR}
    over_floor = {o.subject: o for o in outcomes if o.reference == FLOOR}
    floor = summaries.get(FLOOR)
    lines = [
        heading,
        "",
        "| Target | Req/s | p50 (ms) | p99 (ms) | Proxy CPU (µs/req) "
        "| Upstream CPU (µs/req) | Ratio | Budget | Result |" + (" ÷ floor |" if floor else ""),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |"
        + (" ---: |" if floor else ""),
    ]
    for target in TARGETS:
        s = summaries.get(target.key)
        if s is None:
            continue
        o = by_subject.get(target.key)
        proxy_cpu = "—" if target.service == "upstream" else f"{s.cpu_us_per_request:.1f}"
        if o is None:
            ratio = budget = result = "—"
        else:
            ratio = "—" if o.ratio is None else f"{o.ratio:.2f} of {_LABELS[o.reference]}"
            budget = "—" if o.limit is None else f"≤ {o.limit:.2f}"
            result = _verdict_cell(o)
        row = (
            f"| {target.label} | {s.rps:,.0f} | {s.p50_ms:.2f} | {s.p99_ms:.2f} | {proxy_cpu} "
            f"| {s.upstream_cpu_us_per_request:.1f} | {ratio} | {budget} | {result} |"
        )
        if floor:
            f = over_floor.get(target.key)
            if f is None or f.ratio is None:
                row += " — |"
            else:
                row += f" {f.ratio:.2f}{'' if f.verdict == 'INFO' else ' ' + _verdict_cell(f)} |"
        lines.append(row)
    bastion = summaries.get("bastion-http")
    if floor is not None and bastion is not None and bastion.cpu_us_per_request > 0:
        lines.append("")
        lines.append(floor_line(floor, bastion, summaries.get("nginx-http")))
    by_reason: dict[str, list[str]] = {}
    for key, reason in skipped.items():
        by_reason.setdefault(reason, []).append(_LABELS[key])
    if by_reason:
        lines.append("")
        lines.extend(f"- Skipped {', '.join(labels)}: {r}" for r, labels in by_reason.items())
    return "\n".join(lines) + "\n"


def _verdict_cell(o: Outcome) -> str:
    if o.verdict == "INFO":
        return "—"
    cell = f"**{o.verdict}**" if o.verdict in ("PASS", "FAIL") else o.verdict
    return f"{cell} ({o.note})" if o.note else cell


def floor_line(floor: Summary, bastion: Summary, nginx: Summary | None) -> str:
    """One sentence splitting Bastion's CPU per request into the Python floor and its own work."""
    f, b = floor.cpu_us_per_request, bastion.cpu_us_per_request
    line = (
        "- Floor: a minimal Python proxy on uvloop + httptools (`bench/floor_proxy.py`) costs "
        f"{f:.1f} µs/req"
    )
    if nginx is not None and nginx.cpu_us_per_request > 0:
        line += f" ({f / nginx.cpu_us_per_request:.2f} of nginx HTTP)"
    line += f". Bastion HTTP costs {b:.1f} µs/req"
    if f <= 0:
        return line + "; the floor used no measurable CPU."
    if b <= f:
        return line + f", {b / f:.2f} times the floor: no measurable cost of its own in this run."
    own = b - f
    return (
        line + f", {b / f:.2f} times the floor: {f:.1f} µs/req ({f / b:.0%}) is the floor and "
        f"{own:.1f} µs/req ({own / b:.0%}) Bastion's own work."
    )


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def read_stats() -> list[ProcStat]:
    """Every process visible in /proc (processes that vanish mid-scan are left out)."""
    stats: list[ProcStat] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="utf-8", errors="replace") as fh:
                stats.append(parse_proc_stat(fh.read()))
        except (OSError, ValueError):
            continue
    return stats


def sample_tree(root: int) -> dict[int, ProcStat]:
    """The CPU counters of `root` and its descendants now."""
    return tree_members(read_stats(), root)


def connections_by_pid(pids: Iterable[int], port: int) -> dict[int, int]:
    """How many ESTABLISHED connections on local `port` each process holds open."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as fh:
            inodes |= tcp_connections_by_inode(fh.read(), port)
    counts: dict[int, int] = {}
    for pid in pids:
        held: set[int] = set()
        fd_dir = f"/proc/{pid}/fd"
        with contextlib.suppress(OSError):
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"{fd_dir}/{fd}")
                    if link.startswith("socket:["):
                        inode = int(link[8:-1])
                        if inode in inodes:
                            held.add(inode)
        counts[pid] = len(held)
    return counts


@dataclass(slots=True)
class Service:
    """A process this harness started, with its output captured in a log file."""

    name: ServiceKey
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """The PID of the started process.

        Raises:
            BenchError: it was never started.
        """
        if self.proc is None:
            raise BenchError(f"{self.name} is not running")
        return self.proc.pid

    def start(self) -> None:
        """Start the process in its own session so its workers can be stopped with it."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO_DIR,
        )

    def exit_code(self) -> int | None:
        """The exit status, or None while it runs."""
        return None if self.proc is None else self.proc.poll()

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL to the process group this process leads if it lingers."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the group is this PID's own session
                proc.wait(timeout=grace)
        if proc is not None:
            # Workers left behind by a crashed parent still belong to the group it led.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines the process wrote."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join("    " + ln for ln in text.strip().splitlines()[-lines:])


def pinned(argv: list[str], cpu: int, settings: Settings) -> list[str]:
    """`argv` run under `taskset -c cpu` when pinning is on."""
    return ["taskset", "-c", str(cpu), *argv] if settings.pin else argv


def port_free(port: int) -> bool:
    """Whether nothing listens on HOST:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Probe:
    """One request sent to a target before it is measured."""

    status: int
    body: bytes
    tls_version: str | None
    cipher: str | None


def probe(scheme: str, port: int, path: str, ca_file: Path, timeout: float = 2.0) -> Probe:
    """GET `path` on HOST:port, checking the server certificate against our own CA file."""
    conn: http.client.HTTPConnection
    if scheme == "https":
        ctx = ssl.create_default_context(cafile=str(ca_file))
        conn = http.client.HTTPSConnection(HOST, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.connect()
        version = cipher = None
        if isinstance(conn.sock, ssl.SSLSocket):
            version = conn.sock.version()
            negotiated = conn.sock.cipher()
            cipher = negotiated[0] if negotiated else None
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return Probe(resp.status, resp.read(), version, cipher)
    finally:
        conn.close()


def wait_ready(service: Service, check: Callable[[], str | None], timeout: float) -> str | None:
    """Poll `check` (None = ready) until it passes; the reason it did not otherwise."""
    deadline = time.monotonic() + timeout
    reason = "no answer yet"
    while time.monotonic() < deadline:
        code = service.exit_code()
        if code is not None:
            return f"exited with status {code}"
        try:
            outcome = check()
        except (OSError, http.client.HTTPException) as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        if outcome is None:
            return None
        reason = outcome
        time.sleep(0.1)
    return f"not ready within {timeout:g} s ({reason})"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 and localhost: (cert, key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bastion-bench")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


class Bench:
    """Starts the services, measures the targets in interleaved rounds, stops everything."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.services: dict[ServiceKey, Service] = {}
        self.skipped: dict[str, str] = {}
        self.probes: dict[str, dict[str, object]] = {}
        self.clk_tck = os.sysconf("SC_CLK_TCK")
        self.cert, self.key = make_certificate(workdir)

    # -- services ------------------------------------------------------------------------------

    def _nginx(self, key: ServiceKey, template: str, cpu: int, values: dict[str, str]) -> Service:
        prefix = nginx_path(self.workdir)
        conf = self.workdir / f"{key}.nginx.conf"
        (self.workdir / f"{key}-tmp").mkdir(exist_ok=True)  # nginx creates only the last level
        conf.write_text(render((TEMPLATES / template).read_text(), {"PREFIX": prefix, **values}))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        argv = [nginx, "-p", prefix, "-c", str(conf), "-e", f"{prefix}/{key}-error.log"]
        return Service(key, pinned(argv, cpu, self.settings), self.workdir / f"{key}.log")

    def _bastion(self, key: ServiceKey, workers: int, ports: tuple[int, int, int]) -> Service:
        http_port, tls_port, admin_port = ports
        values = {
            "HTTP_BIND": json.dumps(f"{HOST}:{http_port}"),
            "TLS_BIND": json.dumps(f"{HOST}:{tls_port}"),
            "CERT": json.dumps(str(self.cert)),
            "KEY": json.dumps(str(self.key)),
            "ADMIN_BIND": json.dumps(f"{HOST}:{admin_port}"),
            "ADMIN_TOKEN": json.dumps(ADMIN_TOKEN),
            "UPSTREAM_URL": json.dumps(f"http://{HOST}:{UPSTREAM_PORT}"),
        }
        conf = self.workdir / f"{key}.yaml"
        conf.write_text(render((TEMPLATES / "bastion.yaml").read_text(), values))
        argv = [str(self.settings.bastion), "run", "-c", str(conf), "--workers", str(workers)]
        return Service(key, pinned(argv, PROXY_CPU, self.settings), self.workdir / f"{key}.log")

    def _floor(self) -> Service:
        # The interpreter running this harness (.venv's) has uvloop and httptools.
        argv = [
            sys.executable,
            str(FLOOR_PROXY),
            "--listen",
            f"{HOST}:{FLOOR_HTTP_PORT}",
            "--upstream",
            f"{HOST}:{UPSTREAM_PORT}",
        ]
        return Service("floor", pinned(argv, PROXY_CPU, self.settings), self.workdir / "floor.log")

    def _launch(self, service: Service, ready: Callable[[], str | None]) -> str | None:
        print(f"bench: starting {service.name}: {' '.join(service.argv)}", file=sys.stderr)
        self.services[service.name] = service
        try:
            service.start()
        except OSError as exc:
            return f"could not start: {exc}"
        reason = wait_ready(service, ready, self.settings.ready_timeout)
        if reason is not None:
            tail = service.log_tail()
            service.stop()
            if tail:
                print(f"bench: {service.name} output ends with:\n{tail}", file=sys.stderr)
                reason += f"; last output: `{tail.splitlines()[-1].strip()}`"
        return reason

    def _http_ok(self, port: int, path: str = "/") -> Callable[[], str | None]:
        def check() -> str | None:
            got = probe("http", port, path, self.cert)
            return None if got.status == 200 else f"HTTP {got.status}"

        return check

    def start_services(self, wanted: Sequence[Target]) -> None:
        """Start the upstream and every proxy a wanted target needs.

        Raises:
            BenchError: the upstream cannot start, so nothing can be measured.
        """
        needed = {t.service for t in wanted}
        ports_of: dict[ServiceKey, tuple[int, ...]] = {
            "upstream": (UPSTREAM_PORT,),
            "nginx": (NGINX_HTTP_PORT, NGINX_TLS_PORT),
            "bastion": (BASTION_HTTP_PORT, BASTION_TLS_PORT, BASTION_ADMIN_PORT),
            "bastion2": (BASTION2_HTTP_PORT, BASTION2_TLS_PORT, BASTION2_ADMIN_PORT),
            "floor": (FLOOR_HTTP_PORT,),
        }
        busy = {
            key: [p for p in ports_of[key] if not port_free(p)] for key in ("upstream", *needed)
        }
        if busy["upstream"]:
            raise BenchError(f"port {UPSTREAM_PORT} is in use; stop whatever listens there")

        upstream = self._nginx(
            "upstream",
            "upstream.nginx.conf",
            LOAD_CPU,
            {"UPSTREAM_PORT": str(UPSTREAM_PORT), "BODY": UPSTREAM_BODY.decode()},
        )
        reason = self._launch(upstream, self._http_ok(UPSTREAM_PORT))
        if reason is not None:
            raise BenchError(f"upstream nginx: {reason}")

        starters: dict[ServiceKey, Callable[[], tuple[Service, Callable[[], str | None]]]] = {
            "nginx": lambda: (
                self._nginx(
                    "nginx",
                    "proxy.nginx.conf",
                    PROXY_CPU,
                    {
                        "UPSTREAM_PORT": str(UPSTREAM_PORT),
                        "HTTP_PORT": str(NGINX_HTTP_PORT),
                        "TLS_PORT": str(NGINX_TLS_PORT),
                        "CERT": nginx_path(self.cert),
                        "KEY": nginx_path(self.key),
                    },
                ),
                self._http_ok(NGINX_HTTP_PORT),
            ),
            "floor": lambda: (self._floor(), self._http_ok(FLOOR_HTTP_PORT)),
            "bastion": lambda: (
                self._bastion(
                    "bastion", 1, (BASTION_HTTP_PORT, BASTION_TLS_PORT, BASTION_ADMIN_PORT)
                ),
                self._http_ok(BASTION_ADMIN_PORT, "/ready"),
            ),
            "bastion2": lambda: (
                self._bastion(
                    "bastion2", 2, (BASTION2_HTTP_PORT, BASTION2_TLS_PORT, BASTION2_ADMIN_PORT)
                ),
                self._http_ok(BASTION2_ADMIN_PORT, "/ready"),
            ),
        }
        for key in ("nginx", "floor", "bastion", "bastion2"):
            if key not in needed:
                continue
            reason = None
            if busy[key]:
                reason = f"port(s) {', '.join(map(str, busy[key]))} in use"
            elif key.startswith("bastion") and not os.access(self.settings.bastion, os.X_OK):
                reason = f"{self.settings.bastion} is not an executable"
            else:
                service, ready = starters[key]()
                reason = self._launch(service, ready)
            if reason is not None:
                for t in wanted:
                    if t.service == key:
                        self.skipped[t.key] = reason
                print(f"bench: SKIP {key}: {reason}", file=sys.stderr)

    def check_targets(self, wanted: Sequence[Target]) -> list[Target]:
        """Send one request to each target; keep those that answer with the upstream's body."""
        ready: list[Target] = []
        for t in wanted:
            if t.key in self.skipped:
                continue
            try:
                got = probe(t.scheme, t.port, "/", self.cert)
            except (OSError, http.client.HTTPException) as exc:
                self.skipped[t.key] = f"probe failed: {type(exc).__name__}: {exc}"
            else:
                self.probes[t.key] = {
                    "status": got.status,
                    "tls_version": got.tls_version,
                    "cipher": got.cipher,
                }
                if got.status != 200 or got.body != UPSTREAM_BODY:
                    self.skipped[t.key] = (
                        f"answered HTTP {got.status} with {len(got.body)} bytes instead of the "
                        "upstream's 200 (a plain listener without `plaintext: true` redirects)"
                    )
                elif t.scheme == "https" and got.tls_version != "TLSv1.3":
                    self.skipped[t.key] = f"negotiated {got.tls_version}, not TLSv1.3"
                else:
                    ready.append(t)
                    continue
            print(f"bench: SKIP {t.key}: {self.skipped[t.key]}", file=sys.stderr)
        return ready

    # -- measurement ---------------------------------------------------------------------------

    def _wrk_argv(self, target: Target, duration: int) -> list[str]:
        s = self.settings
        argv = [
            "wrk",
            f"-t{s.threads}",
            f"-c{s.connections}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            "--latency",
            target.url,
        ]
        return pinned(argv, LOAD_CPU, s)

    def warm_up(self, targets: Sequence[Target]) -> None:
        """Run each target briefly so caches, pools and lazy imports are in place."""
        if self.settings.warmup <= 0:
            return
        for t in targets:
            print(f"bench: warm-up {t.key} ({self.settings.warmup} s)", file=sys.stderr)
            subprocess.run(
                self._wrk_argv(t, self.settings.warmup),
                capture_output=True,
                timeout=self.settings.warmup + 30,
                check=False,
            )

    def measure(self, target: Target, round_no: int) -> RoundResult:
        """One wrk run with the CPU of the target's and the upstream's process trees around it.

        Raises:
            BenchError: wrk failed or printed no report.
        """
        s = self.settings
        service = self.services[target.service]
        upstream = self.services["upstream"]
        before = sample_tree(service.pid)
        up_before = before if service is upstream else sample_tree(upstream.pid)
        wrk = subprocess.Popen(
            self._wrk_argv(target, s.duration),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        conns: dict[int, int] | None = None
        try:
            if target.service in MULTI_WORKER:
                time.sleep(s.duration / 2)
                conns = connections_by_pid(sample_tree(service.pid), target.port)
            out, err = wrk.communicate(timeout=s.duration + 30)
        except subprocess.TimeoutExpired:
            raise BenchError(f"wrk did not finish against {target.key}") from None
        finally:
            if wrk.poll() is None:  # interrupted or timed out: wrk is ours to stop
                wrk.kill()
                wrk.communicate()
        after = sample_tree(service.pid)
        up_after = after if service is upstream else sample_tree(upstream.pid)
        if wrk.returncode != 0:
            raise BenchError(f"wrk failed against {target.key}: {err.strip() or out.strip()}")
        try:
            report = parse_wrk_output(out)
        except ValueError as exc:
            raise BenchError(str(exc)) from None
        ticks, by_pid = tree_cpu_delta(before, after)
        up_ticks, _ = tree_cpu_delta(up_before, up_after)
        per_req = 1e6 / self.clk_tck / max(1, report.requests)
        return RoundResult(
            target=target.key,
            round=round_no,
            requests=report.requests,
            duration_s=report.duration_s,
            rps=report.rps,
            p50_ms=report.p50_ms,
            p75_ms=report.p75_ms,
            p90_ms=report.p90_ms,
            p99_ms=report.p99_ms,
            socket_errors=report.socket_errors,
            non_2xx=report.non_2xx,
            cpu_ticks=ticks,
            cpu_us_per_request=ticks * per_req,
            upstream_cpu_us_per_request=up_ticks * per_req,
            cpu_ticks_by_pid=by_pid,
            connections_by_pid=conns,
        )

    def run_rounds(self, targets: Sequence[Target]) -> dict[str, list[RoundResult]]:
        """Interleaved rounds; each round starts one target later so no target always goes first."""
        results: dict[str, list[RoundResult]] = {t.key: [] for t in targets}
        for r in range(self.settings.rounds):
            shift = r % len(targets)
            for t in (*targets[shift:], *targets[:shift]):
                if t.key in self.skipped:
                    continue
                if self.services[t.service].exit_code() is not None:
                    self.skipped[t.key] = f"{t.service} exited during the run"
                    print(f"bench: SKIP {t.key}: {self.skipped[t.key]}", file=sys.stderr)
                    continue
                try:
                    res = self.measure(t, r + 1)
                except BenchError as exc:
                    print(f"bench: {t.key} round {r + 1} failed: {exc}", file=sys.stderr)
                    continue
                results[t.key].append(res)
                print(
                    f"bench: round {r + 1}/{self.settings.rounds} {t.key:<14} "
                    f"{res.rps:>10,.0f} req/s  p50 {res.p50_ms:6.2f} ms  p99 {res.p99_ms:6.2f} ms"
                    f"  CPU {res.cpu_us_per_request:6.1f} µs/req"
                    f"  (upstream {res.upstream_cpu_us_per_request:5.1f})",
                    file=sys.stderr,
                )
        return results

    def stop_all(self) -> None:
        """Stop the proxies first, then the upstream."""
        for service in reversed(list(self.services.values())):
            service.stop()


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def _first_line(argv: list[str], *, need_success: bool = False) -> str:
    """The first line a command prints on stdout or stderr ("" when it fails to run)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if need_success and done.returncode != 0:
        return ""
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else ""


def host_info(settings: Settings) -> dict[str, object]:
    """What the numbers were measured on."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        bastion_version = metadata.version("bastion-gateway")
    except metadata.PackageNotFoundError:
        bastion_version = ""
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": _first_line(["nginx", "-v"]).removeprefix("nginx version: "),
        "wrk": _first_line(["wrk", "-v"]).split(" [")[0],
        "bastion": bastion_version,
        "git_commit": _first_line(
            ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"], need_success=True
        ),
        "pinned": settings.pin,
    }


def _check_tools(settings: Settings) -> None:
    tools = ["nginx", "wrk"] + (["taskset"] if settings.pin else [])
    missing = [t for t in tools if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if missing:
        raise BenchError(f"missing {', '.join(missing)}; run `bash bench/run.sh` to install them")
    if settings.pin:
        allowed = os.sched_getaffinity(0)
        if not {PROXY_CPU, LOAD_CPU} <= allowed:
            raise BenchError(
                f"pinning needs CPUs {PROXY_CPU} and {LOAD_CPU} (allowed: {sorted(allowed)}); "
                "pass --no-pin on smaller machines"
            )


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a budget fails, 2 when the harness cannot run."""
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = dt.datetime.now(dt.UTC)
    try:
        _check_tools(settings)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    wanted = [t for t in TARGETS if t.key in settings.only]
    workdir = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    bench: Bench | None = None
    try:
        bench = Bench(settings, workdir)
        bench.start_services(wanted)
        targets = bench.check_targets(wanted)
        if not targets:
            raise BenchError("no target is ready to measure")
        bench.warm_up(targets)
        results = bench.run_rounds(targets)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if bench is not None:
            bench.stop_all()
        if settings.keep_temp:
            print(f"bench: configs and logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    summaries: dict[str, Summary] = {}
    for t in targets:
        if results[t.key]:
            summaries[t.key] = summarize(results[t.key], MULTI_WORKER.get(t.service))
        elif t.key not in bench.skipped:
            bench.skipped[t.key] = "every round failed"
    outcomes = [judge(c, summaries) for c in wanted_comparisons(settings.only)]
    host = host_info(settings)
    heading = (
        f"### Pass-through, {started:%Y-%m-%d}: {settings.rounds} round(s) of "
        f"{settings.duration} s, {settings.connections} connections\n\n"
        f"{host['cpu'] or 'unknown CPU'}, {host['cpus']} CPUs, Linux {host['kernel']}; "
        f"{host['nginx']}; {host['wrk']}; Python {host['python']}"
        f"{'; commit ' + str(host['git_commit']) if host['git_commit'] else ''}. "
        + (
            f"Proxy on CPU {PROXY_CPU}; wrk and the upstream on CPU {LOAD_CPU}. "
            if settings.pin
            else "Not pinned. "
        )
        + "CPU = utime+stime of the proxy's processes ÷ requests; medians of the rounds."
    )
    table = markdown_table(summaries, outcomes, bench.skipped, heading)

    settings.results_dir.mkdir(parents=True, exist_ok=True)
    out_path = settings.results_dir / f"{started:%Y-%m-%d-%H%M%S}.json"
    document = {
        "schema": 1,
        "started_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "settings": {
            "duration_s": settings.duration,
            "rounds": settings.rounds,
            "connections": settings.connections,
            "wrk_threads": settings.threads,
            "warmup_s": settings.warmup,
            "proxy_cpu": PROXY_CPU if settings.pin else None,
            "load_cpu": LOAD_CPU if settings.pin else None,
            "clock_ticks_per_s": bench.clk_tck,
            "upstream_body_bytes": len(UPSTREAM_BODY),
        },
        "host": host,
        "targets": {
            t.key: {
                "label": t.label,
                "url": t.url,
                "probe": bench.probes.get(t.key),
                "skipped": bench.skipped.get(t.key),
                "summary": asdict(summaries[t.key]) if t.key in summaries else None,
                "rounds": [asdict(r) for r in results.get(t.key, [])],
            }
            for t in wanted
        },
        "comparisons": [asdict(o) for o in outcomes],
        "markdown": table,
    }
    out_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")

    print()
    print(table)
    print(f"Raw results: {out_path}")
    return 1 if any(o.verdict == "FAIL" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
