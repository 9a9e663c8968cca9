"""Scan cost: a 40-operation API is scanned within 2 minutes at the default budget and rate."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.scanner.runner import ScanOptions, run_scan

pytestmark = pytest.mark.anyio

COLLECTIONS = 20  # each with an item path: 40 operations


def forty_operation_spec() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for n in range(COLLECTIONS):
        paths[f"/v1/things{n}"] = {
            "get": {
                "parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 50}}
                ],
                "responses": {"200": {"description": "ok"}},
            }
        }
        paths[f"/v1/things{n}/{{thing_id}}"] = {
            "get": {
                "parameters": [{"name": "thing_id", "in": "path", "required": True}],
                "responses": {"200": {"description": "ok"}},
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "forty", "version": "1"},
        "components": {"securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "k"}}},
        "security": [{"key": []}],
        "paths": paths,
    }


def forty_operation_app() -> Starlette:
    async def openapi(request: Request) -> Response:
        return JSONResponse(forty_operation_spec())

    async def collection(request: Request) -> Response:
        if request.headers.get("k") not in ("key-one", "key-two"):
            return JSONResponse({"title": "unauthenticated"}, status_code=401)
        return JSONResponse({"items": [{"id": 1}, {"id": 2}]})

    async def item(request: Request) -> Response:
        if request.headers.get("k") not in ("key-one", "key-two"):
            return JSONResponse({"title": "unauthenticated"}, status_code=401)
        return JSONResponse({"id": request.path_params["thing_id"]})

    routes = [Route("/openapi.json", openapi)]
    for n in range(COLLECTIONS):
        routes += [
            Route(f"/v1/things{n}", collection),
            Route(f"/v1/things{n}/{{thing_id}}", item),
        ]
    return Starlette(routes=routes)


async def test_forty_operation_scan_finishes_within_two_minutes_at_the_defaults():
    options = ScanOptions(target="https://forty.test", auth="k: key-one", auth2="k: key-two")
    started = time.monotonic()
    result = await run_scan(options, transport=httpx.ASGITransport(app=forty_operation_app()))
    elapsed = time.monotonic() - started
    assert result.operations == 40
    assert elapsed <= 120, f"{elapsed:.1f}s for {result.requests} requests"
    # The budget must not cut the scan short: the last check groups ran too.
    assert not any("budget" in note for note in result.notes), result.notes
    assert result.requests <= options.budget
