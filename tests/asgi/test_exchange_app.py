"""Local handlers (the OAuth server's, the admin API's) served over ASGI by `ExchangeApp`."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from bastion.asgi_support.exchange import ExchangeApp
from bastion.errors import Forbidden
from bastion.http.headers import Headers
from bastion.http.response import Response
from bastion.proxy.downstream import Exchange

pytestmark = pytest.mark.anyio


def echo(exchange: Exchange) -> None:
    """Answer with the method, path and body, the way a local handler does: via callbacks."""
    chunks: list[bytes] = []
    request = exchange.request

    def done() -> None:
        text = f"{request.method} {request.path} ".encode() + b"".join(chunks)
        exchange.send_response(Response(200, Headers([(b"content-type", b"text/plain")]), text))

    if request.path == "/forbidden":
        exchange.reject(Forbidden("Not for you."))
        return
    exchange.consume_body(chunks.append, done)


def later(exchange: Exchange) -> None:
    """Answer from a task, as handlers waiting on the store do."""

    async def answer() -> None:
        await asyncio.sleep(0.01)
        exchange.send_response(Response(201, Headers(), b"created"))

    task = asyncio.ensure_future(answer())

    def stop() -> None:
        task.cancel()

    exchange.on_abort = stop


def _client(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # an ASGI 3 app
    return httpx.AsyncClient(transport=transport, base_url="https://bank.test")


async def test_a_handler_reads_the_body_and_answers() -> None:
    async with _client(ExchangeApp(echo, max_body=1024)) as client:
        response = await client.post("/oauth/token", content=b"grant_type=x")
    assert response.status_code == 200
    assert response.text == "POST /oauth/token grant_type=x"
    assert response.headers["content-length"] == str(len(response.content))


async def test_an_answer_from_a_task_is_awaited() -> None:
    async with _client(ExchangeApp(later, max_body=1024)) as client:
        response = await client.get("/admin/consumers")
    assert (response.status_code, response.content) == (201, b"created")


async def test_a_reject_becomes_problem_json() -> None:
    async with _client(ExchangeApp(echo, max_body=1024)) as client:
        response = await client.get("/forbidden")
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "Not for you."


async def test_a_body_over_the_limit_gets_413() -> None:
    async with _client(ExchangeApp(echo, max_body=8)) as client:
        response = await client.post("/oauth/token", content=b"x" * 9)
    assert response.status_code == 413


async def test_an_ambiguous_path_gets_400_before_the_handler() -> None:
    async with _client(ExchangeApp(echo, max_body=1024)) as client:
        response = await client.get("/oauth/%252e%252e/admin")  # double encoding
    assert response.status_code == 400


async def test_mounted_in_a_starlette_app_the_handler_sees_the_full_path() -> None:
    async def home(_request: object) -> PlainTextResponse:
        return PlainTextResponse("app")

    app = Starlette(
        routes=[Route("/", home), Mount("/oauth", app=ExchangeApp(echo, max_body=1024))]
    )
    async with _client(app) as client:
        assert (await client.get("/")).text == "app"
        response = await client.post("/oauth/token", content=b"a=b")
    assert response.text == "POST /oauth/token a=b"


def broken(exchange: Exchange) -> None:
    """Fails at once, or once the body has arrived."""
    if exchange.request.path == "/at-once":
        raise RuntimeError("a handler bug")

    def done() -> None:
        raise RuntimeError("a handler bug, later")

    exchange.consume_body(lambda chunk: None, done)


@pytest.mark.parametrize("path", ["/at-once", "/after-the-body"])
async def test_a_failing_handler_answers_a_fixed_500_and_never_hangs(path: str) -> None:
    async with _client(ExchangeApp(broken, max_body=1024)) as client:
        response = await asyncio.wait_for(client.post(path, content=b"x=1"), timeout=5)
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "bug" not in response.text
