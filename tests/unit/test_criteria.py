"""Index entries of a resource."""

from __future__ import annotations

from gateway.search.index import index_entries
from gateway.store import IndexEntry
from gateway.store.values import SortValue, TokenValue


def test_identifiers_are_indexed_as_tokens() -> None:
    resource = {
        "resourceType": "Patient",
        "identifier": [
            {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000042"},
            {"value": "H123"},
            {"system": "https://x"},
        ],
    }
    identifiers = {
        e
        for e in index_entries(resource)
        if e.param == "identifier" and isinstance(e.value, TokenValue)
    }
    assert identifiers == {
        IndexEntry("identifier", TokenValue("https://fhir.nhs.uk/Id/nhs-number", "9990000042")),
        IndexEntry("identifier", TokenValue(None, "H123")),
        # an identifier with a system and no value still answers "system|"
        IndexEntry("identifier", TokenValue("https://x", None)),
    }
    # and sorted by the least and greatest of their values
    assert IndexEntry("identifier", SortValue("9990000042", "H123")) in index_entries(resource)
