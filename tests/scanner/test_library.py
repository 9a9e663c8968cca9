"""`bastion scan` against the blind third fixture, the library, served by uvicorn on loopback.

The library (tests/scanner/fixtures/library.py) was written before its author read the scanner's
code; docs/scanner.md ("Unseen-API test") records what the first scan found and what was fixed.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.scanner.runner import ScanOptions, ScanResult, run_scan
from tests.scanner.fixtures.library import LIBRARY_PLANTED, login_recipe
from tests.scanner.library_server import running_library

pytestmark = pytest.mark.anyio

# What a --safe scan cannot see: every planted flaw that only a write or a failed login shows.
UNSAFE_ONLY = frozenset(
    {"AUTH-008", "AUTH-009", "AUTHZ-002", "AUTHZ-004", "RESOURCE-002", "RESOURCE-003"}
)
TIME_UNIT = 0.4  # the library has no time-based flaw; a short unit keeps the negatives quick


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def scan_library(*, vulnerable: bool, allow_unsafe: bool, tmp_path: Path) -> ScanResult:
    tls_dir = None if vulnerable else tmp_path
    with running_library(vulnerable=vulnerable, tls_dir=tls_dir) as (url, _, bundle):
        options = ScanOptions(
            target=url,
            login=login_recipe("name1"),
            login2=login_recipe("name2"),
            allow_unsafe=allow_unsafe,
            rate=0,
            http_port=closed_port(),
            verify=str(bundle) if bundle else True,
            time_unit=TIME_UNIT,
        )
        return await run_scan(options)


def ids(result: ScanResult) -> set[str]:
    return {f.check.id for f in result.findings}


async def test_scan_finds_every_planted_flaw_of_the_blind_library(tmp_path: Path):
    found = ids(await scan_library(vulnerable=True, allow_unsafe=True, tmp_path=tmp_path))
    recall = len(found & LIBRARY_PLANTED) / len(LIBRARY_PLANTED)
    assert LIBRARY_PLANTED - found == set()
    assert recall == 1.0  # the blind run found 17 of 22 (0.77)
    assert found - LIBRARY_PLANTED == set()


async def test_safe_scan_of_the_library_misses_only_the_writing_checks(tmp_path: Path):
    found = ids(await scan_library(vulnerable=True, allow_unsafe=False, tmp_path=tmp_path))
    assert found == LIBRARY_PLANTED - UNSAFE_ONLY


async def test_scan_reports_nothing_on_the_fixed_library(tmp_path: Path):
    result = await scan_library(vulnerable=False, allow_unsafe=True, tmp_path=tmp_path)
    assert [(f.check.id, f.url) for f in result.findings] == []


# --- controls for the generic fixes the library led to ------------------------------------

LOGIN_SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/login": {
            "post": {
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "username": {"type": "string", "example": "ann"},
                                    "password": {"type": "string", "example": "x"},
                                },
                            }
                        }
                    }
                },
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/teams": {
            "post": {
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"name": {"type": "string", "example": "red"}},
                            }
                        }
                    }
                },
                "responses": {"201": {"description": "created"}},
            }
        },
    },
}


def login_app(*, distinct: bool, any_password: str = "") -> Starlette:
    """Failed logins answer 200 + status fail; `distinct` tells unknown users apart.

    `any_password` ("token" or "cookie"): ann is logged in whatever the password, answering a
    token in a nested object or a session cookie.
    """
    teams: list[str] = []

    async def login(request: Request) -> Response:
        body = await request.json()
        known = body.get("username") == "ann"
        if any_password == "cookie" and known and body.get("password") != "Ann-password-1":
            response = JSONResponse({"status": "success"})
            response.set_cookie("session", "s" * 24)
            return response
        if body == {"username": "ann", "password": "Ann-password-1"} or (known and any_password):
            return JSONResponse({"status": "success", "data": {"auth_token": "tok-" + "a" * 24}})
        message = "wrong password" if distinct and known else "invalid credentials"
        return JSONResponse({"status": "fail", "message": message})

    async def create_team(request: Request) -> Response:
        body = await request.json()
        if body.get("name") in teams:
            return JSONResponse({"status": "fail", "message": "exists"}, 400)
        teams.append(str(body.get("name")))
        # Answers the whole listing, which shows a real admin: not a privilege just gained.
        return JSONResponse({"teams": teams, "members": [{"name": "root", "admin": True}]}, 201)

    async def spec(request: Request) -> Response:
        return JSONResponse(LOGIN_SPEC)

    return Starlette(
        routes=[
            Route("/openapi.json", spec),
            Route("/login", login, methods=["POST"]),
            Route("/teams", create_team, methods=["POST"]),
        ]
    )


async def scan_login_app(*, distinct: bool, any_password: str = "") -> set[str]:
    recipe = 'POST /login {"username": "ann", "password": "Ann-password-1"} token=$.data.auth_token'
    options = ScanOptions(
        target="https://t.test",
        login=recipe,
        allow_unsafe=True,
        rate=0,
        http_port=80,
        checks=("auth", "resource"),
        time_budget=0,
    )
    app = login_app(distinct=distinct, any_password=any_password)
    result = await run_scan(options, transport=httpx.ASGITransport(app=app))
    return ids(result)


async def test_failed_logins_answered_200_are_compared_not_taken_for_success():
    assert "AUTH-008" in await scan_login_app(distinct=True)


async def test_uniform_failed_logins_answered_200_are_not_enumeration():
    found = await scan_login_app(distinct=False)
    assert "AUTH-008" not in found
    assert "AUTHZ-002" not in found  # the admin flag sat in a listing, not in the created team
    assert "RESOURCE-002" in found  # the large body's fresh team name was accepted


@pytest.mark.parametrize("answer", ["token", "cookie"])
async def test_a_login_that_takes_any_password_is_not_compared_as_a_failure(answer: str):
    # The "failed" login of the known user hands out a token or a session: nothing to compare.
    assert "AUTH-008" not in await scan_login_app(distinct=True, any_password=answer)
