"""The admin API of an app protected by `BastionMiddleware`, as an ASGI app to mount.

`bastion.asgi.admin_app(middleware, token=...)` serves the same endpoints as the gateway's admin
listener (`/status`, `/ready`, `/admin/...`: consumers, keys, OAuth clients, the running config,
the audit log, `/admin/openapi.json`) with the same code, through `ExchangeApp`. The middleware
is the host: `PUT /admin/config` recompiles its chains (this process only).

Mount it where only operators reach it; `/status` and `/ready` answer without the token, as on
the gateway's admin listener, and every other path needs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.admin.api import AdminAPI
from bastion.admin.app import AdminApp
from bastion.admin.routes import MAX_CONFIG_BODY
from bastion.asgi_support.config import with_placeholders
from bastion.asgi_support.exchange import ExchangeApp
from bastion.config.models import GatewayConfig
from bastion.store.base import ConfigRevision

if TYPE_CHECKING:
    from bastion.asgi import BastionMiddleware

MIN_TOKEN_LENGTH = 16
"""Shortest admin token accepted, as for the gateway's `admin.token`."""


class MiddlewareHost:
    """What the admin API needs from the running server, provided by a middleware."""

    def __init__(self, middleware: BastionMiddleware) -> None:
        self.middleware = middleware

    @property
    def config(self) -> GatewayConfig:
        """The config now serving."""
        return self.middleware.config

    @property
    def revision(self) -> int:
        """Counts applied configs from 1."""
        return self.middleware.revision

    @property
    def config_path(self) -> Path | None:
        """The config file the middleware was given, if it was a file."""
        return self.middleware.config_path

    def admin_event(self, action: str, *, success: bool) -> None:
        """Record a change made through the admin API as a security event."""
        self.middleware.admin_event(action, success=success)

    def apply_config(self, config: GatewayConfig) -> None:
        """Swap in `config` (see `BastionMiddleware.apply_config`)."""
        self.middleware.apply_config(config)

    def config_stored(self, revision: ConfigRevision) -> None:
        """Nothing to follow: other processes of the app are not told (documented)."""

    def status(self) -> dict[str, object]:
        """Facts for `/status`."""
        return {
            "config_revision": self.revision,
            "in_flight": self.middleware.in_flight,
            "pid": os.getpid(),
        }


def admin_app(middleware: BastionMiddleware, *, token: str) -> ExchangeApp:
    """The admin endpoints of `middleware` as an ASGI app (mount it on a private path).

    Raises:
        ValueError: the token is shorter than `MIN_TOKEN_LENGTH` characters.
    """
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the admin token must be at least {MIN_TOKEN_LENGTH} characters")
    host = MiddlewareHost(middleware)
    api = AdminAPI(host, complete=with_placeholders)  # configs without listeners or upstreams
    admin = AdminApp(token=token, ready=lambda: True, status=host.status, api=api)
    return ExchangeApp(admin.handle, max_body=MAX_CONFIG_BODY)
