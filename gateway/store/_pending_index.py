"""The search index rows a unit of work has yet to write.

Each version appended replaces its resource's index rows: written row by
row, a created Patient cost 44 single-row statements and a 100-entry
transaction 3,500, each a round trip and an executor start in PostgreSQL.
Gathered instead until the unit of work next reads (or commits), they are
written by one statement with a data-modifying CTE per table, each
inserting whole columns at once from arrays (``unnest``): one round trip
for a create, two for an update (its old rows are deleted by a statement of
their own first, since the sub-statements of one ``WITH`` run in no set
order and the new rows must not meet the old in a unique index).

Statements are keyed by which tables they touch, so there are few shapes,
and psycopg prepares each once it is run often on a connection.

SQLite's unit of work gathers them by table (``PendingTables``), and
writes a table's one ``executemany`` when a statement names that table or
it commits; it keeps a copy at each savepoint (``copy``) to go back to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from gateway.store._sql import INDEX_LAYOUT, INDEX_TABLES, rows_by_kind
from gateway.store.base import Index

# Each index table's value columns' PostgreSQL types, for the arrays' casts.
_NUMERIC = frozenset(
    {("search_quantity", "value"), ("search_number", "value"), ("search_composite", "b_value")}
)
_KINDS = tuple(INDEX_LAYOUT)


def _array_type(table: str, column: str) -> str:
    return "numeric[]" if (table, column) in _NUMERIC else "text[]"


@lru_cache(maxsize=1)
def _delete_statement() -> str:
    """Every index row of the resources named by two arrays (types, ids)."""
    parts = [
        f"d{n} AS (DELETE FROM {table} t USING gone "
        "WHERE t.res_type = gone.res_type AND t.res_id = gone.res_id)"
        for n, (table, _) in enumerate(INDEX_LAYOUT.values())
    ]
    return (
        "WITH gone AS (SELECT * FROM unnest($1::text[], $2::text[]) AS k(res_type, res_id)), "
        + ", ".join(parts)
        + " SELECT 1"
    )


@lru_cache(maxsize=512)
def _insert_statement(kinds: tuple[type, ...]) -> str:
    """Rows of each table of ``kinds``, a parameter (an array) per column."""
    parts = []
    number = 0
    for n, kind in enumerate(kinds):
        table, values = INDEX_LAYOUT[kind]
        columns = ("res_type", "res_id", "param", *values)
        arrays = []
        for column in columns:
            number += 1
            arrays.append(f"${number}::{_array_type(table, column)}")
        parts.append(
            f"i{n} AS (INSERT INTO {table} ({', '.join(columns)}) "
            f"SELECT * FROM unnest({', '.join(arrays)}))"
        )
    return "WITH " + ", ".join(parts) + " SELECT 1"


class PendingIndex:
    """Index rows gathered from appended versions, written by ``flush``."""

    def __init__(self) -> None:
        # The rows each resource is to have, by (type, id): the last version
        # appended in the unit of work decides.
        self._rows: dict[tuple[str, str], Index] = {}
        # Resources whose rows from earlier commits are to be deleted.
        self._stale: dict[tuple[str, str], None] = {}

    def __bool__(self) -> bool:
        return bool(self._rows or self._stale)

    def replace(self, res_type: str, res_id: str, index: Index, *, had_rows: bool) -> None:
        """The resource's rows are to be ``index`` (none for a deletion).
        ``had_rows``: it may have rows committed before (not a first version)."""
        key = (res_type, res_id)
        if had_rows:
            self._stale[key] = None
        if index:
            self._rows[key] = index
        else:
            self._rows.pop(key, None)

    def take(self) -> tuple[list[tuple[str, str]], dict[tuple[str, str], Index]]:
        """What is gathered, leaving nothing: the resources whose rows are
        to be deleted first, and the rows each resource is to have."""
        stale, rows = self._stale, self._rows
        self._stale, self._rows = {}, {}
        return list(stale), rows

    def flush(self, run: Callable[[str, Sequence[object]], None]) -> None:
        """Write what is gathered: ``run`` executes a statement (``$n``
        placeholders) in the unit of work's transaction."""
        if not self:
            return
        stale, rows = self.take()
        if stale:
            types, ids = zip(*stale, strict=True)
            run(_delete_statement(), [list(types), list(ids)])
        columns_by_kind = _columns(rows)
        if columns_by_kind:
            kinds = tuple(kind for kind in _KINDS if kind in columns_by_kind)
            run(_insert_statement(kinds), [c for kind in kinds for c in columns_by_kind[kind]])


