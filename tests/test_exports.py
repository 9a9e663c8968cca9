"""Pins the public names of the `bastion` package: a change here is a change of public API."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import bastion

EXPORTS = ["__version__"]


def test_all_is_pinned():
    assert sorted(bastion.__all__) == sorted(EXPORTS)
    assert len(set(bastion.__all__)) == len(bastion.__all__)


def test_every_exported_name_exists():
    missing = [name for name in bastion.__all__ if not hasattr(bastion, name)]
    assert missing == []


def test_version_is_the_installed_distributions():
    assert re.fullmatch(r"\d+\.\d+\.\d+([a-z]+\d+)?", bastion.__version__)
    assert bastion.__version__ == importlib.metadata.version("bastion-gateway")


def test_package_ships_type_information():
    assert (Path(bastion.__file__).parent / "py.typed").is_file()
