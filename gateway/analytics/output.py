"""Views' rows into DuckDB tables, in batches, and the tables out to Parquet
and CSV.

Rows are not inserted one by one: DuckDB's ``executemany`` took 85 s for
200,000 rows of six columns here, a multi-row ``VALUES`` 16 s, and writing
each batch as NDJSON to a scratch file that DuckDB reads with
``read_json`` (columns typed as the view declares) 0.4 s. So each view's
rows go to a scratch file, ``batch_size`` at a time, and the database is a
file with a memory limit: neither grows with the export.

The column types are the view's (``views.SQL_TYPES``, or a column's
``ansi/type`` tag), so the Parquet files carry them; CSV has only text.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import orjson

from gateway.analytics import export
from gateway.analytics.views import View

VIEW_SCHEMA = "views"
BATCH_SIZE = 50_000
# Dates with no offset, and the days of a stay, are London's.
TIME_ZONE = "Europe/London"
MEMORY_LIMIT = "256MB"


def quoted(name: str) -> str:
    """An SQL identifier; view and column names are checked to be plain
    words (``views._NAME``), and quoting keeps reserved words usable."""
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def database(path: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB database in a file: ``path``, or a scratch file removed
    afterwards. A file, so that tables larger than memory spill to disk."""
    with tempfile.TemporaryDirectory(prefix="gateway-analytics-") as scratch:
        target = path if path is not None else Path(scratch) / "analytics.duckdb"
        connection = duckdb.connect(str(target))
        try:
            connection.execute(f"SET TimeZone = '{TIME_ZONE}'")
            connection.execute(f"SET temp_directory = '{_literal(scratch)}'")
            # DuckDB's buffer pool may otherwise take most of the machine's
            # memory; past this it writes to the database file and the
            # scratch folder.
            connection.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            yield connection
        finally:
            connection.close()


def _literal(text: str) -> str:
    return text.replace("'", "''")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


@dataclass
class _Table:
    view: View
    name: str
    scratch: Path
    columns_sql: str
    file: BinaryIO | None = None
    pending: int = 0
    count: int = 0


class ViewLoader:
    """Rows of several views, each into its own table (``views.<name>``).

    A view's rows go to its scratch file as they come, and into its table
    ``batch_size`` at a time; nothing is held in memory between (orjson's
    output over-allocates: 50,000 rows kept as bytes took 200 MB)."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        views: Sequence[View],
        scratch: Path,
        *,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.connection = connection
        self.batch_size = batch_size
        self.by_type: dict[str, list[_Table]] = {}
        self.tables: list[_Table] = []
        names = [view.name for view in views]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"two views are named {duplicated[0]!r}")
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {VIEW_SCHEMA}")
        for view in views:
            columns = ", ".join(f"{quoted(c.name)} {c.sql_type}" for c in view.columns)
            table_name = f"{VIEW_SCHEMA}.{quoted(view.name)}"
            connection.execute(f"CREATE OR REPLACE TABLE {table_name} ({columns})")
            typed = ", ".join(f"{quoted(c.name)}: '{c.sql_type}'" for c in view.columns)
            table = _Table(view, view.name, scratch / f"{view.name}.ndjson", "{" + typed + "}")
            self.tables.append(table)
            self.by_type.setdefault(view.resource, []).append(table)

    @property
    def resource_types(self) -> frozenset[str]:
        return frozenset(self.by_type)

    def add(self, resource: Mapping[str, Any]) -> None:
        """The rows of one resource, for every view of its type."""
        for table in self.by_type.get(resource["resourceType"], ()):
            names = table.view.column_names
            rows = table.view.rows(resource)
            if not rows:
                continue
            if table.file is None:
                table.file = table.scratch.open("wb")
            for row in rows:
                table.file.write(
                    orjson.dumps(
                        dict(zip(names, row, strict=True)),
                        default=_json_default,
                        option=orjson.OPT_APPEND_NEWLINE,
                    )
                )
            table.pending += len(rows)
            if table.pending >= self.batch_size:
                self._flush(table)

    def finish(self) -> dict[str, int]:
        """Every pending row written; the rows each view gave."""
        for table in self.tables:
            self._flush(table)
        return {table.name: table.count for table in self.tables}

    def close(self) -> None:
        """The scratch files closed (after ``finish``, or on failure)."""
        for table in self.tables:
            if table.file is not None:
                table.file.close()
                table.file = None

    def _flush(self, table: _Table) -> None:
        if table.file is None:
            return
        table.file.close()
        table.file = None
        if table.pending:
            self.connection.execute(
                f"INSERT INTO {VIEW_SCHEMA}.{quoted(table.name)} "
                f"SELECT * FROM read_json('{_literal(str(table.scratch))}', "
                f"format = 'newline_delimited', columns = {table.columns_sql})"
            )
        table.count += table.pending
        table.pending = 0
        table.scratch.unlink()


def load_views(
    connection: duckdb.DuckDBPyConnection,
    folder: Path,
    views: Sequence[View],
    *,
    batch_size: int = BATCH_SIZE,
) -> dict[str, int]:
    """One pass over the export's resources into a table per view
    (``views.<name>``); the rows each gave."""
    with tempfile.TemporaryDirectory(prefix="gateway-analytics-rows-") as scratch:
        loader = ViewLoader(connection, views, Path(scratch), batch_size=batch_size)
        try:
            for resource in export.resources(folder, loader.resource_types):
                loader.add(resource)
            return loader.finish()
        finally:
            loader.close()


def write_tables(
    connection: duckdb.DuckDBPyConnection, tables: Iterable[str], out: Path
) -> dict[str, int]:
    """Each table (``schema.name`` or a name in the main schema) as
    ``<name>.parquet`` and ``<name>.csv`` in ``out``; the rows of each."""
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for table in tables:
        schema, _, name = table.rpartition(".")
        source = f"{quoted(schema)}.{quoted(name)}" if schema else quoted(name)
        for suffix, options in (("parquet", "FORMAT parquet"), ("csv", "FORMAT csv, HEADER")):
            target = _literal(str(out / f"{name}.{suffix}"))
            connection.execute(f"COPY (SELECT * FROM {source}) TO '{target}' ({options})")
        row = connection.execute(f"SELECT count(*) FROM {source}").fetchone()
        counts[name] = int(row[0]) if row else 0
    return counts