def _columns(rows: dict[tuple[str, str], Index]) -> dict[type, list[list[Any]]]:
    """The rows as columns (lists), by the kind of value (its table)."""
    by_kind: dict[type, list[list[Any]]] = {}
    for (res_type, res_id), index in rows.items():
        for kind, table in rows_by_kind(index):
            columns = by_kind.get(kind)
            if columns is None:
                width = 3 + len(INDEX_LAYOUT[kind][1])
                columns = by_kind[kind] = [[] for _ in range(width)]
            for row in table:
                for column, cell in zip(columns, (res_type, res_id, *row), strict=True):
                    column.append(cell)
    return by_kind


Key = tuple[str, str]
Rows = Sequence[tuple[Any, ...]]
_KIND_NUMBER = {kind: n for n, kind in enumerate(_KINDS)}


class PendingTables:
    """Index rows gathered from appended versions, kept by table (their
    number in ``INDEX_TABLES``), so that a statement reading some index
    tables has only theirs written first (``take``). A loader's search for
    probable matches reads two of the nine: written whole before each, a
    batch's rows went out a few records at a time, and an update of a
    resource the batch had written deleted the rows it had just inserted;
    kept by table, the other seven tables' rows wait for the commit, where
    the last version of each resource decides."""

    def __init__(self) -> None:
        # By table: the rows each resource is to have there, by (type, id).
        self._rows: list[dict[Key, Rows]] = [{} for _ in INDEX_TABLES]
        # By table: resources whose rows there from before are to be deleted.
        self._stale: list[dict[Key, None]] = [{} for _ in INDEX_TABLES]

    def __bool__(self) -> bool:
        return any(self._rows) or any(self._stale)

    def replace(self, res_type: str, res_id: str, index: Index, *, had_rows: bool) -> None:
        """The resource's rows are to be ``index`` (none for a deletion).
        ``had_rows``: it may have rows written before (not a first version),
        in an earlier commit or by a ``take`` of this one."""
        key = (res_type, res_id)
        new = {_KIND_NUMBER[kind]: rows for kind, rows in rows_by_kind(index)}
        for table, rows in enumerate(self._rows):
            if table in new:
                rows[key] = new[table]
            else:
                rows.pop(key, None)
            if had_rows:
                self._stale[table][key] = None

    def copy(self) -> PendingTables:
        """What is gathered so far, apart: to go back to (at a savepoint)."""
        copied = PendingTables()
        copied._rows = [dict(rows) for rows in self._rows]
        copied._stale = [dict(stale) for stale in self._stale]
        return copied

    def take(
        self, tables: Iterable[int] = range(len(INDEX_TABLES))
    ) -> tuple[dict[int, list[Key]], dict[int, dict[Key, Rows]]]:
        """What is gathered for ``tables`` (all by default), leaving nothing
        of theirs: by table, the resources whose rows there are to be
        deleted first, and the rows each resource is to have there."""
        stale: dict[int, list[Key]] = {}
        rows: dict[int, dict[Key, Rows]] = {}
        for table in tables:
            if self._stale[table]:
                stale[table] = list(self._stale[table])
                self._stale[table] = {}
            if self._rows[table]:
                rows[table], self._rows[table] = self._rows[table], {}
        return stale, rows
