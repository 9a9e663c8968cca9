"""Builds the authorization server of a gateway configuration (`oauth:` set) and its handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.clock import Clock
from bastion.oauth.server import AuthorizationServer
from bastion.policies.jwt.config import LOCAL_ISSUER_EXTRA
from bastion.store.sql import SQLStore

if TYPE_CHECKING:
    from bastion.config.models import GatewayConfig
    from bastion.store.cache import CachedStore

EXTRAS_KEY = LOCAL_ISSUER_EXTRA
"""Key of the `AuthorizationServer` in `PolicyDeps.extras` (read by `jwt: {issuer: self}`)."""


def authorization_server(
    config: GatewayConfig, store: CachedStore, clock: Clock
) -> AuthorizationServer | None:
    """The server for `config.oauth` on the gateway's store, or None when `oauth` is not set.

    Raises:
        ValueError: the store backend cannot hold OAuth clients and keys.
    """
    if config.oauth is None:
        return None
    backend = store.backend
    if not isinstance(backend, SQLStore):
        raise ValueError("the OAuth server needs an SQLite or PostgreSQL store")
    pepper = config.pepper.get_secret_value().encode() if config.pepper is not None else None
    return AuthorizationServer(config.oauth, backend, clock, pepper=pepper)
