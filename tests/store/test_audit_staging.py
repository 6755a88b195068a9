"""A write stages its audit entry in its own transaction, taking no lock,
and the audit writer moves staged entries into the log: an entry is always
either staged or in the log, commits exactly when its write does, and what
a crash left staged reaches the log when the writer next starts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway.audit import log, staging
from gateway.audit.checkpoint import load_or_create_signer
from gateway.audit.writer import AuditWriter
from gateway.store import Store
from tests.store.test_audit_log import record


def _staged(store: Store) -> int:
    return int(str(store.select("SELECT COUNT(*) FROM audit_staged", [])[0][0]))


def _request_ids(store: Store) -> list[str]:
    rows = store.select("SELECT request_id FROM audit_entry ORDER BY idx", [])
    return [str(row[0]) for row in rows]


def test_a_staged_entry_commits_or_rolls_back_with_its_write(store: Store) -> None:
    with pytest.raises(RuntimeError), store.unit_of_work() as uow:
        staging.stage(uow, [record(1)])
        raise RuntimeError("the write failed after staging its entry")
    assert _staged(store) == 0
    with store.unit_of_work() as uow:
        staging.stage(uow, [record(2), record(3)])
    assert _staged(store) == 2
    assert log.size(store) == 0


def test_sequencing_moves_staged_entries_into_the_log_in_order(
    store: Store, tmp_path: Path
) -> None:
    with store.unit_of_work() as uow:
        log.append(uow, [record(0)])
    for n in (1, 2, 3):
        with store.unit_of_work() as uow:
            staging.stage(uow, [record(n)])
    assert staging.sequence_now(store) == 3
    assert _staged(store) == 0
    assert _request_ids(store) == [f"request-{n}" for n in range(4)]
    assert staging.sequence_now(store) == 0  # nothing moved twice
    signer = load_or_create_signer(tmp_path / "audit.key")
    log.sign_checkpoint(store, signer)
    assert log.verify(store, signer.verifier_key()).intact


def test_a_staged_entry_that_is_not_an_audit_event_is_left_and_reported(store: Store) -> None:
    with store.unit_of_work() as uow:
        staging.stage(uow, [record(1)])
        uow.execute("INSERT INTO audit_staged (entry) VALUES (?)", [b"not json"])
        staging.stage(uow, [record(2)])
    assert staging.sequence_now(store) == 2
    assert log.size(store) == 2
    found = staging.staged(store)
    assert found.waiting == 1
    ((_, why),) = found.unusable
    assert "not JSON" in why


def test_the_writer_sequences_what_a_crash_left_staged_when_it_starts(
    store: Store, tmp_path: Path
) -> None:
    with store.unit_of_work() as uow:
        staging.stage(uow, [record(1), record(2)])
    writer = AuditWriter(store, load_or_create_signer(tmp_path / "audit.key"))
    try:
        writer.sequenced().result(timeout=10)
    finally:
        writer.close()
    assert _staged(store) == 0
    assert log.size(store) == 2


def test_a_write_stages_while_the_log_is_locked(store: Store) -> None:
    """Staging takes no lock: a write commits while an appender holds the
    log's, instead of queueing behind every other write's commit."""
    if "postgres" not in type(store).__name__.lower():
        pytest.skip("SQLite serialises every writer; the log's lock is PostgreSQL's")
    locked = threading.Event()
    release = threading.Event()

    def appender() -> None:
        with store.unit_of_work() as uow:
            log.append(uow, [record(0)])  # takes the log's lock until commit
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=appender)
    holder.start()
    try:
        assert locked.wait(10)
        staged = threading.Thread(target=lambda: _stage_one(store))
        staged.start()
        staged.join(5)
        assert not staged.is_alive(), "staging waited for the log's lock"
        assert _staged(store) == 1
    finally:
        release.set()
        holder.join(10)


def _stage_one(store: Store) -> None:
    with store.unit_of_work() as uow:
        staging.stage(uow, [record(1)])
