"""Zero failed requests while `bastion run` reloads (SIGHUP twice, then PUT /admin/config).

A bounded load of CONNECTIONS keep-alive clients runs for LOAD_SECONDS against a real
`python -m bastion run` process; mid-run the config file is re-read twice on SIGHUP (the
second time with a new route) and a changed config is applied through the admin API. Every
answer must be 200 and no request may fail to connect or time out. The counts are printed
(`pytest -s` shows them); docs/admin.md quotes a run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.harness import free_ports, running_upstream, wait_ready

pytestmark = pytest.mark.integration

CONNECTIONS = 20
LOAD_SECONDS = float(os.environ.get("BASTION_RELOAD_LOAD_SECONDS", "8"))
TOKEN = "reload-under-load-admin-token"


def _config(upstream: int, port: int, admin: int, paths: list[str]) -> dict[str, Any]:
    return {
        "listeners": [{"bind": f"127.0.0.1:{port}", "plaintext": True}],
        "admin": {"bind": f"127.0.0.1:{admin}", "token": TOKEN},
        "access_log": {"sink": "off"},
        "limits": {"idle_timeout": 30, "shutdown_timeout": 5},
        "services": [
            {
                "name": "echo",
                "upstream": {"targets": [f"http://127.0.0.1:{upstream}"]},
                "routes": [{"name": f"r{i}", "paths": [path]} for i, path in enumerate(paths)],
            }
        ],
    }


async def _load(url: str, stop_at: float, statuses: Counter[int], errors: Counter[str]) -> None:
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(limits=limits, timeout=5.0) as client:

        async def worker() -> None:
            while time.monotonic() < stop_at:
                try:
                    response = await client.get(url)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                statuses[response.status_code] += 1

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))


async def _changes(
    process: subprocess.Popen[bytes],
    config_path: Path,
    admin: int,
    documents: tuple[dict[str, Any], dict[str, Any]],
    done: list[str],
) -> None:
    step = LOAD_SECONDS / 4
    await asyncio.sleep(step)
    process.send_signal(signal.SIGHUP)  # the same file: a pure reload
    done.append("sighup")
    await asyncio.sleep(step)
    # A few hundred bytes: writing on the loop delays the load by microseconds.
    config_path.write_text(yaml.safe_dump(documents[0]))  # noqa: ASYNC240 - adds /b
    process.send_signal(signal.SIGHUP)
    done.append("sighup+route")
    await asyncio.sleep(step)
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=10.0, headers=headers) as admin_client:
        response = await admin_client.put(
            f"http://127.0.0.1:{admin}/admin/config", json=documents[1]
        )
    assert response.status_code == 200, response.text
    assert response.json()["applied"] is True
    done.append("put")


def test_reloads_and_admin_config_changes_under_load_fail_no_request(tmp_path: Path) -> None:
    with running_upstream() as (upstream, _seen):
        port, admin = free_ports(2)
        config_path = tmp_path / "bastion.yaml"
        config_path.write_text(yaml.safe_dump(_config(upstream, port, admin, ["/a"])))
        with_b = _config(upstream, port, admin, ["/a", "/b"])
        with_c = _config(upstream, port, admin, ["/a", "/b", "/c"])
        log = (tmp_path / "bastion.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "bastion", "run", "-c", str(config_path)],
            stdout=log,
            stderr=log,
        )
        try:
            wait_ready(admin, process)
            statuses: Counter[int] = Counter()
            errors: Counter[str] = Counter()
            done: list[str] = []

            async def main() -> None:
                stop_at = time.monotonic() + LOAD_SECONDS
                await asyncio.gather(
                    _load(f"http://127.0.0.1:{port}/a", stop_at, statuses, errors),
                    _changes(process, config_path, admin, (with_b, with_c), done),
                )

            started = time.monotonic()
            asyncio.run(main())
            elapsed = time.monotonic() - started
            status = httpx.get(
                f"http://127.0.0.1:{admin}/status",
                headers={"authorization": f"Bearer {TOKEN}"},
            ).json()
            new_route = httpx.get(f"http://127.0.0.1:{port}/c").status_code
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
            log.close()
    total = sum(statuses.values()) + sum(errors.values())
    print(  # noqa: T201 - the figures docs/admin.md quotes, shown with -s
        f"\nreload under load: {total} requests in {elapsed:.1f} s over {CONNECTIONS} "
        f"connections ({total / elapsed:.0f}/s); statuses {dict(statuses)}; "
        f"errors {dict(errors)}; changes {done}; final revision {status['config_revision']}"
    )
    assert done == ["sighup", "sighup+route", "put"]
    assert status["config_revision"] == 4
    assert new_route == 200  # the PUT config is the one serving
    assert errors == Counter()
    assert set(statuses) == {200}
    assert total >= CONNECTIONS * 10  # the load really ran across the changes
