"""BastionMiddleware in front of a Starlette app: policies, identity, bodies, pass-through."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from bastion.asgi import BastionMiddleware, require_scopes
from bastion.clock import FakeClock
from bastion.config.loader import ConfigErrors
from bastion.errors import ConfigError
from bastion.observability.access_log import AccessLog
from bastion.observability.sinks import MemorySink
from tests.asgi.support import (
    QUIET,
    client,
    echo_app,
    jwt_settings,
    provision_api_key,
    store_settings,
)
from tests.policies.jwt.tokens import claims, sign

BANK_SPEC = Path(__file__).resolve().parents[2] / "examples/bank/openapi.yaml"
TRANSFER = {
    "from_account": "acc_12345678",
    "to_account": "acc_87654321",
    "amount": "12.50",
    "currency": "EUR",
}


def one_route(policies: dict[str, Any], **route: Any) -> dict[str, Any]:
    """A config with one service and one route `/api` carrying `policies`."""
    spec = {"name": "api", "paths": ["/api"], "policies": policies, **route}
    return {"services": [{"name": "svc", "routes": [spec]}]}


# -- request and response shaping -------------------------------------------------------------


def test_security_headers_reach_app_responses_and_rejections() -> None:
    test, _ = client(one_route({"size_limit": {"max_body_bytes": 4}}))
    ok = test.get("/api")
    refused = test.post("/api", content=b"too long")
    for response in (ok, refused):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert ok.status_code == 200
    assert refused.status_code == 413


def test_request_id_is_shared_by_app_and_response_and_spoofed_identity_is_removed() -> None:
    test, _ = client({})
    response = test.get(
        "/a", headers={"X-Bastion-Consumer": "mallory", "X-Bastion_Scopes": "admin"}
    )
    seen = dict(response.json()["headers"])
    assert seen["x-request-id"] == response.headers["x-request-id"]
    assert "x-bastion-consumer" not in seen
    assert "x-bastion_scopes" not in seen


def test_incoming_request_id_is_kept_when_trusted() -> None:
    test, _ = client({"global_policies": {"request_id": {"trust_incoming": True}}})
    response = test.get("/a", headers={"X-Request-ID": "abc-12345"})
    assert response.headers["x-request-id"] == "abc-12345"
    assert dict(response.json()["headers"])["x-request-id"] == "abc-12345"


@pytest.mark.parametrize(
    ("raw", "path"),
    [("/a/./b", "/a/b"), ("/a//b/../c", "/a/c"), ("/%7Euser", "/~user")],
    ids=["dot", "slashes-and-dotdot", "unreserved-escape"],
)
def test_app_sees_the_canonical_path(raw: str, path: str) -> None:
    test, _ = client({})
    assert test.get(raw).json()["path"] == path


@pytest.mark.parametrize(
    "raw", ["/a%2Fb", "/..;/admin", "/%252e"], ids=["encoded-slash", "dot-param", "double"]
)
def test_ambiguous_path_is_refused_before_the_app(raw: str) -> None:
    test, app = client({})
    response = test.get(raw)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "bad_path"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert app.state.calls == 0


def test_cors_preflight_is_answered_without_the_app() -> None:
    cors = {"cors": {"allow_origins": ["https://app.example"], "allow_methods": ["GET", "POST"]}}
    test, app = client({"global_policies": cors})
    response = test.options(
        "/api",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert app.state.calls == 0
    actual = test.get("/api", headers={"Origin": "https://app.example"})
    assert actual.headers["access-control-allow-origin"] == "https://app.example"
    assert app.state.calls == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("client_ip", "status"),
    [("10.1.2.3", 200), ("192.0.2.7", 403), ("::ffff:10.0.0.1", 200)],
    ids=["allowed", "not-allowed", "v4-mapped-allowed"],
)
async def test_ip_filter_uses_the_asgi_client_address(client_ip: str, status: int) -> None:
    app = echo_app()
    config = {**QUIET, "global_policies": {"ip_filter": {"allow": ["10.0.0.0/8"]}}}
    wrapped = BastionMiddleware(app, config)
    transport = httpx2.ASGITransport(app=wrapped, client=(client_ip, 5000))
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/x")
    assert response.status_code == status


def test_ip_filter_refuses_a_client_without_an_address_when_allow_is_set() -> None:
    # Starlette's TestClient reports the client as the name "testclient", not an address.
    test, app = client({"global_policies": {"ip_filter": {"allow": ["10.0.0.0/8"]}}})
    assert test.get("/x").status_code == 403
    assert app.state.calls == 0


# -- bodies -----------------------------------------------------------------------------------


def test_size_limit_refuses_a_declared_length_over_the_limit() -> None:
    test, app = client(one_route({"size_limit": {"max_body_bytes": 8}}))
    response = test.post("/api", content=b"x" * 9)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert app.state.calls == 0


def test_size_limit_stops_a_streamed_body_at_the_limit() -> None:
    test, _ = client(one_route({"size_limit": {"max_body_bytes": 8}}))

    def chunks() -> Any:
        yield b"12345"
        yield b"67890"

    response = test.post("/api", content=chunks())  # no Content-Length: chunked
    assert response.status_code == 413


def test_global_body_limit_applies_without_a_size_limit_policy() -> None:
    test, _ = client({"limits": {"max_body_bytes": 4}})
    assert test.post("/x", content=b"12345").status_code == 413
    assert test.post("/x", content=b"1234").json()["body"] == "1234"


def test_streamed_body_under_the_limit_reaches_the_app() -> None:
    test, _ = client(one_route({"size_limit": {"max_body_bytes": 100}}))

    def chunks() -> Any:
        yield b"hello "
        yield b"world"

    assert test.post("/api", content=chunks()).json()["body"] == "hello world"


def bank_route(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The bank's OpenAPI document on a catch-all route."""
    policies = {"openapi": {"spec": str(BANK_SPEC), "additional": "strip"}, **(extra or {})}
    return {
        "services": [
            {"name": "bank", "routes": [{"name": "all", "paths": ["/"], "policies": policies}]}
        ]
    }


