"""The running config as JSON for the admin API: secrets masked, masked values restored, diffs.

`GET /admin/config` shows every `SecretStr` and the password of any URL as `MASK`. A client
that edits that document and sends it back with `PUT` leaves the masks in place: a value
equal to the mask of the current value at the same path means "keep the current value", so
secrets never have to leave the gateway for a config change.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Mapping
from pathlib import PurePath
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretBytes, SecretStr

MASK: Final = "********"

JSON = None | bool | int | float | str | list["JSON"] | dict[str, "JSON"]


def _plain(value: object) -> JSON:
    """`model_dump(mode="python")` output as JSON values, secrets revealed."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, SecretBytes):
        return value.get_secret_value().decode(errors="replace")
    if isinstance(value, BaseModel):
        return _plain(value.model_dump(mode="python"))
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(item) for item in value), key=repr)
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, PurePath):
        return str(value)
    return str(value)


def _secret_paths(value: object, path: str, found: set[str]) -> None:
    if isinstance(value, SecretStr | SecretBytes):
        found.add(path)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _secret_paths(item, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _secret_paths(item, f"{path}[{index}]", found)


def _mask_url(text: str) -> str:
    if "://" not in text or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password:
        return text
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def _mask(value: JSON, path: str, secrets: set[str]) -> JSON:
    if path in secrets:
        return MASK if value is not None else None
    if isinstance(value, dict):
        return {k: _mask(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    if isinstance(value, str):
        return _mask_url(value)
    return value


class ConfigView:
    """One config's document twice: revealed (for restoring masks) and masked (to show)."""

    def __init__(self, config: BaseModel) -> None:
        dumped = config.model_dump(mode="python")
        self._secrets: set[str] = set()
        _secret_paths(dumped, "", self._secrets)
        self._revealed = _plain(dumped)
        self._masked = _mask(self._revealed, "", self._secrets)

    @property
    def masked(self) -> JSON:
        """The document with secrets masked (a copy: callers may edit it)."""
        return copy.deepcopy(self._masked)

    def restore(self, document: JSON) -> JSON:
        """`document` with every masked value replaced by the current value at its path."""
        return _restore(document, self._revealed, self._masked)


def _restore(value: JSON, revealed: JSON, masked: JSON) -> JSON:
    if isinstance(value, dict):
        old_r = revealed if isinstance(revealed, dict) else {}
        old_m = masked if isinstance(masked, dict) else {}
        return {k: _restore(v, old_r.get(k), old_m.get(k)) for k, v in value.items()}
    if isinstance(value, list):
        old_rl = revealed if isinstance(revealed, list) else []
        old_ml = masked if isinstance(masked, list) else []
        return [
            _restore(
                v, old_rl[i] if i < len(old_rl) else None, old_ml[i] if i < len(old_ml) else None
            )
            for i, v in enumerate(value)
        ]
    if isinstance(value, str) and MASK in value and value == masked and masked != revealed:
        return revealed
    return value


def flatten(value: JSON, path: str = "") -> dict[str, JSON]:
    """Leaf values by dotted path (`services[0].routes[1].paths[0]`)."""
    out: dict[str, JSON] = {}
    if isinstance(value, dict) and value:
        for key, item in value.items():
            out.update(flatten(item, f"{path}.{key}" if path else key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            out.update(flatten(item, f"{path}[{index}]"))
    else:
        out[path] = value
    return out


def diff(before: JSON, after: JSON) -> list[dict[str, JSON]]:
    """Changed leaves by path as `{"path", "before", "after"}`.

    A side is left out when the path does not exist on it (an added or removed setting).
    """
    old, new = flatten(before), flatten(after)
    changes: list[dict[str, JSON]] = []
    for path in sorted(old.keys() | new.keys()):
        if path in old and path in new and old[path] == new[path]:
            continue
        change: dict[str, JSON] = {"path": path}
        if path in old:
            change["before"] = old[path]
        if path in new:
            change["after"] = new[path]
        changes.append(change)
    return changes
