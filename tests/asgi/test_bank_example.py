"""The bank example in middleware mode: tokens, scopes and spec checks inside the app."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from joserfc.jwk import OctKey
from starlette.testclient import TestClient

from examples.bank.asgi_app import AUDIENCE, ISSUER, create_protected_app
from examples.bank.seed import seed
from tests.policies.jwt.tokens import claims, sign

SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123456789"


def token(scope: str, subject: str = "cus_alice0001") -> str:
    payload = claims(now=time.time(), iss=ISSUER, aud=AUDIENCE, sub=subject, scope=scope)
    return sign(payload, OctKey.import_key(SECRET), alg="HS256")


@pytest.fixture
def bank(tmp_path: Path) -> TestClient:
    db = tmp_path / "bank.db"
    seed(db)
    return TestClient(create_protected_app(db, SECRET, access_log="off"))


def test_health_needs_no_token(bank: TestClient) -> None:
    response = bank.get("/healthz")
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"


def test_accounts_are_those_of_the_token_subject(bank: TestClient) -> None:
    auth = {"Authorization": f"Bearer {token('accounts:read')}"}
    response = bank.get("/v1/accounts", headers=auth)
    assert response.status_code == 200
    assert "acc_alice0001" in response.text
    assert "acc_bob00001" not in response.text


def test_a_spoofed_consumer_header_without_a_token_is_refused(bank: TestClient) -> None:
    response = bank.get("/v1/accounts", headers={"X-Bastion-Consumer": "cus_alice0001"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_a_transfer_needs_the_write_scope(bank: TestClient) -> None:
    body = {
        "from_account": "acc_alice0001",
        "to_account": "acc_bob00001",
        "amount": "1.00",
        "currency": "EUR",
    }
    headers = {"Content-Type": "application/json", "Idempotency-Key": "key-12345678"}
    read_only = {**headers, "Authorization": f"Bearer {token('accounts:read')}"}
    refused = bank.post("/v1/transfers", content=json.dumps(body), headers=read_only)
    assert refused.status_code == 403
    writer = {**headers, "Authorization": f"Bearer {token('accounts:read transfers:write')}"}
    done = bank.post("/v1/transfers", content=json.dumps(body), headers=writer)
    assert done.status_code == 201
    assert done.json()["amount"] == "1.00"


def test_paths_outside_the_config_are_not_found(bank: TestClient) -> None:
    assert bank.get("/admin").status_code == 404
