"""Unit tests of the syslog sink's pure parts: RFC 5424 framing and the sink URL."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import orjson
import pytest
from hypothesis import given, strategies as st

from bastion.clock import FakeClock
from bastion.observability.sinks import open_sink
from bastion.observability.syslog import (
    SyslogFramer,
    SyslogSink,
    SyslogTarget,
    parse_syslog_url,
)

# RFC 5424 §6: HEADER = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID
_HEADER = re.compile(
    rb"<(?P<pri>\d{1,3})>1 (?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) "
    rb"(?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<pid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) "
    rb"- (?P<msg>.*)\Z",
    re.DOTALL,
)


def _unframe(data: bytes) -> list[bytes]:
    """Split an octet-counted stream (RFC 6587 §3.4.1) into its messages."""
    messages = []
    while data:
        length, _, rest = data.partition(b" ")
        size = int(length)
        messages.append(rest[:size])
        data = rest[size:]
    return messages


def test_frame_writes_an_octet_counted_rfc5424_message_with_the_line_as_msg() -> None:
    framer = SyslogFramer(FakeClock(wall=1_700_000_000.25), hostname="gw-1")
    line = orjson.dumps({"@timestamp": "x", "url": {"path": "/a b"}}) + b"\n"

    framed = framer.frame(line)

    (message,) = _unframe(framed)
    match = _HEADER.match(message)
    assert match is not None
    assert match["pri"] == b"134"  # local0.info
    assert match["ts"] == b"2023-11-14T22:13:20.250Z"
    assert match["host"] == b"gw-1"
    assert match["app"] == b"bastion"
    assert match["pid"] == str(os.getpid()).encode()
    assert match["msgid"] == b"-"
    assert orjson.loads(match["msg"]) == {"@timestamp": "x", "url": {"path": "/a b"}}


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("gw one", b"gwone"),
        ("", b"-"),
        ("h\u00e9te", b"hte"),
        ("x" * 300, b"x" * 255),
    ],
    ids=["spaces-removed", "empty-is-nil", "non-ascii-removed", "cut-at-255"],
)
def test_frame_keeps_the_hostname_field_printable_ascii(hostname: str, expected: bytes) -> None:
    framer = SyslogFramer(FakeClock(), hostname=hostname)
    match = _HEADER.match(_unframe(framer.frame(b"{}\n"))[0])
    assert match is not None
    assert match["host"] == expected


def test_frame_refuses_an_out_of_range_facility() -> None:
    with pytest.raises(ValueError, match="facility"):
        SyslogFramer(FakeClock(), facility=24)


@given(lines=st.lists(st.binary(max_size=300), min_size=1, max_size=20))
def test_octet_counting_delimits_every_message_whatever_it_contains(lines: list[bytes]) -> None:
    framer = SyslogFramer(FakeClock(), hostname="h")
    stream = b"".join(framer.frame(line + b"\n") for line in lines)

    messages = _unframe(stream)

    assert len(messages) == len(lines)
    for message, line in zip(messages, lines, strict=True):
        match = _HEADER.match(message)
        assert match is not None
        assert match["msg"] == line


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("syslog+tcp://127.0.0.1:5514", SyslogTarget("tcp", "127.0.0.1", 5514)),
        ("syslog+tcp://logs.example", SyslogTarget("tcp", "logs.example", 514)),
        ("syslog+tls://logs.example", SyslogTarget("tls", "logs.example", 6514)),
        (
            "syslog+tls://logs.example:7514?ca=/etc/ca.pem",
            SyslogTarget("tls", "logs.example", 7514, "/etc/ca.pem"),
        ),
        ("syslog+tcp://[::1]:5514", SyslogTarget("tcp", "::1", 5514)),
    ],
    ids=["tcp", "tcp-default-port", "tls-default-port", "tls-ca", "ipv6"],
)
def test_parse_syslog_url_accepts(spec: str, expected: SyslogTarget) -> None:
    assert parse_syslog_url(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("syslog+udp://h:514", "syslog\\+tcp://"),
        ("syslog+tcp://:514", "needs a host"),
        ("syslog+tcp://h:99999", "port"),
        ("syslog+tcp://h:0", "port"),
        ("syslog+tcp://h:514/path", "no path"),
        ("syslog+tcp://u:p@h:514", "no user"),
        ("syslog+tcp://h:514?ca=/x.pem", "syslog\\+tls only"),
        ("syslog+tls://h:514?ca=", "one file path"),
        ("syslog+tls://h:514?cafile=/x", "unknown syslog URL parameter: cafile"),
    ],
    ids=[
        "udp",
        "no-host",
        "big-port",
        "zero-port",
        "path",
        "userinfo",
        "ca-on-tcp",
        "empty-ca",
        "typo",
    ],
)
def test_parse_syslog_url_refuses(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_syslog_url(spec)


def test_open_sink_reports_a_bad_syslog_url_as_an_invalid_argument() -> None:
    with pytest.raises(OSError, match="needs a host") as caught:
        open_sink("syslog+tcp://:514")
    assert caught.value.errno == errno.EINVAL


def test_open_sink_reports_an_unreadable_ca_file(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="No such file"):
        open_sink(f"syslog+tls://127.0.0.1:6514?ca={tmp_path}/missing.pem")


def test_open_sink_builds_a_syslog_sink_without_connecting() -> None:
    # Port 9 (discard) on loopback: nothing is sent until lines are handed over.
    sink = open_sink("syslog+tcp://127.0.0.1:9")
    assert isinstance(sink, SyslogSink)
    assert not sink.connected
    assert sink.buffered_bytes == 0
    sink.close()
