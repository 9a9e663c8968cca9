"""Where log lines go: buffered, bounded, non-blocking stdout and file sinks, and a test sink.

How this works: `write()` only appends the line to an in-memory buffer (under a lock, so
diagnostic logging from other threads may share a sink with the access log). When the buffer
passes `flush_bytes`, or when `flush()` is called (the server does so from a periodic timer,
every 0.5 s or so), the buffer is joined into one chunk and handed to a writer thread through a
queue; only that thread ever performs a blocking `os.write`. Bytes that are buffered or queued
but not yet written count against `max_buffer_bytes`: past it new lines are dropped and
`dropped` grows, so a stalled consumer (a full pipe, a slow disk) costs log lines, never
event-loop time. Write errors are swallowed and counted too: a sink never raises into the
request path.

Sinks must be created in the process that uses them (after the workers are forked): the
writer thread does not survive `fork()`, which `flush()` detects and recovers from.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from pathlib import Path
from typing import Final, Protocol

from bastion.observability.syslog import SyslogSink, open_syslog_sink

FLUSH_BYTES: Final = 64 * 1024
MAX_BUFFER_BYTES: Final = 8 * 1024 * 1024
CLOSE_TIMEOUT: Final = 5.0
FILE_MODE: Final = 0o640


class Sink(Protocol):
    """A destination for complete log lines (each ends with a newline)."""

    def write(self, line: bytes) -> None:
        """Queue one line; must never block the event loop and never raise."""
        ...

    def flush(self) -> None:
        """Hand everything buffered so far to the output (without waiting for the I/O)."""
        ...

    def close(self) -> None:
        """Flush, write out what is pending and release the output; later writes are dropped."""
        ...


class _Reopen:
    """Queue marker: reopen the output (logrotate) once the chunks before it are written."""


class _Stop:
    """Queue marker: the writer thread ends after the chunks before it are written."""


_Item = tuple[bytes, int] | _Reopen | _Stop


class _BufferedSink:
    """The buffer, bound, counters and writer thread shared by the stdout and file sinks."""

    def __init__(self, *, flush_bytes: int, max_buffer_bytes: int) -> None:
        if flush_bytes <= 0 or max_buffer_bytes <= 0:
            raise ValueError("flush_bytes and max_buffer_bytes must be positive")
        self._flush_bytes = flush_bytes
        self._max_buffer = max_buffer_bytes
        self._lock = threading.Lock()  # guards _buf, _size, _overflow, _closed
        self._buf: list[bytes] = []
        self._size = 0
        self._overflow = 0
        self._closed = False
        # Shared with the writer thread: bytes handed over but not yet written, items in flight.
        self._done = threading.Condition(threading.Lock())
        self._pending = 0
        self._in_flight = 0
        self._lost = 0
        self._errors = 0
        self.last_error: str | None = None
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def dropped(self) -> int:
        """Lines lost so far: refused by the full buffer, written after close, or failed I/O."""
        return self._overflow + self._lost

    @property
    def errors(self) -> int:
        """Failed write or reopen attempts (the last one is described in `last_error`)."""
        return self._errors

    @property
    def buffered_bytes(self) -> int:
        """Bytes accepted but not yet written (buffered here or queued for the writer)."""
        return self._size + self._pending

    def write(self, line: bytes) -> None:
        """Buffer `line`; drop it (and count it) when the bound is reached or the sink is closed."""
        with self._lock:
            size = self._size + len(line)
            if self._closed or size + self._pending > self._max_buffer:
                self._overflow += 1
                return
            self._buf.append(line)
            self._size = size
            if size >= self._flush_bytes:
                self._hand_over()

    def flush(self) -> None:
        """Hand the buffered lines to the writer thread; returns without waiting for the I/O."""
        with self._lock:
            self._hand_over()

    def reopen(self) -> None:
        """Reopen the output after what is buffered so far is written (for SIGHUP/logrotate).

        Call it from the event loop (`loop.add_signal_handler`), not from a raw signal handler.
        """
        with self._lock:
            if self._closed:
                return
            self._hand_over()
            self._enqueue(_Reopen(), 0)

    def drain(self, timeout: float | None = None) -> bool:
        """Flush and block until the writer thread has written everything handed to it.

        Meant for shutdown and tests, never for the event loop. Returns whether it finished
        within `timeout` seconds.
        """
        self.flush()
        with self._done:
            return self._done.wait_for(lambda: self._in_flight == 0, timeout)

    def close(self) -> None:
        """Flush, wait (up to a few seconds) for the writer to finish and release the output.

        Blocking: call it at shutdown. Lines written afterwards are dropped and counted.
        """
        with self._lock:
            if self._closed:
                return
            self._hand_over()
            self._closed = True
            thread = self._thread if self._pid == os.getpid() else None
            if thread is not None:
                self._queue.put(_Stop())
        if thread is not None:
            thread.join(CLOSE_TIMEOUT)
            if thread.is_alive():
                return  # the writer is stuck in a blocking write: leave it the descriptor
        self._release()

    def _hand_over(self) -> None:
        """Move the buffer to the writer's queue (caller holds `_lock`)."""
        if not self._buf:
            return
        chunk = b"".join(self._buf)
        lines = len(self._buf)
        self._buf = []
        self._size = 0
        self._enqueue((chunk, lines), len(chunk))

    def _enqueue(self, item: _Item, size: int) -> None:
        if (self._thread is None or self._pid != os.getpid()) and not self._start_writer():
            if isinstance(item, tuple):
                self._overflow += item[1]
            return
        with self._done:
            self._pending += size
            self._in_flight += 1
        self._queue.put(item)

    def _start_writer(self) -> bool:
        # After fork(), the parent's thread is gone and its queue, locks and counters are
        # copies: start over with fresh ones (the child's buffer is kept).
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._done = threading.Condition(threading.Lock())
            self._pending = self._in_flight = 0
            self._queue = queue.SimpleQueue()
            self._after_fork()
        thread = threading.Thread(target=self._run, name=f"bastion-log-{self._name()}", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # the process cannot start more threads
            self._record_error(exc)
            return False
        self._thread = thread
        return True

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, _Stop):
                return
            size = 0
            if isinstance(item, _Reopen):
                try:
                    self._reopen_output()
                except OSError as exc:
                    self._record_error(exc)  # keep writing to the old file rather than nowhere
            else:
                chunk, lines = item
                size = len(chunk)
                try:
                    _write_all(self._fd(), chunk)
                except OSError as exc:
                    self._record_error(exc)
                    with self._done:
                        self._lost += lines
            with self._done:
                self._pending -= size
                self._in_flight -= 1
                self._done.notify_all()

    def _record_error(self, exc: BaseException) -> None:
        self._errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    # Output-specific hooks.
    def _name(self) -> str:
        raise NotImplementedError

    def _fd(self) -> int:
        raise NotImplementedError

    def _reopen_output(self) -> None:
        """Replace the output descriptor (file sinks only)."""

    def _after_fork(self) -> None:
        """Adjust the output after fork (nothing to do by default)."""

    def _release(self) -> None:
        """Close the output if this sink owns it."""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class StdoutSink(_BufferedSink):
    """Lines to standard output (or any inherited descriptor the sink does not own).

    Args:
        fd: The descriptor to write to: 1 (stdout) by default, 2 for stderr, or a pipe.
        flush_bytes: Buffer size that triggers a hand-over to the writer thread.
        max_buffer_bytes: Bound on accepted-but-unwritten bytes; past it lines are dropped.
    """

    def __init__(
        self,
        fd: int = 1,
        *,
        flush_bytes: int = FLUSH_BYTES,
        max_buffer_bytes: int = MAX_BUFFER_BYTES,
    ) -> None:
        super().__init__(flush_bytes=flush_bytes, max_buffer_bytes=max_buffer_bytes)
        self._out = fd

    def _name(self) -> str:
        return f"fd{self._out}"

    def _fd(self) -> int:
        return self._out


