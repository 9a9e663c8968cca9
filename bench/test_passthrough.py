"""Tests of the pass-through harness's pure parts and of the floor proxy it calibrates against."""

from __future__ import annotations

import asyncio
from pathlib import Path

import floor_proxy
import pytest
import uvloop
import yaml
from hypothesis import given, strategies as st
from passthrough import (
    COMPARISONS,
    FLOOR,
    TARGETS,
    TEMPLATES,
    UPSTREAM_BODY,
    BenchError,
    Comparison,
    Outcome,
    ProcStat,
    RoundResult,
    Summary,
    floor_line,
    judge,
    markdown_table,
    nginx_path,
    parse_args,
    parse_proc_stat,
    parse_wrk_output,
    render,
    spread_ok,
    summarize,
    tcp_connections_by_inode,
    tree_cpu_delta,
    tree_members,
    wanted_comparisons,
)

WRK_REPORT = """\
Running 3s test @ http://127.0.0.1:18081/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   610.12us  300.01us  12.47ms   95.10%
    Req/Sec    50.20k     2.10k   55.00k    80.00%
  Latency Distribution
     50%  540.00us
     75%  650.00us
     90%  800.00us
     99%    2.27ms
  149850 requests in 3.00s, 30.01MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  49944.12
Transfer/sec:     10.00MB
"""


def test_parse_wrk_output_reads_counts_rate_and_percentiles_in_ms() -> None:
    got = parse_wrk_output(WRK_REPORT)

    assert got.requests == 149850
    assert got.duration_s == pytest.approx(3.0)
    assert got.rps == pytest.approx(49944.12)
    assert got.p50_ms == pytest.approx(0.54)
    assert got.p99_ms == pytest.approx(2.27)
    assert got.socket_errors == 5
    assert got.non_2xx == 7
    assert got.error_rate == pytest.approx(12 / 149850)


def test_parse_wrk_output_counts_no_errors_when_wrk_reports_none() -> None:
    clean = "\n".join(
        ln for ln in WRK_REPORT.splitlines() if "errors" not in ln and "Non-2xx" not in ln
    )

    got = parse_wrk_output(clean)

    assert (got.socket_errors, got.non_2xx) == (0, 0)


@pytest.mark.parametrize(
    "drop",
    ["     99%", "requests in", "Requests/sec"],
    ids=["no-distribution", "no-request-count", "no-rate"],
)
def test_parse_wrk_output_rejects_incomplete_reports(drop: str) -> None:
    partial = "\n".join(ln for ln in WRK_REPORT.splitlines() if drop not in ln)

    with pytest.raises(ValueError, match="wrk --latency"):
        parse_wrk_output(partial)


def _wrk_time(us: float) -> str:
    """Format a duration the way wrk prints it."""
    if us < 1000:
        return f"{us:.2f}us"
    if us < 1_000_000:
        return f"{us / 1000:.2f}ms"
    return f"{us / 1_000_000:.2f}s"


@given(
    requests=st.integers(min_value=0, max_value=10**9),
    rps=st.floats(min_value=0, max_value=1e7, allow_nan=False),
    latencies=st.lists(
        st.floats(min_value=1, max_value=3e7, allow_nan=False), min_size=4, max_size=4
    ),
)
def test_parse_wrk_output_reads_any_unit_wrk_prints(
    requests: int, rps: float, latencies: list[float]
) -> None:
    p50, p75, p90, p99 = sorted(latencies)
    text = (
        "  Latency Distribution\n"
        + "".join(
            f"     {pct}%  {_wrk_time(us)}\n"
            for pct, us in ((50, p50), (75, p75), (90, p90), (99, p99))
        )
        + f"  {requests} requests in 10.00s, 1.00MB read\nRequests/sec: {rps:10.2f}\n"
    )

    got = parse_wrk_output(text)

    assert got.requests == requests
    assert got.rps == pytest.approx(rps, abs=0.006)
    # wrk keeps two decimals of the unit it picked: at most 0.5 % off, or 0.005 µs.
    assert got.p50_ms * 1000 == pytest.approx(p50, rel=0.005, abs=0.006)
    assert got.p99_ms * 1000 == pytest.approx(p99, rel=0.005, abs=0.006)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "4242 (nginx) S 4241 4242 4242 0 -1 4194560 1 0 0 0 150 25 3 4 20 0 1 0",
            ProcStat(pid=4242, ppid=4241, own=175, reaped=7),
        ),
        (
            "77 (we ird) (name)) R 1 77 77 0 -1 0 0 0 0 0 9 1 0 0 20 0 1 0",
            ProcStat(pid=77, ppid=1, own=10, reaped=0),
        ),
    ],
    ids=["nginx-worker", "command-with-spaces-and-parentheses"],
)
def test_parse_proc_stat_reads_parent_and_cpu_ticks(line: str, expected: ProcStat) -> None:
    assert parse_proc_stat(line) == expected


