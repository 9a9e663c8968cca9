"""Reads a config for auditing: the YAML document, where each setting sits, environment values.

The audit looks at the document as written (after `${ENV}` interpolation) rather than only at
the validated model, so it can also judge settings that validation would refuse. Variables that
are not set are replaced by a long placeholder (and remembered), so a config audited without
its secrets at hand still validates and its secret-strength rules skip those values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bastion.config.loader import MAX_CONFIG_BYTES, ConfigErrors, parse_config
from bastion.config.models import GatewayConfig
from bastion.errors import ConfigError

_ENV = re.compile(r"\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
PLACEHOLDER = "unset-environment-variable-" + "x" * 37
"""Stands for a variable that is not set: long enough for every length rule."""

Location = tuple[int | str, ...]


@dataclass
class AuditSource:
    """A config document ready for the rules.

    Attributes:
        document: The interpolated document (a mapping when the YAML was one).
        config: The validated model, or None when validation failed.
        errors: Validation error lines (without the offending values).
        lines: 1-based line of each setting, by location.
        unresolved: Locations whose value came from a variable that is not set.
        base_dir: Folder relative paths are resolved against.
        path: The file audited, if any.
    """

    document: dict[str, Any]
    config: GatewayConfig | None
    errors: list[str]
    lines: dict[Location, int] = field(default_factory=dict)
    unresolved: set[Location] = field(default_factory=set)
    base_dir: Path | None = None
    path: Path | None = None


def _line_index(node: yaml.Node, where: Location, out: dict[Location, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                here = (*where, key_node.value)
                out[here] = key_node.start_mark.line + 1
                _line_index(value_node, here, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            here = (*where, index)
            out[here] = item.start_mark.line + 1
            _line_index(item, here, out)


def _expand(value: Any, env: Mapping[str, str], where: Location, unresolved: set[Location]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            escaped, name, default = match.group(1), match.group(2), match.group(3)
            if escaped:
                return match.group(0)[1:]
            if name in env:
                return env[name]
            if default is not None:
                return default
            unresolved.add(where)
            return PLACEHOLDER

        return _ENV.sub(substitute, value)
    if isinstance(value, list):
        return [_expand(item, env, (*where, i), unresolved) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _expand(item, env, (*where, key), unresolved) for key, item in value.items()}
    return value


def _unset_names(value: Any, env: Mapping[str, str], names: set[str]) -> None:
    if isinstance(value, str):
        for match in _ENV.finditer(value):
            if not match.group(1) and match.group(2) not in env and match.group(3) is None:
                names.add(match.group(2))
    elif isinstance(value, list):
        for item in value:
            _unset_names(item, env, names)
    elif isinstance(value, dict):
        for item in value.values():
            _unset_names(item, env, names)


def _without_values(line: str) -> str:
    # The loader already hides secret-looking values; the audit shows none at all.
    return line.split(" (got ", 1)[0]


def source_from_text(
    text: str,
    *,
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> AuditSource:
    """Parse and validate a YAML config text for auditing.

    Raises:
        ConfigError: the text is not YAML or not a mapping (nothing to audit).
    """
    environment = os.environ if env is None else env
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "unknown position"
        raise ConfigError("", f"not valid YAML ({where})") from None
    if not isinstance(data, dict):
        raise ConfigError("", "the config must be a mapping of settings")
    lines: dict[Location, int] = {}
    if node is not None:
        _line_index(node, (), lines)
    unresolved: set[Location] = set()
    document = _expand(data, environment, (), unresolved)
    names: set[str] = set()
    _unset_names(data, environment, names)
    filled = {**environment, **dict.fromkeys(names, PLACEHOLDER)}
    config: GatewayConfig | None = None
    errors: list[str] = []
    try:
        config = parse_config(data, base_dir=base_dir, env=filled)
    except ConfigErrors as exc:
        errors = [_without_values(line) for line in exc.lines]
    return AuditSource(
        document=document,
        config=config,
        errors=errors,
        lines=lines,
        unresolved=unresolved,
        base_dir=base_dir,
        path=path,
    )


def load_source(path: Path, *, env: Mapping[str, str] | None = None) -> AuditSource:
    """Read a config file for auditing; relative paths in it resolve against its folder.

    Raises:
        ConfigError: the file cannot be read, is too large, or is not a YAML mapping.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError("", f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError("", f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("", f"{path}: not UTF-8 text") from None
    return source_from_text(text, base_dir=path.parent.resolve(), env=env, path=path)
