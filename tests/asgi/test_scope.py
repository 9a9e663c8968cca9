"""Translating ASGI scopes into the chain's request, and middleware config sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.asgi import BastionMiddleware
from bastion.asgi_support.config import load_middleware_config
from bastion.asgi_support.scope import request_from_scope
from bastion.config.loader import ConfigErrors
from bastion.errors import InvalidRequest
from tests.asgi.support import QUIET, echo_app


def scope(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/a",
        "raw_path": b"/a",
        "query_string": b"q=1",
        "headers": [(b"Host", b"API.Example:8443"), (b"X-Thing", b"v")],
        "client": ("203.0.113.9", 4000),
        "server": ("10.0.0.1", 8443),
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({}, "host", "api.example"),
        ({}, "scheme", "https"),
        ({}, "target", b"/a?q=1"),
        ({"headers": [(b"host", b"[::1]:8000")]}, "host", "[::1]"),
        ({"headers": []}, "host", "10.0.0.1"),
        ({"client": None}, "client_ip", ""),
        ({"client": ("testclient", 50000)}, "client_ip", ""),
        ({"client": ("::ffff:192.0.2.1", 1)}, "client_ip", "192.0.2.1"),
        ({"client": ("2001:db8::1", 1)}, "client_ip", "2001:db8::1"),
        ({"raw_path": None, "path": "/café"}, "path", "/caf%C3%A9"),
        ({"raw_path": None, "path": "/b/./c"}, "path", "/b/c"),
        ({"scheme": "gopher"}, "scheme", "http"),
        ({"method": "POST", "http_version": "2"}, "chunked", True),
        ({"method": "POST", "headers": [(b"transfer-encoding", b"chunked")]}, "chunked", True),
        ({"method": "POST", "headers": [(b"content-length", b"5")]}, "content_length", 5),
        ({"method": "POST"}, "chunked", False),
    ],
    ids=[
        "host-lowered-without-port",
        "scheme",
        "target-for-size-limits",
        "ipv6-host",
        "server-when-no-host",
        "no-client",
        "client-not-an-address",
        "v4-mapped-client",
        "v6-client",
        "path-without-raw-path-non-ascii",
        "path-without-raw-path-dots",
        "unknown-scheme",
        "h2-body-without-length",
        "chunked",
        "content-length",
        "h1-post-without-length",
    ],
)
def test_request_from_scope(changes: dict[str, Any], field: str, expected: object) -> None:
    assert getattr(request_from_scope(scope(**changes)), field) == expected


@pytest.mark.parametrize(
    "changes",
    [
        {"raw_path": b"/a%2fb"},
        {"raw_path": b"/../etc"},
        {"headers": [(b"content-length", b"-1")]},
        {"headers": [(b"content-length", b"1e3")]},
        {"raw_path": None, "path": "/caf%C3%A9"},
    ],
    ids=[
        "encoded-slash",
        "above-root",
        "negative-length",
        "not-digits",
        "decoded-path-with-a-literal-escape",
    ],
)
def test_request_from_scope_refuses_ambiguous_requests(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        request_from_scope(scope(**changes))


def test_gateway_config_is_used_as_given() -> None:
    config = load_middleware_config(QUIET)
    assert load_middleware_config(config) is config
    assert BastionMiddleware(echo_app(), config).config is config


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), (b"a: [", "invalid YAML"), (b"x" * (4 * 1024 * 1024 + 1), "larger")],
    ids=["missing", "broken-yaml", "too-large"],
)
def test_config_file_problems_are_config_errors(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "bastion.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigErrors, match=message):
        load_middleware_config(path)
