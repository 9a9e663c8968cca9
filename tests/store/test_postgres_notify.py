"""PostgreSQL LISTEN/NOTIFY: a write on one node wakes every waiter on another, at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bastion.store import open_store
from bastion.store.postgres import PostgresStore
from tests.store.support import postgres_schema

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@pytest.fixture
async def two_nodes() -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one schema, as two nodes would open it."""
    with postgres_schema() as url:
        writer, follower = open_store(url), open_store(url)
        assert isinstance(writer, PostgresStore)
        assert isinstance(follower, PostgresStore)
        await writer.migrate()
        try:
            yield writer, follower
        finally:
            await writer.close()
            await follower.close()


async def test_a_write_wakes_every_waiter_on_another_node(
    two_nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    writer, follower = two_nodes
    await follower.wait_for_change(5)  # starts listening; returns once the LISTEN is in place
    started = time.monotonic()
    # Two waiters at once, like the credential cache's watcher and the config follower.
    waiters = [asyncio.ensure_future(follower.wait_for_change(10)) for _ in range(2)]
    await asyncio.sleep(0.1)
    assert not any(waiter.done() for waiter in waiters)

    await writer.create_consumer("alice", actor="test")
    await asyncio.wait_for(asyncio.gather(*waiters), 5)

    assert time.monotonic() - started < 2


async def test_without_a_change_the_wait_ends_after_max_wait(
    two_nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    _writer, follower = two_nodes
    await follower.wait_for_change(5)
    started = time.monotonic()
    await follower.wait_for_change(0.3)
    assert 0.25 <= time.monotonic() - started < 2
