"""File paths in the config file: relative ones are resolved against the config file's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Resolve relative paths against the config file's folder (passed as validation context)."""
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return Path(base) / value
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A path setting; a leaf module so policy configs can use it without an import cycle."""
