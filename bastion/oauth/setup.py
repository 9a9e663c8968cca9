"""Builds the authorization server of a gateway configuration (`oauth:` set) and its guard."""

from __future__ import annotations

import sys
import weakref
from typing import TYPE_CHECKING

from bastion.clock import Clock
from bastion.counters.base import Counters
from bastion.oauth.server import AuthorizationServer, Revocations
from bastion.policies.brute_force.config import BruteForceConfig
from bastion.policies.brute_force.guard import FailureGuard, scope_prefix
from bastion.policies.jwt.config import LOCAL_ISSUER_EXTRA
from bastion.store.sql import SQLStore

if TYPE_CHECKING:
    from bastion.config.models import GatewayConfig
    from bastion.store.cache import CachedStore

EXTRAS_KEY = LOCAL_ISSUER_EXTRA
"""Key of the `AuthorizationServer` in `PolicyDeps.extras` (read by `jwt: {issuer: self}`)."""

# The revoked-token set of each store backend, kept across reloads while a server uses it. A
# set holds its store, so a key (the backend's id) cannot be reused while its entry lives.
_revocation_sets: weakref.WeakValueDictionary[int, Revocations] = weakref.WeakValueDictionary()


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
    revocations = _revocation_sets.get(id(backend))
    server = AuthorizationServer(
        config.oauth, backend, clock, pepper=pepper, revocations=revocations
    )
    _revocation_sets[id(backend)] = server.revocations
    if config.counters != "memory":
        # Redis is there for the counters: revocations are pushed through it too.
        from bastion.oauth.revocation_bus import revocation_bus  # redis is an optional extra

        server.revocations.attach(revocation_bus(config.counters))
    elif config.store.startswith(("postgresql://", "postgres://")):
        # Every store write NOTIFYs the other nodes: reload the revoked set on each.
        server.revocations.follow(backend.wait_for_change)
    return server


def oauth_guard(config: GatewayConfig, counters: Counters) -> FailureGuard | None:
    """The lockout of failed client authentications and logins (None: `brute_force: false`).

    `oauth.brute_force` when set (its own counter keys); otherwise the global brute_force
    policy's settings and keys, so an address it locked is locked here too; otherwise the
    brute_force defaults: the authorization server is never left without a lockout by omission.
    """
    assert config.oauth is not None  # noqa: S101 - only called when `oauth:` is set
    own = config.oauth.brute_force
    if own is False:
        return None
    if own is not None:
        return FailureGuard(own, counters, scope_prefix("oauth", None))
    configured = config.global_policies.configured().get("brute_force")
    settings = configured if isinstance(configured, BruteForceConfig) else BruteForceConfig()
    return FailureGuard(settings, counters, scope_prefix(None, None))


async def close_revocation_buses() -> None:
    """Close this process's revocation channels (at shutdown); nothing when none was opened."""
    # Looked up rather than imported: without Redis counters the optional redis driver is
    # never loaded.
    module = sys.modules.get("bastion.oauth.revocation_bus")
    if module is not None:
        await module.close_revocation_buses()
