"""API keys and Basic credentials through both front doors, with the credential store on disk."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import pytest

from bastion.store import APIKeyRecord, PasswordRecord, open_store
from bastion.store.secrets import Pepper, Peppers, hash_password, new_api_key
from tests.frontdoor import FRONT_DOORS, FrontDoor, Kind, open_front_door

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


def _document(tmp_path: Path, policies: dict[str, Any], **top: Any) -> dict[str, Any]:
    """The store in tmp_path, the pepper, and `policies` on every route."""
    return {
        "store": f"sqlite:///{tmp_path / 'bastion.db'}",
        "pepper": PEPPER,
        "global_policies": {"request_id": {}, **policies},
        "services": [{"name": "echo", "routes": [{"name": "all", "paths": ["/"]}]}],
        **top,
    }


def _logged(door: FrontDoor) -> str:
    return door.access_log.read_text() if door.access_log.exists() else ""


doors = pytest.mark.parametrize("kind", FRONT_DOORS)


@doors
def test_api_key(kind: Kind, tmp_path: Path) -> None:
    creds = _provision(f"sqlite:///{tmp_path / 'bastion.db'}")
    with open_front_door(kind, tmp_path, _document(tmp_path, {"api_key": {}})) as door:
        missing = door.request("GET", "/orders")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == 'ApiKey realm="bastion"'
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["code"] == "missing_credentials"
        wrong = door.request("GET", "/orders", {"x-api-key": new_api_key(creds["key_id"])[1]})
        assert wrong.status_code == 401
        assert wrong.json()["code"] == "invalid_credentials"
        ok = door.request("GET", "/orders", {"x-api-key": creds["key"]})
        assert ok.status_code == 200
        seen = dict(ok.json()["headers"])
        assert "x-api-key" not in seen  # the key never reaches the upstream
        assert seen["x-bastion-consumer"] == creds["consumer_id"]
    assert creds["key"] not in _logged(door)


@doors
def test_api_key_in_the_query_string_is_accepted_only_when_allowed_and_never_logged(
    kind: Kind, tmp_path: Path
) -> None:
    creds = _provision(f"sqlite:///{tmp_path / 'bastion.db'}")
    policies = {"api_key": {"allow_query": True, "query_param": "k", "strip_credential": False}}
    with open_front_door(kind, tmp_path, _document(tmp_path, policies)) as door:
        response = door.request("GET", f"/x?k={creds['key']}&a=1")
        assert response.status_code == 200
    secret = creds["key"][len("bst_") + 13 :]
    assert secret not in _logged(door)


@doors
def test_basic_auth_over_tls_and_refused_over_plain_http(kind: Kind, tmp_path: Path) -> None:
    _provision(f"sqlite:///{tmp_path / 'bastion.db'}")
    token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    wrong = base64.b64encode(b"alice:wrong").decode()
    with open_front_door(kind, tmp_path, _document(tmp_path, {"basic_auth": {}})) as door:
        challenge = door.request("GET", "/x", tls=True)
        assert challenge.status_code == 401
        assert challenge.headers["www-authenticate"] == 'Basic realm="bastion", charset="UTF-8"'
        refused = door.request("GET", "/x", {"authorization": f"Basic {wrong}"}, tls=True)
        assert refused.status_code == 401
        for _ in range(2):  # the second answer comes from the verification cache
            ok = door.request("GET", "/x", {"authorization": f"Basic {token}"}, tls=True)
            assert ok.status_code == 200
            assert "authorization" not in dict(ok.json()["headers"])
        plain = door.request("GET", "/x", {"authorization": f"Basic {token}"})
        assert plain.status_code == 403
        assert plain.json()["code"] == "https_required"


@doors
def test_store_outage_fails_closed_with_503(kind: Kind, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    document = _document(tmp_path, {"api_key": {}}, store=f"sqlite:///{blocker / 'bastion.db'}")
    with open_front_door(kind, tmp_path, document) as door:
        response = door.request("GET", "/x", {"x-api-key": new_api_key()[1]})
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "store_unavailable"
