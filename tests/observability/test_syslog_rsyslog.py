"""A real rsyslogd receives the syslog sink's access-log lines over TCP (loopback only)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bastion.clock import FakeClock
from bastion.core.context import RequestContext
from bastion.observability.access_log import AccessLog
from bastion.observability.syslog import SyslogSink, SyslogTarget
from tests.observability.ecs import ecs_errors
from tests.support import make_ctx

RSYSLOGD = "/usr/sbin/rsyslogd"
_STARTUP_TIMEOUT = 15.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@pytest.fixture
def rsyslogd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """Start rsyslogd on a free loopback port, writing each message's fields to a file."""
    if not os.path.exists(RSYSLOGD):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{RSYSLOGD} is required in CI (scripts/system-deps.sh installs it)")
        pytest.skip(f"{RSYSLOGD} is not installed (apt-get install rsyslog)")
    port = _free_port()
    out = tmp_path / "received.log"
    work = tmp_path / "work"
    work.mkdir()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(
        f"""
global(workDirectory="{work}")
module(load="imtcp")
template(name="fields" type="string"
         string="%pri%|%hostname%|%app-name%|%procid%|%msg%\\n")
ruleset(name="bastion") {{
  action(type="omfile" file="{out}" template="fields")
}}
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="bastion")
"""
    )
    pidfile = tmp_path / "rsyslogd.pid"
    log = (tmp_path / "rsyslogd.stderr").open("wb")
    process = subprocess.Popen(
        [RSYSLOGD, "-f", str(conf), "-i", str(pidfile), "-n"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for(
            lambda: process.poll() is not None or _accepts(port), _STARTUP_TIMEOUT, "rsyslogd"
        )
        assert process.poll() is None, (tmp_path / "rsyslogd.stderr").read_text()
        yield port, out
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(5)
        log.close()


def _ctx(path: str, clock: FakeClock, status: int = 200) -> RequestContext:
    ctx = make_ctx("GET", path, clock=clock)
    ctx.status = status
    return ctx


def test_rsyslog_receives_every_access_log_line_as_ecs_json(rsyslogd: tuple[int, Path]) -> None:
    port, out = rsyslogd
    sink = SyslogSink(SyslogTarget("tcp", "127.0.0.1", port), hostname="gw-test")
    clock = FakeClock(wall=1_700_000_000.0)
    log = AccessLog(sink, clock)
    try:
        for index in range(50):
            log.record(_ctx(f"/v1/accounts/{index}", clock))
        # A raw newline in a value would split a newline-framed message; octet counting copes.
        log.record(_ctx("/multi\nline", clock, 404))
        assert sink.drain(10)
    finally:
        sink.close()

    def all_arrived() -> bool:
        return out.exists() and out.read_bytes().count(b"\n") >= 51

    _wait_for(all_arrived, 10, "rsyslogd to write 51 lines")
    rows = [line.split(b"|", 4) for line in out.read_bytes().splitlines()]
    assert len(rows) == 51
    documents = []
    for pri, host, app, procid, msg in rows:
        assert (pri, host, app, procid) == (
            b"134",
            b"gw-test",
            b"bastion",
            str(os.getpid()).encode(),
        )
        documents.append(orjson.loads(msg))
    paths = [doc["url"]["path"] for doc in documents]
    assert paths == [f"/v1/accounts/{i}" for i in range(50)] + ["/multi\nline"]
    for doc in documents:
        assert ecs_errors(doc) == []
    assert sink.dropped == 0
    assert sink.errors == 0