@pytest.mark.parametrize(
    "line", ["", "12 (x) S 1 2", "not a stat line"], ids=["empty", "truncated", "garbage"]
)
def test_parse_proc_stat_rejects_other_text(line: str) -> None:
    with pytest.raises(ValueError, match="stat"):
        parse_proc_stat(line)


def test_tree_members_keeps_descendants_and_leaves_out_other_processes() -> None:
    stats = [
        ProcStat(10, 1, 0, 0),  # proxy master
        ProcStat(11, 10, 0, 0),  # worker
        ProcStat(12, 11, 0, 0),  # worker's helper
        ProcStat(20, 1, 0, 0),  # unrelated
        ProcStat(21, 20, 0, 0),
    ]

    assert sorted(tree_members(stats, 10)) == [10, 11, 12]
    assert tree_members(stats, 99) == {}


def test_tree_cpu_delta_keeps_time_of_a_worker_that_exited_and_was_reaped() -> None:
    before = {10: ProcStat(10, 1, 5, 0), 11: ProcStat(11, 10, 100, 0)}
    # Worker 11 ran 30 more ticks, exited, and its 130 ticks moved into the master's reaped count;
    # worker 12 started during the run.
    after = {10: ProcStat(10, 1, 6, 130), 12: ProcStat(12, 10, 40, 0)}

    total, per_pid = tree_cpu_delta(before, after)

    assert total == 1 + 30 + 40
    assert per_pid == {10: 1, 12: 40}


@pytest.mark.parametrize(
    ("counts", "workers", "expected"),
    [
        ({1: 0, 2: 26, 3: 24}, 2, True),
        ({1: 0, 2: 45, 3: 5}, 2, False),
        ({2: 50}, 2, False),
        ({1: 0, 2: 0, 3: 0}, 2, False),
        ({2: 30, 3: 20}, 1, True),
    ],
    ids=["even", "lopsided", "one-worker-only", "nothing", "single-worker"],
)
def test_spread_ok_requires_every_worker_to_carry_a_share(
    counts: dict[int, int], workers: int, expected: bool
) -> None:
    assert spread_ok(counts, workers) is expected


def test_tcp_connections_by_inode_keeps_established_sockets_on_the_port() -> None:
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode\n"
        "   0: 0100007F:4693 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 111 1\n"
        "   1: 0100007F:4693 0100007F:C350 01 00000000:00000000 00:00000000 00000000 0 0 222 1\n"
        "   2: 0100007F:C350 0100007F:4693 01 00000000:00000000 00:00000000 00000000 0 0 333 1\n"
        "   3: 0100007F:4694 0100007F:C351 01 00000000:00000000 00:00000000 00000000 0 0 444 1\n"
    )

    assert tcp_connections_by_inode(table, 0x4693) == {222}


def _summary(cpu: float, *, error_rate: float = 0.0, spread: bool | None = None) -> Summary:
    return Summary(
        rounds=3,
        requests=100_000,
        rps=10_000.0,
        p50_ms=1.0,
        p99_ms=2.0,
        cpu_us_per_request=cpu,
        upstream_cpu_us_per_request=6.0,
        error_rate=error_rate,
        spread=spread,
        workers_share=[0.5, 0.5] if spread else [1.0, 0.0],
    )