def test_openapi_admits_a_valid_transfer_and_replays_the_buffered_body() -> None:
    test, _ = client(bank_route())
    body = json.dumps({**TRANSFER, "status": "approved"})
    response = test.post(
        "/v1/transfers",
        content=body,
        headers={"content-type": "application/json", "idempotency-key": "key-12345678"},
    )
    assert response.status_code == 200
    seen = response.json()
    forwarded = json.loads(seen["body"])
    assert forwarded["amount"] == "12.50"
    assert "status" not in forwarded  # stripped by the policy before the app
    assert dict(seen["headers"])["content-length"] == str(len(seen["body"]))


@pytest.mark.parametrize(
    ("method", "target", "body", "status"),
    [
        ("GET", "/v1/unknown", None, 404),
        ("DELETE", "/v1/transfers", None, 405),
        ("POST", "/v1/transfers", {"amount": "1"}, 422),
    ],
    ids=["undocumented-path", "undocumented-method", "invalid-body"],
)
def test_openapi_refuses_requests_outside_the_spec(
    method: str, target: str, body: dict[str, Any] | None, status: int
) -> None:
    test, app = client(bank_route())
    content = json.dumps(body) if body is not None else None
    headers = {"content-type": "application/json", "idempotency-key": "key-12345678"}
    response = test.request(method, target, content=content, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert app.state.calls == 0


# -- identity ---------------------------------------------------------------------------------


def test_jwt_identity_reaches_the_app_in_scope_state_and_headers() -> None:
    test, _ = client({"global_policies": {"jwt": jwt_settings()}})
    token = sign(claims())
    seen = test.get("/x", headers={"Authorization": f"Bearer {token}"}).json()
    assert seen["identity"] == {
        "consumer_id": "alice",
        "scopes": ["accounts:read", "transfers:write"],
    }
    headers = dict(seen["headers"])
    assert headers["x-bastion-consumer"] == "alice"
    assert headers["x-bastion-scopes"] == "accounts:read transfers:write"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", f"Bearer {sign(claims(exp=1))}"],
    ids=["missing", "garbage", "expired"],
)
def test_jwt_refuses_without_a_valid_token(authorization: str | None) -> None:
    test, app = client({"global_policies": {"jwt": jwt_settings()}})
    headers = {"Authorization": authorization} if authorization else {}
    response = test.get("/x", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert app.state.calls == 0


async def transfers(request: Request) -> JSONResponse:
    identity = require_scopes("transfers:write")(request)
    return JSONResponse({"consumer": identity.consumer_id})


async def admin(request: Request) -> JSONResponse:
    require_scopes("admin")(request)
    return JSONResponse({})  # pragma: no cover - never reached in these tests


def scoped_app() -> Starlette:
    return Starlette(routes=[Route("/transfers", transfers), Route("/admin", admin)])


AUTHENTICATED = {"global_policies": {"security_headers": {}, "jwt": jwt_settings()}}


def test_require_scopes_returns_the_identity_holding_the_scopes() -> None:
    test, _ = client(AUTHENTICATED, app=scoped_app())
    token = sign(claims())
    response = test.get("/transfers", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"consumer": "alice"}


def test_require_scopes_refuses_a_missing_scope_as_problem_json() -> None:
    test, _ = client(AUTHENTICATED, app=scoped_app())
    token = sign(claims())
    response = test.get("/admin", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert 'scope="admin"' in response.headers["www-authenticate"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_require_scopes_refuses_an_anonymous_caller() -> None:
    test, _ = client({}, app=scoped_app())
    response = test.get("/transfers")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("scope", ["", "a b", 'a"b'], ids=["empty", "space", "quote"])
def test_require_scopes_refuses_malformed_scope_names(scope: str) -> None:
    with pytest.raises(ValueError, match="invalid scope"):
        require_scopes(scope)


def test_require_scopes_declares_the_starlette_request_parameter() -> None:
    # FastAPI injects the request into a dependency whose parameter is annotated Request.
    assert require_scopes("a").__annotations__["request"] is Request


# -- rate limits ------------------------------------------------------------------------------


def test_rate_limit_refuses_past_the_limit_and_recovers_after_the_window() -> None:
    clock = FakeClock()
    limit = {"limit": 2, "window": 60, "key": ["ip"], "algorithm": "sliding_window"}
    config = one_route({"rate_limit": limit})
    test, app = client(config, clock=clock)
    statuses = [test.get("/api").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = test.get("/api")
    assert int(refused.headers["retry-after"]) > 0
    assert "ratelimit" in refused.headers
    clock.advance(121)
    assert test.get("/api").status_code == 200
    assert app.state.calls == 3


# -- routing ----------------------------------------------------------------------------------


def test_unmatched_allow_runs_global_policies_and_reaches_the_app() -> None:
    test, app = client(one_route({}, methods=["GET"]))
    response = test.get("/elsewhere")
    assert response.status_code == 200
    assert response.headers["x-frame-options"] == "DENY"
    assert app.state.calls == 1


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/elsewhere", 404), ("POST", "/api", 405), ("GET", "/api", 200)],
    ids=["no-route", "wrong-method", "matched"],
)
def test_unmatched_deny_answers_like_the_gateway(method: str, path: str, status: int) -> None:
    test, _ = client(one_route({}, methods=["GET"]), unmatched="deny")
    response = test.request(method, path)
    assert response.status_code == status
    if status == 405:
        assert response.headers["allow"] == "GET, HEAD"


def test_unmatched_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unmatched"):
        BastionMiddleware(echo_app(), QUIET, unmatched="maybe")  # type: ignore[arg-type]


# -- errors and logging -----------------------------------------------------------------------


async def crash(request: Request) -> PlainTextResponse:
    raise RuntimeError("secret internal detail")


def test_app_failure_before_responding_is_a_fixed_problem_500_and_is_logged() -> None:
    sink = MemorySink()
    app = Starlette(routes=[Route("/crash", crash)])
    config = one_route({}, paths=["/crash"])
    test, _ = client(config, app=app, access_log=AccessLog(sink, FakeClock()))
    response = test.get("/crash")
    assert response.status_code == 500
    assert "secret" not in response.text
    assert response.json()["code"] == "internal_error"
    record = json.loads(sink.lines[-1])
    assert record["http"]["response"]["status_code"] == 500
    assert record["bastion"]["route"] == "api"


def test_access_log_records_route_status_and_rejecting_policy() -> None:
    sink = MemorySink()
    config = one_route({"size_limit": {"max_body_bytes": 1}})
    test, _ = client(config, access_log=AccessLog(sink, FakeClock()))
    test.get("/api")
    test.post("/api", content=b"xx")
    first, second = (json.loads(line) for line in sink.lines)
    assert first["http"]["response"]["status_code"] == 200
    assert first["bastion"]["route"] == "api"
    assert second["http"]["response"]["status_code"] == 413
    assert second["bastion"]["policy"] == "size_limit"


# -- streaming and pass-through ---------------------------------------------------------------


async def run_asgi(
    app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Drive an ASGI app directly; returns every message it sent."""
    sent: list[dict[str, Any]] = []
    queue = list(incoming)

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http_scope(method: str = "GET", path: str = "/s") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


@pytest.mark.anyio
async def test_response_chunks_stream_through_unbuffered() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one ", b"two ", b"three"):
            yield part

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(parts(), media_type="text/plain")

    app = Starlette(routes=[Route("/s", stream)])
    sent = await run_asgi(BastionMiddleware(app, QUIET), http_scope(), [])
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body" and m.get("body")]
    assert bodies == [b"one ", b"two ", b"three"]
    start = sent[0]
    assert (b"x-content-type-options", b"nosniff") in start["headers"]


@pytest.mark.anyio
async def test_request_chunks_reach_the_app_as_they_arrive_when_no_policy_needs_the_body() -> None:
    received: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    incoming = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]
    sent = await run_asgi(BastionMiddleware(app, QUIET), http_scope("POST"), incoming)
    assert received == [b"ab", b"cd"]
    assert sent[0]["status"] == 204


@pytest.mark.anyio
async def test_a_client_leaving_while_the_body_is_buffered_gets_no_response() -> None:
    app = echo_app()
    wrapped = BastionMiddleware(app, {**QUIET, **bank_route()})
    scope = http_scope("POST", "/v1/transfers")
    scope["headers"] += [(b"content-type", b"application/json"), (b"content-length", b"100")]
    sent = await run_asgi(
        wrapped, scope, [{"type": "http.request", "body": b"{", "more_body": True}]
    )
    assert sent == []
    assert app.state.calls == 0


def test_lifespan_and_websocket_scopes_pass_through() -> None:
    events: list[str] = []

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(routes=[WebSocketRoute("/ws", ws)], lifespan=lifespan)
    app.add_middleware(BastionMiddleware, config=QUIET, unmatched="deny")
    with TestClient(app) as test, test.websocket_connect("/ws") as socket:
        socket.send_text("ping")
        assert socket.receive_text() == "ping"
    assert events == ["startup", "shutdown"]


# -- configuration ----------------------------------------------------------------------------


def test_config_file_without_listeners_or_upstreams_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text(
        "access_log: {sink: 'off'}\n"
        "services:\n"
        "  - name: svc\n"
        "    routes: [{name: api, paths: [/api], policies: {size_limit: {max_body_bytes: 2}}}]\n"
    )
    app = echo_app()
    app.add_middleware(BastionMiddleware, config=path)
    test = TestClient(app)
    assert test.post("/api", content=b"123").status_code == 413


@pytest.mark.parametrize(
    ("document", "where"),
    [
        (
            {"services": [{"name": "s", "routes": [{"name": "r", "paths": ["x"]}]}]},
            "services[0].routes[0].paths[0]",
        ),
        (
            {"global_policies": {"rate_limit": {"limit": 0, "window": 1}}},
            "global_policies.rate_limit",
        ),
    ],
    ids=["bad-path", "bad-policy"],
)
def test_invalid_config_names_the_dotted_path(document: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigErrors) as caught:
        BastionMiddleware(echo_app(), {**QUIET, **document})
    assert where in str(caught.value)


def test_config_file_that_is_not_yaml_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bastion.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigErrors, match="mapping"):
        BastionMiddleware(echo_app(), path)


@pytest.mark.anyio
async def test_root_path_given_only_in_path_is_kept_for_the_app() -> None:
    # uvicorn --root-path /prefix: `path` carries the prefix, `raw_path` does not.
    async def inner(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.url.path)

    app = Starlette(routes=[Route("/a", inner)])
    scope = http_scope(path="/a")
    scope.update(root_path="/prefix", path="/prefix/a")
    sent = await run_asgi(BastionMiddleware(app, QUIET), scope, [])
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"/prefix/a"


def test_a_preflight_204_carries_no_content_length() -> None:
    cors = {"cors": {"allow_origins": ["https://app.example"]}}
    test, _ = client({"global_policies": cors})
    response = test.options(
        "/x", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    )
    assert response.status_code == 204
    assert "content-length" not in response.headers


def test_api_key_identity_comes_from_the_store(tmp_path: Path) -> None:
    # A first lookup misses the in-process cache: the access phase awaits the store.
    db = tmp_path / "bastion.db"
    key, consumer_id = provision_api_key(db)
    config = {**store_settings(db), "global_policies": {"api_key": {}}}
    app = echo_app()
    app.add_middleware(BastionMiddleware, config={**QUIET, **config})
    with TestClient(app) as test:
        assert test.get("/x").status_code == 401
        assert test.get("/x", headers={"X-API-Key": "b_" + "0" * 40}).status_code == 401
        for _ in range(2):  # the second one is a cache hit
            seen = test.get("/x", headers={"X-API-Key": key}).json()
            assert seen["identity"]["consumer_id"] == consumer_id
            assert "x-api-key" not in dict(seen["headers"])


def test_default_access_log_writes_every_line_to_the_configured_file_by_shutdown(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    wrapped = BastionMiddleware(echo_app(), {"access_log": {"sink": str(log)}})
    with TestClient(wrapped) as test:
        test.get("/one")
        test.get("/two%2Fthree")
    # No close(): the lines are written out when the app's lifespan ends.
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    datasets = [line["event"]["dataset"] for line in lines]
    access = [line for line in lines if line["event"]["dataset"] != "bastion.security"]
    assert [r["http"]["response"]["status_code"] for r in access] == [200, 400]
    assert access[0]["url"]["path"] == "/one"
    assert datasets.count("bastion.security") == 1  # the refused path is a security event


@pytest.mark.anyio
async def test_an_app_returning_without_a_response_gets_a_problem_500() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    sent = await run_asgi(BastionMiddleware(silent, QUIET), http_scope(), [])
    assert sent[0]["status"] == 500
    assert json.loads(sent[1]["body"])["code"] == "internal_error"


@pytest.mark.anyio
async def test_an_app_failing_mid_response_propagates_to_the_server_and_is_logged() -> None:
    async def half(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("boom")

    sink = MemorySink()
    wrapped = BastionMiddleware(half, QUIET, access_log=AccessLog(sink, FakeClock()))
    with pytest.raises(RuntimeError, match="boom"):
        await run_asgi(wrapped, http_scope(), [])
    record = json.loads(sink.lines[-1])
    assert record["http"]["response"]["status_code"] == 200
    assert record["error"]["message"] == "the application failed"


def test_a_buffered_body_past_the_global_limit_is_refused_while_reading() -> None:
    test, app = client({**bank_route(), "limits": {"max_body_bytes": 16}})

    def chunks() -> Any:
        yield json.dumps(TRANSFER).encode()

    headers = {"content-type": "application/json", "idempotency-key": "key-12345678"}
    response = test.post("/v1/transfers", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert app.state.calls == 0


def test_an_access_log_file_that_cannot_be_opened_is_a_config_error(tmp_path: Path) -> None:
    config = {"access_log": {"sink": str(tmp_path / "missing-dir" / "access.log")}}
    with pytest.raises(ConfigError, match=r"access_log\.sink"):
        BastionMiddleware(echo_app(), config)


_USER_SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/s": {
            "get": {
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
                }
            }
        }
    },
}


def _stripping(app: Any, tmp_path: Path) -> BastionMiddleware:
    """`app` behind a route whose openapi policy strips responses (a body filter)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps(_USER_SPEC))
    policy = {"spec": str(spec), "strip_undocumented_response_fields": True}
    route = {"name": "r", "paths": ["/s"], "policies": {"openapi": policy}}
    return BastionMiddleware(app, {**QUIET, "services": [{"name": "svc", "routes": [route]}]})


_LEAK = b'{"name": "ann", "ssn": "123-45-6789"}'


@pytest.mark.anyio
async def test_body_filters_hide_the_body_bypassing_send_extensions_from_the_app(
    tmp_path: Path,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if "http.response.pathsend" in scope.get("extensions", {}):
            await send({"type": "http.response.pathsend", "path": "/nonexistent/leak.json"})
        else:
            await send({"type": "http.response.body", "body": _LEAK})

    scope = http_scope()
    scope["extensions"] = {"http.response.pathsend": {}, "http.response.zerocopysend": {}}
    sent = await run_asgi(_stripping(app, tmp_path), scope, [])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert json.loads(sent[1]["body"]) == {"name": "ann"}


@pytest.mark.anyio
async def test_a_pathsend_sent_anyway_never_precedes_the_start_message(tmp_path: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": "/nonexistent/leak.json"})

    sent = await run_asgi(_stripping(app, tmp_path), http_scope(), [])
    assert [m["type"] for m in sent][:2] == ["http.response.start", "http.response.pathsend"]


@pytest.mark.anyio
async def test_an_app_failing_after_a_held_start_gets_a_problem_500(tmp_path: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise RuntimeError("boom")

    sent = await run_asgi(_stripping(app, tmp_path), http_scope(), [])
    assert sent[0]["status"] == 500
    assert json.loads(sent[1]["body"])["code"] == "internal_error"


@pytest.mark.anyio
async def test_an_app_ending_without_a_final_body_message_still_sends_the_head(
    tmp_path: Path,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": _LEAK, "more_body": True})

    sent = await run_asgi(_stripping(app, tmp_path), http_scope(), [])
    assert sent[0]["status"] == 200
    assert json.loads(b"".join(m.get("body", b"") for m in sent[1:])) == {"name": "ann"}
