"""SQL shared by the SQLite and PostgreSQL stores.

Both databases accept the same statements here; only the parameter placeholder
differs (``?`` for sqlite3, ``%s`` for psycopg), so statements are written with
``?`` and each backend compiles them once through its ``Dialect``. Nothing in
this module imports a driver: backends hand in their cursors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.store.base import (
    HistoryPage,
    HistoryQuery,
    Index,
    IndexEntry,
    IndexRows,
    StoredVersion,
)
from gateway.store.values import (
    CompositeValue,
    DateRange,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    SearchValue,
    SortValue,
    StringValue,
    TokenValue,
    UriValue,
    normalise_text,
)


class Cursor(Protocol):
    """The DB-API cursor subset both drivers provide."""

    def execute(self, sql: Any, params: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: Any, params: Sequence[Sequence[Any]], /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


@dataclass(frozen=True)
class Dialect:
    placeholder: str

    def sql(self, statement: str) -> str:
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)


def analyze_due(written: int) -> bool:
    """Whether planner statistics should be refreshed once this many versions
    have been written in a process: often while a new database grows fastest
    (stale statistics there cost seconds per search), then every 1,024."""
    return written in (16, 64, 256, 512) or written % 1024 == 0


def grown_fourfold(written: int) -> bool:
    """Whether this many versions written is a fourfold growth since the last
    refresh (16, 64, 256, ...): for PostgreSQL, whose autovacuum refreshes a
    table's statistics once a tenth of it has changed, but only after a minute,
    so a new database is planned for empty tables while it fills. Past that,
    a refresh every 1,024 versions cost a steady write load a fifth of the
    database's CPU, for statistics autovacuum keeps anyway."""
    return written >= 16 and written & (written - 1) == 0 and (written.bit_length() - 1) % 2 == 0


_VERSION_COLUMNS = "v.seq, v.res_type, v.res_id, v.version, v.last_updated, v.method, v.content"
# Resources a ``read_many`` or ``vread_many`` statement names at most: their
# placeholders stay far below either database's limit (SQLite's was 999
# before 3.32).
_MANY_PER_STATEMENT = 300
# Live versions a rebuild reads at once (``Statements.iter_current``).
_ITER_PAGE = 500


def to_version(row: Sequence[Any], current: bool = False) -> StoredVersion:
    """A ``_VERSION_COLUMNS`` row; ``current`` when the statement read the
    resource's latest version (from ``resource_current``)."""
    content = row[6]
    return StoredVersion(
        seq=int(row[0]),
        res_type=row[1],
        res_id=row[2],
        version=int(row[3]),
        last_updated=row[4],
        method=row[5],
        content=bytes(content) if content is not None else None,
        current=current,
    )


INDEX_LAYOUT: dict[type, tuple[str, tuple[str, ...]]] = {
    TokenValue: ("search_token", ("system", "code", "text")),
    StringValue: ("search_string", ("value", "exact")),
    DateRange: ("search_date", ("low", "high")),
    ReferenceValue: (
        "search_reference",
        ("target_type", "target_id", "url", "id_system", "id_value"),
    ),
    QuantityValue: ("search_quantity", ("value", "system", "code", "unit")),
    NumberValue: ("search_number", ("value",)),
    UriValue: ("search_uri", ("value",)),
    CompositeValue: (
        "search_composite",
        ("a_system", "a_code", "b_system", "b_code", "b_value", "b_low", "b_high", "b_string"),
    ),
    SortValue: ("search_sort", ("asc_key", "desc_key", "person")),
}
INDEX_TABLES = tuple(table for table, _ in INDEX_LAYOUT.values())


def index_columns(value: SearchValue) -> tuple[Any, ...]:
    """A value as its table's columns (text folded where search is folded)."""
    if isinstance(value, TokenValue):
        text = normalise_text(value.text) if value.text else None
        return (value.system, value.code, text)
    if isinstance(value, StringValue):
        return (normalise_text(value.value), value.value)
    if isinstance(value, DateRange):
        return (value.low, value.high)
    if isinstance(value, ReferenceValue):
        identifier = value.identifier
        return (
            value.target_type,
            value.target_id,
            value.url,
            identifier.system if identifier else None,
            identifier.code if identifier else None,
        )
    if isinstance(value, QuantityValue):
        return (float(value.value), value.system, value.code, value.unit)
    if isinstance(value, NumberValue):
        return (float(value.value),)
    if isinstance(value, CompositeValue):
        return _composite_columns(value)
    if isinstance(value, SortValue):
        return (value.first, value.last, value.person)
    return (value.value,)


