"""SQLite connections live as long as the threads that use them, and their
page caches together stay within a bound.

The store opens a connection per thread. The thread pool that runs store work
stops a worker thread after 10 s idle and starts another when work comes, so
over a server's life threads come and go; each connection kept after its
thread ended was a leak (its page cache grows up to its size). And with a
connection per thread, up to the pool's 40, their caches could together
hold gigabytes. Both seen while looking into the memory growth of the soak
(``bench/soak.py``, issue 30)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from gateway.store import open_store
from gateway.store import sqlite as sqlite_store
from gateway.store.sqlite import SQLiteStore
from tests.support.acting import stored


def _open_files(path: Path) -> int:
    """This process's open file descriptors on ``path``."""
    count = 0
    for fd in os.scandir("/proc/self/fd"):
        try:
            if os.readlink(fd.path) == str(path):
                count += 1
        except OSError:
            continue
    return count


def _in_a_thread_of_its_own(work: object) -> None:
    assert callable(work)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


def test_a_thread_s_connection_is_closed_when_the_thread_ends(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLiteStore)
    try:
        store.migrate()
        res_id = stored(store, {"resourceType": "Patient", "active": True}).res_id
        time.sleep(0.5)  # the checkpointer's own connection, opened after the write
        before = _open_files(path)
        for _ in range(30):  # thirty threads one after another, as a pool renews them
            _in_a_thread_of_its_own(lambda: store.read("Patient", res_id))
        gc.collect()
        # Thirty were opened; at most one descriptor is left over, which
        # SQLite keeps for the next connection to reuse while others hold
        # locks on the file.
        assert _open_files(path) <= before + 1
        assert store.pool_stats()["size"] == 1  # this thread's own, from the writes
        # A thread still running keeps its connection, and uses it again.
        ready, done = threading.Event(), threading.Event()
        seen: list[object] = []

        def lingering() -> None:
            seen.append(store._conn())
            assert store.read("Patient", res_id) is not None
            ready.set()
            done.wait(10)
            seen.append(store._conn())

        thread = threading.Thread(target=lingering)
        thread.start()
        ready.wait(10)
        assert store.pool_stats()["size"] == 2
        done.set()
        thread.join()
        assert seen[0] is seen[1]
        gc.collect()
        assert store.pool_stats()["size"] == 1
        assert _open_files(path) <= before + 1
    finally:
        store.close()
    assert _open_files(path) == 0


def test_closing_the_store_closes_the_connections_of_running_threads(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    ready, done = threading.Event(), threading.Event()

    def reading() -> None:
        store.select("SELECT 1", [])
        ready.set()
        done.wait(10)

    thread = threading.Thread(target=reading)
    thread.start()
    ready.wait(10)
    assert store.pool_stats()["size"] == 2  # the migration's thread and this one
    store.close()
    assert _open_files(path) == 0
    done.set()
    thread.join()


def _sqlite_heap() -> int:
    """SQLite's heap in this process, every connection's (where the sqlite3
    module uses the shared library, as on Debian)."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
    except (OSError, AttributeError):
        pytest.skip("SQLite's memory use cannot be read here")
    used: int = lib.sqlite3_memory_used()
    return used


def _table_of_16_mb(path: Path) -> None:
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    raw.executemany("INSERT INTO t (v) VALUES (?)", ((os.urandom(800),) for _ in range(20_000)))
    raw.commit()
    raw.close()


@pytest.mark.parametrize(
    ("bulk", "mib"),
    [(False, sqlite_store.SERVING_PAGE_CACHE_MIB), (True, sqlite_store.BULK_PAGE_CACHE_MIB)],
)
def test_a_serving_store_s_page_cache_is_small_and_a_bulk_one_s_large(
    tmp_path: Path, bulk: bool, mib: int
) -> None:
    """A server's connection keeps a small page cache (another connection's
    commit empties it anyway, and malloc keeps the room each one filled
    took); ``gateway load``'s keeps a large one between its transactions.
    Reading a 16 MB table, a serving connection's cache stays at its size."""
    assert sqlite_store.SERVING_PAGE_CACHE_MIB < 16 <= sqlite_store.BULK_PAGE_CACHE_MIB
    path = tmp_path / "big.db"
    _table_of_16_mb(path)
    store = open_store(f"sqlite:///{path}", bulk=bulk)
    try:
        assert store.select("PRAGMA cache_size", []) == [(-mib * 1024,)]  # KiB
        before = _sqlite_heap()
        assert store.select("SELECT sum(length(v)) FROM t", []) == [(16_000_000,)]
        grown = _sqlite_heap() - before
        if bulk:
            assert grown > 16 * 10**6  # the whole table, cached
        else:
            assert grown < (mib + 1) * 2**20
    finally:
        store.close()


def test_the_page_caches_of_many_threads_stay_within_the_heap_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight threads each read a 16 MB table through their own connection:
    64 MiB of cache each would hold it all eight times over; under a 4 MiB
    limit the process's SQLite heap grows by about that."""
    path = tmp_path / "big.db"
    _table_of_16_mb(path)
    probe = sqlite3.connect(":memory:")
    previous = probe.execute("PRAGMA soft_heap_limit").fetchone()[0]
    monkeypatch.setattr(sqlite_store, "_SOFT_HEAP_LIMIT", 4 * 2**20)
    store = SQLiteStore(f"sqlite:///{path}", bulk=True)  # the large caches
    before = _sqlite_heap()
    release = threading.Event()
    read: list[int] = []

    def reading() -> None:
        read.append(int(store.select("SELECT sum(length(v)) FROM t", [])[0][0]))  # type: ignore[call-overload]
        release.wait(30)

    threads = [threading.Thread(target=reading) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(read) < len(threads) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert read == [16_000_000] * 8
        assert store.pool_stats()["size"] == 8  # each its own connection, all open
        assert _sqlite_heap() - before < 12 * 2**20  # not 8 x 16 MB
    finally:
        release.set()
        for thread in threads:
            thread.join()
        store.close()
        probe.execute(f"PRAGMA soft_heap_limit={previous}")
        probe.close()
