"""openapi response validation behind BastionMiddleware (the ASGI front door)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.asgi.support import client

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/api/user": {
            "get": {
                "parameters": [{"name": "status", "in": "query", "schema": {"type": "integer"}}],
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"name": {"type": "string"}},
                                }
                            }
                        },
                    }
                },
            }
        }
    },
}
# Needs the middleware to send `http.response.start` with the first released body bytes.


async def user(request: Request) -> JSONResponse:
    status = int(request.query_params.get("status", "200"))
    return JSONResponse({"name": "ann", "ssn": "123-45-6789"}, status_code=status)


def _client(tmp_path: Path, **settings: object) -> TestClient:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    app = Starlette(routes=[Route("/api/user", user)])
    route = {
        "name": "api",
        "paths": ["/api"],
        "policies": {"request_id": {}, "openapi": {"spec": str(spec), **settings}},
    }
    test, _ = client({"services": [{"name": "svc", "routes": [route]}]}, app=app)
    return test


def test_report_only_forwards_the_app_response(tmp_path):
    response = _client(tmp_path, validate_responses="report_only").get("/api/user")
    assert response.status_code == 200
    assert response.json()["ssn"] == "123-45-6789"


def test_strip_removes_undocumented_fields(tmp_path):
    response = _client(tmp_path, strip_undocumented_response_fields=True).get("/api/user")
    assert response.status_code == 200
    assert response.json() == {"name": "ann"}


def test_enforce_replaces_an_undocumented_status(tmp_path):
    response = _client(tmp_path, validate_responses="enforce").get("/api/user?status=500")
    assert response.status_code == 502
    assert response.json()["code"] == "invalid_upstream_response"
    assert "123-45-6789" not in response.text
    assert "x-request-id" in response.headers


def test_enforce_replaces_undocumented_fields(tmp_path):
    response = _client(tmp_path, validate_responses="enforce").get("/api/user")
    assert response.status_code == 502
    assert "123-45-6789" not in response.text
