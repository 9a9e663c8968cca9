"""Linked identities: a gateway identity (an OAuth login's consumer id) acting as a customer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from examples.bank import create_app
from examples.bank.seed import ALICE, ALICE_EUR, BOB, BOB_EUR, link_identity
from tests.examples.bank.support import NOW, consumer

REPO_ROOT = Path(__file__).parents[3]
SUBJECT = "c_0123456789abcdef"


def test_linked_subject_acts_as_its_customer_and_owns_nothing_else(db_path: Path) -> None:
    link_identity(db_path, SUBJECT, ALICE)
    with TestClient(create_app(db_path, now=lambda: NOW)) as client:
        mine = client.get("/v1/accounts", headers=consumer(SUBJECT))
        theirs = client.get(f"/v1/accounts/{BOB_EUR}", headers=consumer(SUBJECT))
        own = client.get(f"/v1/accounts/{ALICE_EUR}", headers=consumer(SUBJECT))

    assert mine.status_code == 200
    assert {account["customer_id"] for account in mine.json()["data"]} == {ALICE}
    assert own.status_code == 200
    assert theirs.status_code == 403  # ownership follows the linked customer


def test_linking_again_moves_the_subject_and_stays_single(db_path: Path) -> None:
    link_identity(db_path, SUBJECT, ALICE)
    link_identity(db_path, SUBJECT, ALICE)
    link_identity(db_path, SUBJECT, BOB)
    with TestClient(create_app(db_path, now=lambda: NOW)) as client:
        response = client.get("/v1/accounts", headers=consumer(SUBJECT))

    assert {account["customer_id"] for account in response.json()["data"]} == {BOB}


def test_unlinked_subject_is_unknown(db_path: Path) -> None:
    with TestClient(create_app(db_path, now=lambda: NOW)) as client:
        response = client.get("/v1/accounts", headers=consumer(SUBJECT))

    assert response.status_code == 401
    assert response.json()["code"] == "unknown_customer"


def test_linking_to_a_customer_that_does_not_exist_is_refused(db_path: Path) -> None:
    with pytest.raises(ValueError, match="not a customer"):
        link_identity(db_path, SUBJECT, "cus_mallory01")
    with TestClient(create_app(db_path, now=lambda: NOW)) as client:
        response = client.get("/v1/accounts", headers=consumer(SUBJECT))

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("link", "message"),
    [
        ("no-equals-sign", "SUBJECT=CUSTOMER"),
        ("=cus_alice0001", "SUBJECT=CUSTOMER"),
        (f"{SUBJECT}=cus_mallory01", "not a customer"),
    ],
    ids=["no_separator", "empty_subject", "unknown_customer"],
)
def test_module_refuses_a_bad_link_before_serving(tmp_path: Path, link: str, message: str) -> None:
    argv = [sys.executable, "-m", "examples.bank", "--port", "1", "--db", str(tmp_path / "b")]
    result = subprocess.run(
        [*argv, "--link", link],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 2
    assert message in result.stderr