def _composite_columns(value: CompositeValue) -> tuple[Any, ...]:
    first, second = value.first, value.second
    if isinstance(first, TokenValue):
        a = (first.system, first.code)
    else:
        a = (first.target_type, first.target_id)
    b_system = b_code = b_value = b_low = b_high = b_string = None
    if isinstance(second, TokenValue):
        b_system, b_code = second.system, second.code
    elif isinstance(second, QuantityValue):
        b_system, b_code, b_value = second.system, second.code, float(second.value)
    elif isinstance(second, DateRange):
        b_low, b_high = second.low, second.high
    else:
        b_string = normalise_text(second.value)
    return (*a, b_system, b_code, b_value, b_low, b_high, b_string)


_KINDS = tuple(INDEX_LAYOUT)
_KIND_NUMBER = {kind: n for n, kind in enumerate(_KINDS)}


def _grouped(index: Sequence[IndexEntry]) -> dict[type, list[tuple[Any, ...]]]:
    """``index``'s rows (each its parameter and value columns) by kind of
    value, kinds in the order their first entry came."""
    grouped: dict[type, list[tuple[Any, ...]]] = {}
    for entry in index:
        value = entry.value
        grouped.setdefault(type(value), []).append((entry.param, *index_columns(value)))
    return grouped


def index_rows(index: Sequence[IndexEntry], person: str | None) -> IndexRows:
    """``index`` as the rows the store writes for it (``IndexRows``)."""
    return IndexRows(
        tuple((_KIND_NUMBER[kind], tuple(rows)) for kind, rows in _grouped(index).items()),
        person,
    )


def more_rows(rows: IndexRows, index: Sequence[IndexEntry]) -> IndexRows:
    """``rows`` and, after them, those of ``index``: as ``index_rows`` of
    the entries ``rows`` was made of followed by ``index``."""
    if not index:
        return rows
    tables = dict(rows.tables)
    for kind, added in _grouped(index).items():
        number = _KIND_NUMBER[kind]
        tables[number] = (*tables.get(number, ()), *added)
    return IndexRows(tuple(tables.items()), rows.person)


def rows_by_kind(index: Index) -> list[tuple[type, Sequence[tuple[Any, ...]]]]:
    """``index``'s rows by kind of value (its table), tables in the order
    their first entry came: each row its parameter and value columns."""
    if isinstance(index, IndexRows):
        return [(_KINDS[kind], table) for kind, table in index.tables]
    return list(_grouped(index).items())


# Runs one read-only statement: (SQL, parameters) -> rows.
Fetch = Callable[[str, list[Any]], Sequence[Sequence[Any]]]


def _chunks(keys: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(keys), _MANY_PER_STATEMENT):
        yield keys[start : start + _MANY_PER_STATEMENT]


