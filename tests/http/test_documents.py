"""``$summary`` and ``$red-bag``: one care-home resident whose records come
from all four sources, each pushed by its own system; every requester gets
the document of what it may see, and nothing else."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.validation import validate_resource
from gateway.access.scope import forget_breadth
from gateway.auth.registrations import cache_of
from gateway.auth.tokens import Purpose
from gateway.documents import assemble
from gateway.interactions import search as searches
from gateway.search.compartments import PATIENT_COMPARTMENT
from gateway.search.query import parse_search
from gateway.store import Store
from mappings.identity import mapped_id
from tests.conftest import access_token, make_client
from tests.http.test_audit import entries
from tests.support.consents import privacy_consent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NHS_NUMBER = "9992345675"  # the care-home fixture's resident
HOME, GP, COUNCIL, HOSPITAL, AMBULANCE = "VM4X2", "F84003", "713", "RKE", "RRU"
OTHER_COUNCIL = "720"
RESTRICTED = {"PSY", "ETH", "SEX", "SDV"}
LOINC = "http://loinc.org"

# A hospital admission of the resident, with a depressive episode (ICD-10
# F32: mental health, labelled PSY on the way in) and a penicillin allergy.
ADMISSION = "\r".join(
    [
        "MSH|^~\\&|PAS|RKE|GATEWAY|LONDON|20261120093000||ADT^A01|DOC0001|P|2.4|||AL|NE|GBR",
        "EVN|A01|20261120093000",
        f"PID|1||{NHS_NUMBER}^^^NHS^NH~H765432^^^RKE^MR||Maddox^Winifred^Joan^^Mrs||19341102|2",
        "PV1|1|I|W12^B^3^RKE|21||||||||||19|||||V000999|||||||||||||||||||||||||20261120093000",
        "AL1|1|DA|PEN^Penicillin|SV|Rash",
        "DG1|1||F32.1^Moderate depressive episode^I10|||A",
        "DG1|2||J18.9^Pneumonia, unspecified^I10|||A",
    ]
)


class Resident:
    """The resident's records pushed by the home, the GP, the council and the
    hospital; tokens for them and for an ambulance crew and a council with no
    relationship."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.tokens = {
            "home": access_token(store, client_id="home", kind="care-home", org=HOME),
            "gp": access_token(store, client_id="gp", kind="gp-practice", org=GP),
            "council": access_token(store, client_id="council", kind="council", org=COUNCIL),
            "other-council": access_token(
                store, client_id="other-council", kind="council", org=OTHER_COUNCIL
            ),
            "hospital": access_token(store, client_id="hospital", kind="hospital", org=HOSPITAL),
            "crew": access_token(
                store,
                client_id="crew",
                kind="ambulance",
                org=AMBULANCE,
                purpose=Purpose.ETREAT,
                reason="999 call: resident unwell at the home",
            ),
        }
        self.api = make_client(store, token=None)
        self.api.__enter__()
        home = (FIXTURES / "carehome" / "winifred-maddox.json").read_text()
        self.push("home", "care-home", home.encode())
        cld = (FIXTURES / "cld" / "return.csv").read_text()
        cld = cld.replace("999 000 0018", NHS_NUMBER).replace("9990000018", NHS_NUMBER)
        self.push("council", "cld", cld.encode())
        self.push("hospital", "hl7v2", ADMISSION.encode("latin-1"))
        # The GP's record last: it writes the merged Patient, so the person's
        # demographics are the GP's own record (what survives a dissent).
        gp = (FIXTURES / "gpconnect" / "structured-rich.json").read_text()
        self.push("gp", "gp-connect", gp.replace("9990000042", NHS_NUMBER).encode())
        self.patient = mapped_id("NHS", "Patient", NHS_NUMBER)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def push(self, who: str, fmt: str, body: bytes) -> None:
        answer = self.api.post(
            f"/fhir/$ingest?format={fmt}", content=body, headers=self.headers(who)
        )
        assert answer.status_code == 200, answer.text
        summary = {
            part["name"]: part["valueInteger"]
            for p in answer.json()["parameter"]
            if p["name"] == "summary"
            for part in p["part"]
        }
        assert summary["rejected"] == 0, answer.text

    def get(self, who: str, url: str, **kwargs: Any) -> Any:
        return self.api.get(
            url, headers={**self.headers(who), **kwargs.pop("headers", {})}, **kwargs
        )

    def document(self, who: str, operation: str) -> dict[str, Any]:
        answer = self.get(who, f"/fhir/Patient/{self.patient}/${operation}")
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        return document


