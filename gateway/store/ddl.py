"""DDL written once for both databases, and the migrations it makes.

Each subsystem declares the migrations of the tables it queries in its own
``schema`` module (``gateway/audit/schema.py``, ``gateway/store/schema.py``
...), as steps written once: a statement with a few placeholders for what
SQLite and PostgreSQL spell differently (``{bytes}`` is ``BLOB`` or
``BYTEA``; ``SPELLINGS`` has them all), or, where the two genuinely differ
(a PostgreSQL-only index, say), a ``PerDatabase`` statement spelled out for
each. ``migration`` renders the steps for both databases at once;
``gateway/store/_schema.py`` gathers every module's migrations into the one
ordered list the stores run (``ordered``: versions are global, and none is
declared twice).

This module imports nothing from the gateway: the ``schema`` modules import
it, and the store imports them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Database = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class Migration:
    """One version of the schema as each database runs it."""

    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


@dataclass(frozen=True)
class PerDatabase:
    """A statement each database spells its own way, taken as written (no
    placeholders); ``None`` where a database has no such statement."""

    sqlite: str | None = None
    postgres: str | None = None


Step = str | PerDatabase

# What each placeholder of a step stands for in each database.
SPELLINGS: dict[Database, dict[str, str]] = {
    "sqlite": {
        # A key the database numbers, in write order.
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        # A 64-bit integer: SQLite's INTEGER is one already (and as a
        # primary key, it is the rowid).
        "bigint": "INTEGER",
        "bool": "INTEGER",
        "bytes": "BLOB",
        # A number as written, for comparing: SQLite keeps a double.
        "number": "REAL",
        # After a table's closing parenthesis: stored in its primary key's
        # order alone. PostgreSQL has no such table.
        "without_rowid": " WITHOUT ROWID",
    },
    "postgres": {
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "bigint": "BIGINT",
        "bool": "BOOLEAN",
        "bytes": "BYTEA",
        "number": "NUMERIC",
        "without_rowid": "",
    },
}

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def render(step: Step, database: Database) -> str | None:
    """``step`` as ``database`` runs it, or ``None`` if it has no such step."""
    if isinstance(step, PerDatabase):
        return step.sqlite if database == "sqlite" else step.postgres
    spellings = SPELLINGS[database]

    def spell(match: re.Match[str]) -> str:
        if match[1] not in spellings:
            raise ValueError(f"no spelling of {{{match[1]}}} (gateway.store.ddl.SPELLINGS)")
        return spellings[match[1]]

    return _PLACEHOLDER.sub(spell, step)


def migration(version: int, name: str, steps: Iterable[Step]) -> Migration:
    """Version ``version`` of the schema, rendered for both databases."""
    written = tuple(steps)

    def rendered(database: Database) -> tuple[str, ...]:
        return tuple(
            statement
            for statement in (render(step, database) for step in written)
            if statement is not None
        )

    return Migration(version, name, sqlite=rendered("sqlite"), postgres=rendered("postgres"))


def ordered(*declared: Iterable[Migration]) -> tuple[Migration, ...]:
    """Every module's migrations as one list in version order; a version
    declared twice is an error, whichever modules declare it."""
    by_version: dict[int, Migration] = {}
    for each in (m for migrations in declared for m in migrations):
        if each.version in by_version:
            raise ValueError(
                f"migration {each.version} is declared twice: "
                f"{by_version[each.version].name!r} and {each.name!r}"
            )
        by_version[each.version] = each
    return tuple(by_version[version] for version in sorted(by_version))
