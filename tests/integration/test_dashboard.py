"""The admin dashboard: strict CSP, behind the admin token, and live in headless Chromium."""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.integration.harness import RunningGateway, read_response, running_gateway, status_of

CHROMIUM = "/usr/bin/chromium"
TOKEN = "integration-admin-token"  # the harness's admin token
EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
# Every request with more than two query parameters is refused by size_limit (413/414/400).
EXTRA = {
    "global_policies": {"size_limit": {"max_body_bytes": 1000, "max_query_params": 2}},
    "anomaly": {"min_requests": 5},
}
REFUSED = "/api/items?a=1&b=2&c=3&d=4"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path, EXTRA) as running:
        yield running


def _admin(gateway: RunningGateway) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{gateway.admin_port}", timeout=5)


def _traffic(gateway: RunningGateway, paths: list[str]) -> list[int]:
    statuses = []
    for path in paths:
        with gateway.connect() as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            statuses.append(status_of(read_response(sock)))
    return statuses


def _login(client: httpx.Client, token: str) -> httpx.Response:
    return client.post("/dashboard/login", data={"token": token})


# -- HTTP behaviour (no browser) ---------------------------------------------------------------


def test_dashboard_pages_carry_a_strict_csp(gateway: RunningGateway) -> None:
    with _admin(gateway) as client:
        for path in ("/dashboard", "/dashboard/static/dashboard.js", "/dashboard/static/login.js"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-security-policy"] == EXPECTED_CSP
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
        assert client.get("/dashboard/static/../app.py").status_code == 404


def test_dashboard_without_credentials_shows_only_the_login_form(gateway: RunningGateway) -> None:
    with _admin(gateway) as client:
        page = client.get("/dashboard")
        data = client.get("/admin/dashboard.json")
    assert 'action="/dashboard/login"' in page.text
    assert "requests-total" not in page.text
    assert data.status_code == 401
    assert data.headers["content-type"].startswith("application/problem+json")


def test_dashboard_refuses_a_wrong_token_and_issues_no_cookie(gateway: RunningGateway) -> None:
    with _admin(gateway) as client:
        response = _login(client, "wrong-token")
        assert response.status_code == 303
        assert response.headers["location"] == "/dashboard?failed=1"
        assert "set-cookie" not in response.headers
        assert client.get("/admin/dashboard.json").status_code == 401


def test_dashboard_session_cookie_opens_the_data_but_not_the_admin_api(
    gateway: RunningGateway,
) -> None:
    with _admin(gateway) as client:
        response = _login(client, TOKEN)
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert TOKEN not in cookie
        assert "requests-total" in client.get("/dashboard").text
        assert client.get("/admin/dashboard.json").status_code == 200
        # The cookie is for the read-only dashboard only: the bearer token guards the rest.
        assert client.get("/metrics").status_code == 401
        assert client.get("/admin/consumers").status_code == 401
        client.post("/dashboard/logout")
        assert client.get("/admin/dashboard.json").status_code == 401


def test_dashboard_data_counts_rejections_by_policy_and_source(gateway: RunningGateway) -> None:
    statuses = _traffic(gateway, ["/api/ok"] * 3 + [REFUSED] * 2)
    assert statuses[:3] == [200, 200, 200]
    assert all(status >= 400 for status in statuses[3:])
    with _admin(gateway) as client:
        data = client.get(
            "/admin/dashboard.json", headers={"authorization": f"Bearer {TOKEN}"}
        ).json()
    assert data["requests"]["total"] == 5
    assert data["policies"][0]["policy"] == "size_limit"
    assert data["policies"][0]["rejections"] == 2
    assert data["top_blocked_sources"][0]["ip"] == "127.0.0.1"
    assert data["top_blocked_sources"][0]["rejections"] == 2
    assert [e["policy"] for e in data["recent_events"]] == ["size_limit", "size_limit"]  # no alert
    assert {c["listener"] for c in data["certificates"]} == {f"127.0.0.1:{gateway.https_port}"}


def test_anomaly_alert_reaches_the_security_log_and_the_dashboard(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    _traffic(gateway, ["/api/ok"] + [REFUSED] * 6)
    log = tmp_path / "access.log"
    deadline = time.monotonic() + 10
    alerts: list[dict[str, Any]] = []
    while not alerts:
        assert time.monotonic() < deadline, "no anomaly alert in the security log"
        time.sleep(0.1)
        lines = log.read_bytes().splitlines() if log.exists() else []
        docs = [orjson.loads(line) for line in lines]
        alerts = [d for d in docs if d["event"].get("action") == "anomaly-detected"]
    [alert] = alerts
    assert alert["event"]["kind"] == "alert"
    assert alert["client"]["ip"] == "127.0.0.1"
    with _admin(gateway) as client:
        data = client.get(
            "/admin/dashboard.json", headers={"authorization": f"Bearer {TOKEN}"}
        ).json()
    listed = [e for e in data["recent_events"] if e["policy"] == "anomaly"]
    assert [(e["kind"], e["client_ip"]) for e in listed] == [("alert", "127.0.0.1")]


# -- headless Chromium ---------------------------------------------------------------------------


class _CDP:
    """A minimal Chrome DevTools Protocol client: one page session over the browser socket."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.session: str | None = None
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        self._ws.send(orjson.dumps(message).decode())
        deadline = time.monotonic() + timeout
        while True:
            reply = orjson.loads(self._ws.recv(max(0.01, deadline - time.monotonic())))
            if reply.get("id") == message_id:
                assert "error" not in reply, reply
                result: dict[str, Any] = reply["result"]
                return result
            if "method" in reply:
                self.events.append(reply)

    def pump(self, seconds: float) -> None:
        """Collect events for a while."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while (left := deadline - time.monotonic()) > 0:
                self.events.append(orjson.loads(self._ws.recv(left)))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_until(self, expression: str, accept: Callable[[Any], bool], what: str) -> Any:
        deadline = time.monotonic() + 15
        while True:
            value = self.evaluate(expression)
            if accept(value):
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what} (last: {value!r})"
            self.pump(0.2)

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (CSP, failed loads)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"]))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(str(params.get("args")))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                found.append(f"{entry['text']} {entry.get('url', '')}")
        return found


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[_CDP]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is required in CI (scripts/system-deps.sh installs it)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = (tmp_path / "chromium.log").open("wb")
    process = subprocess.Popen(  # fixed binary and flags
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1280,1000",
            "about:blank",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.exists() and len(active.read_text().splitlines()) >= 2):
            assert process.poll() is None, (tmp_path / "chromium.log").read_text()
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port, path = active.read_text().splitlines()[:2]
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=10) as ws:
            cdp = _CDP(ws)
            target = cdp.call("Target.createTarget", url="about:blank")["targetId"]
            attached = cdp.call("Target.attachToTarget", targetId=target, flatten=True)
            cdp.session = attached["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                cdp.call(f"{domain}.enable")
            yield cdp
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # chromium's own helper processes too
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        log.close()


def test_dashboard_runs_in_chromium_and_follows_traffic(
    gateway: RunningGateway, chromium: _CDP, tmp_path: Path
) -> None:
    cdp = chromium
    base = f"http://127.0.0.1:{gateway.admin_port}"
    cdp.call("Page.navigate", url=f"{base}/dashboard")
    cdp.wait_until("document.readyState", lambda v: v == "complete", "the login page")
    assert cdp.evaluate("!!document.getElementById('login')")
    cdp.evaluate(
        f"document.getElementById('token').value = {orjson.dumps(TOKEN).decode()};"
        "document.getElementById('login').submit(); true"
    )
    before = cdp.wait_until(
        "(document.getElementById('requests-total') || {}).textContent",
        lambda v: isinstance(v, str) and v.isdigit(),
        "the dashboard's first figures",
    )

    _traffic(gateway, ["/api/ok"] * 5 + [REFUSED] * 3)

    after = cdp.wait_until(
        "document.getElementById('requests-total').textContent",
        lambda v: v != before,
        "the request count to change",
    )
    assert int(after) >= int(before) + 8
    cdp.wait_until(
        "document.querySelector('#sources tbody td').textContent",
        lambda v: v == "127.0.0.1",
        "the blocked source",
    )
    # Let one more poll run, so the rates have a window, before the picture.
    cdp.pump(2.5)
    shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    picture = tmp_path / "dashboard.png"
    picture.write_bytes(base64.b64decode(shot["data"]))
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert cdp.problems() == []
