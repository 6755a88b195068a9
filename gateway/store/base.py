"""The storage interface every backend implements.

The store keeps every version of every resource (FHIR RESTful API, "Versioning"
https://hl7.org/fhir/R4/http.html#versioning): a write appends a version, a
delete appends a *deleted* version, and nothing is ever overwritten. The store
knows nothing of FHIR semantics beyond that: the interactions layer decides
version numbers and meta, the store guarantees that a unit of work commits
whole or not at all and that two writers can never both create the same
version.

Search index rows (``IndexRow``) are written in the same unit of work as the
version they describe, so an index can never disagree with the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.store.values import SearchValue


def as_bytes(value: object) -> bytes:
    """A BLOB/BYTEA column's value as bytes, whichever the database."""
    assert isinstance(value, (bytes, bytearray, memoryview)), type(value)
    return bytes(value)


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of one resource as stored. ``content`` is FHIR JSON bytes
    with ``meta.versionId`` and ``meta.lastUpdated`` already set, or ``None``
    for a deleted version."""

    res_type: str
    res_id: str
    version: int
    last_updated: str  # FHIR instant, UTC
    method: str  # POST, PUT or DELETE: the interaction that made it
    content: bytes | None
    seq: int = 0  # global order of writes; assigned by the store
    # Read as the resource's latest version (a read, a search, a write just
    # made); ``False`` where that is not known (a vread, a history page), so
    # the consent layer decides it with the labels the resource carries now.
    current: bool = field(default=False, compare=False)

    @property
    def deleted(self) -> bool:
        return self.content is None


@dataclass(frozen=True, slots=True)
class CurrentVersion:
    """What a writer needs to know of the latest version before writing the next."""

    version: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One search index value of a resource: the parameter's code and the
    value it extracted (``gateway.store.values``)."""

    param: str
    value: SearchValue


@dataclass(frozen=True, slots=True)
class IndexRows:
    """Index entries as the rows the store writes for them, made ahead
    (``gateway.store._sql.index_rows``: a loader's worker process makes
    them, so the one writer neither folds text nor builds rows, and plain
    tuples cross between the processes): each table's rows (the number of
    its kind of value in ``_sql.INDEX_LAYOUT``, and each row as its
    parameter and value columns), tables in the order their first entry
    came, rows in the order of their entries; and the person whose record
    it is, whom the sort keys of the rows a write adds are keyed by
    (``gateway.access.index.stamped``)."""

    tables: tuple[tuple[int, tuple[tuple[Any, ...], ...]], ...]
    person: str | None

    def __bool__(self) -> bool:
        return bool(self.tables)


