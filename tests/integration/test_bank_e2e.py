"""The banking reference deployment end to end: the shipped config, the bank, the seed's threats.

Starts the bank (`python -m examples.bank`) and the gateway (`python -m bastion run -c
examples/bank/bastion.yaml`) as real processes, mints customer tokens with a key the test owns,
and walks each attack the deployment must stop, plus the happy paths it must keep working.
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
    """The running bank behind the gateway."""

    https: str
    http: str
    admin: str
    trust: Any
    access_log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.https, verify=self.trust, timeout=10)


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


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    state = tmp_path_factory.mktemp("bank")
    jwks_file = state / "jwks.json"
    jwks_file.write_bytes(jwks(ec_key("bank-idp-1")))
    bank_port, https_port, http_port, admin_port = free_ports(4)
    env = {
        **os.environ,
        "BANK_HTTPS_BIND": f"127.0.0.1:{https_port}",
        "BANK_HTTP_BIND": f"127.0.0.1:{http_port}",
        "BANK_ADMIN_BIND": f"127.0.0.1:{admin_port}",
        "BANK_UPSTREAM": f"http://127.0.0.1:{bank_port}",
        "BANK_JWKS_FILE": str(jwks_file),
        "BASTION_STATE_DIR": str(state),
        "BASTION_ADMIN_TOKEN": "e2e-admin-token-0123456789",
        "BASTION_ACCESS_LOG": str(state / "access.log"),
    }
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
    log = (state / "gateway.log").open("wb")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "bastion", "run", "-c", str(CONFIG)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        _wait(f"http://127.0.0.1:{bank_port}/healthz", upstream)
        _wait(f"http://127.0.0.1:{admin_port}/ready", gateway)
        trust = client_context(ca_file=state / "dev-cert.pem")
        yield Deployment(
            https=f"https://127.0.0.1:{https_port}",
            http=f"http://127.0.0.1:{http_port}",
            admin=f"http://127.0.0.1:{admin_port}",
            trust=trust,
            access_log=state / "access.log",
        )
    finally:
        _stop(gateway)
        _stop(upstream)
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
    assert amount not in response.text  # the client's value is never echoed


def test_transfer_flood_from_one_customer_gets_429(bank: Deployment) -> None:
    statuses = []
    with bank.client() as client:
        tok = token("cus_bob00001", scope="transfers:write")
        for _ in range(14):
            response = transfer(client, tok, "0.01", from_account=BOB_EUR, to_account=ALICE_EUR)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) > 0
                break
    assert statuses[-1] == 429, statuses
    assert len(statuses) <= 11  # the per-customer limit is 10 per minute


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
