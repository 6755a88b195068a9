"""The request's work budget in the stores (``gateway.store.budget``): a
statement that runs past the time is ended inside the database (SQLite's
progress handler, PostgreSQL's statement_timeout), rows past the budget
end the request, a unit of work ended so writes nothing, and work outside
a request is never bounded."""

from __future__ import annotations

import time

import pytest

from gateway.errors import TooCostly
from gateway.store import Store, budget

# A statement that would run for many minutes on either database.
_RUNAWAY = (
    "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 2000000000) "
    "SELECT count(*) FROM r"
)


def test_a_runaway_statement_is_ended_inside_the_database(store: Store) -> None:
    started = time.monotonic()
    with budget.started(300, 0), pytest.raises(TooCostly) as refused:
        store.select(_RUNAWAY, [])
    took = time.monotonic() - started
    assert 0.3 <= took < 3, took
    assert refused.value.code == "GW-0331"
    assert refused.value.issues[0].code == "too-costly"
    assert "300 ms" in refused.value.message
    # The store serves on, and work outside a request is unbounded again.
    assert store.select("SELECT 1", []) == [(1,)]
    if store.dialect == "postgres":
        assert store.select("SHOW statement_timeout", []) == [("0",)]


def test_a_unit_of_work_ended_by_its_budget_writes_nothing(store: Store) -> None:
    with budget.started(300, 0), pytest.raises(TooCostly), store.unit_of_work() as uow:
        uow.set_index_version("half-written", "budget-test")
        uow.select(_RUNAWAY, [])
    assert store.index_version("budget-test") is None
    # And the next write goes ahead (no lock left held, no transaction left open).
    with store.unit_of_work() as uow:
        uow.set_index_version("written", "budget-test")
    assert store.index_version("budget-test") == "written"


def test_rows_past_the_budget_end_the_request(store: Store) -> None:
    many = (
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 60) "
        "SELECT x FROM r"
    )
    with budget.started(0, 100) as work:
        assert len(store.select(many, [])) == 60
        with pytest.raises(TooCostly) as refused:
            store.select(many, [])
        assert refused.value.code == "GW-0330"
        assert work.rows == 120  # what was read was counted
        # Spent once, every later statement is refused at once.
        with pytest.raises(TooCostly):
            store.select("SELECT 1", [])
    assert store.select("SELECT 1", []) == [(1,)]


def test_a_budget_that_has_time_left_changes_nothing(store: Store) -> None:
    with budget.started(30_000, 200_000) as work:
        assert store.select("SELECT 1", []) == [(1,)]
        if store.dialect == "postgres":
            (setting,) = store.select("SHOW statement_timeout", [])[0]
            assert str(setting).endswith("s")  # the time left, as the server shows it
    assert work.rows >= 1 and work.spent is None
