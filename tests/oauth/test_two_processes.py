"""Two `bastion run` processes on one SQLite store: shared keys and revocation across processes.

With `counters: redis://`, revocations are pushed (Redis pub/sub) and failed client
authentications are counted in Redis, so both reach the other process at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.harness import free_ports, running_upstream, wait_ready
from tests.integration.redis_support import delete_prefix, require_redis, unique_prefix
from tests.oauth.test_gateway import call, register_client

pytestmark = pytest.mark.integration

REVOCATION_BOUND = 3.0
"""Seconds: the background reload runs at most once a second, triggered by traffic."""
PUSH_BOUND = 1.0
"""Seconds: with Redis the revocation is pushed to the other process."""


def _config(
    db: Path, state: Path, upstream: int, port: int, admin: int, counters: str
) -> dict[str, Any]:
    return {
        "counters": counters,
        "listeners": [{"bind": f"127.0.0.1:{port}", "tls": {}}],
        "admin": {"bind": f"127.0.0.1:{admin}"},
        "access_log": {"sink": "off"},
        "state_dir": str(state),
        "store": f"sqlite:///{db}",
        "oauth": {
            "issuer": "https://localhost:8443",
            "brute_force": {"max_failures": 3, "max_ip_failures": 10, "lockout": 60},
        },
        "services": [
            {
                "name": "echo",
                "upstream": {"targets": [f"http://127.0.0.1:{upstream}"]},
                "routes": [
                    {"name": "all", "paths": ["/"], "policies": {"jwt": {"issuer": "self"}}}
                ],
            }
        ],
    }


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[list[int], str, str]]:
    """Two gateway processes sharing one SQLite file: (their ports, client id, secret)."""
    yield from _two_nodes(tmp_path, "memory")


@pytest.fixture
def two_redis_nodes(tmp_path: Path) -> Iterator[tuple[list[int], str, str]]:
    """Two gateway processes sharing one SQLite file and one Redis (a key prefix of their own)."""
    require_redis()
    prefix = unique_prefix()
    try:
        yield from _two_nodes(tmp_path, f"redis://127.0.0.1:6379/0?prefix={prefix}")
    finally:
        delete_prefix(prefix)


def _two_nodes(tmp_path: Path, counters: str) -> Iterator[tuple[list[int], str, str]]:
    db = tmp_path / "bastion.db"
    client_id, secret = register_client(db, ["read"])
    with running_upstream() as (upstream_port, _seen):
        processes: list[subprocess.Popen[bytes]] = []
        ports: list[int] = []
        try:
            for index in range(2):
                port, admin_port = free_ports(2)
                state = tmp_path / f"node{index}"
                state.mkdir()
                path = tmp_path / f"node{index}.yaml"
                config = _config(db, state, upstream_port, port, admin_port, counters)
                path.write_text(yaml.safe_dump(config))
                log = (tmp_path / f"node{index}.log").open("wb")
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "bastion", "run", "-c", str(path)],
                        stdout=log,
                        stderr=log,
                        env=dict(os.environ),
                    )
                )
                log.close()
                wait_ready(admin_port, processes[-1])
                ports.append(port)
            yield ports, client_id, secret
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(10)


def _url(port: int, path: str) -> str:
    return f"https://127.0.0.1:{port}{path}"


def _status(port: int, token: str) -> int:
    return call("GET", _url(port, "/x"), headers={"Authorization": f"Bearer {token}"}).status_code


def test_tokens_of_one_process_are_accepted_and_revoked_on_the_other(two_nodes):
    ports, client_id, secret = two_nodes
    issued = call(
        "POST",
        _url(ports[0], "/oauth/token"),
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    assert issued.status_code == 200
    token = issued.json()["access_token"]
    for port in ports:  # both accept it, and now hold it in their verified-token caches
        assert _status(port, token) == 200
        assert _status(port, token) == 200
    revoked = call(
        "POST", _url(ports[0], "/oauth/revoke"), data={"token": token}, auth=(client_id, secret)
    )
    assert revoked.status_code == 200
    assert _status(ports[0], token) == 401  # at once where it was revoked
    started = time.monotonic()
    while _status(ports[1], token) != 401:
        assert time.monotonic() - started < REVOCATION_BOUND
        time.sleep(0.05)


def _issue(port: int, client_id: str, secret: str) -> str:
    issued = call(
        "POST",
        _url(port, "/oauth/token"),
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    assert issued.status_code == 200
    token = issued.json()["access_token"]
    assert isinstance(token, str)
    return token


@pytest.mark.redis
def test_a_revocation_is_pushed_to_the_other_process_within_a_second(two_redis_nodes):
    ports, client_id, secret = two_redis_nodes
    token = _issue(ports[0], client_id, secret)
    for port in ports:  # both hold it in their verified-token caches now
        assert _status(port, token) == 200
        assert _status(port, token) == 200
    revoked = call(
        "POST", _url(ports[0], "/oauth/revoke"), data={"token": token}, auth=(client_id, secret)
    )
    assert revoked.status_code == 200
    time.sleep(0.5)
    # The very first request after the revocation is refused: polling would only start a
    # reload on this request and answer it from the old set.
    assert _status(ports[1], token) == 401
    other = _issue(ports[1], client_id, secret)
    call("POST", _url(ports[1], "/oauth/revoke"), data={"token": other}, auth=(client_id, secret))
    started = time.monotonic()
    while _status(ports[0], other) != 401:
        assert time.monotonic() - started < PUSH_BOUND
        time.sleep(0.02)


@pytest.mark.redis
def test_failed_client_authentications_lock_the_pair_on_every_process(two_redis_nodes):
    ports, client_id, secret = two_redis_nodes

    def token_status(port: int, password: str) -> int:
        return call(
            "POST",
            _url(port, "/oauth/token"),
            data={"grant_type": "client_credentials"},
            auth=(client_id, password),
        ).status_code

    assert [token_status(ports[index % 2], "wrong") for index in range(3)] == [401] * 3
    time.sleep(0.2)  # the counts reach Redis in background tasks
    assert token_status(ports[0], secret) == 429
    assert token_status(ports[1], secret) == 429
