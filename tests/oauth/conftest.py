"""Fixtures for the authorization server's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.clock import FakeClock
from bastion.oauth.server import AuthorizationServer
from bastion.store.sqlite import SQLiteStore
from tests.oauth.support import make_server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def server(tmp_path: Path, clock: FakeClock) -> AsyncIterator[AuthorizationServer]:
    """An ES256 server with default settings on a fresh SQLite store."""
    store = SQLiteStore(tmp_path / "oauth.db")
    yield make_server(store, clock)
    await store.close()
