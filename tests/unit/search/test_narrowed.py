"""Which searches name the few records they may match by whose they are: those
a requester's search tests one candidate at a time, rather than first reading
everything the requester may see."""

from __future__ import annotations

import pytest

from gateway.interactions.search import _names_few
from gateway.search.query import parse_search


@pytest.mark.parametrize(
    "params",
    [
        [("subject", "Patient/p1")],
        [("subject:Patient", "p1")],
        [("patient", "p1"), ("code", "http://loinc.org|8867-4")],
        [("subject", "Patient/p1,Patient/p2")],
    ],
)
def test_a_reference_by_id_names_few(params: list[tuple[str, str]]) -> None:
    assert _names_few(parse_search("Observation", params))


@pytest.mark.parametrize(
    "params",
    [
        [("code", "http://loinc.org|8867-4")],
        [("subject:missing", "false")],
        [("subject:identifier", "x|1")],
        [("subject:Patient.name", "Smith")],
    ],
)
def test_other_searches_do_not(params: list[tuple[str, str]]) -> None:
    assert not _names_few(parse_search("Observation", params))