PLAIN = Comparison("bastion-http", "nginx-http", 1.3)
WORKERS = Comparison("bastion2-http", "bastion-http", 1.1, check_spread=True)


@pytest.mark.parametrize(
    ("comparison", "summaries", "verdict"),
    [
        (PLAIN, {"bastion-http": _summary(15.0), "nginx-http": _summary(12.0)}, "PASS"),
        (PLAIN, {"bastion-http": _summary(15.7), "nginx-http": _summary(12.0)}, "FAIL"),
        (PLAIN, {"nginx-http": _summary(12.0)}, "n/a"),
        (
            PLAIN,
            {"bastion-http": _summary(10.0, error_rate=0.5), "nginx-http": _summary(12.0)},
            "INVALID",
        ),
        (PLAIN, {"bastion-http": _summary(10.0), "nginx-http": _summary(0.0)}, "INVALID"),
        (
            WORKERS,
            {"bastion2-http": _summary(15.0, spread=True), "bastion-http": _summary(14.0)},
            "PASS",
        ),
        (
            WORKERS,
            {"bastion2-http": _summary(14.0, spread=False), "bastion-http": _summary(14.0)},
            "FAIL",
        ),
        (
            WORKERS,
            {"bastion2-http": _summary(16.0, spread=True), "bastion-http": _summary(14.0)},
            "FAIL",
        ),
    ],
    ids=[
        "within-budget",
        "over-budget",
        "subject-skipped",
        "subject-failed-requests",
        "reference-used-no-cpu",
        "workers-spread-and-cheap",
        "workers-not-spread",
        "workers-too-costly",
    ],
)
def test_judge_applies_the_budget_to_cpu_per_request(
    comparison: Comparison, summaries: dict[str, Summary], verdict: str
) -> None:
    assert judge(comparison, summaries).verdict == verdict


def test_budgets_match_the_design_targets() -> None:
    limits = {(c.subject, c.reference): c.limit for c in COMPARISONS}

    assert limits[("bastion-http", "nginx-http")] == 1.3
    assert limits[("bastion-tls", "nginx-tls")] == 1.5
    assert limits[("bastion2-http", "bastion-http")] == 1.1


def test_summarize_takes_medians_and_detects_an_idle_worker() -> None:
    def run(n: int, cpu: float, by_pid: dict[int, int], conns: dict[int, int]) -> RoundResult:
        return RoundResult(
            target="bastion2-http",
            round=n,
            requests=1000,
            duration_s=1.0,
            rps=1000.0 * n,
            p50_ms=float(n),
            p75_ms=float(n),
            p90_ms=float(n),
            p99_ms=float(n),
            socket_errors=0,
            non_2xx=0,
            cpu_ticks=10,
            cpu_us_per_request=cpu,
            upstream_cpu_us_per_request=5.0,
            cpu_ticks_by_pid=by_pid,
            connections_by_pid=conns,
        )

    busy = [
        run(n, c, {1: 0, 2: 5, 3: 5}, {2: 25, 3: 25}) for n, c in ((1, 9.0), (2, 30.0), (3, 10.0))
    ]
    idle = [run(1, 10.0, {1: 0, 2: 10, 3: 0}, {2: 50, 3: 0})]

    summary = summarize(busy, workers=2)
    assert summary.cpu_us_per_request == 10.0
    assert summary.rps == 2000.0
    assert summary.spread is True
    assert summarize(idle, workers=2).spread is False
    assert summarize(busy, workers=None).spread is None


