"""Versioned resource storage: one interface, SQLite and PostgreSQL behind it.

``open_store(url)`` picks the backend from ``GATEWAY_DATABASE_URL``'s scheme.
"""

from __future__ import annotations

from gateway.store._sql import index_rows, more_rows
from gateway.store.base import (
    AsyncReader,
    CurrentVersion,
    HistoryPage,
    HistoryQuery,
    Index,
    IndexEntry,
    IndexRows,
    Listening,
    Querier,
    Reader,
    Store,
    StoredVersion,
    UnitOfWork,
    as_bytes,
    last_content,
)

__all__ = [
    "AsyncReader",
    "CurrentVersion",
    "HistoryPage",
    "HistoryQuery",
    "Index",
    "IndexEntry",
    "IndexRows",
    "Listening",
    "Querier",
    "Reader",
    "Store",
    "StoredVersion",
    "UnitOfWork",
    "as_bytes",
    "index_rows",
    "last_content",
    "more_rows",
    "open_store",
]


def open_store(url: str, *, pool_size: int = 16, bulk: bool = False) -> Store:
    """Open (without migrating) the store a database URL names. ``pool_size``
    is the PostgreSQL connection pool's size per process; ``bulk``, for a
    process writing much (``gateway load``), gives SQLite's connections a
    large page cache (a server's are small: see ``SERVING_PAGE_CACHE_MIB``)."""
    if url.startswith("sqlite:///"):
        from gateway.store.sqlite import SQLiteStore

        return SQLiteStore(url, bulk=bulk)
    if url.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import PostgresStore

        return PostgresStore(url, pool_size=pool_size)
    raise ValueError(
        f"unsupported GATEWAY_DATABASE_URL {url!r}: use sqlite:///path or postgresql://..."
    )
