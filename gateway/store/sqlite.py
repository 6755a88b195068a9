"""The embedded SQLite store (the default).

One connection per thread, WAL journal so readers never wait for the writer,
``synchronous=FULL`` so a committed write survives a power cut, and
``BEGIN IMMEDIATE`` so writers take the single write lock up front instead
of failing half-way. https://www.sqlite.org/wal.html

Writers also queue on a lock of our own before ``BEGIN IMMEDIATE``: a thread
lock within the process and an ``flock`` on a file beside the database across
worker processes. Left to itself, SQLite's busy handler makes waiting writers
sleep and poll (1, 2, 5 ... 100 ms), so under load unlucky writers wait
hundreds of milliseconds while the lock sits free; a blocking lock hands it
over at once.

Checkpoints (copying committed WAL pages back into the database file) run on
a thread of their own rather than in whichever commit crosses SQLite's
threshold while it holds the write lock: see ``_Checkpointer``.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import functools
import logging
import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gateway.errors import Conflict, StoreUnavailable
from gateway.store import budget
from gateway.store._pending_index import PendingTables
from gateway.store._sql import INDEX_TABLES, Dialect, Statements, analyze_due
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

log = logging.getLogger("gateway.store")
_STATEMENTS = Statements(Dialect(placeholder="?"))
_BUSY_TIMEOUT_MS = 10_000
# Planner statistics are sampled from this many rows per index.
_ANALYSIS_LIMIT = 1000
# Past this many WAL pages (64 MiB) the checkpointer waits for a pause in
# writing to bring the WAL back to its start, so it cannot grow without bound.
_WAL_RESTART_PAGES = 16_384
# A connection's page cache (``PRAGMA cache_size``), in MiB. Serving: in WAL
# mode a connection drops its whole cache when its next transaction finds that
# another connection has committed, and in a server some connection commits
# with nearly every request (the audit log), so a cache holds one
# transaction's reads and a larger one buys little; but each time one fills,
# malloc keeps the room it took (issue 30's soak: 64 MiB caches let a worker's
# memory grow by a quarter over 25 minutes, 8 MiB by an eighth).
SERVING_PAGE_CACHE_MIB = 2
# Bulk writing (``gateway load``, a reindex): one connection writing
# transactions of a hundred records, each touching a dozen index B-trees,
# whose upper pages stay cached from one transaction to the next.
BULK_PAGE_CACHE_MIB = 64
# SQLite's heap in a process, all its connections' page caches together (two
# connections' full caches in bulk), as ``PRAGMA soft_heap_limit`` sets it.
_SOFT_HEAP_LIMIT = 128 * 2**20
# How long the checkpointer lets commits gather before it copies them over.
_CHECKPOINT_DELAY_S = 0.2
# Below this much free space on its disk the database is not ready
# (``check_writable``): a transaction of a hundred resources writes a few MiB.
_MIN_FREE_BYTES = 8 * 1024 * 1024
# SQLite's primary result codes that say the database cannot be used now
# (rather than that a statement is wrong): busy or locked past the timeout,
# out of memory, read-only (the file, its -wal or -shm, or their folder),
# an I/O error, a full disk, a file that cannot be opened, a lock protocol
# failure. Each is answered 503 (``StoreUnavailable``), not 500.
_UNAVAILABLE = {
    5: "SQLITE_BUSY",
    6: "SQLITE_LOCKED",
    7: "SQLITE_NOMEM",
    8: "SQLITE_READONLY",
    10: "SQLITE_IOERR",
    13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN",
    15: "SQLITE_PROTOCOL",
}


# SQLite calls the request's work budget (``gateway.store.budget``) every
# this many steps of its virtual machine (some tens of microseconds), to
# end a statement that runs past the request's time; a point read takes
# fewer steps than this and never calls it.
_PROGRESS_STEPS = 10_000
_SQLITE_INTERRUPT = 9


@contextmanager
def _uninterrupted(conn: sqlite3.Connection) -> Iterator[None]:
    """Run a statement the budget must not end: a COMMIT (the work is
    done), a ROLLBACK (an interrupted one would leave the write lock held),
    statistics after a commit. SQLite counts steps across statements, so any
    statement may be the one that calls the progress handler."""
    conn.set_progress_handler(None, 0)
    try:
        yield
    finally:
        conn.set_progress_handler(budget.interrupt, _PROGRESS_STEPS)


def _unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be used now."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in _UNAVAILABLE


def _duplicate_version() -> Exception:
    return Conflict(
        "Another request wrote this resource at the same time; retry with its new version",
        code="GW-0409",
    )


# A statement that sets, rolls back to or releases a savepoint, and its name.
_SAVEPOINT = re.compile(
    r"\s*(SAVEPOINT|ROLLBACK\s+(?:TRANSACTION\s+)?TO(?:\s+SAVEPOINT)?|RELEASE(?:\s+SAVEPOINT)?)"
    r"\s+(\w+)\s*;?\s*",
    re.IGNORECASE,
)
# What every statement that reads or writes the index names: its tables'
# names begin so (in any case, SQLite's names ignoring it).
_INDEX_NAMES = "search_"
assert all(table.startswith(_INDEX_NAMES) for table in INDEX_TABLES)


@functools.lru_cache(maxsize=256)
def _tables_named(sql: str) -> tuple[int, ...]:
    """The index tables ``sql`` reads or writes (their numbers in
    ``INDEX_TABLES``): those it names, or all when it names none of them but
    something else beginning as they do."""
    lowered = sql.lower()
    if _INDEX_NAMES not in lowered:
        return ()
    return tuple(n for n, table in enumerate(INDEX_TABLES) if table in lowered) or tuple(
        range(len(INDEX_TABLES))
    )


class _SQLiteUnitOfWork:
    """Index rows wait in a ``PendingTables`` until a statement that names
    their table runs (a search), or the unit of work commits: then they are
    written one statement a table, for all the resources appended since (a
    loader's batch of a hundred records, where only its searches for
    probable matches write the two tables they read sooner). A savepoint
    keeps what was waiting when it was set, to go back to if it is rolled
    back to."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._cur = conn.cursor()
        self._index = PendingTables()
        self._savepoints: list[tuple[str, PendingTables]] = []
        self.appended = 0  # versions and index rebuilds: what the statistics schedule counts

    def current(self, res_type: str, res_id: str) -> CurrentVersion | None:
        self._cur.execute(_STATEMENTS.current, (res_type, res_id))
        row = self._cur.fetchone()
        return CurrentVersion(version=row[0], deleted=bool(row[1])) if row else None

    def read(self, res_type: str, res_id: str) -> StoredVersion | None:
        return _STATEMENTS.fetch_version(
            self._cur, _STATEMENTS.read, (res_type, res_id), current=True
        )

    def vread(self, res_type: str, res_id: str, version: int) -> StoredVersion | None:
        return _STATEMENTS.fetch_version(self._cur, _STATEMENTS.vread, (res_type, res_id, version))

    def read_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredVersion]:
        return _STATEMENTS.read_many(self.select, keys)

    def vread_many(
        self, keys: Iterable[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], StoredVersion]:
        return _STATEMENTS.vread_many(self.select, keys)

    def append(self, version: StoredVersion, index: Index) -> StoredVersion:
        budget.check()  # a unit of work past the request's time ends (and rolls back)
        self.appended += 1
        stored = _STATEMENTS.append(
            self._cur, version, None, _duplicate_version, sqlite3.IntegrityError
        )
        self._index.replace(
            version.res_type,
            version.res_id,
            () if version.deleted else index,
            had_rows=version.version > 1,  # a first version has no rows to replace
        )
        return stored

    def flush(self) -> None:
        """Write the index rows gathered so far."""
        if self._index:
            _STATEMENTS.write_tables(self._cur, *self._index.take())

    def _flush_for(self, sql: str) -> None:
        """Write the index rows gathered for the tables ``sql`` names."""
        tables = _tables_named(sql)
        if tables and self._index:
            _STATEMENTS.write_tables(self._cur, *self._index.take(tables))

    def select(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        self._flush_for(sql)
        self._cur.execute(sql, params)
        rows: list[tuple[object, ...]] = self._cur.fetchall()
        budget.charge(len(rows))
        return rows

    def replace_index(self, res_type: str, res_id: str, index: Sequence[IndexEntry]) -> None:
        self.appended += 1
        self._index.replace(res_type, res_id, index, had_rows=True)

    def set_index_version(self, version: str, name: str = "search") -> None:
        _STATEMENTS.set_index_version(self._cur, version, name)

    def execute(self, sql: str, params: Sequence[object]) -> int:
        savepoint = _SAVEPOINT.fullmatch(sql)
        if savepoint is None:
            self._flush_for(sql)
            self._cur.execute(sql, params)
            return self._cur.rowcount
        self._cur.execute(sql, params)
        verb, name = savepoint.group(1)[:3].upper(), savepoint.group(2).lower()
        if verb == "SAV":
            self._savepoints.append((name, self._index.copy()))
            return self._cur.rowcount
        # The latest savepoint of that name, and those set after it, end
        # (released), or all but it (rolled back to: it stays set).
        while self._savepoints:
            set_name, waiting = self._savepoints.pop()
            if set_name == name:
                if verb == "ROL":
                    self._index = waiting.copy()
                    self._savepoints.append((set_name, waiting))
                break
        return self._cur.rowcount

    def execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        self._flush_for(sql)
        self._cur.executemany(sql, rows)

    def lock_type(self, res_type: str) -> None:
        """Nothing to do: BEGIN IMMEDIATE already holds the database's only write lock."""


class _Checkpointer:
    """Copies committed pages from the WAL into the database file, on a
    daemon thread with its own connection, soon after each commit.

    SQLite's automatic checkpoint runs inside the commit that crosses 1,000
    WAL pages, with the write lock held: measured, it was a third of a
    100-resource transaction's time. A PASSIVE checkpoint here blocks no
    reader or writer and runs (outside the GIL) beside the next writes. Readers
    that hold old snapshots can keep it from reaching the end of the WAL; once
    the WAL passes ``_WAL_RESTART_PAGES``, a RESTART checkpoint takes its turn
    in the writers' queue (``hold_writers``) and starts the WAL afresh. In
    each worker process one runs; when two try at once SQLite lets one work
    and tells the other it is busy, which is fine."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        hold_writers: Callable[[], contextlib.AbstractContextManager[None]],
    ) -> None:
        self._connect = connect
        self._hold_writers = hold_writers
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        failing = False
        try:
            while True:
                self._wake.wait()
                # Gather the commits of the next moment into one checkpoint:
                # each costs an fsync of the database file, too dear per commit.
                if self._stop.wait(_CHECKPOINT_DELAY_S):
                    return
                self._wake.clear()
                if self._stop.is_set():
                    # ``stop`` came between the wait and the clear: the wake
                    # it set is gone, and waiting for another would hang it.
                    return
                try:
                    if conn is None:
                        conn = self._connect()
                    _busy, wal_pages, _copied = conn.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                    if wal_pages > _WAL_RESTART_PAGES:
                        with self._hold_writers():
                            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                    if failing:
                        log.info("SQLite checkpoints work again")
                    failing = False
                except (sqlite3.Error, StoreUnavailable) as exc:
                    # A checkpoint that fails leaves committed data in the
                    # WAL, where readers find it; the next wake tries again,
                    # on a new connection (one opened while the file was
                    # read-only stays so). Said once per run of failures.
                    if not failing:
                        log.warning("SQLite checkpoint failed: %s", exc)
                    failing = True
                    if conn is not None:
                        with contextlib.suppress(sqlite3.Error):
                            conn.close()
                        conn = None
        finally:
            if conn is not None:
                conn.close()


class _InlineReader:
    """Reads on the event loop itself. A point read is a B-tree lookup in the
    page cache, tens of microseconds, and in WAL mode it never waits for a
    writer: cheaper than handing it to a thread and back."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def read(self, res_type: str, res_id: str) -> StoredVersion | None:
        return self._store.read(res_type, res_id)

    async def vread(self, res_type: str, res_id: str, version: int) -> StoredVersion | None:
        return self._store.vread(res_type, res_id, version)

    async def select(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        return self._store.select(sql, params)

    async def aclose(self) -> None:
        """Nothing of its own: the store's connections stay with the store."""


class _Held:
    """A thread's connection, held by that thread's ``threading.local``
    alone: when the thread ends its local goes, and with it this, which
    closes the connection. Threads come and go (the thread pool stops a
    worker thread idle for 10 s and starts another when work comes), and a
    connection kept after its thread ended was a leak of its page cache, up to
    64 MiB each."""

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        weakref.finalize(self, _close_quietly, conn)


def _close_quietly(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.close()


class SQLiteStore:
    """A store in one SQLite file, ``sqlite:///path/to/file.db``. ``bulk``:
    for one process writing much (``gateway load``), with a large page cache
    a connection (``BULK_PAGE_CACHE_MIB``, not ``SERVING_PAGE_CACHE_MIB``)."""

    dialect = "sqlite"

    def __init__(self, url: str, *, bulk: bool = False) -> None:
        self.url = url
        self.page_cache_mib = BULK_PAGE_CACHE_MIB if bulk else SERVING_PAGE_CACHE_MIB
        path = url.removeprefix("sqlite:///")
        if not path or path == url:
            raise ValueError(f"not a SQLite URL: {url!r} (expected sqlite:///path)")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The database holds the token-signing key, the console's session key
        # and everyone's records: a new one is its owner's alone (SQLite gives
        # its -wal and -shm files the database file's mode). Where it cannot
        # be made, connecting says why.
        if not self.path.exists():
            with contextlib.suppress(OSError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._local = threading.local()
        # Bumped whenever the database fails (``_raise_if_unavailable``).
        self._epoch = 0
        # The connection of every thread that has one (``_Held``).
        self._all: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._all_lock = threading.Lock()
        self._writer = threading.Lock()
        self._written = 0  # versions written by this process, for analyze_due
        self._checkpointer: _Checkpointer | None = None
        self._writer_file = open(f"{self.path}.writer-lock", "a+b")  # noqa: SIM115 - held for life

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                timeout=_BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the _Checkpointer's job
            conn.execute(f"PRAGMA cache_size={-self.page_cache_mib * 1024}")  # in KiB
            # A connection per thread, and threads up to the thread pool's
            # 40, could still hold much together: past this much heap in the
            # process (every connection's), each reuses its own least
            # recently used pages instead of taking more.
            conn.execute(f"PRAGMA soft_heap_limit={_SOFT_HEAP_LIMIT}")
            conn.set_progress_handler(budget.interrupt, _PROGRESS_STEPS)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the SQLite database: {exc}") from exc
        # SQLite opens a file it cannot write read-only, silently, and the
        # connection stays so after the file is writable again: refused here,
        # so that none outlives an outage (the next use opens another).
        unwritable = [
            path
            for path in (self.path, Path(f"{self.path}-wal"))
            if path.exists() and not os.access(path, os.W_OK)
        ]
        if unwritable:
            conn.close()
            raise StoreUnavailable(
                f"the SQLite database is read-only: {', '.join(map(str, unwritable))}"
            )
        return conn

    def _conn(self) -> sqlite3.Connection:
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None and self._local.epoch != self._epoch:
            # Opened before the database last failed: perhaps read-only for good.
            self._drop_connection()
            held = None
        if held is None:
            held = _Held(self._connect())
            self._local.held = held
            self._local.epoch = self._epoch
            with self._all_lock:
                self._all.add(held)
        return held.conn

    def _drop_connection(self) -> None:
        """Close this thread's connection; its next use opens another."""
        held: _Held | None = getattr(self._local, "held", None)
        if held is not None:
            self._local.held = None
            with self._all_lock:
                self._all.discard(held)
            _close_quietly(held.conn)

    @contextmanager
    def _writers_queue(self) -> Iterator[None]:
        """Wait for our turn among writers, in this process and the others."""
        with self._writer:
            fcntl.flock(self._writer_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._writer_file, fcntl.LOCK_UN)

    @contextmanager
    def _transaction(self, written: Callable[[], int] = lambda: 1) -> Iterator[sqlite3.Connection]:
        """A write transaction; ``written`` tells, once it commits, how many
        versions it wrote."""
        conn = self._conn()
        with self._usable(), self._writers_queue():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                # A failed write or COMMIT (a full disk, an I/O error)
                # may have rolled the transaction back already.
                if conn.in_transaction:
                    with _uninterrupted(conn):
                        conn.execute("ROLLBACK")
                raise
            with _uninterrupted(conn):
                conn.execute("COMMIT")
                if self._statistics_due(written()):
                    self._analyze()
        self._checkpoint_soon()

    @contextmanager
    def _usable(self) -> Iterator[None]:
        """A use of the database, in which an error saying it cannot be used
        now is raised as ``StoreUnavailable`` (``_raise_if_unavailable``)."""
        try:
            yield
        except sqlite3.Error as exc:
            self._raise_if_unavailable(exc)
            raise

    def _raise_if_unavailable(self, exc: sqlite3.Error) -> None:
        """Raise ``StoreUnavailable`` if ``exc`` says the database cannot be
        used now (else return, for the caller to raise ``exc`` itself). The
        connection that met it is dropped, so that the thread's next use
        opens a new one: SQLite keeps a connection opened while the file was
        read-only read-only for good, even once the file is writable again.
        A statement the request's work budget ended (``interrupted``) is
        that request's refusal (``TooCostly``)."""
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF == _SQLITE_INTERRUPT:
            refusal = budget.spent(exc)
            if refusal is not None:
                raise refusal from exc
        if not _unavailable(exc):
            return
        # Every thread's connection is renewed on its next use, not only this
        # one: a connection that only read during the outage may have been
        # opened read-only, and would fail its first write after it.
        self._epoch += 1
        self._drop_connection()
        raise StoreUnavailable(f"the SQLite database cannot be used now: {exc}") from exc

    def _statistics_due(self, versions: int) -> bool:
        """Whether a commit of ``versions`` versions makes planner statistics
        due. The schedule counts versions, not commits: a loader commits a
        hundred records (some 600 versions) at once, and counting its commits
        left a new database without statistics for its first 1,600 records,
        while searches it runs per record (probable matches) degraded with
        every one."""
        before = self._written
        self._written += versions
        return any(analyze_due(n) for n in range(before + 1, self._written + 1))

    def _checkpoint_soon(self) -> None:
        if self._checkpointer is None:
            with self._all_lock:
                if self._checkpointer is None:
                    self._checkpointer = _Checkpointer(self._connect, self._writers_queue)
        self._checkpointer.wake()

    async def open_async_reader(self) -> AsyncReader:
        return _InlineReader(self)

    def migrate(self) -> list[int]:
        with self._transaction() as conn:  # the write lock keeps other processes out
            applied = _STATEMENTS.apply_migrations(conn.cursor(), "sqlite")
        with self._usable():
            self._analyze()
        return applied

    def _analyze(self) -> None:
        """Refresh the query planner's statistics, sampled so that it takes
        milliseconds at any size. Without them SQLite picks indexes by their
        shape, not their selectivity, and probes a search condition through
        the index of every resource with that code instead of the resource's
        own rows (measured: 6.5 s instead of 2.6 ms at 100,000 resources)."""
        conn = self._conn()
        conn.execute(f"PRAGMA analysis_limit={_ANALYSIS_LIMIT}")
        conn.execute("ANALYZE")

    @contextmanager
    def unit_of_work(self) -> Iterator[_SQLiteUnitOfWork]:
        work: list[_SQLiteUnitOfWork] = []
        with self._transaction(lambda: work[0].appended) as conn:
            work.append(_SQLiteUnitOfWork(conn))
            yield work[0]
            work[0].flush()

    def read(self, res_type: str, res_id: str) -> StoredVersion | None:
        with self._usable():
            return _STATEMENTS.fetch_version(
                self._conn().cursor(), _STATEMENTS.read, (res_type, res_id), current=True
            )

    def vread(self, res_type: str, res_id: str, version: int) -> StoredVersion | None:
        with self._usable():
            return _STATEMENTS.fetch_version(
                self._conn().cursor(), _STATEMENTS.vread, (res_type, res_id, version)
            )

    def read_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredVersion]:
        return _STATEMENTS.read_many(self.select, keys)

    def vread_many(
        self, keys: Iterable[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], StoredVersion]:
        return _STATEMENTS.vread_many(self.select, keys)

    def history(self, query: HistoryQuery) -> HistoryPage:
        # A read transaction gives the page and its count one snapshot.
        with self._usable():
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                page = _STATEMENTS.history(conn.cursor(), query)
            finally:
                if conn.in_transaction:
                    with _uninterrupted(conn):
                        conn.execute("COMMIT")
        budget.charge(len(page.entries))
        return page

    def index_version(self, name: str = "search") -> str | None:
        with self._usable():
            return _STATEMENTS.index_version(self._conn().cursor(), name)

    def select(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        with self._usable():
            rows: list[tuple[object, ...]] = self._conn().execute(sql, params).fetchall()
        budget.charge(len(rows))
        return rows

    def iter_current(self, res_type: str) -> Iterator[StoredVersion]:
        def fetch(sql: str, params: list[object]) -> list[tuple[object, ...]]:
            with self._usable():
                rows: list[tuple[object, ...]] = self._conn().execute(sql, params).fetchall()
            return rows

        return _STATEMENTS.iter_current(fetch, res_type)

    def listen(
        self, channel: str, on_message: Callable[[str], None], on_reset: Callable[[], None]
    ) -> Listening | None:
        """SQLite has no notifications between processes."""
        return None

    def ping(self) -> None:
        try:
            self._conn().execute("SELECT 1 FROM schema_migration LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            with contextlib.suppress(StoreUnavailable):
                self._raise_if_unavailable(exc)  # drops the connection
            raise StoreUnavailable(f"the SQLite database is not usable: {exc}") from exc

    def check_writable(self) -> None:
        """A write that commits, and room for more: a write can commit on a
        full disk while the WAL has pages to reuse, and the next larger one
        fail (SQLITE_FULL)."""
        with self._transaction(lambda: 0) as conn:
            _STATEMENTS.set_index_version(
                conn.cursor(), datetime.datetime.now(datetime.UTC).isoformat(), "readiness"
            )
        try:
            disk = os.statvfs(self.path.parent)
        except OSError as exc:
            raise StoreUnavailable(f"the SQLite database's folder cannot be read: {exc}") from exc
        # Root may write into the blocks reserved for it; anyone else may not.
        free = (disk.f_bfree if os.geteuid() == 0 else disk.f_bavail) * disk.f_frsize
        if free < _MIN_FREE_BYTES:
            raise StoreUnavailable(
                f"the disk holding the SQLite database is full: {free} bytes free, "
                f"fewer than {_MIN_FREE_BYTES}"
            )

    def pool_stats(self) -> dict[str, int]:
        """Connections open (one per thread that has used the store) and
        whether the write lock is held."""
        with self._all_lock:
            size = len(self._all)
        return {"size": size, "in_use": int(self._writer.locked())}

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        with self._all_lock:
            for held in list(self._all):
                held.conn.close()
            self._all.clear()
        self._local = threading.local()
        self._writer_file.close()