def test_markdown_table_lists_measured_targets_verdicts_and_skips() -> None:
    summaries = {"nginx-http": _summary(12.0), "bastion-http": _summary(15.0)}
    outcomes = [Outcome("bastion-http", "nginx-http", 1.3, 1.25, "PASS", "")]
    skipped = {"bastion-tls": "not ready within 10 s", "bastion2-tls": "not ready within 10 s"}

    table = markdown_table(summaries, outcomes, skipped, "### Run")

    rows = [ln for ln in table.splitlines() if ln.startswith("| ")]
    assert len(rows) == 4  # header, alignment and two targets
    assert "| Bastion HTTP | 10,000 | 1.00 | 2.00 | 15.0 | 6.0 | 1.25 of nginx HTTP" in table
    assert "**PASS**" in table
    assert "- Skipped Bastion TLS 1.3, Bastion, 2 workers, TLS 1.3: not ready within 10 s" in table


def test_render_fills_every_placeholder() -> None:
    assert render("listen @HOST@:@PORT@;", {"HOST": "127.0.0.1", "PORT": "1"}) == (
        "listen 127.0.0.1:1;"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [({"HOST": "h"}, "@PORT@"), ({"HOST": "h", "PORT": "1", "EXTRA": "x"}, "EXTRA")],
    ids=["missing-value", "unused-value"],
)
def test_render_refuses_mismatched_values(values: dict[str, str], message: str) -> None:
    with pytest.raises(KeyError, match=message):
        render("@HOST@:@PORT@", values)


@pytest.mark.parametrize(
    "path",
    ['/srv/a"b', "/srv/a;b", "/srv/$x", "relative/dir"],
    ids=["quote", "semicolon", "dollar", "relative"],
)
def test_nginx_path_refuses_paths_nginx_would_misread(path: str) -> None:
    with pytest.raises(BenchError):
        nginx_path(Path(path))


@pytest.mark.parametrize(
    ("template", "values"),
    [
        ("upstream.nginx.conf", {"PREFIX": "/srv/b", "UPSTREAM_PORT": "1", "BODY": "x"}),
        (
            "proxy.nginx.conf",
            {
                "PREFIX": "/srv/b",
                "UPSTREAM_PORT": "1",
                "HTTP_PORT": "2",
                "TLS_PORT": "3",
                "CERT": "/srv/b/c",
                "KEY": "/srv/b/k",
            },
        ),
    ],
    ids=["upstream", "proxy"],
)
def test_nginx_templates_render_with_the_values_the_harness_passes(
    template: str, values: dict[str, str]
) -> None:
    text = render((TEMPLATES / template).read_text(), values)

    assert "access_log off;" in text
    assert "worker_processes 1;" in text


def test_bastion_template_renders_the_config_contract() -> None:
    values = {
        "HTTP_BIND": '"127.0.0.1:18082"',
        "TLS_BIND": '"127.0.0.1:18444"',
        "CERT": '"/srv/b/cert.pem"',
        "KEY": '"/srv/b/key.pem"',
        "ADMIN_BIND": '"127.0.0.1:18901"',
        "ADMIN_TOKEN": '"bench-admin-token-0123456789"',
        "UPSTREAM_URL": '"http://127.0.0.1:18080"',
    }

    config = yaml.safe_load(render((TEMPLATES / "bastion.yaml").read_text(), values))

    assert config == {
        "listeners": [
            {"bind": "127.0.0.1:18082", "plaintext": True},
            {
                "bind": "127.0.0.1:18444",
                "tls": {"certificate": "/srv/b/cert.pem", "private_key": "/srv/b/key.pem"},
            },
        ],
        "admin": {"bind": "127.0.0.1:18901", "token": "bench-admin-token-0123456789"},
        "access_log": {"sink": "off"},
        "services": [
            {
                "name": "bench",
                "upstream": {"targets": ["http://127.0.0.1:18080"]},
                "routes": [{"name": "all", "paths": ["/"]}],
            }
        ],
    }


def test_upstream_body_is_about_100_bytes_of_nginx_safe_text() -> None:
    assert len(UPSTREAM_BODY) == 100
    assert not set(UPSTREAM_BODY.decode()) & set('"\\$;{}')


