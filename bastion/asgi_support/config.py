"""Loads a gateway config for middleware mode, where listeners and upstreams play no part.

In middleware mode the wrapped app is every route's terminal step, so a config may leave out
`listeners` and each service's `upstream`; placeholders fill them before validation (they are
never bound nor connected to). Everything else, policies and limits above all, is read exactly as
the gateway reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bastion.config.loader import ConfigErrors, parse_config
from bastion.config.models import GatewayConfig

MAX_CONFIG_BYTES = 4 * 1024 * 1024
PLACEHOLDER_LISTENER: dict[str, Any] = {"bind": "127.0.0.1:8080", "plaintext": True}
"""Stands in for `listeners` when a middleware config leaves them out; never bound."""
PLACEHOLDER_UPSTREAM: dict[str, Any] = {"targets": ["http://asgi-app.invalid"]}
"""Stands in for a service's `upstream` in middleware mode; never connected to."""

_Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)

ConfigSource = str | Path | GatewayConfig | Mapping[str, object]


def with_placeholders(document: Mapping[str, object]) -> dict[str, object]:
    """A copy of `document` with placeholder listeners and upstreams where they are missing."""
    filled = dict(document)
    filled.setdefault("listeners", [PLACEHOLDER_LISTENER])
    services = filled.get("services")
    if isinstance(services, list):
        filled["services"] = [
            {"upstream": PLACEHOLDER_UPSTREAM, **service} if isinstance(service, dict) else service
            for service in services
        ]
    return filled


def load_middleware_config(
    source: ConfigSource, *, env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Read a config for middleware mode from a file path, a mapping or a `GatewayConfig`.

    Raises:
        ConfigErrors: the file cannot be read or parsed, or a setting is invalid (each line
            names the dotted path of the setting).
    """
    if isinstance(source, GatewayConfig):
        return source
    if isinstance(source, Mapping):
        return parse_config(with_placeholders(source), env=env)
    path = Path(source)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigErrors([f"{path}: cannot read ({exc.strerror})"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigErrors([f"{path}: larger than {MAX_CONFIG_BYTES} bytes"])
    try:
        data = yaml.load(raw, Loader=_Loader)  # noqa: S506 - the loader is CSafeLoader/SafeLoader
    except yaml.YAMLError:
        raise ConfigErrors([f"{path}: invalid YAML"]) from None
    if not isinstance(data, dict):
        raise ConfigErrors([f"{path}: the config must be a mapping of settings"])
    return parse_config(with_placeholders(data), base_dir=path.parent, env=env)
