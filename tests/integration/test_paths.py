"""One canonical path through the real listener: refused forms, forwarded forms (DESIGN.md §4.1).

The gateway here has an `/admin` route that refuses loopback clients (ip_filter) next to an open
catch-all route, so a path that reaches `/admin` by a detour shows whether the route matched and
the path forwarded are the same string.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.integration.harness import RunningGateway, read_response, running_gateway, status_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway whose `/admin` route denies loopback clients; everything else is echoed."""
    state_dir = tmp_path_factory.mktemp("paths")
    with running_gateway(state_dir, config_file=True) as running:
        # The echo upstream's port is only known once it runs: add the route by a reload.
        config_path = state_dir / "bastion.yaml"
        document = yaml.safe_load(config_path.read_text())
        document["services"][0]["routes"].insert(
            0,
            {
                "name": "admin",
                "paths": ["/admin"],
                "policies": {"ip_filter": {"deny": ["127.0.0.0/8"]}},
            },
        )
        config_path.write_text(yaml.safe_dump(document))
        running.reload()
        yield running


def get(gateway: RunningGateway, target: bytes) -> tuple[int, dict[str, Any]]:
    """Send `GET target` raw (no client-side normalisation) and return status and JSON body."""
    with gateway.connect() as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        response = read_response(sock)
    body = response.split(b"\r\n\r\n", 1)[1]
    return status_of(response), json.loads(body) if body else {}


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(b"/a%2fb", id="encoded-slash-lower"),
        pytest.param(b"/a%2Fb", id="encoded-slash-upper"),
        pytest.param(b"/a%5cb", id="encoded-backslash"),
        pytest.param(b"/a\\b", id="raw-backslash"),
        pytest.param(b"/a%00b", id="encoded-nul"),
        pytest.param(b"/a%0d%0aX-Injected:%201", id="encoded-crlf"),
        pytest.param(b"/a%252fb", id="double-encoded-slash"),
        pytest.param(b"/a%zz", id="malformed-escape"),
        pytest.param(b"/a/..;/b", id="dot-dot-semicolon"),
        pytest.param(b"/..;/admin", id="dot-dot-semicolon-at-root"),
        pytest.param(b"/a/.;/b", id="dot-semicolon"),
        pytest.param(b"/../etc/passwd", id="dot-dot-above-root"),
        pytest.param(b"/%2e%2e/etc/passwd", id="encoded-dot-dot-above-root"),
        pytest.param(b"/a/%2E%2E/%2e%2e/etc", id="encoded-dot-dots-escaping-root"),
        pytest.param(b"/public/..%2fadmin", id="dot-dot-encoded-slash"),
    ],
)
def test_ambiguous_path_is_refused_before_routing(
    shared_gateway: RunningGateway, target: bytes
) -> None:
    mark = len(shared_gateway.seen)
    status, problem = get(shared_gateway, target)
    assert status == 400
    assert problem["code"] == "bad_path"
    assert shared_gateway.seen[mark:] == []


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        pytest.param(b"/a/./b", "/a/b", "", id="dot-segment"),
        pytest.param(b"/a//b", "/a/b", "", id="double-slash"),
        pytest.param(b"/a/b/../c", "/a/c", "", id="dot-dot-inside"),
        pytest.param(b"/a/%2E/b", "/a/b", "", id="encoded-dot-segment"),
        pytest.param(b"/%7euser", "/~user", "", id="encoded-tilde"),
        pytest.param(b"/%41%42c-%5F", "/ABc-_", "", id="encoded-unreserved"),
        pytest.param(b"/a%3bb", "/a%3Bb", "", id="reserved-escape-kept-upper-cased"),
        pytest.param(b"/a/b/", "/a/b/", "", id="trailing-slash-kept"),
        pytest.param(b"/a/./b?x=%2f&y=../z", "/a/b", "x=%2f&y=../z", id="query-untouched"),
    ],
)
def test_path_is_forwarded_in_canonical_form(
    shared_gateway: RunningGateway, target: bytes, path: str, query: str
) -> None:
    mark = len(shared_gateway.seen)
    status, echoed = get(shared_gateway, target)
    assert status == 200
    assert shared_gateway.seen[mark:][-1]["path"] == path
    assert (echoed["path"], echoed["query"]) == (path, query)


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(b"/admin", id="direct"),
        pytest.param(b"/admin/users", id="below"),
        pytest.param(b"//admin", id="double-slash"),
        pytest.param(b"/public/../admin", id="dot-dot"),
        pytest.param(b"/public/%2e%2e/admin", id="encoded-dot-dot"),
        pytest.param(b"/./admin", id="dot"),
        pytest.param(b"/%61dmin", id="encoded-letter"),
    ],
)
def test_route_is_matched_on_the_path_that_would_be_forwarded(
    shared_gateway: RunningGateway, target: bytes
) -> None:
    mark = len(shared_gateway.seen)
    status, problem = get(shared_gateway, target)
    assert status == 403
    assert problem["status"] == 403
    assert shared_gateway.seen[mark:] == []


def test_path_beside_protected_route_is_forwarded(shared_gateway: RunningGateway) -> None:
    status, echoed = get(shared_gateway, b"/administrator")
    assert status == 200
    assert echoed["path"] == "/administrator"
