"""Each subsystem owns its tables: their DDL is written once, for both
databases, in the ``schema`` module of the package that queries them, and the
store runs every such module's migrations in one order
(``gateway/store/ddl.py``, ``gateway/store/_schema.py``)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from gateway.store import _schema
from gateway.store.ddl import Migration, PerDatabase, migration, ordered, render

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"
SCHEMA_MODULES = sorted(GATEWAY.glob("*/schema.py"))


def test_a_step_is_spelled_for_each_database() -> None:
    """Placeholders take each database's spelling; the rest is as written."""
    step = "CREATE TABLE t (id {serial}, body {bytes} NOT NULL, n {bigint}){without_rowid}"
    assert render(step, "sqlite") == (
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL,"
        " n INTEGER) WITHOUT ROWID"
    )
    assert render(step, "postgres") == (
        "CREATE TABLE t (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " body BYTEA NOT NULL, n BIGINT)"
    )


def test_a_statement_per_database_is_taken_as_written_and_skipped_where_absent() -> None:
    """A PostgreSQL-only statement runs on PostgreSQL alone, braces and all."""
    only = PerDatabase(postgres="SELECT '{bytes}'::text")
    made = migration(version=1, name="one", steps=("SELECT {bool}", only))
    assert made == Migration(
        1, "one", sqlite=("SELECT INTEGER",), postgres=("SELECT BOOLEAN", "SELECT '{bytes}'::text")
    )


def test_an_unknown_placeholder_is_an_error_not_a_statement() -> None:
    with pytest.raises(ValueError, match=re.escape("no spelling of {jsonb}")):
        render("CREATE TABLE t (doc {jsonb})", "postgres")


def test_migrations_are_ordered_by_version_and_none_is_declared_twice() -> None:
    first, second = migration(1, "a", ()), migration(2, "b", ())
    assert ordered((second,), (first,)) == (first, second)
    with pytest.raises(ValueError, match="migration 2 is declared twice: 'b' and 'again'"):
        ordered((first, second), (migration(2, "again", ()),))


def test_every_subsystems_migrations_are_run() -> None:
    """A ``schema`` module's migrations are all in the list the store runs:
    a new module is gathered in gateway/store/_schema.py."""
    assert SCHEMA_MODULES, "no schema modules found"
    for path in SCHEMA_MODULES:
        module = importlib.import_module(f"gateway.{path.parent.name}.schema")
        missing = [m.version for m in module.MIGRATIONS if m not in _schema.MIGRATIONS]
        assert not missing, f"{path.relative_to(GATEWAY.parent)}: {missing} not gathered"


def test_each_table_is_made_beside_the_code_that_queries_it() -> None:
    """A table's DDL is in the ``schema`` module of a package whose other
    modules name the table; no other module of the gateway makes one."""
    for path in SCHEMA_MODULES:
        package = path.parent
        rest = "\n".join(
            other.read_text("utf-8") for other in package.rglob("*.py") if other != path
        )
        for table in re.findall(r"CREATE TABLE (\w+)", path.read_text("utf-8")):
            assert re.search(rf"\b{table}\b", rest), f"{table} is not queried in {package.name}/"
    makers = [
        str(path.relative_to(GATEWAY.parent))
        for path in GATEWAY.rglob("*.py")
        if path not in SCHEMA_MODULES
        and re.search(
            r"CREATE (TABLE|INDEX|TRIGGER|FUNCTION) (?!IF NOT EXISTS schema_migration)",
            path.read_text("utf-8"),
        )
    ]
    assert makers == [], "DDL outside a schema module"
