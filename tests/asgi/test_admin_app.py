"""The admin API mounted inside an app protected by BastionMiddleware (all in one process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from bastion.asgi import BastionMiddleware, admin_app
from tests.asgi.support import QUIET, echo_app
from tests.frontdoor import LOOPBACK_PEER

TOKEN = "an-admin-token-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _config(tmp_path: Path) -> dict[str, Any]:
    return {
        **QUIET,
        "store": f"sqlite:///{tmp_path / 'bastion.db'}",
        "pepper": "a-pepper-for-the-admin-app-tests-0123456789",
        "services": [{"name": "bank", "routes": [{"name": "accounts", "paths": ["/accounts"]}]}],
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """`/admin/...` served by admin_app, everything else by the protected echo app."""
    protected = BastionMiddleware(echo_app(), _config(tmp_path))
    app = Starlette(
        routes=[Mount("/admin", app=admin_app(protected, token=TOKEN)), Mount("/", app=protected)]
    )
    with TestClient(app, base_url="https://testserver", client=LOOPBACK_PEER) as test:
        yield test


def test_admin_calls_need_the_token(client: TestClient) -> None:
    refused = client.get("/admin/consumers")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert (
        client.get("/admin/consumers", headers={"Authorization": "Bearer wrong"}).status_code == 401
    )
    assert client.get("/admin/consumers", headers=AUTH).json() == {"consumers": []}


def test_consumers_and_keys_are_managed_through_the_mounted_api(client: TestClient) -> None:
    created = client.post("/admin/consumers", json={"name": "alice"}, headers=AUTH)
    assert created.status_code == 201
    issued = client.post("/admin/consumers/alice/keys", json={}, headers=AUTH)
    assert issued.status_code == 201
    assert issued.json()["key"].startswith("bst_")
    names = [c["name"] for c in client.get("/admin/consumers", headers=AUTH).json()["consumers"]]
    assert names == ["alice"]


def test_a_config_put_through_the_api_changes_what_the_middleware_enforces(
    client: TestClient, tmp_path: Path
) -> None:
    assert client.get("/accounts").status_code == 200
    document = _config(tmp_path)
    document["services"][0]["routes"][0]["policies"] = {"ip_filter": {"deny": ["127.0.0.0/8"]}}
    applied = client.put("/admin/config", json=document, headers=AUTH)
    assert applied.status_code == 200, applied.text
    assert client.get("/accounts").status_code == 403
    config = client.get("/admin/config", headers=AUTH).json()
    assert config["revision"] == 2


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    protected = BastionMiddleware(echo_app(), _config(tmp_path))
    with pytest.raises(ValueError, match="at least 16"):
        admin_app(protected, token="short")
