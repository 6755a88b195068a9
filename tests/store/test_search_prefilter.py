"""The search pre-filter (``gateway.access.scope``) against the consent
engine, in randomised worlds on each store: people with care relationships
stated every way the rules read them (a GP by ODS code or through an
Organization, episodes, encounters in progress, recent, old or with an end
that cannot be read), records named by id, by identifier or by no one,
labelled R or restricted, authored by each organisation, no one's records,
and requesters of every kind and purpose.

For each requester the pre-filter must keep every resource the engine
would show (it only ever narrows what is read), and a search through it
must show exactly what the engine shows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent.model import ACT_CODE, CONFIDENTIALITY, Requester
from gateway import fhirjson
from gateway.access.control import AccessControl
from gateway.access.index import entries, stamped
from gateway.access.people import load_people, load_person
from gateway.access.scope import Scope
from gateway.interactions import search as searches
from gateway.search.paging import page_statement, scan
from gateway.search.query import SearchQuery, parse_search, parse_system_search
from gateway.store import Store, StoredVersion
from mappings.identity import NHS_NUMBER_SYSTEM

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CODES = ("A1", "B2", "C3", "D4")
KINDS = ("gp-practice", "council", "care-home", "hospital", "ambulance", "auditor")
PURPOSES = ("TREAT", "ETREAT", "HCOMPL")
TYPES = (
    "Patient",
    "Observation",
    "Condition",
    "EpisodeOfCare",
    "Encounter",
    "Organization",
    "Consent",
)
SEEDS = range(5)


class _World:
    def __init__(self, store: Store, rng: random.Random) -> None:
        self.store = store
        self.rng = rng
        self.serial = 0
        self.nhs: dict[str, str] = {}

    def put(self, resource: dict[str, Any], author: str | None = None) -> None:
        self.serial += 1
        rng = self.rng
        resource.setdefault("id", f"{resource['resourceType'].lower()}-{self.serial}")
        meta: dict[str, Any] = {}
        source = author or rng.choice((*CODES, "Z9"))
        if rng.random() < 0.9:
            meta["source"] = f"urn:ods:{source}"
        security = []
        if rng.random() < 0.1:
            security.append({"system": CONFIDENTIALITY, "code": "R"})
        if rng.random() < 0.15:
            security.append({"system": ACT_CODE, "code": rng.choice(("PSY", "SEX"))})
        if security:
            meta["security"] = security
        resource["meta"] = meta
        # Written over a day, some at the same moment: sorts by when see ties.
        last_updated = f"2026-11-01T{rng.randrange(24):02d}:00:00.000000Z"
        with self.store.unit_of_work() as uow:
            uow.append(
                StoredVersion(
                    res_type=resource["resourceType"],
                    res_id=resource["id"],
                    version=1,
                    last_updated=last_updated,
                    method="PUT",
                    content=fhirjson.dumps(resource),
                ),
                stamped(entries(resource), last_updated),
            )

    def organisation_reference(self, ways: int = 4) -> dict[str, Any]:
        """An organisation named each way a Reference can name one (the
        first ``ways`` of: by ODS code, by an Organization, by one that is
        not there, a Practitioner)."""
        rng = self.rng
        code = rng.choice(CODES)
        way = rng.randrange(ways)
        if way == 0:
            return {"identifier": {"system": ODS, "value": rng.choice((code, code.lower()))}}
        if way == 1:
            return {"reference": f"Organization/org-{code}"}
        if way == 2:
            return {"reference": "Organization/org-missing"}
        return {"reference": "Practitioner/someone"}

    def consent(self, person: str) -> dict[str, Any]:
        """A privacy Consent of the person: refusing some organisations, or
        everyone, for a while or for good; with exceptions, or for some
        purposes or kinds of record only; or one that cannot be applied."""
        rng = self.rng
        provision: dict[str, Any] = {"type": rng.choice(("deny", "deny", "permit"))}
        if rng.random() < 0.6:
            role = {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "code": "IRCP",
            }
            provision["actor"] = [
                {"role": {"coding": [role]}, "reference": self.organisation_reference(2)}
                for _ in range(rng.randrange(1, 3))
            ]
        if rng.random() < 0.4:
            provision["period"] = rng.choice(
                (
                    {"start": "2026-01-01", "end": "2026-12-31"},
                    {"end": "2026-11-01"},
                    {"start": "2027-01-01"},
                )
            )
        if rng.random() < 0.3:
            provision["purpose"] = [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                    "code": rng.choice(("TREAT", "ETREAT")),
                }
            ]
        if rng.random() < 0.15:
            provision["class"] = [
                {"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}
            ]
        if rng.random() < 0.25:
            provision["provision"] = [{"type": "permit", "class": provision.get("class", [])}]
        if rng.random() < 0.05:
            provision["somethingUnknown"] = True  # cannot be applied: withholds
        return {
            "resourceType": "Consent",
            "status": rng.choice(("active", "active", "inactive")),
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "patient-privacy",
                    }
                ]
            },
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{person}"},
            "provision": provision,
        }

    def build(self) -> None:
        rng = self.rng
        for code in CODES:
            identifiers = [{"system": ODS, "value": rng.choice((code, code.lower()))}]
            if rng.random() < 0.3:
                identifiers.insert(0, {"system": ODS, "value": rng.choice(CODES)})
            self.put(
                {"resourceType": "Organization", "id": f"org-{code}", "identifier": identifiers}
            )
        people = []
        for n in range(10):
            patient_id = f"person-{n}"
            nhs = f"99900000{n:02d}"
            self.nhs[patient_id] = nhs
            patient: dict[str, Any] = {
                "resourceType": "Patient",
                "id": patient_id,
                "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
            }
            if rng.random() < 0.7:
                patient["generalPractitioner"] = [self.organisation_reference()]
            self.put(patient)
            people.append(patient_id)
        for _ in range(12):
            self.put(
                {
                    "resourceType": "EpisodeOfCare",
                    "status": rng.choice(("active", "active", "finished")),
                    "patient": {"reference": f"Patient/{rng.choice(people)}"},
                    "managingOrganization": self.organisation_reference(),
                }
            )
        for _ in range(12):
            end = rng.choice(
                (
                    (NOW - timedelta(days=5)).isoformat(),
                    (NOW - timedelta(days=29, hours=23)).isoformat(),
                    (NOW - timedelta(days=60)).isoformat(),
                    "2026-11",
                    "2026",
                    None,
                )
            )
            encounter: dict[str, Any] = {
                "resourceType": "Encounter",
                "status": rng.choice(("in-progress", "finished", "finished", "planned")),
                "subject": {"reference": f"Patient/{rng.choice(people)}"},
                "serviceProvider": self.organisation_reference(),
            }
            if end is not None:
                encounter["period"] = {"end": end}
            self.put(encounter)
        for _ in range(40):
            res_type = rng.choice(("Observation", "Condition"))
            record: dict[str, Any] = {"resourceType": res_type, "code": {"text": "a finding"}}
            if res_type == "Observation":
                record["status"] = "final"
            way = rng.randrange(6)
            person = rng.choice(people)
            if way <= 2:
                record["subject"] = {"reference": f"Patient/{person}"}
            elif way == 3:
                record["subject"] = {
                    "identifier": {"system": NHS_NUMBER_SYSTEM, "value": self.nhs[person]}
                }
            elif way == 4:
                record["subject"] = {
                    "identifier": {"system": NHS_NUMBER_SYSTEM, "value": "9990009999"}
                }
            self.put(record)
        for _ in range(16):
            self.put(self.consent(rng.choice(people)))
        # No one's records, and ids an organisation assigned itself.
        for _ in range(4):
            self.put({"resourceType": "Organization", "name": "a directory entry"})
        code = rng.choice(CODES)
        self.put(
            {
                "resourceType": "Condition",
                "id": f"{code}-own",
                "subject": {"reference": "Patient/person-0"},
            },
            author="Z9",
        )


def _requesters() -> list[Requester]:
    return [
        Requester(org_ods=org, kind=kind, purpose=purpose)
        for org in ("A1", "B2", "Z9")
        for kind in KINDS
        for purpose in PURPOSES
    ]


def _everything(store: Store, query: SearchQuery) -> list[StoredVersion]:
    return list(scan(store, query, lambda version: True))


@pytest.mark.parametrize("seed", SEEDS)
def test_the_prefilter_keeps_all_the_engine_shows_and_search_shows_just_that(
    store: Store, seed: int
) -> None:
    world = _World(store, random.Random(seed))
    world.build()
    queries = [parse_search(t, [("_count", "1000")]) for t in TYPES]
    queries.append(parse_system_search([("_type", "Observation,Condition,Patient")]))
    every = {id(q): _everything(store, q) for q in queries}
    shown_somewhere = 0
    for requester in _requesters():
        control = AccessControl(store, requester, now=NOW)
        scope = Scope(requester, NOW)
        for query in queries:
            shown = {(v.res_type, v.res_id) for v in every[id(query)] if control.visible(v)}
            shown_somewhere += len(shown)
            kept = {
                (v.res_type, v.res_id)
                for v in scan(store, query, lambda version: True, prefilter=scope)
            }
            assert shown <= kept, (requester, query.types or query.res_type, shown - kept)
            if not query.types:  # as a page read in the sort index's order tests each row
                ordered = parse_search(query.res_type, [("_sort", "-_lastUpdated")])
                probed = page_statement(ordered, None, 1000, scope, by_index=True)
                assert probed.sql.count("?") == len(probed.params)
                kept_in_order = {
                    (str(row[-1]), str(row[0])) for row in store.select(probed.sql, probed.params)
                }
                assert shown <= kept_in_order, (requester, query.res_type, shown - kept_in_order)
                # And read person by person (a requester shown records for
                # whose they are), page after page, in order.
                by_person = page_statement(ordered, None, 1000, scope)
                assert by_person.sql.count("?") == len(by_person.params)
                rows = store.select(by_person.sql, by_person.params)
                assert shown <= {(str(row[-1]), str(row[0])) for row in rows}
                _assert_pages_show_in_order(store, query.res_type, control, scope, shown)
                # And tested one by one as read in the sort index's order.
                _assert_pages_show_in_order(store, query.res_type, control, _Broad(scope), shown)
            statement = page_statement(query, None, 1000, scope)
            assert statement.sql.count("?") == len(statement.params)
            result = searches.search(
                store, query, visible=control.visible, includable=bool, prefilter=scope
            )
            found = {(v.res_type, v.res_id) for v in result.matches}
            assert found == shown, (requester, query.types or query.res_type)
            # The same search with the pre-filter as tests of each
            # candidate (a requester judged broad), with a total.
            probed_result = searches.search(
                store, query, visible=control.visible, includable=bool, prefilter=_Broad(scope)
            )
            assert {(v.res_type, v.res_id) for v in probed_result.matches} == shown
            assert probed_result.total in (len(shown), None)
    assert shown_somewhere > 0  # the worlds show something to someone


def _assert_pages_show_in_order(
    store: Store,
    res_type: str,
    control: AccessControl,
    scope: Scope | _Broad,
    shown: set[tuple[str, str]],
) -> None:
    """A sorted search, followed page by page both ways, shows exactly
    ``shown``, newest first (ties by id), with a true total or none."""
    query = parse_search(res_type, [("_sort", "-_lastUpdated"), ("_count", "3")])
    pages: list[list[StoredVersion]] = []
    while True:
        result = searches.search(
            store, query, visible=control.visible, includable=bool, prefilter=scope
        )
        assert result.total in (len(shown), None)
        pages.append(result.matches)
        if result.next is None:
            break
        cursor = [("_cursor", result.next.encode())]
        query = parse_search(res_type, [("_sort", "-_lastUpdated"), ("_count", "3"), *cursor])
    found = [v for page in pages for v in page]
    assert {(v.res_type, v.res_id) for v in found} == shown
    assert len(found) == len(shown)
    order = [(v.last_updated, v.res_id) for v in found]
    assert order == sorted(order, key=lambda o: (_reversed(o[0]), o[1]))
    if len(pages) > 1 and result.previous is not None:  # and back from the last page
        back = [("_cursor", result.previous.encode())]
        query = parse_search(res_type, [("_sort", "-_lastUpdated"), ("_count", "3"), *back])
        previous = searches.search(
            store, query, visible=control.visible, includable=bool, prefilter=scope
        )
        assert [v.res_id for v in previous.matches] == [v.res_id for v in pages[-2]]


def _reversed(text: str) -> tuple[int, ...]:
    """A key sorting ``text`` the other way."""
    return tuple(-ord(ch) for ch in text)


class _Broad:
    """A scope whose requester is judged broad, whatever its population:
    its searches test candidates one by one."""

    def __init__(self, scope: Scope) -> None:
        self._scope = scope

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return self._scope(*args, **kwargs)

    def broad(self, reader: object) -> bool:
        return True

    def people(self, *args: Any) -> str | None:
        return self._scope.people(*args)

    def records(self, *args: Any) -> str | None:
        return self._scope.records(*args)


def test_the_prefilter_leaves_out_what_a_requester_has_no_relationship_with(
    store: Store,
) -> None:
    """A council with no one in its care reads none of the records: the
    pre-filter is what makes a search cost the requester's population."""
    world = _World(store, random.Random(0))
    world.build()
    query = parse_search("Observation", [("_count", "1000")])
    stranger = Scope(Requester(org_ods="Q0", kind="council", purpose="TREAT"), NOW)
    kept = list(scan(store, query, lambda version: True, prefilter=stranger))
    assert all(
        fhirjson.loads(v.content or b"{}").get("subject", {}).get("identifier") is not None
        for v in kept
    ), "only records naming their person by identifier, resolved at decision time"


@pytest.mark.parametrize("seed", SEEDS)
def test_people_read_together_are_the_people_read_one_by_one(store: Store, seed: int) -> None:
    """A page's people are read at once (``AccessControl.prefetch``): each
    must be exactly what reading them alone gives, Consents in order."""
    world = _World(store, random.Random(seed))
    world.build()
    ids = [*world.nhs, "not-on-file"]
    together = load_people(store, ids, NOW)
    assert together == {patient_id: load_person(store, patient_id, NOW) for patient_id in ids}
    assert any(person is not None and person.consents for person in together.values())