@pytest.fixture
def resident(store: Store) -> Iterator[Resident]:
    built = Resident(store)
    yield built
    built.api.__exit__(None, None, None)


# -- what every document is -------------------------------------------------------------


def _resources(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in document["entry"]]


def _sections(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    composition = document["entry"][0]["resource"]
    return {s["title"]: s for s in composition["section"]}


def _section_resources(document: dict[str, Any], title: str) -> list[dict[str, Any]]:
    by_url = {entry["fullUrl"]: entry["resource"] for entry in document["entry"]}
    base = document["entry"][1]["fullUrl"].rsplit("/Patient/", 1)[0]
    section = _sections(document)[title]
    return [by_url[f"{base}/{e['reference']}"] for e in section.get("entry", [])]


def _labels(resource: dict[str, Any]) -> set[str]:
    return {label["code"] for label in (resource.get("meta") or {}).get("security", [])}


def _sources(document: dict[str, Any]) -> set[str]:
    return {
        str((r.get("meta") or {}).get("source", "")).removeprefix("urn:ods:")
        for r in _resources(document)
        if r["resourceType"] not in ("Composition", "Device", "Provenance")
    }


def check_document(document: dict[str, Any]) -> None:
    """A valid R4 document: a document Bundle whose first entry is a
    Composition with narratives, every reference of the Composition
    resolving inside the Bundle, and each entry's Provenance in it."""
    assert validate_resource(document, "Bundle") == []
    assert document["type"] == "document"
    assert document["identifier"]["value"].startswith("urn:uuid:")
    assert document["timestamp"]
    composition = document["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml"')
    urls = {entry["fullUrl"] for entry in document["entry"]}
    base = document["entry"][1]["fullUrl"].rsplit("/Patient/", 1)[0]

    def resolves(reference: str) -> bool:
        return reference in urls or f"{base}/{reference}" in urls

    assert resolves(composition["subject"]["reference"])
    assert all(resolves(a["reference"]) for a in composition["author"])
    for section in composition["section"]:
        assert section["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml"')
        # Empty, and saying why; or with entries; or (key contacts) with what
        # the narrative draws from the Patient itself (its registered GP).
        assert section.get("entry") or section.get("emptyReason") or "<td" in section["text"]["div"]
        for entry in section.get("entry", []):
            assert resolves(entry["reference"]), entry
        reason = (section.get("emptyReason") or {}).get("coding", [{}])[0].get("code")
        assert reason != "withheld"
    targets = {
        target["reference"].split("/_history/")[0]
        for r in _resources(document)
        if r["resourceType"] == "Provenance"
        for target in r["target"]
    }
    for section in composition["section"]:
        for entry in section.get("entry", []):
            assert entry["reference"] in targets, f"no Provenance for {entry['reference']}"
    assert document["signature"]["sigFormat"] == "application/jose"


# -- the tests ------------------------------------------------------------------------


def test_the_crew_gets_the_red_bag_in_an_emergency_without_restricted_data(
    resident: Resident,
) -> None:
    document = resident.document("crew", "red-bag")
    check_document(document)
    composition = document["entry"][0]["resource"]
    assert composition["type"]["coding"][0]["code"] == "18761-7"
    sections = _sections(document)
    # What not to do comes first: the DNACPR decision.
    assert next(iter(sections)) == "Advance decisions"
    decisions = _section_resources(document, "Advance decisions")
    assert any(
        r["resourceType"] == "Flag" and r["code"]["coding"][0]["code"] == "304253006"
        for r in decisions
    )
    # Every part of the Red Bag is there, filled from the home's record.
    for title in ("About me", "Medication", "Allergies and intolerances", "Belongings and aids"):
        assert sections[title].get("entry"), title
    medication = _section_resources(document, "Medication")
    assert {r["resourceType"] for r in medication} >= {
        "MedicationStatement",
        "MedicationAdministration",
    }
    assert "Sent with the resident" in sections["Belongings and aids"]["text"]["div"]
    # The hospital's pneumonia is there; its mental health diagnosis is not.
    problems = [r["code"].get("text", "") for r in _section_resources(document, "Problems")]
    assert any("Pneumonia" in text for text in problems)
    assert not any(_labels(r) & RESTRICTED for r in _resources(document))
    assert "depressive" not in json.dumps(document).lower()

    (audited,) = [e for e in entries(resident.store) if e["client_id"] == "crew"]
    assert audited["emergency"] and audited["patient_id"] == resident.patient
    (sent,) = [
        entity for entity in audited["event"]["entity"] if entity.get("role", {}).get("code") == "3"
    ]
    assert sent["what"]["identifier"]["value"] == document["identifier"]["value"]
    listed = {d["valueString"].split("/_history/")[0] for d in sent["detail"]}
    in_document = {  # all but the Composition and the gateway (a Device with no id)
        f"{r['resourceType']}/{r['id']}"
        for r in _resources(document)
        if r["resourceType"] != "Composition" and "id" in r
    }
    assert listed == in_document


def test_the_gp_gets_the_summary_of_everything_its_rules_allow(resident: Resident) -> None:
    document = resident.document("gp", "summary")
    check_document(document)
    composition = document["entry"][0]["resource"]
    assert composition["type"]["coding"][0] == {
        "system": LOINC,
        "code": "60591-5",
        "display": "Patient summary Document",
    }
    sections = _sections(document)
    # IPS's required sections, then what a joined-up record adds.
    assert list(sections)[:3] == ["Allergies and intolerances", "Medication", "Problems"]
    assert {"Social care", "Care team and key contacts", "Care home"} <= set(sections)
    assert _sources(document) == {HOME, GP, COUNCIL, HOSPITAL}
    assert not any(_labels(r) & RESTRICTED for r in _resources(document))
    social = _section_resources(document, "Social care")
    assert {r["resourceType"] for r in social} >= {"EpisodeOfCare", "Task"}
    # Where each fact came from is in the narrative.
    assert "From" in sections["Social care"]["text"]["div"]
    # The same document by NHS number.
    by_number = resident.get("gp", f"/fhir/Patient/$summary?identifier={NHS_NUMBER}")
    assert by_number.status_code == 200
    assert {e["fullUrl"] for e in by_number.json()["entry"][1:]} == {
        e["fullUrl"] for e in document["entry"][1:]
    }


def test_a_gp_headings_warnings_are_repeated_in_its_section(resident: Resident) -> None:
    """The GP system warned that problems were left out as confidential and
    that medication items await filing: whoever reads those sections is
    told, in the GP system's words, not only whoever opens the GP's Lists."""
    sections = _sections(resident.document("gp", "summary"))
    problems = sections["Problems"]["text"]["div"]
    assert "Problems may be incomplete" in problems and "Confidential Items" in problems
    assert "Items excluded due to confidentiality" in problems
    medication = sections["Medication"]["text"]["div"]
    assert "Data Awaiting Filing" in medication
    assert "Confidential Items" not in medication
    assert "may be incomplete" not in sections["Allergies and intolerances"]["text"]["div"]


def test_a_council_without_a_relationship_gets_404(resident: Resident) -> None:
    for url in (
        f"/fhir/Patient/{resident.patient}/$summary",
        f"/fhir/Patient/{resident.patient}/$red-bag",
        f"/fhir/Patient/$summary?identifier={NHS_NUMBER}",
    ):
        hidden = resident.get("other-council", url)
        assert hidden.status_code == 404, url
    unknown = resident.get("other-council", "/fhir/Patient/no-such-person/$summary")
    assert unknown.status_code == 404
    assert unknown.json()["issue"][0]["diagnostics"].replace("no-such-person", "X") == resident.get(
        "other-council", f"/fhir/Patient/{resident.patient}/$summary"
    ).json()["issue"][0]["diagnostics"].replace(resident.patient, "X")


def test_after_a_dissent_the_gp_summary_holds_only_what_the_gp_wrote(resident: Resident) -> None:
    before = resident.document("gp", "summary")
    dissent = privacy_consent(
        {"reference": f"Patient/{resident.patient}"}, {"type": "deny"}, policy="OPTOUT"
    )
    answer = resident.api.post("/fhir/Consent", json=dissent, headers=resident.headers("gp"))
    assert answer.status_code == 201, answer.text
    after = resident.document("gp", "summary")
    check_document(after)
    assert _sources(after) == {GP}
    assert len(after["entry"]) < len(before["entry"])
    # Empty sections say only that nothing is available: never "withheld".
    for section in _sections(after).values():
        if not section.get("entry") and section["title"] != "Care team and key contacts":
            assert section["emptyReason"]["coding"][0]["code"] == "unavailable"
    # The crew still gets the Red Bag: a dissent that does not name ETREAT
    # does not block emergency access.
    assert _section_resources(resident.document("crew", "red-bag"), "Advance decisions")


def test_the_red_bag_prints_as_html(resident: Resident) -> None:
    for headers, url in (
        ({"Accept": "text/html"}, f"/fhir/Patient/{resident.patient}/$red-bag"),
        ({}, f"/fhir/Patient/{resident.patient}/$red-bag?_format=html"),
    ):
        page = resident.get("crew", url, headers=headers)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "Maddox" in page.text and "999 234 5675" in page.text
        assert "<script" not in page.text.lower()
        assert "@page" in page.text


def test_bad_requests_are_answered_with_an_operation_outcome(resident: Resident) -> None:
    unknown = resident.get("gp", f"/fhir/Patient/{resident.patient}/$summary?section=all")
    assert unknown.status_code == 400
    assert unknown.json()["resourceType"] == "OperationOutcome"
    no_identifier = resident.get("gp", "/fhir/Patient/$summary")
    assert no_identifier.status_code == 400
    xml = resident.get("gp", f"/fhir/Patient/{resident.patient}/$summary?_format=xml")
    assert xml.status_code == 406
    posted = resident.api.post(
        "/fhir/Patient/$summary",
        json={
            "resourceType": "Parameters",
            "parameter": [
                {
                    "name": "identifier",
                    "valueIdentifier": {
                        "system": "https://fhir.nhs.uk/Id/nhs-number",
                        "value": NHS_NUMBER,
                    },
                }
            ],
        },
        headers={**resident.headers("gp"), "Content-Type": "application/fhir+json"},
    )
    assert posted.status_code == 200, posted.text
    no_scope = make_client(
        resident.store,
        token=access_token(
            resident.store,
            client_id="gp-obs",
            kind="gp-practice",
            org=GP,
            scopes="system/Observation.rs",
        ),
    )
    with no_scope:
        refused = no_scope.get(f"/fhir/Patient/{resident.patient}/$summary")
    assert refused.status_code == 403


def test_a_token_limited_to_some_types_gets_only_those(resident: Resident) -> None:
    limited = make_client(
        resident.store,
        token=access_token(
            resident.store,
            client_id="gp-allergies",
            kind="gp-practice",
            org=GP,
            scopes="system/Patient.rs system/AllergyIntolerance.rs",
        ),
    )
    with limited:
        answer = limited.get(f"/fhir/Patient/{resident.patient}/$summary")
    assert answer.status_code == 200, answer.text
    types = {r["resourceType"] for r in _resources(answer.json())}
    assert types == {"Composition", "Patient", "Device", "AllergyIntolerance"}


def test_a_document_reads_as_much_whatever_the_number_of_resources(
    resident: Resident, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resources a document refers to and the Provenance targets its
    consent decisions look at are read in batches, not one at a time: ten
    records more, each changed three times (thirty earlier versions that
    the Provenance found name), and the store is asked at most once more."""
    calls = _store_calls(resident.store, monkeypatch)

    def asked(who: str, operation: str) -> list[str]:
        # Each count starts cold. Caches that expire with time (an
        # organisation's breadth and the count of people on file, for a
        # minute; a client's registration, for half a second on SQLite)
        # would otherwise be warm for one count and cold for the other,
        # depending on how long the writes between the two took.
        forget_breadth(resident.store)
        cache_of(resident.store).clear()
        calls.clear()
        resident.document(who, operation)
        return sorted(calls)

    before = {who: asked(who, operation) for who, operation in _REQUESTERS}
    ids = [f"{GP}-pulse-{n}" for n in range(10)]  # the GP's own ids
    for value in range(4):
        entries = [
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": res_id,
                    "status": "final",
                    "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
                    "subject": {"reference": f"Patient/{resident.patient}"},
                    "valueQuantity": {"value": 60 + value, "unit": "/min"},
                },
                "request": {"method": "PUT", "url": f"Observation/{res_id}"},
            }
            for res_id in ids
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        answer = resident.api.post("/fhir", json=bundle, headers=resident.headers("gp"))
        assert answer.status_code == 200, answer.text
    after = {who: asked(who, operation) for who, operation in _REQUESTERS}
    for who, found in after.items():
        assert len(found) <= len(before[who]) + 1, (who, Counter(before[who]), Counter(found))
        assert "vread" not in found, (who, Counter(found))


_REQUESTERS = (("crew", "red-bag"), ("gp", "summary"), ("council", "summary"))


def _store_calls(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the store's reading methods as the request calls them
    (not those they call themselves), appended as they are called."""
    calls: list[str] = []
    inside: list[str] = []  # SQLite's read_many runs its statements through select
    for name in ("read", "vread", "read_many", "vread_many", "select"):
        method = getattr(store, name)

        def counted(*args: Any, _name: str = name, _method: Any = method, **options: Any) -> Any:
            if not inside:
                calls.append(_name)
            inside.append(_name)
            try:
                return _method(*args, **options)
            finally:
                inside.pop()

        monkeypatch.setattr(store, name, counted)
    return calls


@pytest.mark.parametrize(
    "search",
    [
        "Provenance?patient={patient}&_count=100",
        "Observation?patient={patient}&_revinclude=Provenance:target&_count=100",
        "Provenance/_history?_count=100",
    ],
)
def test_a_search_page_reads_what_its_decisions_need_at_once(
    resident: Resident, monkeypatch: pytest.MonkeyPatch, search: str
) -> None:
    """Provenance written by others is shown only with what it is about:
    the targets a page's (its includes', a history page's) decisions look
    at are read together, not one statement per Provenance."""
    calls = _store_calls(resident.store, monkeypatch)
    answer = resident.get("council", "/fhir/" + search.format(patient=resident.patient))
    assert answer.status_code == 200, answer.text
    shown = [e["resource"]["resourceType"] for e in answer.json().get("entry", [])]
    assert "Provenance" in shown
    assert "vread" not in calls and "read" not in calls, Counter(calls)
    assert calls.count("vread_many") <= 2, Counter(calls)


@pytest.mark.parametrize("per_search", [400, 200, 100])
def test_the_provenance_is_gathered_in_the_order_of_a_search_per_hundred_targets(
    resident: Resident, monkeypatch: pytest.MonkeyPatch, per_search: int
) -> None:
    """Few searches find the Provenance of everything gathered; they come in
    the order a search per hundred targets gave them (each search's new
    matches by id), which the organisations' names in the narratives follow."""
    monkeypatch.setattr(assemble, "_TARGETS_PER_SEARCH", per_search)
    for batch in range(12):
        entries = [
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
                    "subject": {"reference": f"Patient/{resident.patient}"},
                    "valueQuantity": {"value": 60 + batch, "unit": "/min"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
            for _ in range(10)
        ]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        answer = resident.api.post("/fhir", json=bundle, headers=resident.headers("gp"))
        assert answer.status_code == 200, answer.text
    gathered = assemble.gather(
        resident.store, resident.patient, visible=lambda version: True, readable=bool
    )
    provenance = [r for r in gathered.versions if r.startswith("Provenance/")]
    # What the compartment search found (by id), then each search's new matches.
    own = parse_search("Provenance", [("patient", resident.patient), ("_count", "1000")])
    expected = [
        f"Provenance/{v.res_id}"
        for v in searches.search(resident.store, own, visible=None, includable=bool).matches
    ]
    first = len(expected)
    assert first > 0
    targets = sorted(
        r
        for r, v in gathered.versions.items()
        if v.res_type in PATIENT_COMPARTMENT and v.res_type != "Provenance"
    )
    assert len(targets) > 200
    for start in range(0, len(targets), 100):
        query = parse_search(
            "Provenance", [("target", ",".join(targets[start : start + 100])), ("_count", "1000")]
        )
        for match in searches.search(resident.store, query, visible=None, includable=bool).matches:
            if f"Provenance/{match.res_id}" not in expected:
                expected.append(f"Provenance/{match.res_id}")
    assert provenance == expected
    assert provenance[first:] != sorted(provenance[first:])  # not merely by id


# -- a dissent recorded in the GP's record --------------------------------------------


def _gp_response(version: str, *entries: tuple[str, str, str]) -> bytes:
    """The GP's structured record of the resident again, a later version,
    with its coded entries of the person's sharing preference for the local
    shared care record (SNOMED CT code, entry id, date) under uncategorised
    data."""
    text = (FIXTURES / "gpconnect" / "structured-rich.json").read_text()
    gp = json.loads(text.replace("9990000042", NHS_NUMBER))
    gp["meta"]["lastUpdated"] = version
    for code, entry_id, when in entries:
        gp["entry"].append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": entry_id,
                    "identifier": [
                        {
                            "system": "https://fhir.nhs.uk/Id/cross-care-setting-identifier",
                            "value": f"sharing-{entry_id}",
                        }
                    ],
                    "status": "final",
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
                    "subject": {"reference": "Patient/pat-7"},
                    "effectiveDateTime": when,
                    "issued": when,
                }
            }
        )
    return json.dumps(gp).encode()


def _consents(resident: Resident, who: str) -> list[dict[str, Any]]:
    """The resident's privacy Consents ``who`` finds (advance decisions aside)."""
    found = resident.get(who, f"/fhir/Consent?patient={resident.patient}")
    assert found.status_code == 200, found.text
    return [
        e["resource"]
        for e in found.json().get("entry", [])
        if e["search"]["mode"] == "match"
        and e["resource"]["scope"]["coding"][0]["code"] == "patient-privacy"
    ]


_SEARCHED = ("AllergyIntolerance", "Condition", "Observation", "EpisodeOfCare", "Encounter")


def _seen_sources(resident: Resident, who: str) -> set[str]:
    """Whose records of the resident ``who`` finds by searching."""
    found: set[str] = set()
    for res_type in _SEARCHED:
        answer = resident.get(who, f"/fhir/{res_type}?patient={resident.patient}&_count=100")
        assert answer.status_code == 200, answer.text
        found |= {
            e["resource"]["meta"]["source"].removeprefix("urn:ods:")
            for e in answer.json().get("entry", [])
            if e["search"]["mode"] == "match"
        }
    return found


def test_a_refusal_in_the_gp_record_is_a_dissent_until_consent_is_given_again(
    resident: Resident,
) -> None:
    """The GP's coded refusal of upload to the local shared care record,
    loaded over ``$ingest``, is a dissent: every organisation caring for the
    resident finds only its own records, while the crew (ETREAT) still gets
    everyone's; consent given later withdraws it on the same Consent."""
    refused = ("416409005", "lscr-refused", "2026-11-21T10:00:00+00:00")
    given = ("417528008", "lscr-given", "2026-11-28T10:00:00+00:00")
    everyone = {HOME, GP, COUNCIL, HOSPITAL}
    assert _seen_sources(resident, "council") == everyone

    resident.push("gp", "gp-connect", _gp_response("2026-11-21T12:00:00+00:00", refused))
    (dissent,) = _consents(resident, "council")  # shown to those caring, to be withdrawn
    assert (dissent["status"], dissent["provision"]) == ("active", {"type": "deny"})
    assert dissent["meta"]["source"] == f"urn:ods:{GP}"
    # Each organisation caring for the resident now finds only what it wrote;
    # the Patient is the GP's record, so only the GP gets a summary.
    for who, own in (("council", COUNCIL), ("hospital", HOSPITAL), ("home", HOME), ("gp", GP)):
        assert _seen_sources(resident, who) == {own}, who
    assert resident.get("council", f"/fhir/Patient/{resident.patient}").status_code == 404
    summary = resident.document("gp", "summary")
    check_document(summary)
    assert _sources(summary) == {GP}
    # The crew still gets the GP's and the others' records: the dissent does
    # not name ETREAT.
    red_bag = resident.document("crew", "red-bag")
    check_document(red_bag)
    assert {GP, HOME} <= _sources(red_bag)

    resident.push("gp", "gp-connect", _gp_response("2026-11-28T12:00:00+00:00", refused, given))
    (withdrawn,) = _consents(resident, "council")
    assert (withdrawn["id"], withdrawn["status"]) == (dissent["id"], "inactive")
    assert _seen_sources(resident, "council") == everyone
    assert _sources(resident.document("council", "summary")) == everyone

    # An older response pushed late (a retry) does not bring the dissent
    # back: the preference stands as at the entry that decided it.
    resident.push("gp", "gp-connect", _gp_response("2026-11-21T18:00:00+00:00", refused))
    (still,) = _consents(resident, "council")
    assert (still["status"], still["meta"]["versionId"]) == (
        "inactive",
        withdrawn["meta"]["versionId"],
    )
    assert _seen_sources(resident, "council") == everyone
    # A later refusal does.
    again = ("416409005", "lscr-refused-again", "2026-12-01T10:00:00+00:00")
    resident.push(
        "gp", "gp-connect", _gp_response("2026-12-01T12:00:00+00:00", refused, given, again)
    )
    (renewed,) = _consents(resident, "council")
    assert renewed["status"] == "active"


def test_a_first_gp_record_with_a_refusal_loads_with_its_dissent(resident: Resident) -> None:
    """A person the gateway does not know yet, whose first GP record holds a
    refusal: the Patient and the dissent load together."""
    text = (FIXTURES / "gpconnect" / "structured-dissent.json").read_text()
    resident.push("gp", "gp-connect", text.encode())
    patient = mapped_id("NHS", "Patient", "9990000085")
    found = resident.get("gp", f"/fhir/Consent?patient={patient}")
    assert [e["resource"]["status"] for e in found.json()["entry"]] == ["active"]


def test_a_document_the_gateway_built_wrongly_is_not_served(
    resident: Resident, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every document is validated before it is served (every demo person's
    are, in tests/e2e/test_demo_documents.py); one that fails is the
    gateway's fault: 500, its issues in the log, nothing of it sent."""
    from gateway.operations import documents

    real_build = documents.build

    def broken(*args: Any, **kwargs: Any) -> Any:
        made = real_build(*args, **kwargs)
        made.bundle["entry"][0]["resource"]["status"] = "nearly-final"
        return made

    monkeypatch.setattr(documents, "build", broken)
    answer = resident.get("gp", f"/fhir/Patient/{resident.patient}/$summary")
    assert answer.status_code == 500
    assert answer.json()["issue"][0]["code"] == "exception"
    assert "nearly-final" not in answer.text
