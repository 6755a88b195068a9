"""Searches and decisions over broad or odd data answer on each store: a
search whose criteria are resolved to many ids (a ``_has`` matching
hundreds of resources) rather than building an SQL expression deeper than
SQLite takes; a Provenance naming a version no store can hold is refused,
not a crash."""

from __future__ import annotations

from consent.model import Requester
from gateway import fhirjson
from gateway.access.control import AccessControl
from gateway.access.index import entries
from gateway.interactions import search as searches
from gateway.search.query import parse_search
from gateway.store import Store, StoredVersion
from tests.support.indexed import put_indexed

PEOPLE = 700  # past SQLite's expression depth of 1,000 for an OR per id


def test_a_has_reaching_hundreds_of_resources_answers(store: Store) -> None:
    people = (
        resource
        for n in range(PEOPLE)
        for resource in (
            {"resourceType": "Patient", "id": f"p{n}", "meta": {"source": "urn:ods:A1"}},
            {
                "resourceType": "Observation",
                "id": f"o{n}",
                "meta": {"source": "urn:ods:A1"},
                "status": "final",
                "code": {"text": "pulse"},
                "subject": {"reference": f"Patient/p{n}"},
            },
        )
    )
    put_indexed(store, people)
    control = AccessControl(store, Requester("A1", "gp-practice", "TREAT"))
    query = parse_search("Patient", [("_has:Observation:subject:status", "final")])
    result = searches.search(
        store, query, visible=control.visible, includable=bool, prefilter=control.scope
    )
    assert len(result.matches) == query.count and result.next is not None
    assert result.total is None  # more than a search decides to count them


def test_a_provenance_naming_a_version_past_64_bits_is_refused(store: Store) -> None:
    provenance = {
        "resourceType": "Provenance",
        "id": "prov",
        "meta": {"source": "urn:ods:B2"},
        "target": [{"reference": "Observation/o1/_history/99999999999999999999"}],
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"who": {"display": "someone"}}],
    }
    with store.unit_of_work() as uow:
        uow.append(
            StoredVersion(
                "Provenance",
                "prov",
                1,
                "2026-01-01T00:00:00.000000Z",
                "PUT",
                fhirjson.dumps(provenance),
            ),
            entries(provenance),
        )
    found = store.read("Provenance", "prov")
    assert found is not None
    decision = AccessControl(store, Requester("A1", "gp-practice", "TREAT")).decide(found)
    assert not decision.permit and decision.rule == "provenance-target"
