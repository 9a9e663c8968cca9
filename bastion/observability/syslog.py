"""A syslog sink: RFC 5424 messages, octet-counted (RFC 6587) over TCP or TLS (RFC 5425).

How this works: `write()` runs on the event loop and only frames the line (a cached header
plus the ECS JSON as MSG, prefixed by its length) and appends it to an in-memory buffer.
Past `flush_bytes`, or on `flush()` (the server's half-second sweep), the buffer becomes one
chunk on a queue that a single writer thread drains; only that thread connects, sends and
reconnects. Bytes accepted but not yet sent count against `max_buffer_bytes`: past it new
lines are dropped and counted (`dropped`), so a slow or absent collector costs log lines,
never event-loop time. When the connection fails the writer closes it, waits (exponential
backoff from `backoff_initial` to `backoff_max` seconds) and sends the interrupted chunk
again on a new connection: delivery is at least once, a line may repeat after a reconnect,
and lines keep queueing (up to the bound) while the collector is away.

Octet counting (`<length> <message>`) frames each message by its byte length, so messages may
contain newlines and nothing needs escaping; rsyslog's imtcp and syslog-ng's network() source
detect it by the leading digit. MSG is written without the optional UTF-8 BOM so receivers
that parse it as JSON (rsyslog mmjsonparse, Logstash) see the document as it is.

RFC 5424: https://www.rfc-editor.org/rfc/rfc5424 ·
RFC 5425 (TLS): https://www.rfc-editor.org/rfc/rfc5425 ·
RFC 6587 §3.4.1 (octet counting): https://www.rfc-editor.org/rfc/rfc6587#section-3.4.1
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import parse_qs, urlsplit

from bastion.clock import Clock, SystemClock

FLUSH_BYTES: Final = 64 * 1024
MAX_BUFFER_BYTES: Final = 8 * 1024 * 1024
CLOSE_TIMEOUT: Final = 5.0
CONNECT_TIMEOUT: Final = 5.0
SEND_TIMEOUT: Final = 30.0
BACKOFF_INITIAL: Final = 0.5
BACKOFF_MAX: Final = 30.0
DEFAULT_PORTS: Final = {"tcp": 514, "tls": 6514}
FACILITY_LOCAL0: Final = 16
SEVERITY_INFO: Final = 6
APP_NAME: Final = "bastion"
_MAX_HOSTNAME: Final = 255  # RFC 5424 §6: HOSTNAME is 1*255PRINTUSASCII
_MAX_APP_NAME: Final = 48

Transport = Literal["tcp", "tls"]


@dataclass(frozen=True, slots=True)
class SyslogTarget:
    """Where a syslog sink sends: parsed from `syslog+tcp://host:port` or `syslog+tls://...`."""

    transport: Transport
    host: str
    port: int
    ca_file: str | None = None


def parse_syslog_url(spec: str) -> SyslogTarget:
    """Parse an `access_log.sink` value of the form `syslog+tcp://h:p` or `syslog+tls://h:p?ca=F`.

    The port defaults to 514 (TCP) or 6514 (TLS, RFC 5425). `ca` names a PEM file of
    certificate authorities to trust instead of the system store; TLS always verifies the
    certificate and the host name.

    Raises:
        ValueError: The value is not a syslog URL this sink understands.
    """
    parts = urlsplit(spec)
    scheme = parts.scheme.lower()
    if scheme not in ("syslog+tcp", "syslog+tls"):
        raise ValueError("a syslog sink is syslog+tcp://host:port or syslog+tls://host:port")
    transport: Transport = "tls" if scheme == "syslog+tls" else "tcp"
    if parts.username is not None or parts.password is not None:
        raise ValueError("a syslog URL takes no user or password")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError("a syslog URL has no path or fragment")
    host = parts.hostname
    if not host:
        raise ValueError("a syslog URL needs a host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the syslog port must be a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("the syslog port must be a number from 1 to 65535")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = set(query) - {"ca"}
    if unknown:
        raise ValueError(f"unknown syslog URL parameter: {sorted(unknown)[0]}")
    ca_file: str | None = None
    if "ca" in query:
        if transport != "tls":
            raise ValueError("`ca` applies to syslog+tls only")
        values = query["ca"]
        if len(values) != 1 or not values[0]:
            raise ValueError("`ca` takes one file path")
        ca_file = values[0]
    return SyslogTarget(transport, host, port or DEFAULT_PORTS[transport], ca_file)


def _printable(text: str, limit: int) -> str:
    """RFC 5424 header fields: printable US-ASCII without spaces, `-` when empty."""
    cleaned = "".join(ch for ch in text if 33 <= ord(ch) <= 126)[:limit]
    return cleaned or "-"


class SyslogFramer:
    """Turns one log line into one octet-counted RFC 5424 message (pure, no I/O).

    Args:
        clock: Source of the TIMESTAMP field (UTC, millisecond precision).
        hostname: HOSTNAME field (default: this machine's name).
        app_name: APP-NAME field.
        facility: Syslog facility number (default 16, local0).
        severity: Syslog severity number (default 6, informational).
    """

    __slots__ = (
        "_app",
        "_clock",
        "_head",
        "_host",
        "_millis",
        "_pid",
        "_prefix",
        "_second",
        "_second_text",
        "_tail",
    )

    def __init__(
        self,
        clock: Clock,
        *,
        hostname: str | None = None,
        app_name: str = APP_NAME,
        facility: int = FACILITY_LOCAL0,
        severity: int = SEVERITY_INFO,
    ) -> None:
        if not 0 <= facility <= 23 or not 0 <= severity <= 7:
            raise ValueError("facility is 0-23 and severity 0-7")
        self._clock = clock
        self._prefix = f"<{facility * 8 + severity}>1 "
        host = hostname if hostname is not None else socket.gethostname()
        self._host = _printable(host, _MAX_HOSTNAME)
        self._app = _printable(app_name, _MAX_APP_NAME)
        self._pid = -1
        self._tail = ""
        self._second = -1
        self._second_text = ""
        self._millis = -1
        self._head = b""

    def frame(self, line: bytes) -> bytes:
        """The framed message for `line` (its trailing newline removed): `LEN SP <PRI>1 ...`."""
        if line.endswith(b"\n"):
            line = line[:-1]
        millis = int(self._clock.time() * 1000)
        if millis != self._millis or self._pid != _process.pid:
            self._header(millis)
        head = self._head
        return b"%d %b%b" % (len(head) + len(line), head, line)

    def _header(self, millis: int) -> None:
        """Rebuild the cached header: once per millisecond at most, and after a fork."""
        if self._pid != _process.pid:  # PROCID changes in a forked worker
            self._pid = _process.pid
            self._tail = f" {self._host} {self._app} {self._pid} - - "
        second, fraction = divmod(millis, 1000)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self._millis = millis
        self._head = f"{self._prefix}{self._second_text}.{fraction:03d}Z{self._tail}".encode()


class _Process:
    """This process's id, kept current across fork() (os.getpid() is a system call)."""

    def __init__(self) -> None:
        self.pid = os.getpid()

    def forked(self) -> None:
        self.pid = os.getpid()


_process = _Process()
os.register_at_fork(after_in_child=_process.forked)


class SyslogSink:
    """Sends log lines to a syslog collector over TCP or TLS, from a writer thread.

    Implements the `Sink` protocol (`write`, `flush`, `close`) and the counters of the file
    sinks (`dropped`, `errors`, `last_error`, `buffered_bytes`), plus `connected` and
    `reconnects`. Nothing connects until the first chunk is handed over, so the gateway starts
    while the collector is down; lines wait in the buffer (up to the bound) meanwhile.

    Args:
        target: The collector (see `parse_syslog_url`).
        clock: Source of message timestamps.
        tls_context: The TLS settings (default: verification on, system CAs or
            `target.ca_file`, TLS 1.2 minimum).
        hostname: HOSTNAME field of the messages (default: this machine's name).
        flush_bytes: Buffer size that triggers a hand-over to the writer thread.
        max_buffer_bytes: Bound on accepted-but-unsent bytes; past it lines are dropped.
        backoff_initial: First wait after a failed connection or send, in seconds.
        backoff_max: Longest wait between attempts (the wait doubles up to it).
        close_timeout: How long `close()` waits for pending lines to be sent, in seconds.

    Raises:
        OSError: The CA file cannot be read.
        ssl.SSLError: The CA file holds no usable certificate.
    """

    def __init__(
        self,
        target: SyslogTarget,
        *,
        clock: Clock | None = None,
        tls_context: ssl.SSLContext | None = None,
        hostname: str | None = None,
        flush_bytes: int = FLUSH_BYTES,
        max_buffer_bytes: int = MAX_BUFFER_BYTES,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        if flush_bytes <= 0 or max_buffer_bytes <= 0:
            raise ValueError("flush_bytes and max_buffer_bytes must be positive")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("backoff_initial must be positive and at most backoff_max")
        self.target = target
        self._framer = SyslogFramer(clock or SystemClock(), hostname=hostname)
        self._tls: ssl.SSLContext | None = None
        if target.transport == "tls":
            self._tls = tls_context or client_tls_context(target.ca_file)
        self._flush_bytes = flush_bytes
        self._max_buffer = max_buffer_bytes
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._close_timeout = close_timeout
        # `_lock` guards everything below; `_wake` (same lock) signals the writer thread.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._buf: list[bytes] = []
        self._size = 0
        self._chunks: deque[tuple[bytes, int]] = deque()
        self._pending = 0  # bytes in _chunks plus the chunk being sent
        self._sending = False
        self._closed = False
        self._overflow = 0
        self._lost = 0
        self._errors = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # -- counters ----------------------------------------------------------------------------

    @property
    def dropped(self) -> int:
        """Lines lost: refused by the full buffer, written after close, or unsent at close."""
        return self._overflow + self._lost

    @property
    def errors(self) -> int:
        """Failed connection or send attempts (the last one is described in `last_error`)."""
        return self._errors

    @property
    def buffered_bytes(self) -> int:
        """Framed bytes accepted but not yet sent."""
        return self._size + self._pending

    @property
    def connected(self) -> bool:
        """Whether the writer currently holds an open connection to the collector."""
        return self._sock is not None

    # -- the Sink protocol (event loop side) -------------------------------------------------

    def write(self, line: bytes) -> None:
        """Frame and buffer `line`; drop it (and count it) when the bound is reached or closed."""
        message = self._framer.frame(line)
        with self._lock:
            size = self._size + len(message)
            if self._closed or size + self._pending > self._max_buffer:
                self._overflow += 1
                return
            self._buf.append(message)
            self._size = size
            if size >= self._flush_bytes:
                self._hand_over()

    def flush(self) -> None:
        """Hand the buffered messages to the writer thread; returns without waiting for I/O."""
        with self._lock:
            self._hand_over()

    def drain(self, timeout: float | None = None) -> bool:
        """Flush and block until everything handed over is sent (tests and shutdown only)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._hand_over()
            while self._chunks or self._sending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._wake.wait(remaining)
        return True

    def close(self) -> None:
        """Send what is pending (waiting `close_timeout` seconds at most), then disconnect.

        Blocking: call it at shutdown. Lines still unsent when it gives up, and lines
        written afterwards, are dropped and counted.
        """
        self.drain(self._close_timeout)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _chunk, lines in self._chunks:
                self._lost += lines
            self._chunks.clear()
            self._wake.notify_all()
            thread = self._thread if self._pid == os.getpid() else None
        if thread is not None:
            thread.join(self._close_timeout)
        self._disconnect()

    def _hand_over(self) -> None:
        """Move the buffer to the writer's queue (caller holds `_lock`)."""
        if not self._buf or self._closed:
            return
        if self._thread is None or self._pid != os.getpid():
            self._start_writer()
        chunk = b"".join(self._buf)
        self._chunks.append((chunk, len(self._buf)))
        self._pending += len(chunk)
        self._buf = []
        self._size = 0
        self._wake.notify_all()

    def _start_writer(self) -> None:
        if self._pid != os.getpid():  # after fork(): the parent's thread and socket are not ours
            self._pid = os.getpid()
            self._sock = None
            self._chunks.clear()
            self._pending = 0
            self._sending = False
        thread = threading.Thread(target=self._run, name="bastion-log-syslog", daemon=True)
        thread.start()
        self._thread = thread

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._backoff_initial
        while True:
            with self._lock:
                while not self._chunks and not self._closed:
                    self._wake.wait()
                if not self._chunks:
                    return  # closed and nothing left
                chunk = self._chunks[0][0]
                self._sending = True
            try:
                self._send(chunk)
            except OSError as exc:
                self._record_error(exc)
                self._disconnect()
                with self._lock:
                    self._sending = False
                    self._wake.notify_all()
                    if self._closed:
                        return  # close() counted what was queued
                    self._wake.wait(backoff)  # close() wakes this early
                backoff = min(backoff * 2, self._backoff_max)
                continue
            backoff = self._backoff_initial
            with self._lock:
                if self._chunks and self._chunks[0][0] is chunk:
                    self._chunks.popleft()
                    self._pending -= len(chunk)
                self._sending = False
                self._wake.notify_all()

    def _send(self, chunk: bytes) -> None:
        sock = self._sock
        if sock is None:
            sock = self._connect()
        sock.sendall(chunk)

    def _connect(self) -> socket.socket:
        target = self.target
        raw = socket.create_connection((target.host, target.port), timeout=CONNECT_TIMEOUT)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock: socket.socket = raw
            if self._tls is not None:
                sock = self._tls.wrap_socket(raw, server_hostname=target.host)
            sock.settimeout(SEND_TIMEOUT)
        except BaseException:
            raw.close()
            raise
        if self._errors:
            self.reconnects += 1
        self._sock = sock
        return sock

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _record_error(self, exc: BaseException) -> None:
        self._errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"


def client_tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the system CAs, or only those in `ca_file`; TLS 1.2 minimum.

    Raises:
        OSError: `ca_file` cannot be read.
        ssl.SSLError: `ca_file` holds no usable certificate.
    """
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def open_syslog_sink(spec: str) -> SyslogSink:
    """The syslog sink named by an `access_log.sink` value (`syslog+tcp://...`, `syslog+tls://...`).

    Raises:
        OSError: The URL is invalid (errno EINVAL, the reason in `strerror`) or the CA file
            cannot be read or used.
    """
    try:
        target = parse_syslog_url(spec)
    except ValueError as exc:
        raise OSError(errno.EINVAL, str(exc)) from None
    try:
        return SyslogSink(target)
    except ssl.SSLError as exc:
        raise OSError(errno.EINVAL, f"unusable CA file: {exc.reason or exc}") from None
