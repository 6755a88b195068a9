"""SQLite checkpoints run beside the writers, not inside their commits."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

from gateway.store import open_store
from gateway.store.sqlite import _Checkpointer
from tests.support.acting import stored


def _wal_state(path: Path) -> tuple[int, int]:
    """(pages in the WAL, pages of it already copied into the database)."""
    conn = sqlite3.connect(path)
    try:
        # A checkpoint of nothing: only reports where the WAL stands.
        _busy, pages, copied = conn.execute("PRAGMA wal_checkpoint(NOOP)").fetchone()
    except sqlite3.OperationalError:  # SQLite too old for NOOP: PASSIVE reports too
        _busy, pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        conn.close()
    return int(pages), int(copied)


def test_commits_are_checkpointed_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = open_store(f"sqlite:///{path}")
    try:
        store.migrate()
        for n in range(20):
            stored(store, {"resourceType": "Patient", "name": [{"family": f"F{n}"}]})
        with store.unit_of_work() as uow:  # the commits themselves never checkpoint
            assert uow.select("PRAGMA wal_autocheckpoint", []) == [(0,)]
        deadline = time.monotonic() + 5
        pages, copied = _wal_state(path)
        # (-1, -1) while the checkpointer itself is at work.
        while (pages < 0 or copied < pages) and time.monotonic() < deadline:
            time.sleep(0.05)
            pages, copied = _wal_state(path)
        assert pages > 0
        assert copied == pages
    finally:
        store.close()
    reopened = open_store(f"sqlite:///{path}")
    try:
        assert len(reopened.select("SELECT res_id FROM resource_current", [])) == 20
    finally:
        reopened.close()


def test_closing_never_waits_on_a_checkpointer_that_missed_its_stop() -> None:
    """``stop`` can land between the checkpointer's pause and its clearing
    of the wake-up (a store closed just after a commit): the checkpointer
    must still end rather than wait for a wake-up no one will send."""
    checkpointer = _Checkpointer(
        lambda: sqlite3.connect(":memory:", check_same_thread=False), contextlib.nullcontext
    )
    clear = checkpointer._wake.clear

    def stopped_just_before() -> None:
        checkpointer._stop.set()  # what ``stop`` does, all of it, then the clear
        checkpointer._wake.set()
        clear()

    checkpointer._wake.clear = stopped_just_before  # type: ignore[method-assign]
    checkpointer.wake()
    checkpointer._thread.join(timeout=5)  # as ``stop`` joins
    assert not checkpointer._thread.is_alive()
