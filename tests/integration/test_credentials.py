"""API keys and Basic credentials through a real gateway, with the credential store on disk."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.store import APIKeyRecord, PasswordRecord, open_store
from bastion.store.secrets import Pepper, Peppers, hash_password, new_api_key
from tests.integration.harness import running_gateway

pytestmark = pytest.mark.integration

PEPPER = "integration-pepper-with-at-least-32-chars"
PASSWORD = "correct horse battery staple"


def _provision(url: str) -> dict[str, str]:
    """A consumer with an API key and a password, written the way the CLI writes them."""

    async def main() -> dict[str, str]:
        store = open_store(url)
        try:
            consumer = await store.create_consumer("alice", actor="test", groups=["staff"])
            peppers = Peppers(Pepper.from_secret(PEPPER))
            key_id, key = new_api_key()
            digest = peppers.digest(key)
            assert digest is not None
            record = APIKeyRecord(key_id, consumer.id, digest, peppers.current.id, time.time())
            await store.add_api_key(record, actor="test")
            password = PasswordRecord(consumer.id, "alice", hash_password(PASSWORD), time.time())
            await store.set_password(password, actor="test")
            return {"key": key, "key_id": key_id, "consumer_id": consumer.id}
        finally:
            await store.close()

    return asyncio.run(main())


def _extra(tmp_path: Path, policies: dict[str, Any], **top: Any) -> dict[str, Any]:
    """Harness settings: the store in tmp_path, the pepper, and `policies` on every route."""
    return {
        "store": f"sqlite:///{tmp_path / 'bastion.db'}",
        "pepper": PEPPER,
        "global_policies": {"request_id": {}, **policies},
        **top,
    }


def test_api_key_through_the_gateway(tmp_path: Path) -> None:
    creds = _provision(f"sqlite:///{tmp_path / 'bastion.db'}")
    extra = _extra(tmp_path, {"api_key": {}})
    with running_gateway(tmp_path, extra) as gateway:
        base = f"http://127.0.0.1:{gateway.http_port}/orders"
        missing = httpx.get(base)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'ApiKey realm="bastion"'
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["code"] == "missing_credentials"
        wrong = httpx.get(base, headers={"x-api-key": new_api_key(creds["key_id"])[1]})
        assert wrong.status_code == 401
        assert wrong.json()["code"] == "invalid_credentials"
        ok = httpx.get(base, headers={"x-api-key": creds["key"]})
        assert ok.status_code == 200
        seen = dict(ok.json()["headers"])
        assert "x-api-key" not in seen  # the key never reaches the upstream
    log = (tmp_path / "access.log").read_text()
    assert creds["key"] not in log


def test_api_key_in_the_query_string_is_accepted_only_when_allowed_and_never_logged(
    tmp_path: Path,
) -> None:
    creds = _provision(f"sqlite:///{tmp_path / 'bastion.db'}")
    policies = {"api_key": {"allow_query": True, "query_param": "k", "strip_credential": False}}
    with running_gateway(tmp_path, _extra(tmp_path, policies)) as gateway:
        response = httpx.get(f"http://127.0.0.1:{gateway.http_port}/x?k={creds['key']}&a=1")
        assert response.status_code == 200
    log = (tmp_path / "access.log").read_text()
    secret = creds["key"][len("bst_") + 13 :]
    assert secret not in log


def test_basic_auth_over_tls_and_refused_over_plain_http(tmp_path: Path) -> None:
    _provision(f"sqlite:///{tmp_path / 'bastion.db'}")
    token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    with running_gateway(tmp_path, _extra(tmp_path, {"basic_auth": {}})) as gateway:
        tls = f"https://127.0.0.1:{gateway.https_port}/x"
        with httpx.Client(verify=False) as client:  # noqa: S501 - the gateway's dev certificate
            challenge = client.get(tls)
            assert challenge.status_code == 401
            assert challenge.headers["www-authenticate"] == 'Basic realm="bastion", charset="UTF-8"'
            wrong = client.get(tls, auth=("alice", "wrong"))
            assert wrong.status_code == 401
            ok = client.get(tls, headers={"authorization": f"Basic {token}"})
            assert ok.status_code == 200
            assert "authorization" not in dict(ok.json()["headers"])
            again = client.get(tls, headers={"authorization": f"Basic {token}"})
            assert again.status_code == 200
        plain = httpx.get(
            f"http://127.0.0.1:{gateway.http_port}/x", headers={"authorization": f"Basic {token}"}
        )
        assert plain.status_code == 403
        assert plain.json()["code"] == "https_required"


def test_store_outage_fails_closed_with_503(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    extra = _extra(tmp_path, {"api_key": {}}, store=f"sqlite:///{blocker / 'bastion.db'}")
    with running_gateway(tmp_path, extra) as gateway:
        response = httpx.get(
            f"http://127.0.0.1:{gateway.http_port}/x", headers={"x-api-key": new_api_key()[1]}
        )
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "store_unavailable"
