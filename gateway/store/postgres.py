"""The PostgreSQL store (production), psycopg 3 with a connection pool.

Writers lock the resource's ``resource_current`` row (``SELECT ... FOR
UPDATE``) so concurrent updates queue rather than interleave; conditional
writes take a transaction-scoped advisory lock per resource type, so two
conditional creates with the same criteria cannot both create.
https://www.postgresql.org/docs/15/explicit-locking.html
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from psycopg_pool.base import AttemptWithBackoff

from gateway.errors import Conflict, StoreUnavailable
from gateway.store import budget
from gateway.store._coalesce import Coalescer
from gateway.store._pending_index import PendingIndex
from gateway.store._sql import Dialect, Fetch, Statements, grown_fourfold, to_version
from gateway.store.base import (
    AsyncReader,
    CurrentVersion,
    HistoryPage,
    HistoryQuery,
    Index,
    IndexEntry,
    Listening,
    StoredVersion,
)
from gateway.store.listening import Listener

log = logging.getLogger("gateway.store")
_DIALECT = Dialect(placeholder="%s")
_STATEMENTS = Statements(_DIALECT)
_LOCK_CURRENT = (
    "SELECT version, deleted FROM resource_current WHERE res_type = %s AND res_id = %s FOR UPDATE"
)
# A version and its resource's current pointer in one round trip.
_APPEND = (
    "WITH v AS (INSERT INTO resource_version "
    "(res_type, res_id, version, last_updated, method, content) "
    "VALUES (%s, %s, %s, %s, %s, %s) RETURNING res_type, res_id, version, seq) "
    "INSERT INTO resource_current (res_type, res_id, version, seq, deleted) "
    "SELECT res_type, res_id, version, seq, %s FROM v "
    "ON CONFLICT (res_type, res_id) DO UPDATE SET "
    "version = excluded.version, seq = excluded.seq, deleted = excluded.deleted RETURNING seq"
)
# An INSERT of one row of placeholders that may as well insert many at once:
# with no conflict clause, or one that ignores conflicts (an update on
# conflict would meet a row it had itself inserted).
_MULTI_ROW = re.compile(
    r"(INSERT INTO \w+ \([\w, ]+\) VALUES )(\(\?(?:, \?)*\))"
    r"((?: ON CONFLICT(?: \([\w, ]+\))? DO NOTHING)?)",
    re.DOTALL,
)
# Parameters one statement may carry (PostgreSQL's protocol counts them in 16 bits).
_MAX_PARAMETERS = 65_535
_MIGRATION_LOCK_KEY = 0x6761_7465  # any constant shared by every gateway process


# A pool replaces a connection it lost by trying again with a backoff that
# doubles from a second (1, 2, 4, 8 ... s): after a restart of the server
# that left a gateway waiting up to twice the outage before it reconnected.
# Tried every second instead (with psycopg_pool's jitter), for as long as
# its reconnect_timeout; a refused connection costs the server nothing.
AttemptWithBackoff.DELAY_BACKOFF = 1.0


def _duplicate_version() -> Exception:
    return Conflict(
        "Another request wrote this resource at the same time; retry with its new version",
        code="GW-0409",
    )


# Each connection's settings. No JIT compilation: a page read in the sort
# index's order stops at the page, but is costed as the whole scan it might
# read, and PostgreSQL spent 80 ms compiling a statement that ran in 5.
_SETTINGS = "SET jit = off"


def _configure(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute(_SETTINGS)


async def _configure_async(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    await conn.execute(_SETTINGS)


@lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """``sql``'s ``%s`` placeholders as PostgreSQL's own ``$1, $2, ...``,
    for a raw cursor that sends the statement as it is: psycopg would parse
    a statement of more than 50 parameters again on every run (2 ms for a
    search naming 400 resources, several of them in a document)."""
    parts = sql.split("%s")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], 1)) + parts[-1]


def _select(
    conn: psycopg.Connection[tuple[object, ...]],
    sql: str,
    params: Sequence[object],
) -> list[tuple[object, ...]]:
    """Rows of a read-only statement (``%s`` placeholders), never prepared:
    a prepared search gets a generic plan, blind to which of its conditions
    is narrow, and PostgreSQL then drove a patient's Observation search from
    every heart-rate reading (1.4 s instead of 5 ms at 300,000 resources),
    and a consent-probed page from every Patient (0.3 s instead of 6 ms);
    statements of every shape would also churn the prepared statement cache."""
    with psycopg.RawCursor(conn) as cur:
        cur.execute(_numbered(sql), params, prepare=False)
        rows = cur.fetchall()
    budget.charge(len(rows))
    return rows


# The ``statement_timeout`` each pooled connection was last given (ms; a
# connection not here has the server's default, 0: none).
_TIMEOUTS: weakref.WeakKeyDictionary[psycopg.Connection[tuple[object, ...]], int] = (
    weakref.WeakKeyDictionary()
)


def _bound(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Give a connection just taken from the pool the running request's
    time (``gateway.store.budget``) as its ``statement_timeout``, so the
    server itself ends a statement that would run past it; none outside a
    request (the gateway's own work: exports, ANALYZE, deliveries). Set on
    the session, before any transaction, so a unit of work inherits it and
    a rollback cannot undo it. A statement only when the setting is off by
    more than a tenth of the budget: a request that starts while the last
    one's setting still fits sends none, and a long one one every tenth of
    its budget; never shorter than the time left, so a statement the
    server ends has always run past the request's deadline."""
    work = budget.current()
    if work is None or work.budget_ms <= 0:
        wanted = 0
    else:
        work.check()
        wanted = work.remaining_ms()
    have = _TIMEOUTS.get(conn, 0)
    if have == wanted:
        return
    if (
        wanted
        and have
        and work is not None
        and wanted <= have <= wanted + max(50, work.budget_ms // 10)
    ):
        return
    conn.execute(f"SET statement_timeout = {int(wanted)}")
    _TIMEOUTS[conn] = wanted


class _PostgresUnitOfWork:
    """Index rows wait in a ``PendingIndex`` until the unit of work runs SQL
    that may read them (``select``, ``execute``) or commits: reads of
    resources by id do not touch the index, so a transaction's entries are
    locked, read and appended one by one while their index rows gather."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self._conn = conn
        self._cur = conn.cursor()
        self._index = PendingIndex()
        self.appended = 0  # versions and index rebuilds: what the statistics schedule counts

    def current(self, res_type: str, res_id: str) -> CurrentVersion | None:
        self._cur.execute(_LOCK_CURRENT, (res_type, res_id))
        row = self._cur.fetchone()
        return CurrentVersion(version=int(row[0]), deleted=bool(row[1])) if row else None  # type: ignore[call-overload]

    def read(self, res_type: str, res_id: str) -> StoredVersion | None:
        return _STATEMENTS.fetch_version(
            self._cur, _STATEMENTS.read, (res_type, res_id), current=True
        )

    def vread(self, res_type: str, res_id: str, version: int) -> StoredVersion | None:
        return _STATEMENTS.fetch_version(self._cur, _STATEMENTS.vread, (res_type, res_id, version))

    def read_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredVersion]:
        return _STATEMENTS.read_many(self._fetch, keys)

    def vread_many(
        self, keys: Iterable[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], StoredVersion]:
        return _STATEMENTS.vread_many(self._fetch, keys)

    def _fetch(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        return _select(self._conn, sql, params)

    def append(self, version: StoredVersion, index: Index) -> StoredVersion:
        # A unit of work past the request's time ends (and rolls back):
        # statement_timeout bounds each statement, not the transaction.
        budget.check()
        try:
            self._cur.execute(
                _APPEND,
                (
                    version.res_type,
                    version.res_id,
                    version.version,
                    version.last_updated,
                    version.method,
                    version.content,
                    version.deleted,
                ),
            )
        except psycopg.errors.UniqueViolation as exc:
            raise _duplicate_version() from exc
        row = self._cur.fetchone()
        assert row is not None  # RETURNING gives the one row upserted
        seq = int(str(row[0]))
        self.appended += 1
        self._index.replace(
            version.res_type,
            version.res_id,
            () if version.deleted else index,
            had_rows=version.version > 1,  # a first version has no rows to replace
        )
        return dataclasses.replace(version, seq=seq, current=True)

    def select(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        self.flush()
        return _select(self._conn, _DIALECT.sql(sql), params)

    def replace_index(self, res_type: str, res_id: str, index: Sequence[IndexEntry]) -> None:
        self.appended += 1
        self._index.replace(res_type, res_id, index, had_rows=True)

    def set_index_version(self, version: str, name: str = "search") -> None:
        _STATEMENTS.set_index_version(self._cur, version, name)

    def execute(self, sql: str, params: Sequence[object]) -> int:
        self.flush()
        self._cur.execute(_DIALECT.sql(sql), params)
        return self._cur.rowcount

    def execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self.flush()
        if len(rows) == 1:  # executemany would open a pipeline for it
            self._cur.execute(_DIALECT.sql(sql), rows[0])
            return
        insert = _MULTI_ROW.fullmatch(sql)
        if insert is None:
            self._cur.executemany(_DIALECT.sql(sql), rows)
            return
        # One statement of many rows (``VALUES (...), (...)``), not one per
        # row: the audit writer's batch of entries, a loader's element sources.
        head, row, tail = insert.groups()
        width = row.count("?")
        per_statement = _MAX_PARAMETERS // width
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            statement = head + ", ".join([row] * len(chunk)) + tail
            self._run_numbered(
                _numbered(_DIALECT.sql(statement)), [cell for one in chunk for cell in one]
            )

    def lock_type(self, res_type: str) -> None:
        self._cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (res_type,))

    def flush(self) -> None:
        """Write the index rows gathered so far."""
        self._index.flush(self._run_numbered)

    def _run_numbered(self, sql: str, params: Sequence[object]) -> None:
        # A raw cursor sends the statement as written (``$n``): psycopg
        # would parse one of more than 50 parameters again on every run.
        with psycopg.RawCursor(self._conn) as cur:
            cur.execute(sql, params)


class _AsyncPostgresReader:
    """Reads on the event loop with psycopg's async driver. A thread hop per
    read, and threads contending for the interpreter lock while they wait on
    the network, cost two to three times the CPU of awaiting the socket."""

    def __init__(self, url: str, pool_size: int) -> None:
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[object, ...]]] = (
            AsyncConnectionPool(
                url,
                min_size=pool_size,
                max_size=pool_size,
                open=False,
                timeout=10,
                kwargs={"autocommit": True},
                configure=_configure_async,
            )
        )
        # Reads asked for while one is in flight go together, in one statement.
        self._reads: Coalescer[tuple[str, str], StoredVersion] = Coalescer(self._read_many)
        self._checking: asyncio.Task[None] | None = None

    def _check_pool(self) -> None:
        """As ``PostgresStore._check_pool``, on the event loop."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.ensure_future(self._check())

    async def _check(self) -> None:
        try:
            await self._pool.check()
        except Exception:  # the next failure checks again
            log.debug("checking the connection pool failed", exc_info=True)

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=10)
        except psycopg_pool_errors() as exc:
            await self._pool.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    async def _read_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredVersion]:
        if len(keys) == 1:  # the prepared primary key lookup
            found = await self._fetch(_STATEMENTS.read, keys[0], current=True)
            return {keys[0]: found} if found is not None else {}
        sql, params = _STATEMENTS.read_many_statement(keys)
        versions = (to_version(row, current=True) for row in await self.select(sql, params))
        return {(version.res_type, version.res_id): version for version in versions}

    async def _fetch(
        self, sql: str, params: Sequence[object], current: bool = False
    ) -> StoredVersion | None:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(sql, params)
                row = await cur.fetchone()
        except psycopg.OperationalError as exc:
            self._check_pool()
            raise StoreUnavailable(f"PostgreSQL is not reachable: {exc}") from exc
        return to_version(row, current) if row is not None else None

    async def select(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        try:
            # As ``_select``: unprepared, with numbered placeholders.
            async with self._pool.connection() as conn, psycopg.AsyncRawCursor(conn) as cur:
                await cur.execute(_numbered(_DIALECT.sql(sql)), params, prepare=False)
                return await cur.fetchall()
        except psycopg.OperationalError as exc:
            self._check_pool()
            raise StoreUnavailable(f"PostgreSQL is not reachable: {exc}") from exc

    async def read(self, res_type: str, res_id: str) -> StoredVersion | None:
        return await self._reads.get((res_type, res_id))

    async def vread(self, res_type: str, res_id: str, version: int) -> StoredVersion | None:
        return await self._fetch(_STATEMENTS.vread, (res_type, res_id, version))

    async def aclose(self) -> None:
        await self._pool.close()

    def pool_stats(self) -> dict[str, int]:
        """As ``PostgresStore.pool_stats``, for the reads' own pool."""
        return _pool_stats(self._pool.get_stats(), self._pool.max_size)


class PostgresStore:
    """A store in a PostgreSQL database, ``postgresql://user@host:port/db``."""

    dialect = "postgres"

    def __init__(self, url: str, *, pool_size: int = 16) -> None:
        self.url = url
        self._pool_size = pool_size
        self._written = 0  # versions written by this process, for grown_fourfold
        self._written_lock = threading.Lock()
        self._analyzing = False
        self._analyze_again = False
        self._listeners: list[Listener] = []
        self._pool: ConnectionPool[psycopg.Connection[tuple[object, ...]]] = ConnectionPool(
            url,
            # A fixed size, as large as the concurrency a worker sees: threads
            # queueing for a connection cost more CPU than idle connections.
            min_size=pool_size,
            max_size=pool_size,
            open=False,
            timeout=10,
            # Reads are single statements: autocommit spares them a BEGIN and a
            # COMMIT round trip each. Units of work open explicit transactions.
            kwargs={"autocommit": True},
            configure=_configure,
        )
        self._checking = threading.Lock()
        try:
            self._pool.open(wait=True, timeout=10)
        except psycopg_pool_errors() as exc:
            self._pool.close()
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        try:
            with self._pool.connection() as conn:
                _bound(conn)
                yield conn
        except psycopg.OperationalError as exc:
            if isinstance(exc, psycopg.errors.QueryCanceled):
                # ``statement_timeout``: the request's time is up.
                refusal = budget.spent(exc)
                if refusal is not None:
                    raise refusal from exc
            self._check_pool()
            raise StoreUnavailable(f"PostgreSQL is not reachable: {exc}") from exc

    def _check_pool(self) -> None:
        """After a connection failed: check every idle connection of the
        pool (an empty round trip each) and replace those the server
        dropped, on a thread, one check at a time. After a restart of the
        server every pooled connection is dead; the pool discards each
        that fails a request, and this spares the requests that would meet
        the others. Checking on every checkout instead would cost each
        request a round trip while the server is well."""
        if not self._checking.acquire(blocking=False):
            return

        def check() -> None:
            try:
                self._pool.check()
            except Exception:  # the next failure checks again
                log.debug("checking the connection pool failed", exc_info=True)
            finally:
                self._checking.release()

        threading.Thread(target=check, name="gateway-pool-check", daemon=True).start()

    async def open_async_reader(self) -> AsyncReader:
        reader = _AsyncPostgresReader(self.url, self._pool_size)
        await reader.open()
        return reader

    def migrate(self) -> list[int]:
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
            return _STATEMENTS.apply_migrations(conn.cursor(), "postgres")

    @contextmanager
    def unit_of_work(self) -> Iterator[_PostgresUnitOfWork]:
        with self._connection() as conn, conn.transaction():
            uow = _PostgresUnitOfWork(conn)
            yield uow
            uow.flush()
        self._count_commit(uow.appended)

    def _count_commit(self, versions: int) -> None:
        """Refresh planner statistics on a schedule as the database grows,
        in the background. Autovacuum does it too, but only after a tenth of
        a table has changed and a minute has passed: while a new database
        fills, the planner would meanwhile plan for empty tables. The
        schedule counts versions written, not commits: a loader commits a
        hundred records at once, and the audit log commits for every few
        reads (counted, they ran ANALYZE every 1,024 of its batches, an
        eighth of the database's CPU under a read load). A refresh falling
        due while one runs follows it."""
        with self._written_lock:
            before = self._written
            self._written += versions
            due = any(grown_fourfold(n) for n in range(before + 1, self._written + 1))
            if not due:
                return
            if self._analyzing:
                self._analyze_again = True
                return
            self._analyzing = True
        threading.Thread(target=self._analyze, name="gateway-analyze", daemon=True).start()

    def _analyze(self) -> None:
        again = True
        while again:
            try:
                with self._connection() as conn:
                    conn.execute("ANALYZE")
            except Exception:  # statistics are an optimisation; never fail a caller
                log.warning("ANALYZE failed", exc_info=True)
            with self._written_lock:
                again, self._analyze_again = self._analyze_again, False
                self._analyzing = again

    def read(self, res_type: str, res_id: str) -> StoredVersion | None:
        with self._connection() as conn:
            return _STATEMENTS.fetch_version(
                conn.cursor(), _STATEMENTS.read, (res_type, res_id), current=True
            )

    def vread(self, res_type: str, res_id: str, version: int) -> StoredVersion | None:
        with self._connection() as conn:
            return _STATEMENTS.fetch_version(
                conn.cursor(), _STATEMENTS.vread, (res_type, res_id, version)
            )

    def read_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredVersion]:
        wanted = list(keys)
        if not wanted:  # no connection taken for nothing
            return {}
        with self._connection() as conn:
            return _STATEMENTS.read_many(_fetcher(conn), wanted)

    def vread_many(
        self, keys: Iterable[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], StoredVersion]:
        wanted = list(keys)
        if not wanted:
            return {}
        with self._connection() as conn:
            return _STATEMENTS.vread_many(_fetcher(conn), wanted)

    def history(self, query: HistoryQuery) -> HistoryPage:
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            page = _STATEMENTS.history(conn.cursor(), query)
        budget.charge(len(page.entries))
        return page

    def index_version(self, name: str = "search") -> str | None:
        with self._connection() as conn:
            return _STATEMENTS.index_version(conn.cursor(), name)

    def select(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        with self._connection() as conn:
            return _select(conn, _DIALECT.sql(sql), params)

    def iter_current(self, res_type: str) -> Iterator[StoredVersion]:
        def fetch(sql: str, params: list[object]) -> list[tuple[object, ...]]:
            with self._connection() as conn:
                return _select(conn, sql, params)

        return _STATEMENTS.iter_current(fetch, res_type)

    def listen(
        self, channel: str, on_message: Callable[[str], None], on_reset: Callable[[], None]
    ) -> Listening | None:
        listener = Listener(self.url, channel, on_message, on_reset)
        self._listeners.append(listener)
        return listener

    def ping(self) -> None:
        with self._connection() as conn:
            conn.execute("SELECT 1 FROM schema_migration LIMIT 1")

    def check_writable(self) -> None:
        with self._connection() as conn, conn.transaction():
            _STATEMENTS.set_index_version(
                conn.cursor(), datetime.datetime.now(datetime.UTC).isoformat(), "readiness"
            )

    def pool_stats(self) -> dict[str, int]:
        return _pool_stats(self._pool.get_stats(), self._pool_size)

    def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self._pool.close()


def _pool_stats(stats: dict[str, int], max_size: int) -> dict[str, int]:
    """A psycopg pool's statistics as the metrics count them."""
    size = stats.get("pool_size", 0)
    return {
        "size": size,
        "in_use": size - stats.get("pool_available", 0),
        "waiting": stats.get("requests_waiting", 0),
        "max": stats.get("pool_max", max_size),
    }


def _fetcher(conn: psycopg.Connection[tuple[object, ...]]) -> Fetch:
    """Runs the statements of ``read_many`` and ``vread_many`` on one
    connection (as ``_select``)."""
    return lambda sql, params: _select(conn, sql, params)


def psycopg_pool_errors() -> tuple[type[Exception], ...]:
    from psycopg_pool import PoolTimeout

    return (PoolTimeout, psycopg.OperationalError)
