"""A search whose criteria are resolved to many ids (a ``_has`` matching
hundreds of resources) answers on each store, rather than building an SQL
expression deeper than SQLite takes."""

from __future__ import annotations

from consent.model import Requester
from gateway import fhirjson
from gateway.access.control import AccessControl
from gateway.access.index import entries
from gateway.interactions import search as searches
from gateway.search.query import parse_search
from gateway.store import Store, StoredVersion

PEOPLE = 700  # past SQLite's expression depth of 1,000 for an OR per id


def test_a_has_reaching_hundreds_of_resources_answers(store: Store) -> None:
    with store.unit_of_work() as uow:
        for n in range(PEOPLE):
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
            ):
                uow.append(
                    StoredVersion(
                        resource["resourceType"],
                        resource["id"],
                        1,
                        "2026-01-01T00:00:00.000000Z",
                        "PUT",
                        fhirjson.dumps(resource),
                    ),
                    entries(resource),
                )
    control = AccessControl(store, Requester("A1", "gp-practice", "TREAT"))
    query = parse_search("Patient", [("_has:Observation:subject:status", "final")])
    result = searches.search(
        store, query, visible=control.visible, includable=bool, prefilter=control.scope
    )
    assert result.total == PEOPLE
    assert len(result.matches) == query.count
