"""brute_force through both front doors: key guesses lock the guessing address, not the owner."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bastion.store.secrets import new_api_key
from tests.frontdoor import FRONT_DOORS, Kind, Reply, open_front_door
from tests.integration.test_credentials import _document, _provision

pytestmark = pytest.mark.integration

ATTACKER = "203.0.113.7"
OWNER = "198.51.100.20"
LOCKOUT = 2


@pytest.mark.parametrize("kind", FRONT_DOORS)
def test_guessing_an_api_key_locks_out_the_guessing_address_only(
    kind: Kind, tmp_path: Path
) -> None:
    creds = _provision(f"sqlite:///{tmp_path / 'bastion.db'}")
    policies = {
        "api_key": {},
        "brute_force": {"max_failures": 3, "max_ip_failures": 5, "window": 60, "lockout": LOCKOUT},
    }
    # The test client is the trusted proxy, so X-Forwarded-For sets each request's address.
    document = _document(tmp_path, policies, trusted_proxies=["127.0.0.1/32"])
    with open_front_door(kind, tmp_path, document) as door:

        def get(address: str, key: str) -> Reply:
            return door.request("GET", "/orders", {"x-api-key": key, "x-forwarded-for": address})

        wrong = new_api_key(creds["key_id"])[1]  # the owner's key id, a guessed secret
        assert [get(ATTACKER, wrong).status_code for _ in range(3)] == [401, 401, 401]
        locked = get(ATTACKER, creds["key"])  # even the right key, from the guessing address
        assert locked.status_code == 429
        assert locked.headers["content-type"] == "application/problem+json"
        assert locked.json()["code"] == "too_many_failures"
        assert 1 <= int(locked.headers["retry-after"]) <= LOCKOUT
        assert get(OWNER, creds["key"]).status_code == 200  # the owner elsewhere is unaffected
        assert get("192.0.2.9", creds["key"]).status_code == 200

        # Other key ids from the attacker's address: open until the address threshold (5).
        others = [get(ATTACKER, new_api_key()[1]).status_code for _ in range(3)]
        assert others == [401, 401, 429]

        time.sleep(LOCKOUT + 0.2)
        assert get(ATTACKER, creds["key"]).status_code == 200
    assert creds["key"] not in door.access_log.read_text()