# A version's index as the store takes it: entries, or their rows made ahead.
Index = Sequence[IndexEntry] | IndexRows


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A page of history, newest first. Paging is by keyset on ``seq`` so a
    page link keeps returning the same entries while new versions arrive."""

    res_type: str | None = None
    res_id: str | None = None
    since: str | None = None  # FHIR instant: versions last updated at or after
    at: str | None = None  # FHIR instant: versions current at this point in time
    before_seq: int | None = None  # next pages: entries older than this
    after_seq: int | None = None  # previous pages: entries newer than this
    count: int = 50


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: list[StoredVersion]
    total: int | None  # entries matching the query regardless of paging
    has_older: bool
    has_newer: bool


class Reader(Protocol):
    """Reading single resources: what both a store and a unit of work offer."""

    def read(self, res_type: str, res_id: str) -> StoredVersion | None:
        """The latest version (possibly a deleted one), or ``None`` if the
        resource never existed."""

    def vread(self, res_type: str, res_id: str, version: int) -> StoredVersion | None:
        """One specific version, or ``None``."""

    def read_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredVersion]:
        """``read`` of each (type, id) at once, by key; those that never
        existed are absent. For callers that would otherwise read in a loop:
        one statement instead of one per resource."""

    def vread_many(
        self, keys: Iterable[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], StoredVersion]:
        """``vread`` of each (type, id, version) at once, by key; versions
        that do not exist are absent."""


def last_content(reader: Reader, deleted: StoredVersion) -> StoredVersion | None:
    """The live version a deletion ended, or ``None`` if none before it had
    content. What the resource said last is what decides who may know it
    was deleted (a read answers Gone only to who could have seen it)."""
    for number in range(deleted.version - 1, 0, -1):
        found = reader.vread(deleted.res_type, deleted.res_id, number)
        if found is not None and not found.deleted:
            return found
    return None


class Querier(Reader, Protocol):
    """Reading single resources and running search SQL: what the consent
    layer and conditional matching need, from a store or a unit of work."""

    def select(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        """Rows of a read-only statement (the search engine's SQL)."""


class AsyncReader(Protocol):
    """``Reader`` for the event loop: the HTTP layer's hot path. Obtained per
    event loop from ``Store.open_async_reader()`` and closed with it."""

    async def read(self, res_type: str, res_id: str) -> StoredVersion | None:
        """As ``Reader.read``."""

    async def vread(self, res_type: str, res_id: str, version: int) -> StoredVersion | None:
        """As ``Reader.vread``."""

    async def select(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        """As ``Store.select`` (the client registry's per-request look-up)."""

    async def aclose(self) -> None:
        """Release what the reader holds."""


class UnitOfWork(Reader, Protocol):
    """Writes that commit together. Obtained from ``Store.unit_of_work()``.
    Reads inside it see its own writes."""

    def current(self, res_type: str, res_id: str) -> CurrentVersion | None:
        """The latest version of a resource, locked against concurrent writers
        until the unit of work ends."""

    def append(self, version: StoredVersion, index: Index) -> StoredVersion:
        """Store a new version and replace the resource's index rows. Raises
        ``gateway.errors.Conflict`` if that version already exists (a
        concurrent writer won). Returns the version with its ``seq``."""

    def select(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        """As ``Store.select``, inside this unit of work (seeing its writes)."""

    def replace_index(self, res_type: str, res_id: str, index: Sequence[IndexEntry]) -> None:
        """Replace a live resource's index rows (reindexing after the
        extraction rules change)."""

    def set_index_version(self, version: str, name: str = "search") -> None:
        """Record which rules the stored data was last brought up to:
        ``search``, the index's extraction rules; ``labels``, the restricted
        code lists (``consent.labels``)."""

    def execute(self, sql: str, params: Sequence[object]) -> int:
        """Run one statement over the gateway's own tables (the client
        registry, the assertions seen, its secrets), written with ``?``
        placeholders; returns the number of rows it changed. Resources and
        their index are written through ``append`` only, but for the one
        move of a store's mapped ids to keyed ones (``gateway.loading.ids``)."""

    def execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """``execute`` once per row of parameters, in one call (the audit
        log's batches)."""

    def lock_type(self, res_type: str) -> None:
        """Serialise conditional writes on one type, so that two concurrent
        conditional creates with the same criteria cannot both create."""


class Listening(Protocol):
    """A channel listened to on a connection of its own (``Store.listen``)."""

    def alive(self) -> bool:
        """Whether every notification sent on the channel is being received:
        ``False`` while the connection is being made or made again, and
        once it has not answered for a while (it may have gone without a
        word). What a notification would have invalidated is not to be
        trusted meanwhile."""

    def close(self) -> None:
        """Stop listening and release the connection."""


class Store(Reader, Protocol):
    """A versioned resource store. Implementations: ``SQLiteStore``,
    ``PostgresStore``. All methods are thread-safe."""

    url: str
    # "sqlite" or "postgres": which database search statements are written
    # for, where their planners want a condition in different forms.
    dialect: str

    async def open_async_reader(self) -> AsyncReader:
        """A reader for the running event loop (one per loop; close it when
        the loop's work ends)."""

    def migrate(self) -> list[int]:
        """Apply pending schema migrations; return the versions applied."""

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]:
        """Begin an atomic unit of work: commits on normal exit, rolls back on
        any exception."""

    def history(self, query: HistoryQuery) -> HistoryPage:
        """Versions newest first, as described by the query."""

    def index_version(self, name: str = "search") -> str | None:
        """The rules ``name`` the stored data was last brought up to (see
        ``UnitOfWork.set_index_version``; ``None``: never recorded)."""

    def select(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        """Run a read-only query over the resource and index tables, written
        with ``?`` placeholders (``gateway.search.sql`` builds them). The one
        door through which search reaches the database."""

    def iter_current(self, res_type: str) -> Iterator[StoredVersion]:
        """Every live resource of a type (maintenance and export)."""

    def listen(
        self, channel: str, on_message: Callable[[str], None], on_reset: Callable[[], None]
    ) -> Listening | None:
        """Call ``on_message(payload)`` for each notification on ``channel``
        (PostgreSQL's LISTEN/NOTIFY, sent at the notifying transaction's
        commit), from a thread of the store's own, until ``close``; and
        ``on_reset()`` each time listening (re)starts, when notifications
        may have been missed. ``None`` where the database has no
        notifications (SQLite)."""

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` if the database cannot be reached."""

    def check_writable(self) -> None:
        """Raise ``StoreUnavailable`` unless a write commits now: a write
        transaction that records the moment in ``index_state``'s
        ``readiness`` row (one row, overwritten; nothing else reads it).
        A rolled-back write would not do: SQLite writes nothing to its
        WAL until a commit, so a read-only or full file would pass."""

    def pool_stats(self) -> dict[str, int]:
        """The store's connections now, by state (``size``, ``in_use``,
        and for a pool ``waiting`` and ``max``), for the metrics."""

    def close(self) -> None:
        """Release connections."""
