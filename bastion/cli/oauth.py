"""`bastion clients add|list|rotate-secret|remove`: OAuth clients of the built-in server."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import click

from bastion.cli.credentials import _actor, _config, _run, config_option
from bastion.oauth.clients import new_client_id, new_client_secret, secret_digest
from bastion.oauth.grant_store import GrantStore
from bastion.oauth.redirects import check_redirect_uri
from bastion.oauth.server import GRANT_TYPES
from bastion.store import Store
from bastion.store.base import OAuthClientRecord, OAuthStore
from bastion.store.sql import SQLStore

# RFC 6749 §3.3 scope-token.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")


def _oauth(store: Store) -> OAuthStore:
    if not isinstance(store, SQLStore):  # pragma: no cover - every shipped backend is SQL
        raise click.ClickException("this store cannot hold OAuth clients")
    return store


def _show_secret(client_id: str, secret: str) -> None:
    click.echo(f"client id: {client_id}", err=True)
    click.echo("the client secret is shown once; store it now:", err=True)
    click.echo(secret)


@click.group()
def clients() -> None:
    """Register and manage OAuth clients (a secret is shown once, when made)."""


@clients.command("add")
@config_option
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, help="A scope the client may ask for.")
@click.option(
    "--grant",
    "grants",
    multiple=True,
    type=click.Choice(list(GRANT_TYPES)),
    default=["client_credentials"],
    show_default=True,
    help="A grant type the client may use (repeatable).",
)
@click.option("--audience", default=None, help="`aud` of its tokens; default: the issuer URL.")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="An exact redirect URI for the authorization-code grant (repeatable).",
)
@click.option("--public", is_flag=True, help="A public client: no secret, PKCE only.")
def clients_add(
    config_path: Path,
    name: str,
    scopes: tuple[str, ...],
    grants: tuple[str, ...],
    audience: str | None,
    redirect_uris: tuple[str, ...],
    public: bool,
) -> None:
    """Register a client called NAME; a confidential one's secret is printed once, on stdout."""
    for scope in scopes:
        if not _SCOPE.fullmatch(scope):
            raise click.BadParameter(f"{scope!r} is not a scope token", param_hint="--scope")
    for uri in redirect_uris:
        try:
            check_redirect_uri(uri)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--redirect-uri") from None
    if public and "client_credentials" in grants:
        raise click.BadParameter(
            "a public client cannot use client_credentials", param_hint="--grant"
        )
    config = _config(config_path)
    secret = new_client_secret()
    record = OAuthClientRecord(
        id=new_client_id(),
        name=name,
        secret_digest="" if public else secret_digest(secret),
        scopes=frozenset(scopes),
        grant_types=frozenset(grants),
        audience=audience,
        created_at=time.time(),
    )

    async def add(store: Store) -> None:
        await _oauth(store).add_oauth_client(record, actor=_actor())
        if redirect_uris:
            grants_store = GrantStore(store if isinstance(store, SQLStore) else None)
            await grants_store.set_redirect_uris(record.id, list(redirect_uris))

    _run(config, add)
    if public:
        click.echo(f"client id: {record.id} (public: no secret, PKCE required)", err=True)
    else:
        _show_secret(record.id, secret)


@clients.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def clients_list(config_path: Path, as_json: bool) -> None:
    """List clients (never their secrets)."""
    config = _config(config_path)
    found = _run(config, lambda store: _oauth(store).list_oauth_clients())
    if as_json:
        click.echo(json.dumps([client.public() for client in found], indent=2))
        return
    for client in found:
        scopes = " ".join(sorted(client.scopes)) or "-"
        grants = ",".join(sorted(client.grant_types))
        click.echo(f"{client.id}  {client.name:<24} grants={grants} scopes={scopes}")


@clients.command("rotate-secret")
@config_option
@click.argument("client_id")
def clients_rotate_secret(config_path: Path, client_id: str) -> None:
    """Give CLIENT_ID a new secret (printed once); the old one stops working at once."""
    config = _config(config_path)
    secret = new_client_secret()
    digest = secret_digest(secret)
    _run(
        config,
        lambda store: _oauth(store).set_oauth_client_secret(client_id, digest, actor=_actor()),
    )
    _show_secret(client_id, secret)


@clients.command("remove")
@config_option
@click.argument("client_id")
def clients_remove(config_path: Path, client_id: str) -> None:
    """Delete CLIENT_ID: it gets no new tokens; issued ones live until they expire."""
    config = _config(config_path)
    _run(config, lambda store: _oauth(store).remove_oauth_client(client_id, actor=_actor()))
    click.echo(f"removed client {client_id}")
