"""The PostgreSQL store (psycopg 3, async, a small pool) for clusters of gateway nodes.

Every write also runs `pg_notify('bastion_changes', ...)` in its transaction; each process
keeps one extra connection that LISTENs on that channel (a background task), so every
`wait_for_change` waiter (the credential cache's watcher, the config follower) returns as soon
as another node (or the CLI) commits a change, and caches are invalidated within milliseconds.
If that connection breaks, the task reconnects every second, and the waiters' one-second poll
still bounds staleness meanwhile. Pooled connections are checked before use, so one that the
server (or the network) dropped is replaced instead of failing a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from bastion.errors import StoreUnavailable
from bastion.store.base import StoreConflict
from bastion.store.migrate import CREATE_MIGRATIONS_TABLE, MIGRATIONS_TABLE, load_migrations
from bastion.store.sql import Row, SQLStore, Statement

CHANNEL: Final = "bastion_changes"
# An arbitrary constant: the advisory lock id that serialises migrations across nodes.
MIGRATION_LOCK: Final = 0x62617374
CONNECT_TIMEOUT: Final = 3.0
STATEMENT_TIMEOUT_MS: Final = 3000
LISTEN_RETRY: Final = 1.0
_NOTIFY: Final = (f"SELECT pg_notify('{CHANNEL}', '')", ())


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """Per new pooled connection: a statement timeout, so a stuck query cannot hang requests."""
    await conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    await conn.commit()


def _pg(sql: str) -> str:
    """`?` placeholders to psycopg's `%s` (the shared SQL never has a literal `?` or `%`)."""
    return sql.replace("?", "%s")


class PostgresStore(SQLStore):
    """A store in PostgreSQL, shared by every node of a cluster."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 4) -> None:
        self.url = url
        self.url_redacted = redact_url(url)
        self._min_size = min_size
        self._max_size = max_size
        self._pool: AsyncConnectionPool[Any] | None = None
        self._listener: psycopg.AsyncConnection[Any] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._changed: asyncio.Event | None = None
        self._migrated = False
        self._opening: asyncio.Lock | None = None

    async def _get_pool(self) -> AsyncConnectionPool[Any]:
        if self._pool is not None and self._migrated:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    self.url,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    open=False,
                    timeout=CONNECT_TIMEOUT,
                    kwargs={"connect_timeout": int(CONNECT_TIMEOUT)},
                    configure=_configure,
                    check=AsyncConnectionPool.check_connection,
                )
                try:
                    await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
                except (PoolTimeout, psycopg.Error, OSError) as exc:
                    await pool.close()
                    raise StoreUnavailable("postgresql") from exc
                self._pool = pool
            if not self._migrated:
                await self._migrate_with(self._pool)
        return self._pool

    async def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        pool = await self._get_pool()
        try:
            async with pool.connection() as conn:
                cursor = await conn.execute(_pg(sql), tuple(params))
                rows: list[Row] = await cursor.fetchall()
                return rows
        except (PoolTimeout, psycopg.OperationalError, OSError) as exc:
            raise StoreUnavailable("postgresql") from exc

    async def _write(self, statements: Sequence[Statement]) -> None:
        pool = await self._get_pool()
        try:
            async with pool.connection() as conn, conn.transaction():
                for sql, params in [*statements, _NOTIFY]:
                    await conn.execute(_pg(sql), tuple(params))
        except pg_errors.IntegrityError as exc:
            raise StoreConflict("a uniqueness or reference rule failed") from exc
        except (PoolTimeout, psycopg.OperationalError, OSError) as exc:
            raise StoreUnavailable("postgresql") from exc

    async def migrate(self) -> list[str]:
        """Apply pending migrations, one transaction each, under an advisory lock."""
        pool = self._pool
        if pool is None or not self._migrated:
            # Opening the pool migrates; report what it applied.
            self._last_applied: list[str] = []
            await self._get_pool()
            return self._last_applied
        return await self._migrate_with(pool)

    async def _migrate_with(self, pool: AsyncConnectionPool[Any]) -> list[str]:
        applied: list[str] = []
        try:
            async with pool.connection() as conn:
                await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
                try:
                    await conn.execute(CREATE_MIGRATIONS_TABLE)
                    await conn.commit()
                    for migration in load_migrations("postgresql"):
                        async with conn.transaction():
                            cursor = await conn.execute(
                                f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE version = %s",  # noqa: S608 - constant name
                                (migration.version,),
                            )
                            if await cursor.fetchone() is not None:
                                continue
                            for statement in migration.statements:
                                await conn.execute(statement.encode())
                            await conn.execute(
                                f"INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at) "  # noqa: S608 - constant name
                                "VALUES (%s, %s, %s)",
                                (migration.version, migration.name, time.time()),
                            )
                        applied.append(f"{migration.version:04d}_{migration.name}")
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
                    await conn.commit()
        except (PoolTimeout, psycopg.OperationalError, OSError) as exc:
            raise StoreUnavailable("postgresql") from exc
        self._migrated = True
        self._last_applied = applied
        return applied

    async def wait_for_change(self, max_wait: float) -> None:
        """Return on the next NOTIFY from any node, or after `max_wait` seconds."""
        loop = asyncio.get_running_loop()
        task, changed = self._listen_task, self._changed
        if task is None or task.done() or task.get_loop() is not loop or changed is None:
            changed = self._changed = asyncio.Event()
            self._listen_task = loop.create_task(self._listen(), name="bastion-pg-listen")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_wait):
                await changed.wait()

    async def _listen(self) -> None:
        """LISTEN on the channel for as long as the store is open, reconnecting after failures."""
        while True:
            try:
                self._listener = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT)
                )
                await self._listener.execute(f"LISTEN {CHANNEL}")
                # A (re)connection may have missed notifications: wake the waiters to re-read.
                self._wake()
                async for _ in self._listener.notifies():
                    self._wake()
            except (psycopg.Error, OSError):
                pass  # the waiters keep polling meanwhile
            await self._drop_listener()
            await asyncio.sleep(LISTEN_RETRY)

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        if changed is not None:
            changed.set()

    async def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # RuntimeError: a connection left over from a closed event loop.
            with contextlib.suppress(psycopg.Error, OSError, RuntimeError):
                await listener.close()

    async def close(self) -> None:
        """Close the pool and the LISTEN connection."""
        task, self._listen_task = self._listen_task, None
        if task is not None:
            task.cancel()
            if task.get_loop() is asyncio.get_running_loop():
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._drop_listener()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
        self._migrated = False
        self._opening = None


def is_postgres_url(url: str) -> bool:
    """Whether `url` names a PostgreSQL database."""
    return re.match(r"^postgres(?:ql)?://", url) is not None
