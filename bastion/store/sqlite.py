"""The SQLite store: stdlib sqlite3 on one dedicated thread, WAL mode, a 0600 database file.

How this works: sqlite3 blocks, so every query runs on a single worker thread that owns the one
connection; coroutines put (function, future) pairs on its queue and await the future, which
the thread resolves through `loop.call_soon_threadsafe`. One connection serialises this
process's writes, and WAL lets other processes (workers, the CLI) read while one writes. The
thread starts on first use and migrations run then, so building a gateway that never
authenticates anyone creates no file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, TypeVar

from bastion.errors import StoreUnavailable
from bastion.store.base import ConfigRevision, StoreConflict
from bastion.store.migrate import CREATE_MIGRATIONS_TABLE, MIGRATIONS_TABLE, load_migrations
from bastion.store.sql import Row, SQLStore, Statement

T = TypeVar("T")

BUSY_TIMEOUT_MS: Final = 5000

_Deliver = Callable[[object, BaseException | None], None]
_Job = tuple[Callable[[sqlite3.Connection], object], _Deliver]


class SQLiteStore(SQLStore):
    """A store in one SQLite file (the default, for a single node and its worker processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url_redacted = f"sqlite:///{path}"
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._migrated = False
        self._migrating: asyncio.Lock | None = None

    def _open_file(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file 0600 before SQLite does (it would use the umask); the -wal and -shm
        # files SQLite creates next to it copy the database file's mode.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return conn

    def _run_thread(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            conn = self._open_file()
        except (OSError, sqlite3.Error) as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                job, deliver = item
                try:
                    result = job(conn)
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                    deliver(None, exc)
                else:
                    deliver(result, None)
        finally:
            conn.close()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                target=self._run_thread, args=(ready, failure), name="bastion-sqlite", daemon=True
            )
            thread.start()
            ready.wait()
            if failure:
                raise StoreUnavailable("sqlite") from failure[0]
            self._thread = thread

    async def _call(self, job: Callable[[sqlite3.Connection], T]) -> T:
        self._ensure_thread()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(result: object, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)  # type: ignore[arg-type]  # what job returned: a T

        def deliver(result: object, error: BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed while we worked
                loop.call_soon_threadsafe(settle, result, error)

        self._queue.put((job, deliver))
        try:
            return await future
        except sqlite3.IntegrityError as exc:
            raise StoreConflict("a uniqueness or reference rule failed") from exc
        except sqlite3.Error as exc:
            raise StoreUnavailable("sqlite") from exc

    async def _ready(self) -> None:
        if self._migrated:
            return
        if self._migrating is None:
            self._migrating = asyncio.Lock()
        async with self._migrating:
            if not self._migrated:
                await self.migrate()

    async def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        await self._ready()
        return await self._call(lambda conn: conn.execute(sql, tuple(params)).fetchall())

    async def _write(self, statements: Sequence[Statement]) -> None:
        await self._ready()
        await self._call(lambda conn: _transaction(conn, statements))

    def _absent(self) -> bool:
        """Whether the database file does not exist yet (and this process has not opened it)."""
        return self._thread is None and not self.path.exists()

    async def latest_config_revision(self) -> ConfigRevision | None:
        """The newest config revision; None, without creating the file, when it does not exist.

        Every worker polls this each second: a node whose store nobody has used yet must not
        get a database file (and its directory) just for that.
        """
        if self._absent():
            return None
        return await super().latest_config_revision()

    async def latest_config_revision_id(self) -> int:
        """The newest config revision's number; 0, without creating the file, when it is absent."""
        if self._absent():
            return 0
        return await super().latest_config_revision_id()

    async def migrate(self) -> list[str]:
        """Apply pending migrations in one `BEGIN IMMEDIATE` transaction each."""
        applied = await self._call(_migrate)
        self._migrated = True
        return applied

    async def wait_for_change(self, max_wait: float) -> None:
        """SQLite has no notifications: other processes' changes are found by polling."""
        await asyncio.sleep(max_wait)

    async def close(self) -> None:
        """Stop the thread (after queued work) and close the connection."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(thread.join, 5)
        self._migrated = False
        self._migrating = None


def _transaction(conn: sqlite3.Connection, statements: Sequence[Statement]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in statements:
            conn.execute(sql, tuple(params))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _migrate(conn: sqlite3.Connection) -> list[str]:
    applied: list[str] = []
    conn.execute(CREATE_MIGRATIONS_TABLE)
    for migration in load_migrations("sqlite"):
        # BEGIN IMMEDIATE takes the write lock first, so two processes never both apply one.
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute(
                f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE version = ?",  # noqa: S608 - constant name
                (migration.version,),
            ).fetchone()
            if done is None:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (version, name, applied_at) VALUES (?, ?, ?)",  # noqa: S608 - constant name
                    (migration.version, migration.name, time.time()),
                )
                applied.append(f"{migration.version:04d}_{migration.name}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return applied
