"""End-to-end basics: proxying, redirect, admin probes."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.harness import RunningGateway, read_response, status_of

pytestmark = pytest.mark.integration


def test_proxies_request_and_sets_forwarding_headers(gateway: RunningGateway) -> None:
    response = httpx.get(
        f"http://127.0.0.1:{gateway.http_port}/a/b?x=1",
        headers={"X-Forwarded-For": "6.6.6.6", "X-Bastion-Consumer": "mallory"},
    )
    assert response.status_code == 200
    seen = response.json()
    headers = dict(seen["headers"])
    assert seen["path"] == "/a/b"
    assert seen["query"] == "x=1"
    assert headers["x-forwarded-for"] == "127.0.0.1"  # the spoofed value is gone
    assert "x-bastion-consumer" not in headers
    assert headers["x-request-id"] == response.headers["x-request-id"]


def test_plain_listener_redirects_with_308(gateway: RunningGateway) -> None:
    response = httpx.post(f"http://127.0.0.1:{gateway.redirect_port}/v1/x?y=2", content=b"{}")
    assert response.status_code == 308
    assert response.headers["location"] == f"https://127.0.0.1:{gateway.https_port}/v1/x?y=2"
    assert "strict-transport-security" not in response.headers


def test_tls_listener_proxies(gateway: RunningGateway) -> None:
    with gateway.connect(tls=True) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        response = read_response(sock)
    assert status_of(response) == 200
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["path"] == "/hello"


def test_admin_ready_and_status(gateway: RunningGateway) -> None:
    ready = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/ready")
    status = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/status")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True}
    assert status.json()["status"] == "ok"
    denied = httpx.get(f"http://127.0.0.1:{gateway.admin_port}/admin/config")
    assert denied.status_code == 401
    assert denied.headers["content-type"] == "application/problem+json"


def test_cors_preflight_204_carries_no_content_length(tmp_path) -> None:
    from tests.integration.harness import running_gateway

    cors = {"cors": {"allow_origins": ["https://app.example"], "allow_methods": ["GET"]}}
    with running_gateway(tmp_path, {"global_policies": cors}) as running:
        response = httpx.options(
            f"http://127.0.0.1:{running.http_port}/a",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
            },
        )
    assert response.status_code == 204
    assert "content-length" not in response.headers  # RFC 9110 §8.6
    assert response.headers["access-control-allow-origin"] == "https://app.example"


def test_smuggling_attempt_refused_before_parsing_is_logged_as_an_alert(tmp_path) -> None:
    import json
    import time

    from tests.integration.harness import running_gateway

    with running_gateway(tmp_path) as running, running.connect() as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        response = read_response(sock)
        request_id = json.loads(response.split(b"\r\n\r\n", 1)[1])["request_id"]
        log = tmp_path / "access.log"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and request_id not in log.read_text():
            time.sleep(0.1)
    assert status_of(response) == 400
    lines = [json.loads(line) for line in log.read_text().splitlines() if request_id in line]
    alert = [line for line in lines if line["event"]["kind"] == "alert"]
    assert alert, lines
    assert alert[0]["event"]["category"] == ["intrusion_detection"]
    assert alert[0]["bastion"]["policy"] == "http"
    assert all("/smuggled" not in json.dumps(line) for line in lines)
