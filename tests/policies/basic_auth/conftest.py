"""A cached store over a real SQLite file, with a fake clock, for api_key and basic_auth tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.clock import FakeClock
from bastion.store import CachedStore
from bastion.store.secrets import Pepper, Peppers
from bastion.store.sqlite import SQLiteStore

PEPPER = Pepper.from_secret("a-test-pepper-of-at-least-32-characters")


@pytest.fixture
def clock() -> FakeClock:
    """The clock every policy and the cache read."""
    return FakeClock()


@pytest.fixture
async def cached(tmp_path: Path, clock: FakeClock) -> AsyncIterator[CachedStore]:
    """A cached SQLite store with one pepper."""
    store = CachedStore(SQLiteStore(tmp_path / "bastion.db"), peppers=Peppers(PEPPER), clock=clock)
    try:
        yield store
    finally:
        await store.close()