class FileSink(_BufferedSink):
    """Lines appended to a file (created with mode 0640, less any umask bits).

    `reopen()` reopens the path after logrotate renamed the file, so new lines land in a
    fresh file; lines handed over before the call still go to the renamed one.

    Args:
        path: The log file; its folder must exist.
        flush_bytes: Buffer size that triggers a hand-over to the writer thread.
        max_buffer_bytes: Bound on accepted-but-unwritten bytes; past it lines are dropped.

    Raises:
        OSError: The file cannot be opened for appending.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_bytes: int = FLUSH_BYTES,
        max_buffer_bytes: int = MAX_BUFFER_BYTES,
    ) -> None:
        super().__init__(flush_bytes=flush_bytes, max_buffer_bytes=max_buffer_bytes)
        self.path = Path(path)
        self._file = self._open()

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        return os.open(self.path, flags, FILE_MODE)

    def _name(self) -> str:
        return self.path.name

    def _fd(self) -> int:
        return self._file

    def _reopen_output(self) -> None:
        new = self._open()
        old, self._file = self._file, new
        os.close(old)

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._file)


class MemorySink:
    """Keeps every line in `lines`; for tests and for embedding Bastion in another process."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.flushes = 0
        self.closed = False

    def write(self, line: bytes) -> None:
        """Append the line (kept even after close, so tests can see late writes)."""
        self.lines.append(line)

    def flush(self) -> None:
        """Count the call."""
        self.flushes += 1

    def close(self) -> None:
        """Mark the sink closed."""
        self.closed = True


def open_sink(spec: str) -> StdoutSink | FileSink | SyslogSink | None:
    """The sink named by the `access_log.sink` setting: `stdout`, `stderr`, `off` or a path.

    `syslog+tcp://host:port` and `syslog+tls://host:port?ca=FILE` name a syslog collector
    (see `bastion.observability.syslog`).

    Raises:
        OSError: A file path cannot be opened for appending, or a syslog URL is invalid.
    """
    if spec == "off":
        return None
    if spec.startswith(("syslog+tcp://", "syslog+tls://")):
        return open_syslog_sink(spec)
    if spec == "stdout":
        return StdoutSink(1)
    if spec == "stderr":
        return StdoutSink(2)
    return FileSink(spec)
