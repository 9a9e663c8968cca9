"""Checks that must stay quiet: the controls that keep false positives out."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bastion.scanner.runner import ScanOptions, ScanResult, run_scan

pytestmark = pytest.mark.anyio

SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/v2/search": {
            "get": {
                "parameters": [{"name": "q", "in": "query", "required": True}],
                "responses": {"200": {"description": "ok"}},
            }
        }
    },
}


async def scan(app: Starlette, *checks: str) -> ScanResult:
    options = ScanOptions(target="https://api.test", rate=0, http_port=80, checks=checks)
    return await run_scan(options, transport=httpx.ASGITransport(app=app))


async def openapi(request: Request) -> Response:
    return JSONResponse(SPEC)


async def test_injection_ignores_database_errors_that_show_for_benign_input_too():
    async def always_broken(request: Request) -> Response:
        return PlainTextResponse("You have an error in your SQL syntax", status_code=500)

    app = Starlette(routes=[Route("/openapi.json", openapi), Route("/v2/search", always_broken)])
    result = await scan(app, "injection")
    assert result.findings == []


async def test_inventory_ignores_catch_all_routes_that_answer_every_path():
    async def everything(request: Request) -> Response:
        return PlainTextResponse("<html>single page app</html>")

    app = Starlette(routes=[Route("/openapi.json", openapi), Route("/{path:path}", everything)])
    result = await scan(app, "inventory")
    assert result.findings == []


async def test_cors_allowlist_of_one_origin_is_not_reported():
    async def search(request: Request) -> Response:
        response = JSONResponse([])
        if request.headers.get("origin") == "https://app.example":
            response.headers["access-control-allow-origin"] = "https://app.example"
        return response

    app = Starlette(routes=[Route("/openapi.json", openapi), Route("/v2/search", search)])
    result = await scan(app, "cors")
    assert result.findings == []


@pytest.mark.parametrize(
    ("server", "reported"),
    [("nginx/1.25.3", True), ("nginx", False), ("", False)],
    ids=["versioned", "product-only", "absent"],
)
async def test_server_banner_reported_only_with_a_version(server: str, reported: bool):
    async def search(request: Request) -> Response:
        return JSONResponse([], headers={"server": server} if server else {})

    app = Starlette(routes=[Route("/openapi.json", openapi), Route("/v2/search", search)])
    result = await scan(app, "misconfig")
    assert bool(result.findings) is reported
