"""Lost races between writers are retried, not surfaced as errors."""

from __future__ import annotations

import threading

import pytest

from gateway.interactions.write import in_unit_of_work
from gateway.store import HistoryQuery, Store, StoredVersion, UnitOfWork


def test_a_writer_that_loses_a_race_for_a_version_retries_and_writes_the_next(
    store: Store,
) -> None:
    """Two units of work both see no resource and both write version 1; the
    loser's unit of work is rolled back and run again, and writes version 2."""
    if store.url.startswith("sqlite"):
        pytest.skip("SQLite serialises writers, so this race cannot happen there")
    barrier = threading.Barrier(2, timeout=10)
    attempts: list[int] = []
    lock = threading.Lock()

    def work(uow: UnitOfWork) -> int:
        with lock:
            attempts.append(1)
            first_round = len(attempts) <= 2
        current = uow.current("Patient", "raced")
        if first_round:
            barrier.wait()  # both have now looked, and both saw nothing
        version = 1 if current is None else current.version + 1
        uow.append(
            StoredVersion("Patient", "raced", version, "2026-01-01T00:00:00.000000Z", "PUT", b"{}"),
            (),
        )
        return version

    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(in_unit_of_work(store, work)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [1, 2]
    assert len(attempts) == 3
    history = store.history(HistoryQuery(res_type="Patient", res_id="raced"))
    assert [v.version for v in history.entries] == [2, 1]
