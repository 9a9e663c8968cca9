"""concurrency_limit inside BastionMiddleware: a slot per request, back however the app ends."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from bastion.asgi import BastionMiddleware
from bastion.counters.leases import MemoryLeases, leases_for

pytestmark = pytest.mark.anyio

CONFIG = {"access_log": {"sink": "off"}, "global_policies": {"concurrency_limit": {"max": 1}}}


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/x",
        "raw_path": b"/x",
        "query_string": b"",
        "headers": [(b"host", b"api.example.test")],
        "client": ("10.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


async def _call(mw: BastionMiddleware) -> list[MutableMapping[str, Any]]:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await mw(_scope(), receive, send)
    return sent


def _leases(mw: BastionMiddleware) -> MemoryLeases:
    store = leases_for(mw.counters)
    assert isinstance(store, MemoryLeases)
    return store


async def test_a_second_request_waits_for_the_first_to_end():
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = BastionMiddleware(app, config=CONFIG)
    first = asyncio.ensure_future(_call(mw))
    await asyncio.sleep(0.01)
    refused = await _call(mw)
    assert refused[0]["status"] == 429
    assert (b"retry-after", b"1") in refused[0]["headers"]
    release.set()
    assert (await first)[0]["status"] == 200
    assert len(_leases(mw)) == 0
    assert (await _call(mw))[0]["status"] == 200


async def test_an_app_failing_mid_response_or_cancelled_gives_its_slot_back():
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("the app broke while streaming")

    mw = BastionMiddleware(failing, config=CONFIG)
    with pytest.raises(RuntimeError):
        await _call(mw)
    assert len(_leases(mw)) == 0

    async def hanging(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.Event().wait()

    mw = BastionMiddleware(hanging, config=CONFIG)
    task = asyncio.ensure_future(_call(mw))
    await asyncio.sleep(0.01)
    assert len(_leases(mw)) == 1
    task.cancel()  # the server cancels the request when the client disconnects
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(_leases(mw)) == 0
