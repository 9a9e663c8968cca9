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
