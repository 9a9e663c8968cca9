"""The admin API through a real gateway: credentials, OAuth clients, config and the audit log."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from tests.integration.harness import RunningGateway, running_gateway

pytestmark = pytest.mark.integration

TOKEN = "integration-admin-token"
PEPPER = "integration-pepper-with-at-least-32-chars"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    """A gateway with a store, a pepper and api_key on the /keyed route."""
    extra: dict[str, Any] = {
        "store": f"sqlite:///{tmp_path / 'bastion.db'}",
        "pepper": PEPPER,
    }
    with running_gateway(tmp_path, extra) as running:
        yield running


def _admin(gateway: RunningGateway, token: str = TOKEN) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{gateway.admin_port}",
        headers={"authorization": f"Bearer {token}"},
        timeout=10,
    )


def _put_config(admin: httpx.Client, config: dict[str, Any], **params: str) -> httpx.Response:
    return admin.put("/admin/config", json=config, params=params)


def _add_keyed_route(admin: httpx.Client, policies: dict[str, Any]) -> dict[str, Any]:
    """Put a /keyed route with `policies` in front of the catch-all route, via the API."""
    current = admin.get("/admin/config").json()["config"]
    service = current["services"][0]
    route = {"name": "keyed", "paths": ["/keyed"], "policies": policies}
    service["routes"] = [route, *[r for r in service["routes"] if r["name"] != "keyed"]]
    response = _put_config(admin, current)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _until(check: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong-token"}, {"authorization": f"Basic {TOKEN}"}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_admin_api_refuses_requests_without_the_bearer_token(
    gateway: RunningGateway, headers: dict[str, str]
) -> None:
    url = f"http://127.0.0.1:{gateway.admin_port}/admin/consumers"
    response = httpx.get(url, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    created = httpx.post(url, headers=headers, json={"name": "mallory"})
    assert created.status_code == 401


def test_api_key_issued_by_the_admin_api_works_until_revoked(gateway: RunningGateway) -> None:
    with _admin(gateway) as admin:
        _add_keyed_route(admin, {"api_key": {}})
        created = admin.post("/admin/consumers", json={"name": "alice", "groups": ["staff"]})
        assert created.status_code == 201
        consumer = created.json()
        assert consumer["name"] == "alice"
        assert consumer["groups"] == ["staff"]
        assert admin.post("/admin/consumers", json={"name": "alice"}).status_code == 409
        assert admin.get("/admin/consumers/alice").json()["id"] == consumer["id"]
        issued = admin.post(f"/admin/consumers/{consumer['id']}/keys", json={"label": "ci"})
        assert issued.status_code == 201
        assert issued.headers["cache-control"] == "no-store"
        key = issued.json()["key"]
        key_id = issued.json()["record"]["id"]
        listed = admin.get("/admin/keys", params={"consumer": "alice"})
        assert [k["id"] for k in listed.json()["keys"]] == [key_id]
        assert key not in listed.text
        assert "digest" not in listed.text

        proxied = f"http://127.0.0.1:{gateway.http_port}/keyed"
        assert httpx.get(proxied, headers={"x-api-key": key}).status_code == 200
        revoked = admin.post(f"/admin/keys/{key_id}/revoke")
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        assert _until(lambda: httpx.get(proxied, headers={"x-api-key": key}).status_code == 401)
        assert admin.post("/admin/keys/k_doesnotexist/revoke").status_code == 404

        audit = admin.get("/admin/audit").json()["entries"]
    actions = [(e["actor"], e["action"]) for e in audit]
    assert ("admin-api", "consumer.create") in actions
    assert ("admin-api", "api_key.issue") in actions
    assert ("admin-api", "api_key.revoke") in actions
    assert key not in str(audit)


def test_disabled_then_deleted_consumer_is_refused(gateway: RunningGateway) -> None:
    with _admin(gateway) as admin:
        _add_keyed_route(admin, {"basic_auth": {}})
        consumer = admin.post("/admin/consumers", json={"name": "bob"}).json()
        password = admin.put("/admin/consumers/bob/password", json={"password": PASSWORD})
        assert password.status_code == 200
        assert password.json()["username"] == "bob"
        assert PASSWORD not in password.text
        token = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
        proxied = f"https://127.0.0.1:{gateway.https_port}/keyed"
        auth = {"authorization": f"Basic {token}"}
        tls = httpx.Client(verify=False)  # noqa: S501 - the gateway's dev certificate
        assert tls.get(proxied, headers=auth).status_code == 200

        disabled = admin.post(f"/admin/consumers/{consumer['id']}/disable")
        assert disabled.json()["disabled"] is True
        assert _until(lambda: tls.get(proxied, headers=auth).status_code == 401)
        assert admin.post("/admin/consumers/bob/enable").json()["disabled"] is False
        assert _until(lambda: tls.get(proxied, headers=auth).status_code == 200)

        assert admin.delete("/admin/consumers/bob").status_code == 204
        assert admin.get("/admin/consumers/bob").status_code == 404
        assert admin.delete("/admin/consumers/bob").status_code == 404
        assert _until(lambda: tls.get(proxied, headers=auth).status_code == 401)
        actions = [e["action"] for e in admin.get("/admin/audit").json()["entries"]]
        tls.close()
    assert "consumer.delete" in actions
    assert "password.set" in actions


def test_oauth_clients_are_created_rotated_and_deleted(gateway: RunningGateway) -> None:
    with _admin(gateway) as admin:
        created = admin.post(
            "/admin/oauth/clients", json={"name": "billing", "scopes": ["read", "write"]}
        )
        assert created.status_code == 201
        client_id = created.json()["client_id"]
        first_secret = created.json()["client_secret"]
        listed = admin.get("/admin/oauth/clients")
        assert [c["id"] for c in listed.json()["clients"]] == [client_id]
        assert first_secret not in listed.text
        rotated = admin.post(f"/admin/oauth/clients/{client_id}/rotate-secret")
        assert rotated.status_code == 200
        assert rotated.json()["client_secret"] != first_secret
        assert admin.delete(f"/admin/oauth/clients/{client_id}").status_code == 204
        assert admin.delete(f"/admin/oauth/clients/{client_id}").status_code == 404
        assert admin.post(f"/admin/oauth/clients/{client_id}/rotate-secret").status_code == 404
        audit = admin.get("/admin/audit").text
    assert first_secret not in audit
    assert "oauth_client.rotate_secret" in audit


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "error_path"),
    [
        (
            "POST",
            "/admin/consumers",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            None,
        ),
        ("POST", "/admin/consumers", {"json": ["a list"]}, 400, None),
        ("POST", "/admin/consumers", {"json": {"name": "x", "admin": True}}, 422, "admin"),
        ("POST", "/admin/consumers", {"json": {"name": "has space"}}, 422, "name"),
        ("POST", "/admin/consumers", {"json": {}}, 422, "name"),
        (
            "POST",
            "/admin/consumers",
            {"content": b'{"name": "x"}', "headers": {"content-type": "text/plain"}},
            415,
            None,
        ),
        ("POST", "/admin/consumers", {"json": {"name": "x" * 70_000}}, 413, None),
        (
            "POST",
            "/admin/oauth/clients",
            {"json": {"name": "c", "grant_types": ["password"]}},
            422,
            "grant_types[0]",
        ),
        ("PATCH", "/admin/consumers", {}, 405, None),
        ("GET", "/admin/nothing-here", {}, 404, None),
        ("GET", "/admin/audit", {"params": {"after": "-1"}}, 400, None),
        ("GET", "/admin/keys", {"params": {"unknown": "1"}}, 400, None),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "unknown-field",
        "bad-name",
        "missing-name",
        "wrong-content-type",
        "too-large",
        "unsupported-grant",
        "wrong-method",
        "unknown-path",
        "bad-query-value",
        "unknown-query",
    ],
)
def test_admin_api_answers_bad_requests_with_problem_json(
    gateway: RunningGateway,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    error_path: str | None,
) -> None:
    with _admin(gateway) as admin:
        response = admin.request(method, path, **kwargs)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    if error_path is not None:
        assert error_path in [error["path"] for error in problem["errors"]]


def test_a_rejected_password_is_never_echoed(gateway: RunningGateway) -> None:
    secret = "s3cret-" + "x" * 1100
    with _admin(gateway) as admin:
        admin.post("/admin/consumers", json={"name": "carol"})
        response = admin.put("/admin/consumers/carol/password", json={"password": secret})
    assert response.status_code == 422
    assert "s3cret" not in response.text


def test_get_config_masks_every_secret(gateway: RunningGateway) -> None:
    with _admin(gateway) as admin:
        response = admin.get("/admin/config")
    assert response.status_code == 200
    assert TOKEN not in response.text
    assert PEPPER not in response.text
    document = response.json()
    assert document["config"]["admin"]["token"] == "********"
    assert document["config"]["pepper"] == "********"
    assert isinstance(document["revision"], int)


def test_put_config_applies_a_change_and_keeps_masked_secrets(gateway: RunningGateway) -> None:
    with _admin(gateway) as admin:
        before = admin.get("/status").json()["config_revision"]
        proxied = f"http://127.0.0.1:{gateway.http_port}/keyed"
        assert httpx.get(proxied).status_code == 200
        result = _add_keyed_route(admin, {"api_key": {}})
        assert result["applied"] is True
        assert result["revision"] == before + 1
        assert any(c["path"].startswith("services[0].routes[0]") for c in result["changes"])
        assert httpx.get(proxied).status_code == 401  # the new route is live
        # The admin token came back as a mask and was restored: the same token still works.
        status = admin.get("/status").json()
        assert status["config_revision"] == before + 1
        assert admin.get("/admin/consumers").status_code == 200
        entries = admin.get("/admin/audit").json()["entries"]
    updates = [e for e in entries if e["action"] == "config.update"]
    assert updates
    assert updates[-1]["actor"] == "admin-api"
    assert updates[-1]["after"]["revision"] == before + 1
    assert TOKEN not in str(entries)


def test_put_config_refuses_an_invalid_config_and_keeps_serving(gateway: RunningGateway) -> None:
    with _admin(gateway) as admin:
        current = admin.get("/admin/config").json()
        document = current["config"]
        route = document["services"][0]["routes"][0]
        route["policies"] = {"rate_limit": {"limit": -5, "window": 60}}
        refused = _put_config(admin, document)
        assert refused.status_code == 422
        paths = [error["path"] for error in refused.json()["errors"]]
        assert "services[0].routes[0].policies.rate_limit.limit" in paths
        assert admin.get("/admin/config").json()["revision"] == current["revision"]
        assert httpx.get(f"http://127.0.0.1:{gateway.http_port}/x").status_code == 200


def test_put_config_dry_run_diffs_without_applying(gateway: RunningGateway) -> None:
    with _admin(gateway) as admin:
        current = admin.get("/admin/config").json()
        document = current["config"]
        document["limits"]["idle_timeout"] = 7.5
        result = _put_config(admin, document, dry_run="true").json()
        assert result["applied"] is False
        assert result["changes"] == [{"path": "limits.idle_timeout", "before": 2.0, "after": 7.5}]
        assert admin.get("/admin/config").json()["revision"] == current["revision"]
        same = _put_config(admin, admin.get("/admin/config").json()["config"]).json()
        assert same == {"revision": current["revision"], "applied": False, "changes": []}


def test_put_config_does_not_expand_environment_variables(gateway: RunningGateway) -> None:
    with _admin(gateway) as admin:
        document = admin.get("/admin/config").json()["config"]
        document["oauth"] = {"issuer": "${HOME}"}
        response = _put_config(admin, document)
    assert response.status_code == 422
    assert "HOME" in response.text  # the error names the variable, never its value


def test_openapi_document_is_valid_and_lists_every_operation(gateway: RunningGateway) -> None:
    with _admin(gateway) as admin:
        response = admin.get("/admin/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    operations = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    assert {"createConsumer", "issueKey", "revokeKey", "putConfig", "createClient"} <= operations


def test_admin_changes_are_security_events(gateway: RunningGateway, tmp_path: Path) -> None:
    import json

    from tests.observability.ecs import ecs_errors

    with _admin(gateway) as admin:
        assert admin.post("/admin/consumers", json={"name": "carol"}).status_code == 201
        assert admin.post("/admin/consumers", json={"name": "carol"}).status_code == 409
        assert admin.get("/admin/consumers").status_code == 200  # reads are not events
    log = tmp_path / "access.log"

    def admin_events() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line]
        return [e for e in lines if str(e.get("event", {}).get("action", "")).startswith("admin-")]

    assert _until(lambda: len(admin_events()) == 2)
    events = admin_events()
    assert [e["event"]["outcome"] for e in events] == ["success", "failure"]
    assert all(e["event"]["dataset"] == "bastion.security" for e in events)
    assert all(not ecs_errors(e) for e in events)
    assert "carol" not in log.read_text()  # the event names the operation, never the values
