"""Configs applied through the admin API, shared through the store with every node and worker.

How this works: `PUT /admin/config` applies a config on the process that serves the admin
listener, then `publish_config` writes the document as submitted to the store as the next
cluster-wide revision (with its `config.update` audit entry, in one transaction; PostgreSQL
NOTIFYs every node). Every worker process of every node runs a `ConfigFollower`: it asks the
store for the newest revision number each time the store announces a change and at least once
a second, and applies a newer revision through the same path as SIGHUP (`apply_config`). A
refused revision leaves the running config in place and is logged by its setting paths only:
a document may hold a secret, so it is never logged.

A stored document is turned into a config on each node by `config_from_store`: masked secrets
(`********`) are restored from that node's running config, `${ENV}` is read from an empty
environment (as for the API itself), and the node-local settings (`NODE_LOCAL_SETTINGS`:
listeners, admin listener, store URL, state directory) always stay the node's own.

At start (`startup_config`), the config file is the bootstrap and the store's newest revision,
when there is one, wins over it; `bastion run --ignore-stored-config` keeps the file (later
revisions still apply). The follower's successful or failed store reads are also what marks the
store degraded (`/ready` keeps answering 200 and lists it) and recovered, with one log event each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol

from bastion.admin.config_view import JSON, ConfigView
from bastion.config.loader import ConfigErrors, parse_config
from bastion.config.models import GatewayConfig
from bastion.errors import ConfigError, StoreUnavailable
from bastion.store import Store, open_store
from bastion.store.base import ConfigRevision

_log = logging.getLogger("bastion.admin")

ADMIN_ACTOR: Final = "admin-api"
NODE_LOCAL_SETTINGS: Final = ("listeners", "admin", "store", "state_dir")
"""Top-level settings a stored revision never changes: each node keeps its own."""
POLL_INTERVAL: Final = 1.0

ConfigSource = Literal["file", "store"]

_ORIGIN: dict[int, str] = {}


def process_origin() -> str:
    """This process's name in `ConfigRevision.origin`: host, pid and a random part."""
    pid = os.getpid()  # a forked worker must not inherit its parent's name
    found = _ORIGIN.get(pid)
    if found is None:
        found = _ORIGIN[pid] = f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}"
    return found


def config_from_store(
    current: GatewayConfig, document: Mapping[str, object], base_dir: Path
) -> GatewayConfig:
    """The config a stored revision means on this node (runs in a worker thread).

    Raises:
        ConfigErrors: the document is invalid here (each line names a setting's dotted path).
    """
    view = ConfigView(current)
    restored = view.restore(dict(document))  # type: ignore[arg-type]  # a JSON object from the store
    if not isinstance(restored, dict):  # pragma: no cover - restore keeps a dict a dict
        raise ConfigErrors(["(top level): the config must be a mapping of settings"])
    # The node's own values of its node-local settings, secrets revealed (restore of the masks).
    masked = view.masked
    local = (
        {key: masked.get(key) for key in NODE_LOCAL_SETTINGS} if isinstance(masked, dict) else {}
    )
    own = view.restore(local)
    for key, value in (own if isinstance(own, dict) else {}).items():
        if value is None:
            restored.pop(key, None)
        else:
            restored[key] = value
    return parse_config(restored, base_dir=base_dir, env={})


def error_paths(exc: ConfigError) -> str:
    """The setting paths of a refused config, without messages (they may quote a value)."""
    if isinstance(exc, ConfigErrors):
        paths = {line.partition(": ")[0] for line in exc.lines}
    else:
        paths = {exc.path}
    return ", ".join(sorted(path or "(top level)" for path in paths))


async def publish_config(
    store: Store,
    document: Mapping[str, JSON],
    *,
    before: Mapping[str, object],
    after: Mapping[str, object],
    actor: str = ADMIN_ACTOR,
) -> ConfigRevision:
    """Store an applied config as the next revision, for every other node and worker.

    `before`/`after` go to the audit log (changed settings, masked); `document` is stored as
    submitted and never logged.

    Raises:
        StoreUnavailable: the database could not answer.
    """
    return await store.add_config_revision(
        document, actor=actor, origin=process_origin(), before=before, after=after
    )


@dataclass(frozen=True, slots=True)
class StartupConfig:
    """The config a node starts with, and where the follower starts following from."""

    config: GatewayConfig
    source: ConfigSource
    store_revision: int | None
    """The stored revision serving (None: the file's config)."""
    watermark: int | None
    """The newest stored revision seen at start (None: the store could not be read)."""
    ignore_stored: bool = False
    """`--ignore-stored-config`: keep the file even when the store answers only later."""


async def _startup_config(
    config: GatewayConfig, base_dir: Path, *, ignore_stored: bool
) -> StartupConfig:
    store = open_store(config.store)
    try:
        try:
            latest = await store.latest_config_revision()
        except StoreUnavailable as exc:
            _log.warning(
                "store unavailable at start (%s): serving the config file until it answers",
                exc,
                extra={"event.action": "store-degraded", "event.outcome": "failure"},
            )
            return StartupConfig(config, "file", None, None, ignore_stored)
    finally:
        await store.close()
    if latest is None:
        return StartupConfig(config, "file", None, 0)
    if ignore_stored:
        _log.info("--ignore-stored-config: serving the file, not stored revision %d", latest.id)
        return StartupConfig(config, "file", None, latest.id, ignore_stored)
    try:
        stored = await asyncio.to_thread(config_from_store, config, latest.document, base_dir)
    except ConfigErrors as exc:
        _log.error(
            "stored config revision %d refused (settings: %s); serving the config file",
            latest.id,
            error_paths(exc),
        )
        return StartupConfig(config, "file", None, latest.id)
    _log.info("serving stored config revision %d (applied through the admin API)", latest.id)
    return StartupConfig(stored, "store", latest.id, latest.id)


