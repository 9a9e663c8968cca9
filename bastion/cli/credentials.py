"""`bastion consumers|keys|basic|migrate`: manage consumers and credentials in the store."""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click

from bastion.config.loader import ConfigErrors, load_config
from bastion.config.models import GatewayConfig
from bastion.errors import BastionError, StoreUnavailable
from bastion.store import (
    APIKeyRecord,
    Consumer,
    PasswordRecord,
    Store,
    StoreConflict,
    StoreNotFound,
    open_store,
    peppers_from_config,
)
from bastion.store.secrets import Peppers, hash_password, new_api_key

T = TypeVar("T")

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="The gateway's YAML configuration file (its `store` and `pepper`).",
)


def _config(path: Path) -> GatewayConfig:
    try:
        return load_config(path)
    except ConfigErrors as exc:
        for line in exc.lines:
            click.echo(f"error: {line}", err=True)
        sys.exit(1)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _run(config: GatewayConfig, action: Callable[[Store], Awaitable[T]]) -> T:
    """Run `action` against the configured store; store errors become messages and exit 1."""

    async def main() -> T:
        store = open_store(config.store)
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except StoreUnavailable:
        click.echo(f"error: the store is unavailable: {_redacted(config.store)}", err=True)
        sys.exit(1)
    except (StoreConflict, StoreNotFound) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _redacted(url: str) -> str:
    from bastion.store.postgres import redact_url

    return redact_url(url)


def _parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter("use seconds or a number with s, m, h or d (e.g. 90d)")
    return float(int(match.group(1)) * _UNITS[match.group(2)])


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _consumer_or_fail(store: Store, name_or_id: str) -> Consumer:
    consumer = await store.find_consumer(name_or_id)
    if consumer is None:
        raise StoreNotFound(f"no consumer named {name_or_id!r}")
    return consumer


def _peppers(config: GatewayConfig) -> Peppers:
    peppers = peppers_from_config(config)
    if peppers is None:
        click.echo("error: the config sets no `pepper`: API keys cannot be issued", err=True)
        sys.exit(1)
    return peppers


@click.command()
@config_option
def migrate(config_path: Path) -> None:
    """Create or upgrade the store's tables (the gateway also does this on first use)."""
    config = _config(config_path)
    applied = _run(config, lambda store: store.migrate())
    if applied:
        click.echo("applied: " + ", ".join(applied))
    else:
        click.echo("the schema is up to date")


@click.group()
def consumers() -> None:
    """Manage consumers (the callers credentials belong to)."""


@consumers.command("add")
@config_option
@click.argument("name")
@click.option("--group", "groups", multiple=True, help="A group (repeatable), for acl policies.")
@click.option("--meta", "meta", multiple=True, help="Metadata as key=value (repeatable).")
def consumers_add(
    config_path: Path, name: str, groups: tuple[str, ...], meta: tuple[str, ...]
) -> None:
    """Create a consumer called NAME."""
    metadata: dict[str, str] = {}
    for item in meta:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise click.BadParameter("expected key=value", param_hint="--meta")
        metadata[key] = value
    config = _config(config_path)
    consumer = _run(
        config,
        lambda store: store.create_consumer(name, actor=_actor(), groups=groups, metadata=metadata),
    )
    click.echo(f"created consumer {consumer.name} ({consumer.id})")


@consumers.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def consumers_list(config_path: Path, as_json: bool) -> None:
    """List consumers."""
    config = _config(config_path)
    found = _run(config, lambda store: store.list_consumers())
    if as_json:
        click.echo(json.dumps([consumer.public() for consumer in found], indent=2))
        return
    for consumer in found:
        state = "disabled" if consumer.disabled else "active"
        groups = ",".join(sorted(consumer.groups)) or "-"
        click.echo(f"{consumer.id}  {consumer.name:<24} {state:<8} groups={groups}")


@consumers.command("disable")
@config_option
@click.argument("consumer")
@click.option("--enable", is_flag=True, help="Enable the consumer again instead.")
def consumers_disable(config_path: Path, consumer: str, enable: bool) -> None:
    """Disable CONSUMER (name or id): all its credentials are refused from then on."""
    config = _config(config_path)

    async def action(store: Store) -> Consumer:
        found = await _consumer_or_fail(store, consumer)
        return await store.set_consumer_disabled(found.id, not enable, actor=_actor())

    changed = _run(config, action)
    click.echo(f"{'enabled' if enable else 'disabled'} consumer {changed.name} ({changed.id})")


@click.group()
def keys() -> None:
    """Issue, list, revoke and rotate API keys (a key is shown once, when issued)."""


