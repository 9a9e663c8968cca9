"""`--login` recipes: parsing, the token they yield, safe scans, masking, clear failures."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given, strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.scanner.report import render_json
from bastion.scanner.runner import (
    LoginRecipe,
    ScanError,
    ScanOptions,
    extract,
    parse_login,
    run_scan,
)
from tests.scanner.fixtures.shop import MEMBERS, make_shop

pytestmark = pytest.mark.anyio

ANN = MEMBERS["ann@shop.test"]["password"]


def recipe(email: str = "ann@shop.test", password: str = ANN) -> str:
    body = json.dumps({"email": email, "password": password})
    return f"POST /api/auth/login {body} token=$.api_key header=X-API-Key"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            'POST /login {"username": "u", "password": "p"} token=$.access_token',
            LoginRecipe("POST", "/login", {"username": "u", "password": "p"}, "$.access_token"),
        ),
        (
            'PUT /v1/session {"user": "u"} token=$.data.tokens[0] header=X-Session',
            LoginRecipe("PUT", "/v1/session", {"user": "u"}, "$.data.tokens[0]", "X-Session"),
        ),
        (
            "POST /token form:grant_type=password&username=u&password=p%26q token=$.access_token",
            LoginRecipe(
                "POST",
                "/token",
                {"grant_type": "password", "username": "u", "password": "p&q"},
                "$.access_token",
                form=True,
            ),
        ),
    ],
    ids=["bearer-default", "nested-path-custom-header", "form-encoded"],
)
def test_parse_login_reads_method_path_body_token_path_and_header(
    value: str, expected: LoginRecipe
):
    assert parse_login(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('POST /login {"u": 1}', "--login must look like"),
        ("POST /login {not json} token=$.t", "not JSON"),
        ("POST /login [1] token=$.t", "--login must look like"),
        ('DELETE /login {"u": 1} token=$.t', "--login must look like"),
        ('POST login {"u": 1} token=$.t', "--login must look like"),
    ],
    ids=["no-token", "bad-json", "array-body", "delete", "relative-path"],
)
def test_parse_login_refuses_malformed_recipes(value: str, message: str):
    with pytest.raises(ScanError, match=message):
        parse_login(value)


@given(st.text(max_size=80))
def test_parse_login_either_parses_or_says_why(value: str):
    try:
        parsed = parse_login(value)
    except ScanError:
        return
    assert parsed.path.startswith("/")
    assert isinstance(parsed.body, dict)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "token"]), children, max_size=3)
    ),
    max_leaves=12,
)


@given(JSON, st.sampled_from(["$", "$.a", "$.a.b", "$.token", "$[0]", "$.a[1].token"]))
def test_extract_returns_a_scalar_or_none_for_any_document(document: object, path: str):
    value = extract(document, path)
    assert value is None or isinstance(value, str)


def test_extract_follows_keys_and_indexes():
    document = {"data": {"tokens": [{"value": "t-0"}, {"value": 7}]}}
    assert extract(document, "$.data.tokens[0].value") == "t-0"
    assert extract(document, "$.data.tokens[1].value") == "7"
    assert extract(document, "$.data.tokens[2].value") is None


def recording(app: ASGIApp) -> tuple[ASGIApp, list[tuple[str, str, str]]]:
    seen: list[tuple[str, str, str]] = []

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            key = dict(scope["headers"]).get(b"x-api-key", b"").decode()
            seen.append((scope["method"], scope["path"], key))
        await app(scope, receive, send)

    return wrapper, seen


async def test_safe_scan_logs_in_once_then_sends_only_safe_methods_with_the_key():
    app, shop = make_shop(vulnerable=True)
    wrapped, seen = recording(app)
    options = ScanOptions(
        target="https://shop.test",
        openapi="https://shop.test/api/openapi.json",
        login=recipe(),
        rate=0,
        http_port=80,
        time_budget=0,
    )
    result = await run_scan(options, transport=httpx.ASGITransport(app=wrapped))
    unsafe = [
        (method, path) for method, path, _ in seen if method not in ("GET", "HEAD", "OPTIONS")
    ]
    assert unsafe == [("POST", "/api/auth/login")]
    key = shop.key_for("ann@shop.test")
    assert any(k == key for _, path, k in seen if path == "/api/members/me")
    report = render_json(result)
    assert result.findings
    assert key not in report
    assert ANN not in report


async def test_failed_login_stops_the_scan_with_the_status():
    app, _ = make_shop(vulnerable=False)
    options = ScanOptions(
        target="https://shop.test", login=recipe(password="wrong-password"), rate=0
    )
    with pytest.raises(ScanError, match=r"identity 1 answered 401 without a token at \$\.api_key"):
        await run_scan(options, transport=httpx.ASGITransport(app=app))


async def test_login_without_a_token_at_the_path_is_refused():
    app, _ = make_shop(vulnerable=False)
    options = ScanOptions(
        target="https://shop.test", login=recipe().replace("$.api_key", "$.token"), rate=0
    )
    with pytest.raises(ScanError, match="answered 200 without a token"):
        await run_scan(options, transport=httpx.ASGITransport(app=app))


async def test_form_encoded_login_yields_a_bearer_token_used_by_the_scan():
    seen: list[str] = []

    async def token(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if (form.get("username"), form.get("password")) != ("ann", "s3cret-pass"):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse({"access_token": "tok-ann-123", "token_type": "bearer"})

    async def me(request: Request) -> Response:
        seen.append(request.headers.get("authorization", ""))
        return JSONResponse({"name": "ann"})

    async def spec(request: Request) -> Response:
        paths = {"/me": {"get": {"responses": {"200": {"description": "ok"}}}}}
        return JSONResponse(
            {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths}
        )

    app = Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/me", me),
            Route("/openapi.json", spec),
        ]
    )
    options = ScanOptions(
        target="https://api.test",
        login="POST /token form:username=ann&password=s3cret-pass token=$.access_token",
        rate=0,
        checks=("headers",),
    )
    result = await run_scan(options, transport=httpx.ASGITransport(app=app))
    assert seen == ["Bearer tok-ann-123"]
    report = render_json(result)
    assert "tok-ann-123" not in report
    assert "s3cret-pass" not in report