def test_parse_args_quick_means_one_short_round(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_DURATION", "20")
    monkeypatch.setenv("BENCH_ROUNDS", "5")

    assert (parse_args([]).duration, parse_args([]).rounds) == (20, 5)
    quick = parse_args(["--quick"])
    assert (quick.duration, quick.rounds) == (3, 1)


def test_parse_args_defaults_to_three_rounds_of_ten_seconds_with_50_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("BENCH_DURATION", "BENCH_ROUNDS", "BENCH_CONNECTIONS", "BENCH_ONLY"):
        monkeypatch.delenv(name, raising=False)

    got = parse_args([])

    assert (got.duration, got.rounds, got.connections) == (10, 3, 50)
    assert "bastion-tls" in got.only


def test_parse_args_rejects_unknown_targets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--only", "direct,envoy"])

    assert "envoy" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The floor: a minimal Python proxy as the calibration point for Bastion's own cost
# ---------------------------------------------------------------------------------------------

FLOOR_VS_NGINX = Comparison(FLOOR, "nginx-http", None)
BASTION_VS_FLOOR = Comparison("bastion-http", FLOOR, None)


def test_floor_is_a_plain_http_target_with_calibration_ratios_and_no_budget() -> None:
    floor = next(t for t in TARGETS if t.key == FLOOR)
    calibrations = {(c.subject, c.reference) for c in COMPARISONS if c.limit is None}

    assert (floor.scheme, floor.service) == ("http", "floor")
    assert (FLOOR, "nginx-http") in calibrations
    assert ("bastion-http", FLOOR) in calibrations
    assert all(FLOOR in pair for pair in calibrations)


@pytest.mark.parametrize(
    ("comparison", "summaries", "verdict"),
    [
        (FLOOR_VS_NGINX, {FLOOR: _summary(30.0), "nginx-http": _summary(12.0)}, "INFO"),
        (BASTION_VS_FLOOR, {"bastion-http": _summary(90.0), FLOOR: _summary(14.0)}, "INFO"),
        (
            BASTION_VS_FLOOR,
            {"bastion-http": _summary(30.0), FLOOR: _summary(14.0, error_rate=0.01)},
            "INVALID",
        ),
        (BASTION_VS_FLOOR, {"bastion-http": _summary(30.0)}, "n/a"),
    ],
    ids=["floor-far-above-nginx", "bastion-far-above-floor", "floor-failed-requests", "no-floor"],
)
def test_judge_reports_calibration_ratios_without_passing_or_failing(
    comparison: Comparison, summaries: dict[str, Summary], verdict: str
) -> None:
    outcome = judge(comparison, summaries)

    assert outcome.verdict == verdict
    if verdict != "n/a":
        subject, reference = summaries[comparison.subject], summaries[comparison.reference]
        assert outcome.ratio == pytest.approx(
            subject.cpu_us_per_request / reference.cpu_us_per_request
        )


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        (
            ["bastion-http"],
            {("bastion-http", "nginx-http")},
        ),
        (
            ["nginx-http", FLOOR, "bastion-http"],
            {("bastion-http", "nginx-http"), (FLOOR, "nginx-http"), ("bastion-http", FLOOR)},
        ),
        ([FLOOR], set()),
    ],
    ids=["budget-without-its-reference", "floor-run", "floor-alone"],
)
def test_wanted_comparisons_keeps_budgets_and_only_complete_calibrations(
    only: list[str], expected: set[tuple[str, str]]
) -> None:
    assert {(c.subject, c.reference) for c in wanted_comparisons(only)} == expected


def test_markdown_table_shows_the_floor_and_bastion_over_it() -> None:
    summaries = {
        "nginx-http": _summary(12.0),
        FLOOR: _summary(15.0),
        "bastion-http": _summary(30.0),
    }
    outcomes = [judge(c, summaries) for c in wanted_comparisons(summaries)]

    table = markdown_table(summaries, outcomes, {}, "### Run")

    rows = {ln.split(" | ")[0]: ln for ln in table.splitlines() if ln.startswith("| ")}
    assert rows["| Target"].endswith("| Result | ÷ floor |")
    assert rows["| Python floor HTTP"].endswith("| 15.0 | 6.0 | 1.25 of nginx HTTP | — | — | — |")
    assert rows["| Bastion HTTP"].endswith("| 2.50 of nginx HTTP | ≤ 1.30 | **FAIL** | 2.00 |")
    assert rows["| nginx HTTP"].endswith("| — | — | — | — |")
    assert "Bastion HTTP costs 30.0 µs/req, 2.00 times the floor" in table
    assert "15.0 µs/req (50%) Bastion's own work" in table


