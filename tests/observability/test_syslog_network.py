"""The syslog sink over loopback sockets: TLS verification, reconnects, the full-buffer bound."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from bastion.clock import FakeClock
from bastion.observability.syslog import SyslogSink, SyslogTarget, client_tls_context


class _Collector:
    """A minimal octet-counting syslog receiver on loopback (optionally TLS) for these tests."""

    def __init__(self, tls: ssl.SSLContext | None = None, port: int = 0) -> None:
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._tls = tls
        self.messages: list[bytes] = []
        self.connections = 0
        self.handshake_failures = 0
        self._stop = threading.Event()
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._tls is not None:
                try:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    self.handshake_failures += 1
                    conn.close()
                    continue
            self.connections += 1
            self._clients.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        data = b""
        with contextlib.suppress(OSError):
            while chunk := conn.recv(65536):
                data += chunk
                while b" " in data:
                    length, _, rest = data.partition(b" ")
                    if len(rest) < int(length):
                        break
                    self.messages.append(rest[: int(length)])
                    data = rest[int(length) :]

    def drop_clients(self) -> None:
        """Close every accepted connection (the collector restarted)."""
        for conn in self._clients:
            with contextlib.suppress(OSError):  # the peer may have gone already
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._clients.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{count} messages expected, {len(self.messages)}"
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self.drop_clients()
        self._listener.close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_collector(ca: trustme.CA) -> Iterator[_Collector]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    collector = _Collector(server_context)
    yield collector
    collector.close()


def test_tls_sink_delivers_to_a_collector_whose_certificate_the_ca_file_vouches_for(
    tls_collector: _Collector, ca: trustme.CA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    target = SyslogTarget("tls", "localhost", tls_collector.port, str(ca_file))
    sink = SyslogSink(target, clock=FakeClock())
    try:
        sink.write(b'{"n": 1}\n')
        sink.write(b'{"n": 2}\n')
        assert sink.drain(10)
        tls_collector.wait_for(2)
    finally:
        sink.close()
    assert [m.rsplit(b" ", 2)[-2:] for m in tls_collector.messages] == [
        [b'{"n":', b"1}"],
        [b'{"n":', b"2}"],
    ]
    assert sink.errors == 0


def test_tls_sink_refuses_a_collector_it_cannot_verify(
    tls_collector: _Collector, tmp_path: Path
) -> None:
    other = trustme.CA()
    ca_file = tmp_path / "other-ca.pem"
    other.cert_pem.write_to_path(str(ca_file))
    target = SyslogTarget("tls", "localhost", tls_collector.port, str(ca_file))
    sink = SyslogSink(
        target, clock=FakeClock(), backoff_initial=0.05, backoff_max=0.05, close_timeout=0.5
    )
    try:
        sink.write(b'{"secret": "must not leave"}\n')
        sink.flush()
        deadline = time.monotonic() + 10
        while sink.errors < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        sink.close()
    assert tls_collector.messages == []
    assert "CERTIFICATE_VERIFY_FAILED" in (sink.last_error or "")
    assert sink.dropped == 1  # given up at close, and counted


def test_tls_sink_checks_the_host_name(tls_collector: _Collector, ca: trustme.CA) -> None:
    context = client_tls_context()
    ca.configure_trust(context)
    # The certificate names `localhost`; connecting by IP must fail the host-name check.
    target = SyslogTarget("tls", "127.0.0.1", tls_collector.port)
    sink = SyslogSink(
        target, clock=FakeClock(), tls_context=context, backoff_initial=0.05, close_timeout=0.5
    )
    try:
        sink.write(b"{}\n")
        assert not sink.drain(1)
    finally:
        sink.close()
    assert tls_collector.messages == []
    assert "IP address mismatch" in (sink.last_error or "")


def test_sink_reconnects_after_the_collector_drops_the_connection() -> None:
    collector = _Collector()
    sink = SyslogSink(
        SyslogTarget("tcp", "127.0.0.1", collector.port),
        clock=FakeClock(),
        backoff_initial=0.05,
        backoff_max=0.2,
    )
    try:
        sink.write(b'{"before": 1}\n')
        assert sink.drain(10)
        collector.wait_for(1)
        collector.drop_clients()
        # The first send after the drop may still be accepted by the kernel; keep writing
        # until one fails and the sink reconnects.
        deadline = time.monotonic() + 10
        while collector.connections < 2:
            assert time.monotonic() < deadline, sink.last_error
            sink.write(b'{"after": 1}\n')
            sink.flush()
            time.sleep(0.05)
        assert sink.drain(10)
        collector.wait_for(2)
    finally:
        sink.close()
        collector.close()
    assert sink.reconnects >= 1
    assert any(m.endswith(b'{"after": 1}') for m in collector.messages)


def test_sink_drops_and_counts_lines_past_the_bound_while_the_collector_is_away() -> None:
    with socket.socket() as probe:  # a loopback port with no listener: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    sink = SyslogSink(
        SyslogTarget("tcp", "127.0.0.1", port),
        clock=FakeClock(),
        flush_bytes=1,
        max_buffer_bytes=1000,
        backoff_initial=0.05,
        close_timeout=0.5,
    )
    line = b"{" + b'"x":"' + b"y" * 80 + b'"}\n'
    started = time.monotonic()
    for _ in range(100):
        sink.write(line)
    elapsed = time.monotonic() - started
    accepted = 100 - sink.dropped
    sink.close()
    assert 0 < accepted < 20
    assert sink.dropped == 100  # the accepted lines were never delivered: lost at close
    assert elapsed < 0.5  # writes never waited for the refused connections