class Statements:
    """Compiled statements and the small procedures built from them."""

    def __init__(self, dialect: Dialect) -> None:
        s = dialect.sql
        self._dialect = dialect
        self.read = s(
            f"SELECT {_VERSION_COLUMNS} FROM resource_current c "
            "JOIN resource_version v ON v.seq = c.seq WHERE c.res_type = ? AND c.res_id = ?"
        )
        self.vread = s(
            f"SELECT {_VERSION_COLUMNS} FROM resource_version v "
            "WHERE v.res_type = ? AND v.res_id = ? AND v.version = ?"
        )
        self.current = s(
            "SELECT version, deleted FROM resource_current WHERE res_type = ? AND res_id = ?"
        )
        self.insert_version = s(
            "INSERT INTO resource_version (res_type, res_id, version, last_updated, method, "
            "content) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq"
        )
        self.upsert_current = s(
            "INSERT INTO resource_current (res_type, res_id, version, seq, deleted) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (res_type, res_id) DO UPDATE SET "
            "version = excluded.version, seq = excluded.seq, deleted = excluded.deleted"
        )
        self.delete_index = [
            s(f"DELETE FROM {table} WHERE res_type = ? AND res_id = ?") for table in INDEX_TABLES
        ]
        self.insert_index = {
            kind: s(
                f"INSERT INTO {table} (res_type, res_id, param, {', '.join(columns)}) "
                f"VALUES (?, ?, ?, {', '.join('?' for _ in columns)})"
            )
            for kind, (table, columns) in INDEX_LAYOUT.items()
        }
        self.iter_current_page = s(
            f"SELECT {_VERSION_COLUMNS} FROM resource_current c "
            "JOIN resource_version v ON v.seq = c.seq "
            "WHERE c.res_type = ? AND c.deleted = ? AND c.res_id > ? ORDER BY c.res_id LIMIT ?"
        )

    # -- schema ----------------------------------------------------------------

    def apply_migrations(self, cur: Cursor, dialect: str) -> list[int]:
        """Apply the migrations not yet recorded, inside the caller's
        transaction (which holds the lock that keeps two processes from
        migrating at once). ``dialect`` picks each migration's statements."""
        # Imported here, not with this module: the list imports each
        # subsystem's schema module, and with it that subsystem's package,
        # which may import the store.
        from gateway.store._schema import MIGRATIONS, SCHEMA_MIGRATION_TABLE

        cur.execute(SCHEMA_MIGRATION_TABLE)
        cur.execute("SELECT version FROM schema_migration")
        done = {row[0] for row in cur.fetchall()}
        applied: list[int] = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            for statement in getattr(migration, dialect):
                cur.execute(statement)
            cur.execute(
                self._dialect.sql(
                    "INSERT INTO schema_migration (version, name, applied_at) VALUES (?, ?, ?)"
                ),
                (migration.version, migration.name, datetime.now(UTC).isoformat()),
            )
            applied.append(migration.version)
        return applied

    # -- reads -----------------------------------------------------------------

    def fetch_version(
        self, cur: Cursor, sql: str, params: Sequence[Any], current: bool = False
    ) -> StoredVersion | None:
        cur.execute(sql, params)
        row = cur.fetchone()
        return to_version(row, current) if row is not None else None

    def read_many(
        self, fetch: Fetch, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredVersion]:
        """The latest version of each (type, id) that exists, by key, with
        ``fetch`` running each statement: one per ``_MANY_PER_STATEMENT``
        keys, a primary key lookup per id (``(res_type = ? AND res_id IN
        (...)) OR ...``)."""
        found: dict[tuple[str, str], StoredVersion] = {}
        for chunk in _chunks(sorted(set(keys))):
            for row in fetch(*self.read_many_statement(chunk)):
                version = to_version(row, current=True)
                found[(version.res_type, version.res_id)] = version
        return found

    def read_many_statement(self, keys: Sequence[tuple[str, str]]) -> tuple[str, list[Any]]:
        """The statement reading the latest version of each of ``keys`` (at
        most ``_MANY_PER_STATEMENT``), and its parameters."""
        by_type: dict[str, list[str]] = {}
        for res_type, res_id in keys:
            by_type.setdefault(res_type, []).append(res_id)
        terms, params = [], []
        for res_type, ids in by_type.items():
            terms.append(f"(c.res_type = ? AND c.res_id IN ({', '.join('?' for _ in ids)}))")
            params.extend([res_type, *ids])
        sql = (
            f"SELECT {_VERSION_COLUMNS} FROM resource_current c "
            f"JOIN resource_version v ON v.seq = c.seq WHERE {' OR '.join(terms)}"
        )
        return self._dialect.sql(sql), params

    def vread_many(
        self, fetch: Fetch, keys: Iterable[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], StoredVersion]:
        """Each (type, id, version) that exists, by key: as ``read_many``,
        a unique key lookup per version."""
        found: dict[tuple[str, str, int], StoredVersion] = {}
        for chunk in _chunks(sorted(set(keys))):
            by_resource: dict[tuple[str, str], list[int]] = {}
            for res_type, res_id, number in chunk:
                by_resource.setdefault((res_type, res_id), []).append(number)
            terms, params = [], []
            for (res_type, res_id), numbers in by_resource.items():
                terms.append(
                    "(v.res_type = ? AND v.res_id = ? AND "
                    f"v.version IN ({', '.join('?' for _ in numbers)}))"
                )
                params.extend([res_type, res_id, *numbers])
            sql = f"SELECT {_VERSION_COLUMNS} FROM resource_version v WHERE {' OR '.join(terms)}"
            for row in fetch(self._dialect.sql(sql), params):
                version = to_version(row)
                found[(version.res_type, version.res_id, version.version)] = version
        return found

    def iter_current(self, fetch: Fetch, res_type: str) -> Iterator[StoredVersion]:
        """Every live version of ``res_type``, by id, read a page at a time
        with ``fetch`` (each page on a connection checked out for it alone):
        a rebuild that writes between pages holds no connection and no
        more than a page in memory, however large the type."""
        after = ""
        while True:
            rows = fetch(self.iter_current_page, [res_type, False, after, _ITER_PAGE])
            for row in rows:
                yield to_version(row, current=True)
            if len(rows) < _ITER_PAGE:
                return
            after = str(rows[-1][2])

    def iter_versions(
        self, cur: Cursor, sql: str, params: Sequence[Any], current: bool = False
    ) -> Iterator[StoredVersion]:
        cur.execute(sql, params)
        for row in cur.fetchall():
            yield to_version(row, current)

    def history(self, cur: Cursor, query: HistoryQuery) -> HistoryPage:
        where: list[str] = []
        params: list[Any] = []
        if query.res_type is not None:
            where.append("v.res_type = ?")
            params.append(query.res_type)
        if query.res_id is not None:
            where.append("v.res_id = ?")
            params.append(query.res_id)
        if query.since is not None:
            where.append("v.last_updated >= ?")
            params.append(query.since)
        filters = list(where)
        filter_params = list(params)
        newest_first = query.after_seq is None
        if query.before_seq is not None:
            where.append("v.seq < ?")
            params.append(query.before_seq)
        if query.after_seq is not None:
            where.append("v.seq > ?")
            params.append(query.after_seq)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT {_VERSION_COLUMNS} FROM resource_version v {clause} "
            f"ORDER BY v.seq {order} LIMIT {int(query.count) + 1}"
        )
        rows = list(self.iter_versions(cur, self._dialect.sql(sql), params))
        more = len(rows) > query.count
        rows = rows[: query.count]
        if not newest_first:
            rows.reverse()
        total = None
        if query.res_id is not None:
            count_clause = f"WHERE {' AND '.join(filters)}" if filters else ""
            cur.execute(
                self._dialect.sql(f"SELECT COUNT(*) FROM resource_version v {count_clause}"),
                filter_params,
            )
            total = int(cur.fetchone()[0])
        if newest_first:
            has_older, has_newer = more, query.before_seq is not None
        else:
            has_older, has_newer = True, more
        return HistoryPage(entries=rows, total=total, has_older=has_older, has_newer=has_newer)

    # -- writes ----------------------------------------------------------------

    def index_version(self, cur: Cursor, name: str = "search") -> str | None:
        cur.execute(self._dialect.sql("SELECT version FROM index_state WHERE name = ?"), (name,))
        row = cur.fetchone()
        return str(row[0]) if row else None

    def set_index_version(self, cur: Cursor, version: str, name: str = "search") -> None:
        cur.execute(
            self._dialect.sql(
                "INSERT INTO index_state (name, version) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET version = excluded.version"
            ),
            (name, version),
        )

    def replace_index(self, cur: Cursor, res_type: str, res_id: str, index: Index) -> None:
        self.delete_index_rows(cur, res_type, res_id)
        if index:
            self.insert_index_rows(cur, res_type, res_id, index)

    def delete_index_rows(self, cur: Cursor, res_type: str, res_id: str) -> None:
        for statement in self.delete_index:
            cur.execute(statement, (res_type, res_id))

    def insert_index_rows(self, cur: Cursor, res_type: str, res_id: str, index: Index) -> None:
        for kind, rows in rows_by_kind(index):
            cur.executemany(self.insert_index[kind], [(res_type, res_id, *row) for row in rows])

    def write_tables(
        self,
        cur: Cursor,
        stale: dict[int, list[tuple[str, str]]],
        rows: dict[int, dict[tuple[str, str], Sequence[tuple[Any, ...]]]],
    ) -> None:
        """Index rows gathered (``PendingTables.take``), by table (its
        number in ``INDEX_TABLES``): in each, the rows of the ``stale``
        resources deleted, then each resource's ``rows`` written, one
        statement a table (``executemany``), not one a table for each
        resource (measured on SQLite: a third less time a row inserted,
        nearly half less a resource's rows deleted)."""
        for table in sorted(stale.keys() | rows.keys()):
            if table in stale:
                cur.executemany(self.delete_index[table], stale[table])
            if table in rows:
                cur.executemany(
                    self.insert_index[_KINDS[table]],
                    [
                        (key[0], key[1], *row)
                        for key, table_rows in rows[table].items()
                        for row in table_rows
                    ],
                )

    def append(
        self,
        cur: Cursor,
        version: StoredVersion,
        index: Index | None,
        on_duplicate: Callable[[], Exception],
        integrity_error: type[Exception],
    ) -> StoredVersion:
        try:
            cur.execute(
                self.insert_version,
                (
                    version.res_type,
                    version.res_id,
                    version.version,
                    version.last_updated,
                    version.method,
                    version.content,
                ),
            )
        except integrity_error as exc:
            raise on_duplicate() from exc
        seq = int(cur.fetchone()[0])
        cur.execute(
            self.upsert_current,
            (version.res_type, version.res_id, version.version, seq, version.deleted),
        )
        if index is not None:  # None: the caller writes them (``write_tables``)
            if version.version > 1:  # a first version has no index rows to replace
                self.delete_index_rows(cur, version.res_type, version.res_id)
            if index and not version.deleted:
                self.insert_index_rows(cur, version.res_type, version.res_id, index)
        return StoredVersion(
            res_type=version.res_type,
            res_id=version.res_id,
            version=version.version,
            last_updated=version.last_updated,
            method=version.method,
            content=version.content,
            seq=seq,
            current=True,
        )
