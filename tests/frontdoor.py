"""Both front doors behind one interface, so a policy behaviour is specified once.

`open_front_door("proxy", ...)` starts a real gateway (listeners, echo upstream);
`open_front_door("middleware", ...)` wraps an echo app in BastionMiddleware in process. Both
serve the same config document (policies, routes, store) and answer in the echo upstream's
shape: `{"method", "path", "query", "headers": [[name, value], ...], "body"}`. Suites that
behave the same through both use the `FRONT_DOORS` parameters on a fixture.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import yaml
from starlette.testclient import TestClient

from tests.asgi.support import client
from tests.integration.harness import running_gateway

Kind = Literal["proxy", "middleware"]
FRONT_DOORS: list[Kind] = ["proxy", "middleware"]
"""Parameters for a fixture that opens each front door in turn."""
LOOPBACK_PEER = ("127.0.0.1", 50000)


class Reply(Protocol):
    """What both doors' responses offer (httpx's, and the test client's own httpx's)."""

    @property
    def status_code(self) -> int:
        """The status code."""
        ...

    @property
    def text(self) -> str:
        """The body as text."""
        ...

    @property
    def content(self) -> bytes:
        """The body."""
        ...

    @property
    def headers(self) -> Any:
        """Response headers, case-insensitive."""
        ...

    def json(self) -> Any:
        """The body parsed as JSON."""
        ...


class FrontDoor(Protocol):
    """A front door under test: send requests, count what reached the app or upstream."""

    kind: Kind
    access_log: Path

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | dict[bytes, bytes] | None = None,
        body: bytes = b"",
        *,
        tls: bool = False,
    ) -> Reply:
        """One request, over TLS (proxy: the HTTPS listener; middleware: an https scope)."""
        ...

    def upstream_calls(self) -> int:
        """Requests that reached the upstream (proxy) or the wrapped app (middleware)."""
        ...


class _Proxy:
    kind: Kind = "proxy"

    def __init__(
        self, port: int, tls_port: int, seen: list[dict[str, Any]], access_log: Path
    ) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.tls_base = f"https://127.0.0.1:{tls_port}"
        self.seen = seen
        self.access_log = access_log

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | dict[bytes, bytes] | None = None,
        body: bytes = b"",
        *,
        tls: bool = False,
    ) -> Reply:
        if not tls:
            return httpx.request(
                method, self.base + path, headers=headers, content=body or None, timeout=5
            )
        with httpx.Client(verify=False, timeout=5) as tls_client:  # noqa: S501 - dev certificate
            return tls_client.request(method, self.tls_base + path, headers=headers, content=body)

    def upstream_calls(self) -> int:
        return len(self.seen)


class _Middleware:
    kind: Kind = "middleware"

    def __init__(self, document: dict[str, Any], access_log: Path) -> None:
        _, self.app = client(document, clock=None)
        # The peer a loopback client has on the proxy's listener, so trusted_proxies and
        # address-keyed policies see the same address through both doors.
        self.client = TestClient(self.app, raise_server_exceptions=False, client=LOOPBACK_PEER)
        self.access_log = access_log

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | dict[bytes, bytes] | None = None,
        body: bytes = b"",
        *,
        tls: bool = False,
    ) -> Reply:
        url = f"https://testserver{path}" if tls else path
        return self.client.request(method, url, headers=headers, content=body or None)

    def upstream_calls(self) -> int:
        return int(self.app.state.calls)


@contextlib.contextmanager
def open_front_door(kind: Kind, state_dir: Path, document: dict[str, Any]) -> Iterator[FrontDoor]:
    """Serve `document` through the front door `kind`.

    Args:
        kind: `proxy` or `middleware`.
        state_dir: A fresh folder for the gateway's state and access log.
        document: Config keys: `services` (each with `name`, optional `policies`, `routes`;
            no `upstream`, the door supplies it), and any top-level setting (`store`,
            `pepper`, `global_policies`, `counters`...).
    """
    access_log = state_dir / "access.log"
    document = copy.deepcopy(document)
    services = document.pop("services")
    if kind == "middleware":
        config = {
            **document,
            "state_dir": str(state_dir),
            "access_log": {"sink": str(access_log)},
            "services": services,
        }
        door = _Middleware(config, access_log)
        # Entered, the client keeps one event loop running between requests (as a server
        # does), so the access log's periodic flush happens; leaving runs the app's shutdown.
        with door.client:
            yield door
        return
    with running_gateway(state_dir, document, config_file=True) as gateway:
        config_path = state_dir / "bastion.yaml"
        served = yaml.safe_load(config_path.read_text())
        upstream = served["services"][0]["upstream"]
        served["services"] = [{**service, "upstream": upstream} for service in services]
        config_path.write_text(yaml.safe_dump(served))
        gateway.reload()
        assert gateway.server is not None
        assert gateway.server.revision >= 2, "the gateway refused the test's config"
        yield _Proxy(gateway.http_port, gateway.https_port, gateway.seen, access_log)
