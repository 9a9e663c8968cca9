"""Tests of the log sinks: buffering, the bound, flushing, reopening and failure handling."""

from __future__ import annotations

import contextlib
import os
import select
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.observability.sinks import FileSink, MemorySink, StdoutSink, open_sink


def _line(index: int, size: int = 100) -> bytes:
    text = f"line {index:06d} "
    return (text + "x" * (size - len(text) - 1) + "\n").encode()


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    for fd in (read_fd, write_fd):
        with contextlib.suppress(OSError):  # the test may have closed it already
            os.close(fd)


def _read_lines(fd: int, count: int, timeout: float = 10.0) -> list[bytes]:
    """Read from a pipe until `count` complete lines arrived; fail instead of hanging."""
    data = b""
    while data.count(b"\n") < count:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"{count} lines expected, {len(data.splitlines())} arrived"
        data += os.read(fd, 1 << 16)
    return data.splitlines(keepends=True)


def test_memory_sink_keeps_lines_in_order() -> None:
    sink = MemorySink()
    sink.write(b"a\n")
    sink.write(b"b\n")
    sink.flush()
    sink.close()

    assert sink.lines == [b"a\n", b"b\n"]
    assert sink.flushes == 1
    assert sink.closed


def test_file_sink_buffers_until_flush(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    sink = FileSink(path)

    sink.write(b"first\n")
    assert path.read_bytes() == b""
    assert sink.buffered_bytes == len(b"first\n")

    assert sink.drain(timeout=10)
    assert path.read_bytes() == b"first\n"
    assert sink.buffered_bytes == 0
    sink.close()


def test_stdout_sink_hands_over_a_full_buffer_without_flush(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    sink = StdoutSink(write_fd, flush_bytes=250)

    sink.write(_line(1))
    sink.write(_line(2))
    assert select.select([read_fd], [], [], 0)[0] == []
    sink.write(_line(3))  # 300 bytes buffered: past flush_bytes

    assert _read_lines(read_fd, 3) == [_line(1), _line(2), _line(3)]
    sink.close()


def test_sink_drops_and_counts_lines_past_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    sink = FileSink(path, flush_bytes=1 << 20, max_buffer_bytes=1000)

    for index in range(15):
        sink.write(_line(index))

    assert sink.dropped == 5
    sink.close()
    assert path.read_bytes().splitlines(keepends=True) == [_line(i) for i in range(10)]


def test_sink_counts_bytes_a_stalled_reader_has_not_taken(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    sink = StdoutSink(write_fd, flush_bytes=4096, max_buffer_bytes=256 * 1024)
    total = 20_000  # 2 MB: far more than the pipe and the bound hold together

    for index in range(total):
        sink.write(_line(index))  # returns at once although nobody reads the pipe

    assert sink.dropped > 0
    sink.flush()
    received = _read_lines(read_fd, total - sink.dropped)
    sink.close()

    assert len(received) == total - sink.dropped
    assert len(set(received)) == len(received)
    assert received[0] == _line(0)


def test_file_sink_reopen_starts_a_new_file_after_rename(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    rotated = tmp_path / "access.log.1"
    sink = FileSink(path)
    sink.write(b"before\n")
    sink.flush()

    assert sink.drain(timeout=10)
    path.rename(rotated)
    sink.write(b"still old\n")
    sink.reopen()
    sink.write(b"after\n")
    sink.close()

    assert rotated.read_bytes() == b"before\nstill old\n"
    assert path.read_bytes() == b"after\n"


def test_file_sink_keeps_the_old_file_when_reopen_fails(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    sink = FileSink(folder / "access.log")
    moved = tmp_path / "moved"
    folder.rename(moved)  # the path can no longer be opened

    sink.reopen()
    sink.write(b"kept\n")
    sink.close()

    assert sink.errors == 1
    assert sink.last_error is not None
    assert sink.last_error.startswith("FileNotFoundError")
    assert (moved / "access.log").read_bytes() == b"kept\n"


def test_file_sink_creates_the_file_with_mode_0640(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    previous = os.umask(0o022)
    try:
        sink = FileSink(path)
    finally:
        os.umask(previous)
    sink.close()

    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_file_sink_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(b"old\n")
    sink = FileSink(path)
    sink.write(b"new\n")
    sink.close()

    assert path.read_bytes() == b"old\nnew\n"


def test_sink_drops_lines_written_after_close(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "access.log")
    sink.close()

    sink.write(b"late\n")
    sink.flush()
    sink.reopen()
    sink.close()

    assert sink.dropped == 1
    assert (tmp_path / "access.log").read_bytes() == b""


def test_sink_counts_failed_writes_instead_of_raising(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    os.close(read_fd)  # writing now fails with EPIPE
    sink = StdoutSink(write_fd)

    sink.write(b"one\n")
    sink.write(b"two\n")
    assert sink.drain(timeout=10)

    assert sink.dropped == 2
    assert sink.errors == 1
    assert sink.last_error is not None
    assert sink.last_error.startswith("BrokenPipeError")
    sink.close()


def test_file_sink_refuses_an_unopenable_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        FileSink(tmp_path / "missing" / "access.log")


@pytest.mark.parametrize(
    ("flush_bytes", "max_buffer_bytes"),
    [(0, 100), (100, 0), (-1, 100)],
    ids=["zero-flush", "zero-bound", "negative-flush"],
)
def test_sink_refuses_non_positive_sizes(flush_bytes: int, max_buffer_bytes: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        StdoutSink(flush_bytes=flush_bytes, max_buffer_bytes=max_buffer_bytes)


def test_open_sink_maps_the_config_value(tmp_path: Path) -> None:
    assert open_sink("off") is None
    stdout = open_sink("stdout")
    stderr = open_sink("stderr")
    assert isinstance(stdout, StdoutSink)
    assert isinstance(stderr, StdoutSink)
    stdout.close()
    stderr.close()
    file_sink = open_sink(str(tmp_path / "a.log"))
    assert isinstance(file_sink, FileSink)
    assert file_sink.path == tmp_path / "a.log"
    file_sink.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_file_sink_keeps_writing_in_a_forked_child(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    sink = FileSink(path)
    sink.write(b"parent\n")
    assert sink.drain(timeout=10)  # the parent's writer thread is running now

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # the child: its copy of the writer thread does not exist
        code = 1
        try:
            sink.write(b"child\n")
            code = 0 if sink.drain(timeout=10) and sink.dropped == 0 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    sink.close()

    assert os.waitstatus_to_exitcode(status) == 0
    assert path.read_bytes() == b"parent\nchild\n"
