"""How SQLite plans reference searches of many values: by the reference
index, one lookup per id, never a read of every row of the parameter; and
compartment searches of several types: by the references to the owner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.search.compartments import PATIENT_COMPARTMENT, compartment_members
from gateway.search.paging import page_statement
from gateway.search.query import parse_search, parse_system_search
from gateway.store import Store, open_store


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path}/plans.db")
    store.migrate()
    yield store
    store.close()


def _plan(store: Store, res_type: str, params: list[tuple[str, str]]) -> list[str]:
    statement = page_statement(parse_search(res_type, params), None, 100)
    rows = store.select("EXPLAIN QUERY PLAN " + statement.sql, statement.params)
    return [str(row[3]) for row in rows]


@pytest.mark.parametrize(
    ("res_type", "params", "lookup"),
    [
        (
            "Provenance",
            [("target", "Condition/a,Observation/b,Observation/c,MedicationStatement/d,e")],
            "(res_type=? AND param=? AND target_id=?)",
        ),
        (
            "Provenance",
            [("target", ",".join(f"Observation/o{n}" for n in range(100)))],
            "(res_type=? AND param=? AND target_id=? AND target_type=?)",
        ),
        (
            "Observation",
            [("subject", "Patient/a,Device/a,Location/b")],
            "(res_type=? AND param=? AND target_id=?)",
        ),
        (
            "Observation",
            [("patient", "a,b,c")],
            "(res_type=? AND param=? AND target_id=? AND target_type=?)",
        ),
    ],
)
def test_several_reference_values_are_index_lookups(
    sqlite: Store, res_type: str, params: list[tuple[str, str]], lookup: str
) -> None:
    plan = _plan(sqlite, res_type, params)
    assert f"SEARCH t1 USING INDEX search_reference_lookup {lookup}" in plan, plan
    assert not any(step.startswith("SCAN") for step in plan), plan


def test_a_further_reference_condition_probes_by_owner(sqlite: Store) -> None:
    plan = _plan(sqlite, "Observation", [("_id", "x,y"), ("subject", "Patient/a,Device/b")])
    assert (
        "SEARCH t2 USING INDEX search_reference_owner (res_type=? AND res_id=? AND param=?)" in plan
    ), plan
    assert not any(step.startswith("SCAN") for step in plan), plan


@pytest.mark.parametrize("with_owner", [False, True])
def test_a_compartment_of_several_types_is_read_from_the_owners_references(
    sqlite: Store, with_owner: bool
) -> None:
    """A document's or $everything's compartment search looks up the
    references to the person once (by target), then each resource by key:
    never every resource of the types searched."""
    types = [t for t in PATIENT_COMPARTMENT if t not in ("AuditEvent", "Composition")]
    if not with_owner:
        types.remove("Patient")
    query = parse_system_search([("_type", ",".join(types))], within=types)
    query.compartment = ("Patient", "p1", compartment_members("Patient", query.types))
    statement = page_statement(query, None, 100)
    rows = sqlite.select("EXPLAIN QUERY PLAN " + statement.sql, statement.params)
    plan = [str(row[3]) for row in rows]
    assert "SEARCH r1 USING INDEX search_reference_target (target_type=? AND target_id=?)" in plan
    assert "SEARCH c USING PRIMARY KEY (res_type=? AND res_id=?)" in plan, plan
    assert not any(
        step.startswith("SCAN") or step == "SEARCH c USING PRIMARY KEY (res_type=?)"
        for step in plan
    ), plan


def test_for_postgresql_a_compartment_lists_its_owner_with_its_references() -> None:
    """PostgreSQL drives a compartment search from the list of the owner's
    references only if the owner is in that list: ORed beside it, the
    owner's key made it test every live resource of the compartment's
    types (a million for $everything at a million resources)."""
    types = [t for t in PATIENT_COMPARTMENT if t not in ("AuditEvent", "Composition")]
    query = parse_system_search([("_type", ",".join(types))], within=types)
    query.compartment = ("Patient", "p1", compartment_members("Patient", query.types))
    postgres = page_statement(query, None, 100, dialect="postgres")
    assert "UNION ALL SELECT ?, ?" in postgres.sql
    assert "c.res_id = ?)" not in postgres.sql
    assert postgres.sql.count("?") == len(postgres.params)
    # SQLite, though, drives from the list ORed with the owner's key, and
    # reads every resource of the types with the owner in the list.
    sqlite = page_statement(query, None, 100)
    assert "UNION ALL" not in sqlite.sql and "c.res_id = ?)" in sqlite.sql
