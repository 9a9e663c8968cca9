"""Runs a real gateway (listeners, TLS, upstream) in a background thread for integration tests.

Tests talk to it with blocking sockets or httpx from the test thread, exactly like a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop
import yaml

from bastion.config.loader import parse_config
from bastion.server.run import Server
from tests.integration.upstream import EchoUpstream


def free_port() -> int:
    """A currently free loopback TCP port."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all bound at once, so none repeats)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class RunningGateway:
    """Addresses of a running gateway and what its upstream saw."""

    http_port: int
    https_port: int
    redirect_port: int
    admin_port: int
    upstream_port: int
    seen: list[dict[str, Any]] = field(default_factory=list)
    server: Server | None = None
    loop: asyncio.AbstractEventLoop | None = None

    def connect(self, *, tls: bool = False, timeout: float = 5.0) -> socket.socket:
        """A raw client socket to the plaintext (or TLS) proxy listener."""
        port = self.https_port if tls else self.http_port
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context.wrap_socket(sock, server_hostname="localhost")
        return sock

    def reload(self) -> None:
        """Trigger a config reload from the gateway's own thread."""
        assert self.loop is not None
        assert self.server is not None
        done = threading.Event()

        def run() -> None:
            assert self.server is not None
            self.server.reload()
            done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(5)


def base_config(ports: RunningGateway, state_dir: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """A config with a plaintext proxy listener, a TLS one, a redirect one and an admin one."""
    config: dict[str, Any] = {
        "listeners": [
            {"bind": f"127.0.0.1:{ports.http_port}", "plaintext": True},
            {"bind": f"127.0.0.1:{ports.https_port}", "tls": {}},
            {"bind": f"127.0.0.1:{ports.redirect_port}"},
        ],
        "admin": {"bind": f"127.0.0.1:{ports.admin_port}", "token": "integration-admin-token"},
        "state_dir": str(state_dir),
        # Each test gateway's own store, never the repository's default var/bastion.db.
        "store": f"sqlite:///{state_dir / 'bastion.db'}",
        "access_log": {"sink": str(state_dir / "access.log")},
        "limits": {"header_timeout": 1.0, "body_timeout": 1.0, "idle_timeout": 2.0},
        "services": [
            {
                "name": "echo",
                "upstream": {
                    "targets": [f"http://127.0.0.1:{ports.upstream_port}"],
                    "read_timeout": 1.0,
                },
                "routes": [{"name": "all", "paths": ["/"]}],
            }
        ],
    }
    for key, value in extra.items():
        config[key] = value
    return config


@contextlib.contextmanager
def running_gateway(
    state_dir: Path, extra: dict[str, Any] | None = None, *, config_file: bool = False
) -> Iterator[RunningGateway]:
    """Start the echo upstream and a gateway; stop both on exit."""
    http, https, redirect, admin, upstream = free_ports(5)
    ports = RunningGateway(http, https, redirect, admin, upstream)
    document = base_config(ports, state_dir, extra or {})
    config_path = None
    if config_file:
        config_path = state_dir / "bastion.yaml"
        config_path.write_text(yaml.safe_dump(document))
    config = parse_config(document)
    started = threading.Event()
    stop: list[asyncio.Event] = []
    errors: list[BaseException] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        upstream = await loop.create_server(
            lambda: EchoUpstream(ports.seen), "127.0.0.1", ports.upstream_port
        )
        server = Server(config, config_path)
        await server.start()
        ports.server = server
        ports.loop = loop
        event = asyncio.Event()
        stop.append(event)
        started.set()
        await event.wait()
        await server.shutdown(drain_seconds=1.0)
        upstream.close()

    def thread_main() -> None:
        try:
            uvloop.run(main())
        except BaseException as exc:  # noqa: BLE001 - report startup failures to the test thread
            errors.append(exc)
            started.set()

    thread = threading.Thread(target=thread_main, daemon=True)
    thread.start()
    started.wait(10)
    if errors:
        raise errors[0]
    try:
        yield ports
    finally:
        assert ports.loop is not None
        ports.loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)


def read_response(sock: socket.socket, timeout: float = 3.0) -> bytes:
    """Read until the peer closes or a complete response (by Content-Length) arrived."""
    sock.settimeout(timeout)
    data = b""
    while True:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].lower()
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                    if len(data) >= head_end + 4 + length:
                        return data
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return data
        if not chunk:
            return data
        data += chunk


def status_of(response: bytes) -> int:
    """The status code of a raw response, 0 if none."""
    if not response.startswith(b"HTTP/1.1 "):
        return 0
    return int(response[9:12])


@contextlib.contextmanager
def running_upstream() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Only the echo upstream, in a background thread: (port, requests it saw)."""
    port = free_port()
    seen: list[dict[str, Any]] = []
    started = threading.Event()
    holder: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: EchoUpstream(seen), "127.0.0.1", port)
        stop = asyncio.Event()
        holder.append((loop, stop))
        started.set()
        await stop.wait()
        server.close()

    thread = threading.Thread(target=lambda: uvloop.run(main()), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield port, seen
    finally:
        loop, stop = holder[0]
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def wait_ready(admin_port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Wait until a `bastion run` process answers 200 on its admin `/ready`.

    Raises:
        AssertionError: the process exited first, or `timeout` seconds passed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"bastion exited early with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{admin_port}/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError("bastion did not become ready")
