"""A search names its values in lists bound at a few lengths, so that the
statement texts a workload makes are few: each distinct text is a statement
SQLite prepares and every connection caches (``gateway.search.sql.listed_length``).
``$summary``'s Provenance search names every record of the person, and made
a new text for nearly every person: the statement caches churned, and the
soak's workers grew (issue 30)."""

from __future__ import annotations

import pytest

from gateway.search.paging import page_statement
from gateway.search.query import parse_search
from gateway.search.sql import listed_length

_TYPES = ("Condition", "Observation", "MedicationStatement", "Encounter")


def _targets(n: int) -> str:
    return ",".join(f"{_TYPES[i % len(_TYPES)]}/r{i}" for i in range(n))


def test_lists_of_hundreds_of_lengths_make_a_few_statements() -> None:
    texts = {
        page_statement(
            parse_search(
                "Provenance", [("target", _targets(n)), ("_count", "1000")], bounded=False
            ),
            None,
            1000,
        ).sql
        for n in range(2, 401)
    }
    # One text a length before: 399.
    assert len(texts) <= 24


@pytest.mark.parametrize("n", [2, 8, 9, 63, 64, 65, 130, 400])
def test_a_padded_list_names_the_same_values(n: int) -> None:
    statement = page_statement(
        parse_search("Provenance", [("target", _targets(n))], bounded=False), None, 100
    )
    ids = {f"r{i}" for i in range(n)}
    pairs = {f"{_TYPES[i % len(_TYPES)]}/r{i}" for i in range(n)}
    bound = set(statement.params)
    assert ids <= bound and pairs <= bound
    assert not {p for p in bound if isinstance(p, str) and p.startswith(("r", "Condition/"))} - (
        ids | pairs
    )


def test_listed_lengths() -> None:
    assert [listed_length(n) for n in (1, 2, 8, 9, 16, 17, 64, 65, 128, 129, 400)] == [
        1, 2, 8, 16, 16, 24, 64, 128, 128, 192, 448,
    ]  # fmt: skip
    assert all(n <= listed_length(n) < n + 64 for n in range(1, 2000))
