"""`python -m examples.bank` seeds an empty database and serves the API on a loopback port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from examples.bank.seed import ALICE, ALICE_EUR, ALICE_USD
from tests.examples.bank.support import consumer

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "examples.bank", "--port", str(port), "--db", str(tmp_path / "b")]
    process = subprocess.Popen(
        argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx2.get(base_url + "/healthz", timeout=1).raise_for_status()
                break
            except httpx2.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the bank did not start")
                time.sleep(0.05)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_module_serves_the_seeded_bank_over_loopback(server: str) -> None:
    response = httpx2.get(server + "/v1/accounts", headers=consumer(ALICE), timeout=5)

    assert response.status_code == 200
    assert [account["id"] for account in response.json()["data"]] == [ALICE_EUR, ALICE_USD]
    assert "server" not in response.headers
