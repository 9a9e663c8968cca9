"""Fixtures for the banking example: a seeded database file, the app, a client and the contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from examples.bank import create_app, seed
from tests.examples.bank.support import NOW, SPEC_PATH


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as f:
        doc: dict[str, Any] = yaml.safe_load(f)
    return doc


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "bank.db"
    seed(path)
    return path


@pytest.fixture
def client(db_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(db_path, now=lambda: NOW)) as test_client:
        yield test_client
