"""Helpers for the banking example tests: headers, balances and checks against openapi.yaml."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
from openapi_schema_validator import OAS31Validator, validate
from starlette.testclient import TestClient

from examples.bank.seed import ALICE

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
SPEC_PATH = Path(__file__).parents[3] / "examples" / "bank" / "openapi.yaml"


def consumer(customer: str) -> dict[str, str]:
    """The header the gateway adds for an authenticated customer."""
    return {"X-Bastion-Consumer": customer}


def balance(client: TestClient, account: str, customer: str = ALICE) -> Decimal:
    response = client.get(f"/v1/accounts/{account}", headers=consumer(customer))
    assert response.status_code == 200, response.text
    return Decimal(response.json()["balance"])


def schema_validate(spec: dict[str, Any], schema: dict[str, Any], instance: object) -> None:
    """Validate `instance` against a schema of the contract, resolving its local $refs.

    Raises:
        jsonschema.exceptions.ValidationError: `instance` does not match.
    """
    validate(
        instance,
        {**schema, "components": spec["components"]},
        cls=OAS31Validator,
        format_checker=OAS31Validator.FORMAT_CHECKER,
    )


def schema_errors(spec: dict[str, Any], name: str, instance: object) -> list[str]:
    """Messages of every way `instance` breaks the contract's component schema `name`."""
    validator = OAS31Validator(
        {"$ref": f"#/components/schemas/{name}", "components": spec["components"]},
        format_checker=OAS31Validator.FORMAT_CHECKER,
    )
    return [error.message for error in validator.iter_errors(instance)]


def ecma_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a contract pattern so `$` means end of string, as in ECMA-262 and jsonschema-rs.

    Python's `$` also matches before a final newline, which would make the oracle too lenient.
    """
    return re.compile(pattern.removesuffix("$") + r"\Z" if pattern.endswith("$") else pattern)


def assert_documented(spec: dict[str, Any], response: httpx2.Response, template: str) -> None:
    """The response's status, media type and body are what openapi.yaml says for the operation."""
    operation = spec["paths"][template][response.request.method.lower()]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{response.status_code} not documented for {template}"
    if "$ref" in documented:
        documented = spec["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
    ((media_type, content),) = documented["content"].items()
    assert response.headers["content-type"].split(";")[0] == media_type
    schema_validate(spec, content["schema"], response.json())