def test_markdown_table_has_no_floor_column_when_the_floor_did_not_run() -> None:
    summaries = {"nginx-http": _summary(12.0), "bastion-http": _summary(15.0)}
    outcomes = [judge(c, summaries) for c in wanted_comparisons(summaries)]

    table = markdown_table(summaries, outcomes, {}, "### Run")

    assert "floor" not in table


@pytest.mark.parametrize(
    ("floor", "bastion", "expected"),
    [
        (10.0, 40.0, "10.0 µs/req (25%) is the floor and 30.0 µs/req (75%) Bastion's own work"),
        (10.0, 9.0, "0.90 times the floor: no measurable cost of its own"),
        (0.0, 9.0, "the floor used no measurable CPU"),
    ],
    ids=["bastion-above-floor", "bastion-below-floor-in-a-noisy-run", "floor-used-no-cpu"],
)
def test_floor_line_splits_bastion_cost_into_floor_and_own_work(
    floor: float, bastion: float, expected: str
) -> None:
    line = floor_line(_summary(floor), _summary(bastion), _summary(20.0))

    assert expected in line
    assert f"costs {floor:.1f} µs/req ({floor / 20.0:.2f} of nginx HTTP)" in line


async def _recording_upstream(
    seen: list[bytes], connections: list[int]
) -> tuple[asyncio.Server, int]:
    """An upstream that answers each request with its own bytes as the body."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while head := await _read_head(reader):
            length = _content_length(head)
            request = head + await reader.readexactly(length)
            seen.append(request)
            writer.write(
                b"HTTP/1.1 201 Made Here\r\nX-Up: 1\r\nContent-Length: %d\r\n\r\n%s"
                % (len(request), request)
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""


def _content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


@pytest.mark.integration
def test_floor_proxy_relays_pipelined_requests_over_one_kept_alive_upstream_connection() -> None:
    requests = [
        b"GET /a?x=1 HTTP/1.1\r\nHost: example\r\nX-Custom: one\r\n\r\n",
        b"POST /b HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\n\r\nhello",
        b"PUT /c HTTP/1.1\r\nHost: example\r\nContent-Length: 0\r\n\r\n",
    ]
    seen: list[bytes] = []
    connections: list[int] = []

    async def scenario() -> list[tuple[bytes, bytes]]:
        upstream, upstream_port = await _recording_upstream(seen, connections)
        proxy = await floor_proxy.start(("127.0.0.1", 0), ("127.0.0.1", upstream_port))
        port = proxy.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def response() -> tuple[bytes, bytes]:
            head = await asyncio.wait_for(_read_head(reader), 5)
            return head, await reader.readexactly(_content_length(head))

        writer.write(requests[0] + requests[1])  # pipelined
        responses = [await response(), await response()]
        writer.write(requests[2])  # later, on the same client connection
        responses.append(await response())
        writer.close()
        await writer.wait_closed()
        proxy.close()
        upstream.close()
        return responses

    responses = uvloop.run(scenario())

    assert seen == requests  # method, path, headers and body unchanged
    assert len(connections) == 1
    for request, (head, body) in zip(requests, responses, strict=True):
        assert head.startswith(b"HTTP/1.1 201 Made Here\r\n")
        assert b"\r\nX-Up: 1\r\n" in head
        assert body == request


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:18084", ("127.0.0.1", 18084)), ("[::1]:8080", ("::1", 8080))],
    ids=["ipv4", "ipv6"],
)
def test_floor_proxy_reads_host_and_port(text: str, expected: tuple[str, int]) -> None:
    assert floor_proxy.parse_address(text) == expected
