"""Micro-benchmark: one OpenAPI request validation of the bank's transfer operation.

Run: .venv/bin/python bench/openapi_validation.py [--no-oracle]

Measures OpenAPIPolicy.access on `POST /v1/transfers` (a header parameter and a ~1 KB JSON
body, parsed and validated) and `GET /v1/accounts/{id}/transactions` (path and query
parameters), then openapi-core's `validate_request` on the same requests for scale, when it
is installed. Runs in a few seconds; figures vary with machine load.
"""

from __future__ import annotations

import sys
import tempfile
import timeit
from pathlib import Path

import orjson

from bastion.clock import FakeClock
from bastion.core.context import RequestContext
from bastion.core.policy import PolicyDeps
from bastion.http.headers import Headers
from bastion.http.request import Request
from bastion.policies.openapi import OpenAPIConfig, OpenAPIPolicy

SPEC = Path(__file__).resolve().parent.parent / "examples/bank/openapi.yaml"
BODY = orjson.dumps(
    {
        "from_account": "acc_0123456789abcdef",
        "to_account": "acc_fedcba9876543210",
        "amount": "1234.56",
        "currency": "EUR",
        "reference": "Invoice 2024-05 for consulting services, May (see attached summary)",
    }
)
# A 1 KB body needs a larger schema than the bank's transfer (whose fields are capped at
# ~300 bytes): an order with ten lines, each checked by type, pattern and bounds.
ORDER_SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "orders", "version": "1"},
    "paths": {
        "/orders/{shop}": {
            "post": {
                "parameters": [
                    {
                        "name": "shop",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^shp_[a-z0-9]{8}$"},
                    },
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "minLength": 8, "maxLength": 64},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["customer", "lines"],
                                "properties": {
                                    "customer": {
                                        "type": "string",
                                        "pattern": "^cus_[a-z0-9]{8,32}$",
                                    },
                                    "note": {"type": "string", "maxLength": 200},
                                    "lines": {
                                        "type": "array",
                                        "maxItems": 50,
                                        "items": {
                                            "type": "object",
                                            "required": ["sku", "quantity", "price"],
                                            "properties": {
                                                "sku": {
                                                    "type": "string",
                                                    "pattern": "^[A-Z]{2}-[0-9]{4}$",
                                                },
                                                "quantity": {
                                                    "type": "integer",
                                                    "minimum": 1,
                                                    "maximum": 99,
                                                },
                                                "price": {
                                                    "type": "string",
                                                    "pattern": "^[0-9]{1,8}\\.[0-9]{2}$",
                                                },
                                                "gift": {"type": "boolean"},
                                            },
                                        },
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {"201": {"description": "created"}},
            }
        }
    },
}
ORDER_BODY = orjson.dumps(
    {
        "customer": "cus_0123456789abcdef",
        "note": "Leave the parcel with the neighbour at number 12 if nobody answers the door.",
        "lines": [
            {
                "sku": f"AB-{1000 + i}",
                "quantity": i + 1,
                "price": f"{10 + i}.99",
                "gift": i % 2 == 0,
            }
            for i in range(12)
        ],
    }
)
HEADERS = [
    (b"host", b"localhost:8443"),
    (b"content-type", b"application/json"),
    (b"idempotency-key", b"k-0123456789abcdef"),
]


def _ctx(method: str, path: str, query: bytes, body: bytes | None) -> RequestContext:
    request = Request(
        method=method,
        path=path,
        query=query,
        headers=Headers(HEADERS),
        body=body,
        content_length=len(body) if body else None,
    )
    return RequestContext(request=request, start=0.0)


def _per_call_us(func: object, number: int) -> float:
    best = min(timeit.repeat(func, number=number, repeat=5))  # type: ignore[arg-type]  # a callable
    return best / number * 1e6


def _order_with_core(spec: Path) -> None:
    try:
        from openapi_core import OpenAPI
        from openapi_core.testing import MockRequest
    except ImportError:
        return
    api = OpenAPI.from_file_path(str(spec))
    request = MockRequest(
        "https://localhost",
        "post",
        "/orders/shp_abcdef12",
        headers={"Idempotency-Key": "k-0123456789abcdef"},
        data=ORDER_BODY,
        content_type="application/json",
    )
    api.validate_request(request)
    per_call = _per_call_us(lambda: api.validate_request(request), 100)
    print(f"openapi-core POST /orders/{{shop}} (same request): {per_call:8.1f} us")


def main() -> None:
    """Print microseconds per validation."""
    policy = OpenAPIPolicy(OpenAPIConfig(spec=SPEC), PolicyDeps(clock=FakeClock()))
    with tempfile.TemporaryDirectory() as folder:
        order_spec = Path(folder) / "orders.json"
        order_spec.write_bytes(orjson.dumps(ORDER_SPEC))
        orders = OpenAPIPolicy(OpenAPIConfig(spec=order_spec), PolicyDeps(clock=FakeClock()))
        order = _ctx("POST", "/orders/shp_abcdef12", b"", ORDER_BODY)
        if orders.access(order) is not None:
            raise SystemExit("unexpected awaitable")
        print(
            f"bastion  POST /orders/{{shop}} ({len(ORDER_BODY)} B JSON, path + header): "
            f"{_per_call_us(lambda: orders.access(order), 20000):6.2f} us"
        )
        if "--no-oracle" not in sys.argv:
            _order_with_core(order_spec)
    transfer = _ctx("POST", "/v1/transfers", b"", BODY)
    listing = _ctx(
        "GET", "/v1/accounts/acc_0123456789abcdef/transactions", b"limit=20&offset=40", None
    )
    for ctx in (transfer, listing):
        if policy.access(ctx) is not None:
            raise SystemExit("unexpected awaitable")
    us = _per_call_us(lambda: policy.access(transfer), 20000)
    print(f"bastion  POST /v1/transfers ({len(BODY)} B JSON + header): {us:6.2f} us")
    us = _per_call_us(lambda: policy.access(listing), 20000)
    print(f"bastion  GET  .../transactions (path + query): {us:6.2f} us")
    if "--no-oracle" in sys.argv:
        return
    try:
        from openapi_core import OpenAPI
        from openapi_core.testing import MockRequest
    except ImportError:
        print("openapi-core not installed: no comparison")
        return
    api = OpenAPI.from_file_path(str(SPEC))
    core_transfer = MockRequest(
        "https://localhost:8443",
        "post",
        "/v1/transfers",
        headers={"Idempotency-Key": "k-0123456789abcdef", "X-API-Key": "k"},
        data=BODY,
        content_type="application/json",
    )
    core_listing = MockRequest(
        "https://localhost:8443",
        "get",
        "/v1/accounts/acc_0123456789abcdef/transactions",
        args={"limit": "20", "offset": "40"},
        headers={"X-API-Key": "k"},
    )
    api.validate_request(core_transfer)
    api.validate_request(core_listing)
    us = _per_call_us(lambda: api.validate_request(core_transfer), 200)
    print(f"openapi-core POST /v1/transfers: {us:8.1f} us")
    us = _per_call_us(lambda: api.validate_request(core_listing), 200)
    print(f"openapi-core GET  .../transactions: {us:8.1f} us")


if __name__ == "__main__":
    main()
