"""The banking reference deployment end to end: the shipped config, the bank, the seed's threats.

Starts the bank (`python -m examples.bank`) and the gateway (`python -m bastion run -c
examples/bank/bastion.yaml`) as real processes, mints customer tokens with a key the test owns,
and walks each attack the deployment must stop, plus the happy paths it must keep working. It
runs twice: one gateway on SQLite and in-memory counters, and a two-node cluster sharing the
real PostgreSQL and Redis (requests alternate between the nodes).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.proxy.tls import client_context
from tests.integration.harness import free_ports
from tests.policies.jwt.tokens import claims, ec_key, jwks, sign, unsigned

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "examples" / "bank" / "bastion.yaml"
ISSUER = "https://idp.bank.example"
ALICE, BOB = "cus_alice0001", "cus_bob00001"
ALICE_EUR, BOB_EUR = "acc_alice0001", "acc_bob00001"


@dataclass
class Deployment:
    """The running bank behind one gateway or a cluster of two."""

    https: str
    http: str
    admin: str
    trust: Any
    access_log: Path
    nodes: tuple[str, ...] = ()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.https, verify=self.trust, timeout=10)

    def node_clients(self) -> list[httpx.Client]:
        """One client per gateway node (one in single mode)."""
        bases = self.nodes or (self.https,)
        return [httpx.Client(base_url=base, verify=self.trust, timeout=10) for base in bases]


def _wait(url: str, process: subprocess.Popen[bytes], timeout: float = 30, **kw: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1, **kw).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become ready")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def _cluster_backends(mode: str) -> Iterator[dict[str, str]]:
    """Environment for the shared store and counters: none for one node, PG + Redis for two."""
    if mode == "single":
        yield {}
        return
    from tests.integration.redis_support import delete_prefix, require_redis, unique_prefix
    from tests.store.support import postgres_schema

    require_redis()
    prefix = unique_prefix()
    with postgres_schema() as store_url:
        try:
            yield {
                "BASTION_STORE": store_url,
                "BASTION_COUNTERS": f"redis://127.0.0.1:6379/0?prefix={prefix}",
            }
        finally:
            delete_prefix(prefix)


@pytest.fixture(scope="module", params=["single", "cluster"])
def bank(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    mode: str = request.param
    state = tmp_path_factory.mktemp(f"bank-{mode}")
    jwks_file = state / "jwks.json"
    jwks_file.write_bytes(jwks(ec_key("bank-idp-1")))
    nodes = 2 if mode == "cluster" else 1
    bank_port, *ports = free_ports(1 + 3 * nodes)
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    with _cluster_backends(mode) as backends:
        upstream = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "examples.bank",
                "--port",
                str(bank_port),
                "--db",
                str(state / "b.db"),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(upstream)
        try:
            _wait(f"http://127.0.0.1:{bank_port}/healthz", upstream)
            for node in range(nodes):
                https_port, http_port, admin_port = ports[3 * node : 3 * node + 3]
                env = {
                    **os.environ,
                    **backends,
                    "BANK_HTTPS_BIND": f"127.0.0.1:{https_port}",
                    "BANK_HTTP_BIND": f"127.0.0.1:{http_port}",
                    "BANK_ADMIN_BIND": f"127.0.0.1:{admin_port}",
                    "BANK_UPSTREAM": f"http://127.0.0.1:{bank_port}",
                    "BANK_JWKS_FILE": str(jwks_file),
                    "BASTION_STATE_DIR": str(state),
                    "BASTION_ADMIN_TOKEN": "e2e-admin-token-0123456789",
                    "BASTION_ACCESS_LOG": str(state / f"access-{node}.log"),
                }
                env.setdefault("BASTION_STORE", f"sqlite:///{state / 'bastion.db'}")
                log = (state / f"gateway-{node}.log").open("wb")
                logs.append(log)
                gateway = subprocess.Popen(
                    [sys.executable, "-m", "bastion", "run", "-c", str(CONFIG)],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=log,
                )
                processes.append(gateway)
                _wait(f"http://127.0.0.1:{admin_port}/ready", gateway)
            first_https, first_http, first_admin = ports[0:3]
            yield Deployment(
                https=f"https://127.0.0.1:{first_https}",
                http=f"http://127.0.0.1:{first_http}",
                admin=f"http://127.0.0.1:{first_admin}",
                trust=client_context(ca_file=state / "dev-cert.pem"),
                access_log=state / "access-0.log",
                nodes=tuple(f"https://127.0.0.1:{ports[3 * n]}" for n in range(nodes)),
            )
        finally:
            for process in reversed(processes):
                _stop(process)
            for log in logs:
                log.close()


def token(customer: str = ALICE, **overrides: Any) -> str:
    """A customer access token from the bank's identity provider (the test's key)."""
    now = time.time()
    payload = claims(now, iss=ISSUER, aud="bank", sub=customer, jti=uuid.uuid4().hex)
    payload.update(overrides)
    return sign(payload, ec_key("bank-idp-1"), alg="ES256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def transfer(client: httpx.Client, tok: str, amount: str = "1.00", **body: Any) -> httpx.Response:
    document = {"from_account": ALICE_EUR, "to_account": BOB_EUR, "amount": amount}
    document.update({"currency": "EUR", **body})
    headers = {**bearer(tok), "Idempotency-Key": uuid.uuid4().hex}
    return client.post("/v1/transfers", json=document, headers=headers)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert "traceback" not in response.text.lower()
    return body


# -- the happy paths the protection must not break -----------------------------------------------


def test_customer_reads_own_accounts_over_https_with_hardening_headers(bank: Deployment) -> None:
    with bank.client() as client:
        response = client.get("/v2/accounts", headers=bearer(token()))
    assert response.status_code == 200, response.text
    assert {account["id"] for account in response.json()["data"]} >= {ALICE_EUR}
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "ratelimit" in response.headers


def test_deprecated_v1_answers_with_deprecation_and_sunset_headers(bank: Deployment) -> None:
    with bank.client() as client:
        response = client.get("/v1/accounts", headers=bearer(token()))
    assert response.status_code == 200
    assert response.headers["deprecation"].startswith("@")
    assert response.headers["sunset"].endswith("GMT")
    assert 'rel="successor-version"' in response.headers["link"]


def test_customer_moves_money_once_per_idempotency_key(bank: Deployment) -> None:
    with bank.client() as client:
        key = {"Idempotency-Key": uuid.uuid4().hex}
        body = {"from_account": ALICE_EUR, "to_account": BOB_EUR, "amount": "2.50"}
        body["currency"] = "EUR"
        first = client.post("/v1/transfers", json=body, headers={**bearer(token()), **key})
        again = client.post("/v1/transfers", json=body, headers={**bearer(token()), **key})
    assert first.status_code == 201, first.text
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]


# -- the threats -----------------------------------------------------------------------------------


def test_plaintext_http_is_redirected_to_https(bank: Deployment) -> None:
    response = httpx.get(f"{bank.http}/v1/accounts")
    assert response.status_code == 308
    assert response.headers["location"].startswith("https://")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        (bearer("not-a-token"), "invalid_token"),
        (bearer(unsigned(claims(time.time(), iss=ISSUER, aud="bank", sub=ALICE))), "invalid_token"),
        (
            bearer(
                sign(
                    claims(time.time(), iss=ISSUER, aud="bank", sub=ALICE),
                    ec_key("attacker"),
                    alg="ES256",
                )
            ),
            "invalid_token",
        ),
        (bearer(token(exp=int(time.time()) - 120)), "invalid_token"),
        (bearer(token(aud="another-service")), "invalid_token"),
    ],
    ids=["no_token", "garbage", "alg_none", "forged_signature", "expired", "stolen_for_other_aud"],
)
def test_missing_forged_expired_or_stolen_tokens_get_401(
    bank: Deployment, headers: dict[str, str], code: str
) -> None:
    with bank.client() as client:
        response = client.get("/v2/accounts", headers=headers)
    assert _problem(response, 401)["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_token_without_the_scope_cannot_move_money(bank: Deployment) -> None:
    with bank.client() as client:
        response = transfer(client, token(scope="accounts:read"))
    assert _problem(response, 403)["code"] == "insufficient_scope"


def test_another_customers_account_is_refused_by_the_ownership_check(bank: Deployment) -> None:
    with bank.client() as client:
        response = client.get(f"/v2/accounts/{BOB_EUR}", headers=bearer(token(ALICE)))
        spoofed = client.get(
            f"/v2/accounts/{BOB_EUR}",
            headers={**bearer(token(ALICE)), "X-Bastion-Consumer": BOB},
        )
    assert response.status_code == 403  # the bank's check, on the identity Bastion forwarded
    assert spoofed.status_code == 403  # a client-sent identity header never reaches the bank


@pytest.mark.parametrize(
    "path",
    ["/v2/accounts/acc_alice0001'%20OR%20'1'='1", "/v2/accounts/acc_alice0001%3Bdrop%20table"],
    ids=["sql_injection", "stacked_query"],
)
def test_injection_in_the_path_is_refused(bank: Deployment, path: str) -> None:
    with bank.client() as client:
        response = client.get(path, headers=bearer(token()))
    _problem(response, 400)


@pytest.mark.parametrize(
    ("amount", "extra"),
    [("12.345", {}), ("-5", {}), ("1e3", {}), ("10", {"is_admin": True})],
    ids=["three_decimals", "negative", "exponent", "mass_assignment"],
)
def test_malformed_amounts_and_unknown_fields_are_refused(
    bank: Deployment, amount: str, extra: dict[str, Any]
) -> None:
    with bank.client() as client:
        response = transfer(client, token(BOB), amount, **extra)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert f'"{amount}"' not in response.text  # the client's value is never echoed


def test_transfer_flood_from_one_customer_gets_429(bank: Deployment) -> None:
    # In the cluster the requests alternate between the two nodes: the per-customer limit of 10
    # a minute is shared through Redis, not 10 per node.
    statuses = []
    clients = bank.node_clients()
    try:
        tok = token("cus_bob00001", scope="transfers:write")
        for attempt in range(24):
            client = clients[attempt % len(clients)]
            response = transfer(client, tok, "0.01", from_account=BOB_EUR, to_account=ALICE_EUR)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) > 0
                break
    finally:
        for client in clients:
            client.close()
    assert statuses[-1] == 429, statuses
    assert len(statuses) <= 11  # the per-customer limit is 10 per minute, across all nodes


def test_retired_version_gets_410(bank: Deployment) -> None:
    with bank.client() as client:
        response = client.get("/v0/accounts", headers=bearer(token()))
    assert _problem(response, 410)["code"] == "api_version_sunset"


def test_access_log_holds_no_token(bank: Deployment) -> None:
    secret = token()
    with bank.client() as client:
        request_id = client.get("/v2/accounts", headers=bearer(secret)).headers["x-request-id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and request_id not in bank.access_log.read_text():
        time.sleep(0.2)  # the sink flushes twice a second
    text = bank.access_log.read_text()
    assert request_id in text
    assert secret not in text
    assert secret.rsplit(".", 1)[1] not in text  # not even the signature


# Last in the module: it locks the test client's address out for the rest of the lockout.
def test_guessing_tokens_from_one_address_gets_locked_out(bank: Deployment) -> None:
    statuses = []
    with bank.client() as client:
        for _ in range(30):
            forged = sign(
                claims(time.time(), iss=ISSUER, aud="bank", sub=ALICE), ec_key("guess"), alg="ES256"
            )
            response = client.get("/v2/accounts", headers=bearer(forged))
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        # Once locked, even a valid token from this address waits out the lockout.
        locked = client.get("/v2/accounts", headers=bearer(token()))
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {401}
    assert locked.status_code == 429
    assert _problem(locked, 429)["code"] == "too_many_failures"
    assert int(locked.headers["retry-after"]) > 0
