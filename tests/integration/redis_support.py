"""Real Redis for tests: the shared server at 127.0.0.1:6379, or a private one started here.

Without a reachable Redis the tests skip with the reason, except when CI=true: there they
fail, so a CI run can never pass by skipping them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

SHARED = ("127.0.0.1", 6379)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def require_redis() -> None:
    """Skip (or fail under CI=true) when the shared Redis does not answer."""
    if _reachable(*SHARED):
        return
    reason = "Redis is not reachable at 127.0.0.1:6379"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: Redis tests must run)")
    pytest.skip(reason)


def unique_prefix() -> str:
    """A key prefix no other test (or run) uses."""
    return f"bastion-test:{uuid.uuid4().hex}:"


def delete_prefix(prefix: str, port: int = SHARED[1]) -> None:
    """Remove every key under `prefix` (SCAN + DEL through redis-cli-free raw RESP)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server process of our own, on a free port, that a test may kill and restart."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart) the server and wait until it answers."""
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI") == "true":
                pytest.fail("redis-server is not installed (CI=true: Redis tests must run)")
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise AssertionError("redis-server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL our server by its PID (no shutdown handshake: like a crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A private redis-server for the duration of the block."""
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()
