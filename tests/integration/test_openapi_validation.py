"""openapi and injection_guard through both front doors, with the bank's OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.frontdoor import FRONT_DOORS, FrontDoor, open_front_door

pytestmark = pytest.mark.integration

BANK = Path(__file__).resolve().parents[2] / "examples/bank/openapi.yaml"
TRANSFER = {
    "from_account": "acc_12345678",
    "to_account": "acc_87654321",
    "amount": "12.50",
    "currency": "EUR",
}
KEY = {"Idempotency-Key": "key-12345678"}


@pytest.fixture(scope="module", params=FRONT_DOORS)
def bank_gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FrontDoor]:
    """A catch-all route guarded by injection_guard and the bank spec, behind either door."""
    state_dir = tmp_path_factory.mktemp("openapi")
    policies = {"injection_guard": {}, "openapi": {"spec": str(BANK), "additional": "strip"}}
    route = {"name": "all", "paths": ["/"], "policies": policies}
    document = {"services": [{"name": "echo", "routes": [route]}]}
    with open_front_door(request.param, state_dir, document) as door:
        yield door


def send(
    door: FrontDoor,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Send one request; return the status and the decoded JSON body."""
    sent = dict(headers or {})
    if body:
        sent["Content-Type"] = "application/json"
    reply = door.request(method, target, sent, body)
    return reply.status_code, json.loads(reply.content) if reply.content else None


def test_a_valid_transfer_reaches_the_upstream(bank_gateway):
    mark = bank_gateway.upstream_calls()
    status, _ = send(bank_gateway, "POST", "/v1/transfers", json.dumps(TRANSFER).encode(), KEY)
    assert status == 200
    assert bank_gateway.upstream_calls() == mark + 1


def test_undeclared_body_properties_are_stripped_before_the_upstream(bank_gateway):
    body = json.dumps({**TRANSFER, "status": "approved"}).encode()
    status, echoed = send(bank_gateway, "POST", "/v1/transfers", body, KEY)
    assert status == 200
    assert json.loads(echoed["body"]) == TRANSFER  # what the upstream received


@pytest.mark.parametrize(
    ("method", "target", "body", "headers", "status", "code"),
    [
        ("GET", "/v1/unknown", b"", {}, 404, "undocumented_path"),
        ("DELETE", "/v1/transfers", b"", {}, 405, "method_not_allowed"),
        ("GET", "/v1/accounts/acc_1", b"", {}, 400, "invalid_parameters"),
        (
            "GET",
            "/v1/accounts/acc_12345678/transactions?limit=500",
            b"",
            {},
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
        ("POST", "/v1/transfers", json.dumps(TRANSFER).encode(), {}, 400, "invalid_parameters"),
        ("GET", "/v1/accounts?q=%27%20OR%201%3D1--", b"", {}, 400, "injection_detected"),
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
    mark = bank_gateway.upstream_calls()
    got, problem = send(bank_gateway, method, target, body, headers)
    assert (got, problem["code"]) == (status, code)
    assert bank_gateway.upstream_calls() == mark


def test_validation_errors_list_locations_without_values(bank_gateway):
    body = json.dumps({**TRANSFER, "from_account": "acc_secret!!"}).encode()
    status, problem = send(bank_gateway, "POST", "/v2/transfers", body, KEY)
    assert status == 422
    assert {"in": "body", "path": "/amount", "message": "has the wrong type"} in problem["errors"]
    assert "secret" not in json.dumps(problem)