def startup_config(
    config: GatewayConfig, config_path: Path | None, *, ignore_stored: bool = False
) -> StartupConfig:
    """Read the store's newest revision before the workers start (blocking; not in a loop).

    The file is the bootstrap: the newest revision applied through the admin API wins over
    it unless `ignore_stored`. A store that cannot be read, or a revision this node refuses,
    leaves the file's config serving.
    """
    base_dir = config_path.parent if config_path is not None else Path.cwd()
    return asyncio.run(_startup_config(config, base_dir, ignore_stored=ignore_stored))


class FollowerHost(Protocol):
    """What the follower needs from the running server (`bastion.server.run.Server`)."""

    @property
    def config(self) -> GatewayConfig:
        """The config now serving."""
        ...

    @property
    def config_path(self) -> Path | None:
        """The config file (relative paths are relative to its folder)."""
        ...

    def apply_config(self, config: GatewayConfig) -> None:
        """Swap in `config` atomically, as SIGHUP does.

        Raises:
            ConfigError: the config could not be built; the old one keeps serving.
        """
        ...


class ConfigFollower:
    """Applies config revisions other processes stored; tracks whether the store answers.

    Args:
        host: The server whose config follows the store.
        store: Returns the store of the running config (it can change with the config).
        start: Where the process's config came from at start (None: take the store's newest
            revision number at the first successful read as already seen, as a process that
            did not go through `startup_config` has no opinion about it).
    """

    def __init__(
        self,
        host: FollowerHost,
        store: Callable[[], Store],
        start: StartupConfig | None = None,
        *,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self._host = host
        self._store = store
        self.poll_interval = poll_interval
        self.source: ConfigSource = start.source if start is not None else "file"
        self.store_revision = start.store_revision if start is not None else None
        self._watermark = start.watermark if start is not None else None
        # A node that could not read the store at start applies its newest revision later.
        self._adopt = start is not None and start.watermark is None and not start.ignore_stored
        self.degraded = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start following on the running loop."""
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="bastion-config-follower")

    async def stop(self) -> None:
        """Stop following."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def status(self) -> dict[str, object]:
        """Facts for `/status`: where the running config came from."""
        return {"config_source": self.source, "config_store_revision": self.store_revision}

    def published(self, revision: ConfigRevision) -> None:
        """This process applied and stored `revision` itself (`PUT /admin/config`)."""
        self._watermark = max(self._watermark or 0, revision.id)
        self.store_revision = revision.id
        self.source = "store"

    def file_applied(self) -> None:
        """The config file was applied (SIGHUP): the store no longer describes this process."""
        self.store_revision = None
        self.source = "file"

    async def _run(self) -> None:
        while True:
            await self.check()
            await self._store().wait_for_change(self.poll_interval)

    async def check(self) -> None:
        """Read the newest revision number; apply a newer revision; update `degraded`."""
        store = self._store()
        try:
            latest = await store.latest_config_revision_id()
            if self._watermark is None and not self._adopt:
                self._watermark = latest
            elif latest > (self._watermark or 0):
                await self._follow(store)
        except StoreUnavailable as exc:
            self._mark(degraded=True, reason=str(exc))
            return
        self._mark(degraded=False)

    def _mark(self, *, degraded: bool, reason: str = "") -> None:
        if degraded and not self.degraded:
            _log.warning(
                "store degraded (%s): serving the last good config and cache",
                reason,
                extra={"event.action": "store-degraded", "event.outcome": "failure"},
            )
        elif not degraded and self.degraded:
            _log.warning(
                "store recovered: it answers again",
                extra={"event.action": "store-recovered", "event.outcome": "success"},
            )
        self.degraded = degraded

    async def _follow(self, store: Store) -> None:
        revision = await store.latest_config_revision()
        if revision is None:  # pragma: no cover - a revision number was just read
            return
        if revision.origin == process_origin():
            self.published(revision)  # stored by this process after it applied it
            return
        host = self._host
        base = host.config
        base_dir = host.config_path.parent if host.config_path is not None else Path.cwd()
        try:
            new = await asyncio.to_thread(config_from_store, base, revision.document, base_dir)
        except ConfigErrors as exc:
            self._watermark = revision.id
            _log.error(
                "config revision %d from the store refused (settings: %s); still serving the "
                "previous config",
                revision.id,
                error_paths(exc),
            )
            return
        if host.config is not base:
            return  # changed meanwhile (a PUT or SIGHUP here): read the store again next time
        self._watermark = revision.id
        if new != base:
            try:
                host.apply_config(new)
            except ConfigError as exc:  # apply_config logged it, with its reason
                _log.error(
                    "config revision %d from the store refused (settings: %s)",
                    revision.id,
                    error_paths(exc),
                )
                return
        self._adopt = False
        self.store_revision = revision.id
        self.source = "store"
        _log.info("applied config revision %d from the store (by %s)", revision.id, revision.actor)


__all__ = [
    "ADMIN_ACTOR",
    "NODE_LOCAL_SETTINGS",
    "ConfigFollower",
    "FollowerHost",
    "StartupConfig",
    "config_from_store",
    "error_paths",
    "process_origin",
    "publish_config",
    "startup_config",
]
