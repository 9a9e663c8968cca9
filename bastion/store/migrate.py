"""Numbered schema migrations (`migrations/NNNN_name.sql`), shared by SQLite and PostgreSQL.

Each file runs once, in order, inside one transaction together with its row in
`bastion_schema_migrations`. The files use portable SQL; the only dialect difference, an
auto-incrementing integer primary key, is written `@AUTO_ID@` and filled in here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Final, Literal

Dialect = Literal["sqlite", "postgresql"]

MIGRATIONS_TABLE: Final = "bastion_schema_migrations"
CREATE_MIGRATIONS_TABLE: Final = (
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)
_AUTO_ID: Final = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}
_FILE_NAME: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration: its version, name and statements for a dialect."""

    version: int
    name: str
    statements: tuple[str, ...]


def _split(script: str) -> tuple[str, ...]:
    """Statements of a script: `--` comment lines dropped, split at `;` ending a line."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";[ \t]*(?:\n|$)", "\n".join(lines))
    return tuple(part.strip() for part in parts if part.strip())


def load_migrations(dialect: Dialect) -> list[Migration]:
    """Every shipped migration, in version order, rendered for `dialect`."""
    found: list[Migration] = []
    folder = resources.files("bastion.store") / "migrations"
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        script = entry.read_text(encoding="utf-8").replace("@AUTO_ID@", _AUTO_ID[dialect])
        found.append(Migration(int(match.group(1)), match.group(2), _split(script)))
    found.sort(key=lambda migration: migration.version)
    return found
