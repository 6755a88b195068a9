"""SQLite connections live as long as the threads that use them.

The store opens a connection per thread. The thread pool that runs store work
stops a worker thread after 10 s idle and starts another when work comes, so
over a server's life threads come and go; each connection kept after its
thread ended was a leak (its page cache grows up to 64 MiB). Found by the
soak (``bench/soak.py``, issue 30)."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

from gateway.store import open_store
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
