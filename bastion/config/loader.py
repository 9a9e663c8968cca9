"""Reads a YAML config file: `${ENV}` interpolation, validation, errors with dotted paths."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bastion.config.models import GatewayConfig
from bastion.errors import ConfigError

# libyaml's safe loader when PyYAML was built with it; the pure-Python one otherwise.
_Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)

_ENV = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_WORDS = ("token", "secret", "password", "key", "pepper")
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def dotted(location: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as `services[0].routes[2].policies.cors`."""
    out = ""
    for part in location:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _interpolate(value: Any, env: Mapping[str, str], where: str) -> Any:
    """Replace `${NAME}` / `${NAME:-default}` in every string scalar; `$${` escapes.

    Interpolation happens after YAML parsing, so an environment value can never add structure
    (keys, lists) to the document.
    """
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            escaped, name, default = match.group(1), match.group(2), match.group(3)
            if escaped:
                return match.group(0)[1:]
            if name in env:
                return env[name]
            if default is not None:
                if "${" in default:
                    raise ConfigError(where, "a ${...} default cannot contain another ${...}")
                return default
            raise ConfigError(where, f"environment variable {name} is not set and has no default")

        return _ENV.sub(substitute, value)
    if isinstance(value, list):
        return [_interpolate(item, env, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {
            key: _interpolate(item, env, f"{where}.{key}" if where else str(key))
            for key, item in value.items()
        }
    return value


def _shown_value(location: tuple[int | str, ...], value: Any) -> str:
    if isinstance(value, dict | list):
        return "(a mapping or list)"  # never echo a subtree: it may hold secrets
    if any(isinstance(p, str) and any(w in p.lower() for w in _SECRET_WORDS) for p in location):
        return "(hidden)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _error_lines(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        location = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling)"
        if error["type"] == "located":
            # A cross-field rule that names its own path (see GatewayConfig._unique_names).
            prefix = dotted(location)
            lines.append(f"{prefix}.{message}" if prefix else message)
            continue
        line = f"{dotted(location) or '(top level)'}: {message}"
        if error["type"] not in ("missing", "extra_forbidden") and "input" in error:
            line += f" (got {_shown_value(location, error['input'])})"
        lines.append(line)
    return lines


class ConfigErrors(ConfigError):
    """Several configuration errors at once; `lines` holds one message per setting."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("", "\n".join(lines))
        self.lines = lines


def parse_config(
    data: Any, *, base_dir: Path | None = None, env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Validate an already-parsed document.

    Raises:
        ConfigErrors: with one line per invalid setting, each naming its dotted path.
    """
    if not isinstance(data, dict):
        raise ConfigErrors(["(top level): the config must be a mapping of settings"])
    try:
        expanded = _interpolate(data, os.environ if env is None else env, "")
    except ConfigError as exc:
        raise ConfigErrors([str(exc)]) from None
    try:
        return GatewayConfig.model_validate(expanded, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigErrors(_error_lines(exc)) from None


def load_config(path: Path, *, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, interpolate and validate a YAML config file.

    Raises:
        ConfigErrors: when the file cannot be read or parsed, or a setting is invalid.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigErrors([f"{path}: cannot read ({exc.strerror})"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigErrors([f"{path}: larger than {MAX_CONFIG_BYTES} bytes"])
    try:
        data = yaml.load(raw, Loader=_Loader)  # noqa: S506 - the loader is CSafeLoader/SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigErrors([f"{path}: {where}: {problem}"]) from None
    return parse_config(data, base_dir=path.parent, env=env)
