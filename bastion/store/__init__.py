"""Consumers, credentials and the audit log: SQLite by default, PostgreSQL for clusters."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bastion.store.base import (
    APIKeyRecord,
    AuditEntry,
    ConfigRevision,
    ConfigStore,
    Consumer,
    ConsumerStore,
    CredentialStore,
    PasswordRecord,
    Store,
    StoreConflict,
    StoreNotFound,
)
from bastion.store.cache import CachedStore, close_shared_stores, shared_store
from bastion.store.secrets import Pepper, Peppers

if TYPE_CHECKING:
    from bastion.config.models import GatewayConfig

SQLITE_PREFIX = "sqlite:///"


def check_store_url(url: str) -> str:
    """Validate a store URL: `sqlite:///path` or `postgresql://...`.

    Raises:
        ValueError: any other scheme, or an empty path.
    """
    if url.startswith(SQLITE_PREFIX):
        if not url[len(SQLITE_PREFIX) :]:
            raise ValueError("sqlite:/// needs a file path, e.g. sqlite:///var/bastion.db")
        return url
    if url.startswith(("postgresql://", "postgres://")):
        return url
    raise ValueError("must be sqlite:///PATH or postgresql://USER@HOST:PORT/DB")


def open_store(url: str, *, base_dir: Path | None = None) -> Store:
    """A backend for `url` (nothing is opened until first use).

    `sqlite:///var/bastion.db` is relative to `base_dir` (the config file's folder) when
    given, `sqlite:////srv/bastion.db` absolute.

    Raises:
        ValueError: the URL has an unknown scheme.
    """
    check_store_url(url)
    if url.startswith(SQLITE_PREFIX):
        from bastion.store.sqlite import SQLiteStore

        path = Path(url[len(SQLITE_PREFIX) :])
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return SQLiteStore(path)
    from bastion.store.postgres import PostgresStore

    return PostgresStore(url)


def cached_store(url: str, peppers: Peppers | None, *, base_dir: Path | None = None) -> CachedStore:
    """The process-wide cached store for `url` (shared across config reloads)."""
    return shared_store(url, open_store(url, base_dir=base_dir), peppers)


def peppers_from_config(config: GatewayConfig) -> Peppers | None:
    """The peppers configured by `pepper` and `previous_peppers` (None without a pepper)."""
    if config.pepper is None:
        return None
    previous = [Pepper.from_secret(item.get_secret_value()) for item in config.previous_peppers]
    return Peppers(Pepper.from_secret(config.pepper.get_secret_value()), previous)


def gateway_store(config: GatewayConfig) -> CachedStore:
    """The cached store the gateway's policies share (one per process, store URL and pepper)."""
    return cached_store(config.store, peppers_from_config(config))


__all__ = [
    "APIKeyRecord",
    "AuditEntry",
    "CachedStore",
    "ConfigRevision",
    "ConfigStore",
    "Consumer",
    "ConsumerStore",
    "CredentialStore",
    "PasswordRecord",
    "Pepper",
    "Peppers",
    "Store",
    "StoreConflict",
    "StoreNotFound",
    "cached_store",
    "check_store_url",
    "close_shared_stores",
    "gateway_store",
    "open_store",
    "peppers_from_config",
]
