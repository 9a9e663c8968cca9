"""A small Chrome DevTools Protocol client: headless Chromium driven over a loopback websocket."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.integration.harness import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--ignore-certificate-errors",  # the test gateway's development certificate is self-signed
    "--remote-debugging-address=127.0.0.1",
)


class Page:
    """One page target: send commands, collect every event."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one command and return its result (events seen meanwhile are kept)."""
        self._next_id += 1
        self._socket.send(
            json.dumps({"id": self._next_id, "method": method, "params": params or {}})
        )
        while True:
            message = json.loads(self._socket.recv(timeout=15))
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 15.0) -> dict[str, Any]:
        """The next (or an already received) event named `method`."""
        for event in self.events:
            if event.get("method") == method:
                self.events.remove(event)
                return event
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.1, deadline - time.monotonic())
            message: dict[str, Any] = json.loads(self._socket.recv(timeout=left))
            if "id" not in message and message.get("method") == method:
                return message
            self.events.append(message)

    def drain(self, seconds: float) -> None:
        """Keep reading events for `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.events.append(json.loads(self._socket.recv(timeout=left)))
            except TimeoutError:
                return

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (DevTools is not bound by the page's CSP)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    def console_errors(self) -> list[dict[str, Any]]:
        """Console errors, exceptions and error log entries (CSP violations among them)."""
        found = []
        for event in self.events:
            method = event.get("method")
            params = event.get("params", {})
            console_error = method == "Runtime.consoleAPICalled" and params.get("type") == "error"
            if method == "Runtime.exceptionThrown" or console_error:
                found.append(params)
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(params["entry"])
        return found


@contextlib.contextmanager
def headless_page(profile: Path) -> Iterator[Page]:
    """A fresh headless Chromium with one blank page; the browser is stopped on exit."""
    port = free_port()
    arguments = [CHROMIUM, *FLAGS, f"--remote-debugging-port={port}"]
    process = subprocess.Popen(
        [*arguments, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        socket_url = _page_socket(port, process)
        with connect(socket_url, max_size=None, open_timeout=10) as socket:
            page = Page(socket)
            for domain in ("Page", "Runtime", "Log", "Network"):
                page.send(f"{domain}.enable")
            yield page
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _page_socket(port: int, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("chromium exited at start-up")
        try:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=1).json()
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        for target in targets:
            if target.get("type") == "page":
                return str(target["webSocketDebuggerUrl"])
        time.sleep(0.1)
    raise RuntimeError("chromium's DevTools endpoint did not come up")
