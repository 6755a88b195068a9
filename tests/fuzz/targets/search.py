"""Search URLs: ``parse_search`` (and ``parse_system_search`` for a search
across types) on the query a request carries, then the page and count
statements built from it run on an empty SQLite store, as a search request
runs them. Anything wrong with the search is ``InvalidRequest`` (a 400
naming the parameter); nothing else escapes.

An input is a URL's ``Type?query`` (no type: a search across types).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import parse_qsl

from conformance.registry import RESOURCES, TypeInteraction
from gateway.errors import InvalidRequest
from gateway.search.paging import Position, count_statement, page_statement, read_page
from gateway.search.query import parse_search, parse_system_search
from gateway.store import Store, open_store

BASE_URL = "http://testserver/fhir"


@cache
def _store() -> Store:
    """An empty, migrated SQLite store, for the statements to run on."""
    folder = tempfile.mkdtemp(prefix="fuzz-search-")
    atexit.register(shutil.rmtree, folder, True)
    store = open_store(f"sqlite:///{folder}/gateway.db")
    store.migrate()
    return store


def check(data: bytes) -> None:
    # As Starlette reads a query string: bytes as Latin-1, then %-escapes
    # as UTF-8 with replacement.
    text = data.decode("latin-1")
    res_type, _, query_string = text.partition("?")
    params = parse_qsl(query_string, keep_blank_values=True)
    lenient = res_type.endswith("!")  # Prefer: handling=lenient
    res_type = res_type.rstrip("!")
    support = RESOURCES.get(res_type)
    try:
        if not res_type:
            query = parse_system_search(params, base_url=BASE_URL, lenient=lenient)
        elif support is not None and support.supports(TypeInteraction.SEARCH_TYPE):
            query = parse_search(res_type, params, base_url=BASE_URL, lenient=lenient)
        else:
            return
        position = Position.decode(query.cursor) if query.cursor else None
        store = _store()
        for by_index in (False, True):
            for dialect in ("sqlite", "postgres"):
                statement = page_statement(query, position, 20, by_index=by_index, dialect=dialect)
                if dialect == "sqlite":
                    read_page(store, statement)
        sql, values = count_statement(query, at_most=100)
        store.select(sql, values)
    except InvalidRequest:
        return


SEEDS = (
    "Patient?name=smith&birthdate=ge1940-01-01&_count=10",
    "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018&_sort=-birthdate",
    "Patient?family:exact=O%27Brien&gender=female&address-postalcode=ZZ9",
    "Patient?_id=a,b,c&_lastUpdated=gt2026-01-01T00:00:00Z&_total=accurate",
    "Patient?_has:Observation:subject:code=http://loinc.org|8867-4",
    "Patient!?unknown=1&name:contains=ada",
    "Observation?value-quantity=gt70|http://unitsofmeasure.org|/min&_sort=date",
    "Observation?code-value-quantity=http://loinc.org|8867-4$gt60",
    "Observation?subject=Patient/ada&_include=Observation:subject&date=ap2026-03",
    "Observation?subject:Patient.name=ada&status=final,amended&_elements=id,code",
    "Observation?component-value-quantity=le1e3&value-quantity=ne5.5",
    "Encounter?patient=Patient/1&date=ge2026-01-01&date=lt2026-12-31&_revinclude=Provenance:target",
    "Encounter?class=http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP&_summary=count",
    "Condition?code:text=pneumonia&clinical-status=active&onset-date=eb2020",
    "MedicationRequest?authoredon=sa2026-01-01&intent=order&_include:iterate=MedicationRequest:medication",
    "Consent?patient.identifier=9990000018&_tag=http://terminology.hl7.org/CodeSystem/v3-ActCode|R",
    "Organization?identifier=https://fhir.nhs.uk/Id/ods-organization-code|F84003&name:missing=false",
    "EpisodeOfCare?status=active&_sort=-_lastUpdated&_cursor=eyJmIjp0cnVlLCJrIjpbXSwiaSI6ImEifQ",
    "Practitioner?name=okoye&_count=0",
    "?_type=Patient,Observation&_lastUpdated=ge2026-01-01&_sort=_lastUpdated",
    "?_id=abc",
    "Group?member=Patient/1&characteristic-value=gender$male",
    "AllergyIntolerance?patient=urn:uuid:5b1f0c1e-8f44-4a43-9a4a-1d1c2b3a4d5e&criticality=high",
    "Subscription?criteria=Encounter%3Frelationship%3Dresident&status=active",
)


def seeds(fixtures: Path, demo: Path) -> Iterator[bytes]:
    for url in SEEDS:
        yield url.encode()
