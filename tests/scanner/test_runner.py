"""The runner's rules: safe methods by default, the request budget, scope, determinism, masking."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.scanner.http import ScanClient, ScanRefused
from bastion.scanner.report import render_json
from bastion.scanner.runner import ScanOptions, parse_identity, run_scan
from tests.scanner.fixtures.bank import make_app, spec, weak_token

pytestmark = pytest.mark.anyio


def recording(app: ASGIApp) -> tuple[ASGIApp, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length", b"0").decode()
            seen.append((scope["method"], length))
        await app(scope, receive, send)

    return wrapper, seen


def vulnerable_options(**overrides) -> ScanOptions:
    options = ScanOptions(
        target="https://bank.test",
        auth=f"Bearer {weak_token('alice')}",
        auth2=f"Bearer {weak_token('bob')}",
        rate=0,
        http_port=80,
        time_budget=0,  # the time-based probes have their own tests
    )
    return replace(options, **overrides)


async def test_safe_scan_sends_only_get_head_and_options():
    app, _ = make_app(vulnerable=True)
    wrapped, seen = recording(app)
    result = await run_scan(vulnerable_options(), transport=httpx.ASGITransport(app=wrapped))
    assert {method for method, _ in seen} <= {"GET", "HEAD", "OPTIONS"}
    assert "RESOURCE-002" not in {f.check.id for f in result.findings}


async def test_allow_unsafe_sends_one_bounded_large_body():
    app, _ = make_app(vulnerable=True)
    wrapped, seen = recording(app)
    options = vulnerable_options(allow_unsafe=True)
    await run_scan(options, transport=httpx.ASGITransport(app=wrapped))
    large = [int(length) for _, length in seen if int(length) > 64 * 1024]
    assert len(large) == 1
    assert large[0] <= 1024 * 1024


async def test_scan_stops_at_the_request_budget_and_says_so():
    app, _ = make_app(vulnerable=True)
    wrapped, seen = recording(app)
    options = vulnerable_options(budget=25)
    result = await run_scan(options, transport=httpx.ASGITransport(app=wrapped))
    assert len(seen) == result.requests == 25
    assert any("budget" in note for note in result.notes)


@pytest.mark.parametrize(
    ("url", "method"),
    [
        ("https://elsewhere.test/v2/accounts", "GET"),
        ("https://bank.test:8443/", "GET"),
        ("https://bank.test/v2/transfers", "DELETE"),
    ],
    ids=["other-host", "other-port", "unsafe-method"],
)
async def test_client_refuses_requests_outside_the_scan_rules(url: str, method: str):
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    client = ScanClient(
        "https://bank.test", budget=10, rate=0, allow_unsafe=False, transport=transport
    )
    with pytest.raises(ScanRefused):
        await client.send(method, url)
    await client.aclose()
    assert client.sent == 0


async def test_same_seed_gives_the_same_report():
    reports = []
    for _ in range(2):
        app, _ = make_app(vulnerable=True)
        result = await run_scan(vulnerable_options(seed=7), transport=httpx.ASGITransport(app=app))
        reports.append(render_json(result))
    assert reports[0] == reports[1]


async def test_evidence_never_shows_the_scan_credentials():
    app, _ = make_app(vulnerable=True)
    options = vulnerable_options(allow_unsafe=True)
    result = await run_scan(options, transport=httpx.ASGITransport(app=app))
    signature = weak_token("alice").rsplit(".", 1)[1]
    everything = render_json(result)
    assert result.findings
    assert signature not in everything
    assert weak_token("bob").rsplit(".", 1)[1] not in everything


async def test_scan_reads_the_spec_from_a_file(tmp_path: Path):
    app, _ = make_app(vulnerable=True)
    document = spec()
    document["paths"] = {"/v2/transactions": document["paths"]["/v2/transactions"]}
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(document))
    options = vulnerable_options(openapi=str(path), checks=("auth",))
    result = await run_scan(options, transport=httpx.ASGITransport(app=app))
    assert result.operations == 1
    assert {f.url for f in result.findings} == {"https://bank.test/v2/transactions"}


async def test_scan_without_a_spec_scans_the_root_and_common_paths():
    app, _ = make_app(vulnerable=True)

    async def no_spec(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/openapi.json":
            await httpx_404(send)
            return
        await app(scope, receive, send)

    options = vulnerable_options(checks=("inventory",))
    result = await run_scan(options, transport=httpx.ASGITransport(app=no_spec))
    assert not result.spec_found
    assert {f.url for f in result.findings} == {"https://bank.test/.env", "https://bank.test/debug"}


async def httpx_404(send) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.mark.parametrize(
    ("value", "headers", "credential"),
    [
        ("Bearer abc.def.ghi", {"Authorization": "Bearer abc.def.ghi"}, "abc.def.ghi"),
        ("Basic YWxpY2U6cHc=", {"Authorization": "Basic YWxpY2U6cHc="}, "YWxpY2U6cHc="),
        ("X-API-Key: k3y-value", {"X-API-Key": "k3y-value"}, "k3y-value"),
    ],
    ids=["bearer", "basic", "api-key-header"],
)
def test_auth_option_becomes_headers(value: str, headers: dict[str, str], credential: str):
    identity = parse_identity("identity 1", value)
    assert identity is not None
    assert (identity.headers, identity.credential) == (headers, credential)


async def test_probes_carry_the_operations_required_headers():
    document = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/v2/items": {
                "get": {
                    "parameters": [
                        {"name": "q", "in": "query", "example": "tea"},
                        {"name": "X-Tenant", "in": "header", "required": True, "example": "acme"},
                        {"name": "Idempotency-Key", "in": "header", "required": True},
                        {"name": "X-Optional", "in": "header", "example": "no"},
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    seen: list[dict[str, str]] = []

    async def spec_app(request: Request) -> Response:
        return JSONResponse(document)

    async def items(request: Request) -> Response:
        seen.append(dict(request.headers))
        return JSONResponse({"items": []})

    app = Starlette(routes=[Route("/openapi.json", spec_app), Route("/v2/items", items)])
    options = ScanOptions(target="https://api.test", rate=0, checks=("injection",), time_budget=0)
    await run_scan(options, transport=httpx.ASGITransport(app=app))
    assert len(seen) > 3
    assert all(headers.get("x-tenant") == "acme" for headers in seen)
    assert all("x-optional" not in headers for headers in seen)
    keys = [headers["idempotency-key"] for headers in seen]
    assert len(set(keys)) == len(keys)  # a fresh key per request: no replayed answers
