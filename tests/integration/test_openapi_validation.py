"""openapi and injection_guard through a real gateway, with the bank's OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.harness import RunningGateway, read_response, running_gateway, status_of

pytestmark = pytest.mark.integration

BANK = Path(__file__).resolve().parents[2] / "examples/bank/openapi.yaml"
TRANSFER = {
    "from_account": "acc_12345678",
    "to_account": "acc_87654321",
    "amount": "12.50",
    "currency": "EUR",
}
KEY = "Idempotency-Key: key-12345678\r\n"


@pytest.fixture(scope="module")
def bank_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """The echo service's catch-all route guarded by injection_guard and the bank spec."""
    state_dir = tmp_path_factory.mktemp("openapi")
    with running_gateway(state_dir, config_file=True) as running:
        config_path = state_dir / "bastion.yaml"
        document = yaml.safe_load(config_path.read_text())
        document["services"][0]["routes"][0]["policies"] = {
            "injection_guard": {},
            "openapi": {"spec": str(BANK), "additional": "strip"},
        }
        config_path.write_text(yaml.safe_dump(document))
        running.reload()
        yield running


def send(
    gateway: RunningGateway, method: str, target: str, body: bytes = b"", headers: str = ""
) -> tuple[int, Any]:
    """Send one request; return the status and the decoded JSON body."""
    head = f"{method} {target} HTTP/1.1\r\nHost: a\r\n{headers}"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    with gateway.connect() as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        response = read_response(sock)
    payload = response.split(b"\r\n\r\n", 1)[1]
    return status_of(response), json.loads(payload) if payload else None


def test_a_valid_transfer_reaches_the_upstream(bank_gateway):
    mark = len(bank_gateway.seen)
    status, _ = send(bank_gateway, "POST", "/v1/transfers", json.dumps(TRANSFER).encode(), KEY)
    assert status == 200
    assert len(bank_gateway.seen) == mark + 1


def test_undeclared_body_properties_are_stripped_before_the_upstream(bank_gateway):
    body = json.dumps({**TRANSFER, "status": "approved"}).encode()
    mark = len(bank_gateway.seen)
    status, _ = send(bank_gateway, "POST", "/v1/transfers", body, KEY)
    assert status == 200
    forwarded = bank_gateway.seen[mark]
    assert "approved" not in json.dumps(forwarded)


@pytest.mark.parametrize(
    ("method", "target", "body", "headers", "status", "code"),
    [
        ("GET", "/v1/unknown", b"", "", 404, "undocumented_path"),
        ("DELETE", "/v1/transfers", b"", "", 405, "method_not_allowed"),
        ("GET", "/v1/accounts/acc_1", b"", "", 400, "invalid_parameters"),
        (
            "GET",
            "/v1/accounts/acc_12345678/transactions?limit=500",
            b"",
            "",
            400,
            "invalid_parameters",
        ),
        (
            "POST",
            "/v1/transfers",
            json.dumps({**TRANSFER, "amount": 12}).encode(),
            KEY,
            422,
            "unprocessable_content",
        ),
        ("POST", "/v1/transfers", b"{not json", KEY, 400, "invalid_body"),
        ("POST", "/v1/transfers", json.dumps(TRANSFER).encode(), "", 400, "invalid_parameters"),
        ("GET", "/v1/accounts?q=%27%20OR%201%3D1--", b"", "", 400, "injection_detected"),
    ],
    ids=[
        "undocumented-path",
        "undocumented-method",
        "bad-path-param",
        "query-above-max",
        "body-wrong-type",
        "body-not-json",
        "missing-header",
        "sqli",
    ],
)
def test_invalid_requests_are_refused_before_the_upstream(
    bank_gateway, method, target, body, headers, status, code
):
    mark = len(bank_gateway.seen)
    got, problem = send(bank_gateway, method, target, body, headers)
    assert (got, problem["code"]) == (status, code)
    assert bank_gateway.seen[mark:] == []


def test_validation_errors_list_locations_without_values(bank_gateway):
    body = json.dumps({**TRANSFER, "from_account": "acc_secret!!"}).encode()
    status, problem = send(bank_gateway, "POST", "/v2/transfers", body, KEY)
    assert status == 422
    assert {"in": "body", "path": "/amount", "message": "has the wrong type"} in problem["errors"]
    assert "secret" not in json.dumps(problem)
