"""Sorting by the sort index (``search_sort``) gives, page by page, forward
and back, exactly the order of the generic statement that works out each
candidate's key, on each store; and on PostgreSQL the plan reads the index
in order instead of sorting every match."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from consent.model import Requester
from gateway import fhirjson
from gateway.access.index import entries, stamped
from gateway.access.scope import Scope
from gateway.search.paging import PageStatement, Position, page_statement, read_page, row_position
from gateway.search.query import SearchQuery, parse_search
from gateway.search.sql import SqlBuilder
from gateway.store import Store, StoredVersion

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _put(store: Store, resources: list[dict[str, Any]]) -> None:
    with store.unit_of_work() as uow:
        for n, resource in enumerate(resources):
            stamp = f"2026-01-{1 + n % 28:02d}T00:00:00.000000Z"
            uow.append(
                StoredVersion(
                    res_type=resource["resourceType"],
                    res_id=resource["id"],
                    version=1,
                    last_updated=stamp,
                    method="PUT",
                    content=fhirjson.dumps(resource),
                ),
                stamped(entries(resource), stamp),
            )


def _observations(rng: random.Random, count: int) -> list[dict[str, Any]]:
    found = []
    for n in range(count):
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"obs-{rng.randrange(10**6):06d}-{n}",
            "status": "final",
            "code": {"text": "pulse"},
        }
        kind = rng.randrange(5)
        if kind == 0:
            pass  # no date: sorts last
        elif kind == 1:  # a period: its least and greatest differ
            start = f"2020-0{rng.randrange(1, 10)}-1{rng.randrange(10)}"
            observation["effectivePeriod"] = {"start": start, "end": "2024-12-31"}
        else:  # a few dates many share: ties broken by id
            observation["effectiveDateTime"] = f"202{rng.randrange(4)}-0{rng.randrange(1, 4)}-01"
        found.append(observation)
    return found


def _rows(store: Store, statement: PageStatement) -> list[tuple[Any, ...]]:
    """A page's rows: its statement's, which its parts read in turn give too."""
    rows = [tuple(row) for row in store.select(statement.sql, statement.params)]
    assert [tuple(row) for row in read_page(store, statement)] == rows
    return rows


def _walk(store: Store, query: SearchQuery, by_index: bool, forward: bool) -> list[str]:
    """Every id, page by page, from the start (or back from past the end)."""
    seen: list[str] = []
    position: Position | None = None
    while True:
        statement = page_statement(query, position, query.count, by_index=by_index)
        rows = _rows(store, statement)
        more = len(rows) > query.count
        rows = rows[: query.count]
        ids = [str(row[0]) for row in rows]
        seen.extend(ids if forward else reversed(ids))
        if not more:
            return seen
        position = row_position(rows[-1], statement.key_count, forward)


def _by_values(store: Store, query: SearchQuery) -> list[str]:
    """Every id in the order the sort's values give, worked out here from
    each resource's index values (the least of them going up, the greatest
    going down; missing last; ties by id): what the sort index must agree
    with."""
    builder = SqlBuilder()
    key = query.sort[0]
    expression = builder.sort_expression(key, "c.res_type", "c.res_id")
    rows = store.select(
        f"SELECT c.res_id, {expression} FROM resource_current c WHERE c.res_type = 'Observation'",
        builder.params,
    )
    keyed = sorted((str(r[1]), str(r[0])) for r in rows if r[1] is not None)
    if key.descending:
        keyed.sort(key=lambda pair: pair[1])
        keyed.sort(key=lambda pair: pair[0], reverse=True)
    missing = sorted(str(r[0]) for r in rows if r[1] is None)
    return [res_id for _, res_id in keyed] + missing


@pytest.mark.parametrize("sort", ["-date", "date", "_lastUpdated", "-_lastUpdated"])
def test_the_sort_index_orders_pages_as_the_generic_statement(store: Store, sort: str) -> None:
    _put(store, _observations(random.Random(7), 120))
    query = parse_search("Observation", [("_sort", sort), ("_count", "7")])
    generic = _walk(store, query, by_index=False, forward=True)
    assert len(generic) == 120
    assert generic == _by_values(store, query)
    assert _walk(store, query, by_index=True, forward=True) == generic
    # Back from the end, position by position, as ``previous`` links go.
    last = page_statement(query, None, 1000)
    rows = store.select(last.sql, last.params)
    end = row_position(rows[-1], last.key_count, False)
    for by_index in (False, True):
        back: list[str] = [str(rows[-1][0])]
        position: Position | None = end
        while position is not None:
            statement = page_statement(query, position, 7, by_index=by_index)
            page = _rows(store, statement)
            back.extend(str(row[0]) for row in page[:7])
            position = row_position(page[6], 1, False) if len(page) > 7 else None
        assert list(reversed(back)) == generic, by_index


def test_postgres_reads_the_sort_index_in_order(store: Store) -> None:
    if "postgres" not in type(store).__name__.lower():
        pytest.skip("the plan checked is PostgreSQL's")
    _put(store, _observations(random.Random(3), 3000))
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        for sort, index in (("-date", "search_sort_desc"), ("date", "search_sort_asc")):
            query = parse_search("Observation", [("_sort", sort), ("_count", "20")])
            statement = page_statement(query, None, 20, by_index=True)
            plan = "\n".join(
                str(row[0])
                for row in conn.execute(
                    "EXPLAIN " + statement.sql.replace("?", "%s"), statement.params
                )
            )
            assert index in plan, plan
            # The rows with a key come from the index in order: at most ties
            # are sorted (an incremental sort on the presorted key, going
            # down), never every match.
            keyed = plan.split("Subquery Scan on p0")[1].split("Subquery Scan on p1")[0]
            full_sorts = [
                line for line in keyed.splitlines() if line.strip().startswith("->  Sort ")
            ]
            assert not full_sorts, plan
            # The rows without a key come from an index of them alone, not
            # from every row of the type filtered down to them.
            keyless = plan.split("Subquery Scan on p1")[1]
            assert "search_sort_missing" in keyless, plan


def test_sqlite_reads_ties_in_the_index_order(store: Store) -> None:
    """An ascending sort's ties (a date many share) come in the index's own
    order, by id: SQLite does not sort each group of equal keys apart."""
    if "sqlite" not in type(store).__name__.lower():
        pytest.skip("the plan checked is SQLite's")
    _put(store, _observations(random.Random(4), 300))
    query = parse_search("Observation", [("_sort", "date"), ("_count", "20")])
    # As a consent-filtered page reads it: each row tested as it is read.
    council = Scope(Requester(org_ods="E09000007", kind="council", purpose="TREAT"), NOW)
    statement = page_statement(query, None, 20, council, by_index=True)
    plan = [
        str(row[-1])
        for row in store.select("EXPLAIN QUERY PLAN " + statement.sql, statement.params)
    ]
    # The rows with a key: read from the index over the key, in its order
    # (no sort of them before they are merged with the keyless rows).
    keyed = plan[: plan.index("SCAN p0")]
    assert any("search_sort_asc" in step and "asc_key>?" in step for step in keyed), plan
    assert not any("B-TREE" in step for step in keyed), plan


def _people_and_their_observations(cared_for: int, others: int) -> list[dict[str, Any]]:
    """Patients (the first ``cared_for`` registered with practice F1, the
    rest elsewhere), each with six Observations."""
    rng = random.Random(11)
    found: list[dict[str, Any]] = []
    for n in range(cared_for + others):
        practice = "F1" if n < cared_for else "F2"
        found.append(
            {
                "resourceType": "Patient",
                "id": f"person-{n}",
                "generalPractitioner": [{"identifier": {"system": ODS_SYSTEM, "value": practice}}],
            }
        )
        for k, observation in enumerate(_observations(rng, 6)):
            observation["id"] = f"obs-{n}-{k}"
            observation["subject"] = {"reference": f"Patient/person-{n}"}
            found.append(observation)
    return found


ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"


def test_a_page_for_few_people_reads_their_sort_keys_alone(store: Store) -> None:
    """A practice caring for few people: its sorted page is taken from its
    people's sort keys, read person by person from the index of them
    (``search_sort_person``); only the page's rows are then fetched, where
    every record of theirs was read and its key found."""
    _put(store, _people_and_their_observations(cared_for=12, others=600))
    practice = Scope(Requester(org_ods="F1", kind="gp-practice", purpose="TREAT"), NOW)
    query = parse_search("Observation", [("_sort", "-date"), ("_count", "20")])
    statement = page_statement(query, None, 20, practice)
    rows = store.select(statement.sql, statement.params)
    assert len(rows) == 21
    assert {str(row[0]).startswith("obs-") for row in rows} == {True}
    if "sqlite" in type(store).__name__.lower():
        plan = [
            str(row[-1])
            for row in store.select("EXPLAIN QUERY PLAN " + statement.sql, statement.params)
        ]
        assert any("COVERING INDEX search_sort_person" in step for step in plan), plan
        return
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        explained = conn.execute(
            "EXPLAIN ANALYZE " + statement.sql.replace("?", "%s"), statement.params
        )
        plan = "\n".join(str(row[0]) for row in explained)
    assert "search_sort_person" in plan, plan
    fetched = [
        line for line in plan.splitlines() if "on resource_current " in line and "actual" in line
    ]
    assert fetched, plan
    for line in fetched:  # the page's rows, not each of the 72 records of its people
        loops = int(line.rsplit("loops=", 1)[1].rstrip(")"))
        rows_each = int(line.split("rows=")[-1].split()[0])
        assert loops * rows_each <= 21, plan


def test_postgres_plans_search_statements_as_the_short_reads_they_are(store: Store) -> None:
    """No JIT compilation on the store's connections (a page is costed as the
    whole scan it stops early in), and statistics of each index table's types
    and parameters together (PostgreSQL otherwise takes them as independent
    and misjudges how many rows a type's parameter has)."""
    if "postgres" not in type(store).__name__.lower():
        pytest.skip("PostgreSQL's settings")
    assert store.select("SHOW jit", []) == [("off",)]
    kinds = {str(row[0]) for row in store.select("SELECT stxname FROM pg_statistic_ext", [])}
    assert {"search_sort_kinds", "search_token_kinds", "search_reference_kinds"} <= kinds
    # And live resources by type, so that counting a type's candidates up
    # to a bound reads an index, not the table from its start.
    live = store.select(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'resource_current_live'", []
    )
    assert live and "WHERE (NOT deleted)" in str(live[0][0])