async def _issue(
    store: Store,
    peppers: Peppers,
    consumer_id: str,
    *,
    expires_at: float | None,
    label: str | None,
) -> tuple[APIKeyRecord, str]:
    for _ in range(5):  # key ids are random: retry the rare collision
        key_id, key = new_api_key()
        digest = peppers.digest(key)
        if digest is None:  # pragma: no cover - the current pepper is always known
            raise BastionError("no current pepper")
        record = APIKeyRecord(
            id=key_id,
            consumer_id=consumer_id,
            digest=digest,
            pepper_id=peppers.current.id,
            created_at=time.time(),
            expires_at=expires_at,
            label=label,
        )
        try:
            await store.add_api_key(record, actor=_actor())
        except StoreConflict:
            continue
        return record, key
    raise StoreConflict("could not find a free key id")


def _show_key(record: APIKeyRecord, key: str) -> None:
    click.echo(f"key id:  {record.id}", err=True)
    click.echo(f"expires: {_when(record.expires_at)}", err=True)
    click.echo("the key is shown once; store it now:", err=True)
    click.echo(key)


@keys.command("issue")
@config_option
@click.argument("consumer")
@click.option("--expires-in", default=None, help="Lifetime, e.g. 90d or 12h; default: none.")
@click.option("--label", default=None, help="A note to recognise the key by.")
def keys_issue(config_path: Path, consumer: str, expires_in: str | None, label: str | None) -> None:
    """Issue a new API key for CONSUMER (name or id); the key is printed once, on stdout."""
    lifetime = _parse_duration(expires_in) if expires_in else None
    config = _config(config_path)
    peppers = _peppers(config)

    async def action(store: Store) -> tuple[APIKeyRecord, str]:
        found = await _consumer_or_fail(store, consumer)
        expires_at = time.time() + lifetime if lifetime is not None else None
        return await _issue(store, peppers, found.id, expires_at=expires_at, label=label)

    record, key = _run(config, action)
    _show_key(record, key)


@keys.command("list")
@config_option
@click.argument("consumer", required=False)
def keys_list(config_path: Path, consumer: str | None) -> None:
    """List key records (never the keys): of CONSUMER, or all."""
    config = _config(config_path)

    async def action(store: Store) -> list[APIKeyRecord]:
        consumer_id = None
        if consumer is not None:
            consumer_id = (await _consumer_or_fail(store, consumer)).id
        return await store.list_api_keys(consumer_id)

    now = time.time()
    for record in _run(config, action):
        if record.revoked_at is not None:
            state = "revoked"
        elif record.expires_at is not None and record.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        click.echo(
            f"{record.id}  consumer={record.consumer_id}  {state:<7}  "
            f"created={_when(record.created_at)}  expires={_when(record.expires_at)}  "
            f"label={record.label or '-'}"
        )


@keys.command("revoke")
@config_option
@click.argument("key_id")
def keys_revoke(config_path: Path, key_id: str) -> None:
    """Revoke the key KEY_ID (the `<id>` in bst_<id>_...); every node refuses it within 2 s."""
    config = _config(config_path)
    record = _run(
        config, lambda store: store.revoke_api_key(key_id, at=time.time(), actor=_actor())
    )
    click.echo(f"revoked key {record.id}")


@keys.command("rotate")
@config_option
@click.argument("key_id")
@click.option(
    "--overlap",
    default="1h",
    show_default=True,
    help="How long the old key keeps working, so clients can switch (0 revokes it now).",
)
def keys_rotate(config_path: Path, key_id: str, overlap: str) -> None:
    """Issue a replacement for KEY_ID and let the old key expire after the overlap window."""
    window = _parse_duration(overlap)
    config = _config(config_path)
    peppers = _peppers(config)

    async def action(store: Store) -> tuple[APIKeyRecord, str]:
        old = next((k for k in await store.list_api_keys() if k.id == key_id), None)
        if old is None or old.revoked_at is not None:
            raise StoreNotFound("no such active API key")
        new = await _issue(
            store, peppers, old.consumer_id, expires_at=old.expires_at, label=old.label
        )
        now = time.time()
        if window == 0:
            await store.revoke_api_key(old.id, at=now, actor=_actor())
        else:
            ends = now + window
            if old.expires_at is None or old.expires_at > ends:
                await store.set_api_key_expiry(old.id, ends, actor=_actor())
        return new

    record, key = _run(config, action)
    click.echo(f"old key {key_id} stops working in {overlap}", err=True)
    _show_key(record, key)


@click.group()
def basic() -> None:
    """Manage Basic-auth passwords (argon2id)."""


@basic.command("set-password")
@config_option
@click.argument("consumer")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (first line)."
)
def basic_set_password(config_path: Path, consumer: str, password_stdin: bool) -> None:
    """Set the Basic password of CONSUMER (its name is the username); never taken from argv."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        password_hash = hash_password(password)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    config = _config(config_path)

    async def action(store: Store) -> Consumer:
        found = await _consumer_or_fail(store, consumer)
        record = PasswordRecord(found.id, found.name, password_hash, time.time())
        await store.set_password(record, actor=_actor())
        return found

    found = _run(config, action)
    click.echo(f"password set for {found.name} ({found.id})")
