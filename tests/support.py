"""Helpers shared by unit tests: contexts and requests built without sockets."""

from __future__ import annotations

from bastion.clock import FakeClock
from bastion.core.context import RequestContext
from bastion.http.headers import Headers
from bastion.http.request import Request, Scheme


def make_request(
    method: str = "GET",
    path: str = "/",
    *,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    scheme: Scheme = "https",
    peer_ip: str = "127.0.0.1",
    body: bytes | None = None,
    content_length: int | None = None,
) -> Request:
    """A request as the downstream protocol would build it."""
    all_headers = Headers(headers or [(b"host", b"api.example.test")])
    host = (all_headers.get(b"host") or b"").decode("latin-1")
    return Request(
        method=method,
        path=path,
        query=query,
        headers=all_headers,
        target=path.encode() + (b"?" + query if query else b""),
        scheme=scheme,
        host=host,
        peer_ip=peer_ip,
        body=body,
        content_length=content_length
        if content_length is not None
        else (len(body) if body is not None else None),
    )


def make_ctx(
    method: str = "GET",
    path: str = "/",
    *,
    clock: FakeClock | None = None,
    route: str | None = "test-route",
    **kwargs: object,
) -> RequestContext:
    """A fresh context for `method path`, as the gateway would create it."""
    request = make_request(method, path, **kwargs)  # type: ignore[arg-type]  # kwargs mirror make_request
    now = (clock or FakeClock()).monotonic()
    return RequestContext(request=request, start=now, route=route)
