"""Conditional-write criteria: unknown parameters are errors, never ignored."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidRequest
from gateway.search.criteria import parse_criteria
from gateway.search.index import index_entries
from gateway.search.values import TokenValue
from gateway.store import Criteria, IndexEntry, TokenMatch


def test_identifier_with_system_code_or_both() -> None:
    criteria = parse_criteria("Patient", "identifier=https://nhs|900&identifier=|x,y")
    assert criteria == Criteria(
        token_groups=(
            (TokenMatch("identifier", "900", "https://nhs"),),
            (TokenMatch("identifier", "x", ""), TokenMatch("identifier", "y", None)),
        )
    )


def test_ids_intersect_across_repeats() -> None:
    assert parse_criteria("Patient", "_id=a,b&_id=b,c").ids == frozenset({"b"})


@pytest.mark.parametrize("query", ["", "name=Smith", "identifier=", "identifier=sys|", "_id="])
def test_unknown_empty_or_incomplete_parameters_are_rejected(query: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_criteria("Patient", query)


def test_identifiers_are_indexed_as_tokens() -> None:
    resource = {
        "resourceType": "Patient",
        "identifier": [
            {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"},
            {"value": "H123"},
            {"system": "https://x"},
        ],
    }
    identifiers = {e for e in index_entries(resource) if e.param == "identifier"}
    assert identifiers == {
        IndexEntry("identifier", TokenValue("https://fhir.nhs.uk/Id/nhs-number", "9000000009")),
        IndexEntry("identifier", TokenValue(None, "H123")),
        # an identifier with a system and no value still answers "system|"
        IndexEntry("identifier", TokenValue("https://x", None)),
    }
