"""Checks that must stay quiet: the controls that keep false positives out."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping

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


def one_operation(path: str, parameter: Mapping[str, object], **operation: object) -> Starlette:
    document = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            path: {
                "get": {
                    "parameters": [parameter],
                    "responses": {"200": {"description": "ok"}},
                    **operation,
                }
            }
        },
    }

    async def spec(request: Request) -> Response:
        return JSONResponse(document)

    return Starlette(routes=[Route("/openapi.json", spec)])


async def timed_scan(app: Starlette, *checks: str) -> ScanResult:
    options = ScanOptions(
        target="https://api.test",
        rate=0,
        http_port=80,
        checks=checks,
        time_unit=0.2,
        time_budget=10,
    )
    return await run_scan(options, transport=httpx.ASGITransport(app=app))


async def test_time_probes_ignore_a_tarpit_that_delays_every_suspicious_value_equally():
    # A WAF-like tarpit: anything that mentions sleep waits 0.3 s, whatever delay was asked.
    async def lookup(request: Request) -> Response:
        if "sleep" in request.query_params.get("host", "").lower():
            await asyncio.sleep(0.3)
        return JSONResponse({"status": "queued"})

    app = one_operation("/v2/lookup", {"name": "host", "in": "query", "example": "a.test"})
    app.router.routes.append(Route("/v2/lookup", lookup))
    result = await timed_scan(app, "injection")
    assert result.findings == []


async def test_time_probes_confirm_a_delay_that_follows_the_requested_seconds():
    async def lookup(request: Request) -> Response:
        match = re.search(r";sleep ([0-9.]+)$", request.query_params.get("host", ""))
        if match:
            await asyncio.sleep(min(float(match[1]), 2))
        return JSONResponse({"status": "queued"})

    app = one_operation("/v2/lookup", {"name": "host", "in": "query", "example": "a.test"})
    app.router.routes.append(Route("/v2/lookup", lookup))
    result = await timed_scan(app, "injection")
    assert [(f.check.id, f.detail) for f in result.findings] == [
        ("INJECTION-007", "query parameter 'host' with value 'a.test;sleep 0.2' (time-based)")
    ]
    assert "asked for 0.6s" in result.findings[0].evidence


async def test_time_probes_stop_at_the_time_budget_and_say_so():
    async def lookup(request: Request) -> Response:
        return JSONResponse({"status": "queued"})

    app = one_operation("/v2/lookup", {"name": "host", "in": "query", "example": "a.test"})
    app.router.routes.append(Route("/v2/lookup", lookup))
    options = ScanOptions(
        target="https://api.test", rate=0, checks=("injection",), time_budget=0.5, time_unit=1
    )
    result = await run_scan(options, transport=httpx.ASGITransport(app=app))
    assert any("time budget" in note for note in result.notes)


async def test_redos_ignores_input_that_is_slow_but_not_slower_when_longer():
    async def check(request: Request) -> Response:
        if "!" in request.query_params.get("code", ""):
            await asyncio.sleep(0.3)  # a fixed penalty for odd characters: no backtracking
        return JSONResponse({"valid": False})

    parameter = {"name": "code", "in": "query", "schema": {"type": "string", "pattern": "^a+$"}}
    app = one_operation("/v2/coupons", parameter)
    app.router.routes.append(Route("/v2/coupons", check))
    result = await timed_scan(app, "input")
    assert result.findings == []


async def test_nosql_ignores_bracketed_keys_that_the_api_drops():
    async def payees(request: Request) -> Response:
        name = request.query_params.get("name")  # `name[$ne]` is simply another, unknown key
        items = ["landlord", "power"]
        return JSONResponse({"payees": [i for i in items if name is None or i == name]})

    parameter = {"name": "name", "in": "query", "schema": {"type": "string"}}
    app = one_operation("/v2/payees", parameter)
    app.router.routes.append(Route("/v2/payees", payees))
    result = await scan(app, "injection")
    assert result.findings == []


async def test_invalid_input_reports_a_crash_but_not_a_lenient_array():
    document = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/v2/notes": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "text": {"type": "string", "example": "hi"},
                                        "stars": {"type": "integer", "maximum": 5},
                                    },
                                }
                            }
                        }
                    },
                    "responses": {"201": {"description": "ok"}},
                }
            }
        },
    }

    async def spec(request: Request) -> Response:
        return JSONResponse(document)

    async def notes(request: Request) -> Response:
        body = json.loads(await request.body())
        stars = body.get("stars", 0)
        if not isinstance(stars, int) or isinstance(stars, bool) or not 0 <= stars <= 5:
            if stars == 10**30:
                return JSONResponse({"title": "overflow"}, status_code=500)
            return JSONResponse({"title": "bad stars"}, status_code=422)
        return JSONResponse({"text": str(body.get("text"))}, status_code=201)  # coerces text

    app = Starlette(
        routes=[Route("/openapi.json", spec), Route("/v2/notes", notes, methods=["POST"])]
    )
    options = ScanOptions(
        target="https://api.test", rate=0, checks=("input",), allow_unsafe=True, time_budget=0
    )
    result = await run_scan(options, transport=httpx.ASGITransport(app=app))
    assert [(f.check.id, f.detail) for f in result.findings] == [
        ("INPUT-002", "body property 'stars': an integer of 31 digits → 500")
    ]


async def test_bola_write_ignores_an_api_that_accepts_writes_to_missing_objects():
    document = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": {"k": {"type": "apiKey", "in": "header", "name": "k"}}},
        "security": [{"k": []}],
        "paths": {
            "/v2/notes": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/v2/notes/{note_id}": {
                "put": {
                    "parameters": [{"name": "note_id", "in": "path", "required": True}],
                    "responses": {"200": {"description": "ok"}},
                }
            },
        },
    }

    async def spec(request: Request) -> Response:
        return JSONResponse(document)

    async def notes(request: Request) -> Response:
        owner = request.headers.get("k")
        return JSONResponse({"notes": [{"id": 1 if owner == "one" else 2}]})

    async def note(request: Request) -> Response:
        return JSONResponse({"queued": True})  # every write "succeeds", even to missing ids

    app = Starlette(
        routes=[
            Route("/openapi.json", spec),
            Route("/v2/notes", notes),
            Route("/v2/notes/{note_id}", note, methods=["PUT"]),
        ]
    )
    options = ScanOptions(
        target="https://api.test",
        auth="k: one",
        auth2="k: two",
        rate=0,
        checks=("auth",),
        allow_unsafe=True,
        http_port=80,
    )
    result = await run_scan(options, transport=httpx.ASGITransport(app=app))
    assert "AUTHZ-004" not in {f.check.id for f in result.findings}
