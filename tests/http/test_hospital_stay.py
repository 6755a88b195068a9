"""The latest hospital stay in the Red Bag and the summary: a care-home
resident goes into hospital and comes back; the home's documents say where
they were, when, where they went, what the hospital sent, and which
medicines were started and stopped. A stay or a record the requester may
not see is not shown, counted or named."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.validation import validate_resource
from gateway.auth.tokens import Purpose
from gateway.documents.html import render
from gateway.documents.narrative import format_date
from gateway.store import Store
from mappings.identity import mapped_id
from tests.conftest import access_token, make_client
from tests.http.test_documents import check_document
from tests.support.consents import privacy_consent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NHS_NUMBER = "9992345675"  # the care-home fixture's resident
HOME, GP, HOSPITAL, AMBULANCE = "VM4X2", "F84003", "RKE", "RRU"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
STAY = "Latest hospital stay"
STARTED, STOPPED = "Medicines started in hospital", "Medicines stopped in hospital"


def _adt(event: str, visit: str, admitted: str, *more: str, left: str = "") -> bytes:
    """An ADT message of the Whittington for the resident: ``event`` of
    ``visit``, admitted at ``admitted`` (HL7 TS), discharged at ``left`` to
    a care home not run by the NHS (destination 85) when given."""
    pv1 = ["PV1", "1", "I", "Coleridge Ward^^^RKE", "21"] + [""] * 41
    pv1[14], pv1[19], pv1[44] = "85", visit, admitted
    if left:
        pv1[36], pv1[45] = "85", left
    sent = left or admitted
    return "\r".join(
        [
            f"MSH|^~\\&|PAS|RKE|GATEWAY|LONDON|{sent}||ADT^{event}|{visit}{event}|P|2.4|||AL|NE|GBR",
            f"EVN|{event}|{sent}",
            f"PID|1||{NHS_NUMBER}^^^NHS^NH~H765432^^^RKE^MR||Maddox^Winifred^Joan^^Mrs||19341102|2",
            "|".join(pv1).rstrip("|"),
            *more,
        ]
    ).encode("latin-1")


PNEUMONIA = "DG1|1||J18.9^Pneumonia, unspecified^I10|||F"


class Resident:
    """The home's and the GP's records of a resident, the hospital's ADT
    feed and what the hospital writes itself; tokens for the home, the
    hospital and an ambulance crew (emergency access)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.tokens = {
            "home": access_token(store, client_id="home", kind="care-home", org=HOME),
            "gp": access_token(store, client_id="gp", kind="gp-practice", org=GP),
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
        self.push(
            "home", "care-home", (FIXTURES / "carehome" / "winifred-maddox.json").read_bytes()
        )
        gp = (FIXTURES / "gpconnect" / "structured-rich.json").read_text()
        self.push("gp", "gp-connect", gp.replace("9990000042", NHS_NUMBER).encode())
        self.patient = mapped_id("NHS", "Patient", NHS_NUMBER)
        self.subject = {"reference": f"Patient/{self.patient}"}
        # The directory's name for the hospital, as its feed of Organizations gives it.
        self.post(
            "hospital",
            {
                "resourceType": "Organization",
                "identifier": [{"system": ODS, "value": HOSPITAL}],
                "name": "Whittington Hospital",
            },
        )

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def push(self, who: str, fmt: str, body: bytes) -> None:
        answer = self.api.post(
            f"/fhir/$ingest?format={fmt}", content=body, headers=self.headers(who)
        )
        assert answer.status_code == 200, answer.text
        assert '"rejected","valueInteger":0' in answer.text.replace(" ", ""), answer.text

    def post(self, who: str, resource: dict[str, Any]) -> str:
        answer = self.api.post(
            f"/fhir/{resource['resourceType']}", json=resource, headers=self.headers(who)
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def document(
        self, who: str, operation: str = "red-bag", *, whole: bool = True
    ) -> dict[str, Any]:
        """The document ``who`` gets, checked (``whole``: with each entry's
        Provenance in it too)."""
        answer = self.api.get(
            f"/fhir/Patient/{self.patient}/${operation}", headers=self.headers(who)
        )
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        if whole:
            check_document(document)
        else:
            assert validate_resource(document, "Bundle") == []
        return document

    def admit(self, visit: str = "V001000", when: str = "202611241405", *more: str) -> str:
        self.push("hospital", "hl7v2", _adt("A01", visit, when, *more))
        return f"Encounter/{mapped_id(HOSPITAL, 'Encounter', visit)}"

    def discharge(self, visit: str = "V001000", admitted: str = "202611241405") -> None:
        self.push("hospital", "hl7v2", _adt("A03", visit, admitted, PNEUMONIA, left="202611281130"))

    def medicine(self, who: str, resource: dict[str, Any]) -> str:
        return self.post(who, {**resource, "subject": self.subject})


@pytest.fixture
def resident(store: Store) -> Iterator[Resident]:
    built = Resident(store)
    yield built
    built.api.__exit__(None, None, None)


def _section(document: dict[str, Any], title: str) -> dict[str, Any] | None:
    composition = document["entry"][0]["resource"]
    return next((s for s in composition["section"] if s["title"] == title), None)


def _titles(document: dict[str, Any]) -> list[str]:
    return [s["title"] for s in document["entry"][0]["resource"]["section"]]


def _part(section: dict[str, Any], title: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in section.get("section", []) if s["title"] == title)
    return found


def _text(section: dict[str, Any]) -> str:
    return str(section["text"]["div"])


def _listed(document: dict[str, Any], section: dict[str, Any]) -> list[dict[str, Any]]:
    by_url = {entry["fullUrl"]: entry["resource"] for entry in document["entry"]}
    base = document["entry"][1]["fullUrl"].rsplit("/Patient/", 1)[0]
    return [by_url[f"{base}/{e['reference']}"] for e in section.get("entry", [])]


def _discharge_summary(resident: Resident, encounter: str, title: str) -> dict[str, Any]:
    text = base64.b64encode(b"Treated for pneumonia; home on oral antibiotics.").decode()
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [{"system": LOINC, "code": "18842-5", "display": "Discharge summary"}]},
        "subject": resident.subject,
        "date": "2026-11-28T12:00:00+00:00",
        "content": [{"attachment": {"contentType": "text/plain", "data": text, "title": title}}],
        "context": {"encounter": [{"reference": encounter}]},
    }


def _request(name: str, authored: str, encounter: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": name},
        "authoredOn": authored,
        "dosageInstruction": [{"text": "One a day"}],
    }
    if encounter is not None:
        request["encounter"] = {"reference": encounter}
    return request


# -- the tests ------------------------------------------------------------------------


def test_a_stay_going_on_says_where_and_since_when_and_no_discharge(resident: Resident) -> None:
    """Before the A01 there is no stay to show; after it, the Red Bag says
    the resident is in hospital, where, since when: no discharge and no
    medicines changed (what a home acts on is the discharge)."""
    assert STAY not in _titles(resident.document("home"))
    resident.admit()
    document = resident.document("home")
    section = _section(document, STAY)
    assert section is not None
    assert section["code"]["coding"][0]["code"] == "8648-8"
    assert _titles(document).index(STAY) == _titles(document).index("Problems") + 1
    div = _text(section)
    assert "In hospital since 24 Nov 2026 14:05" in div
    assert "Whittington Hospital (RKE)" in div and "Coleridge Ward" in div
    assert "Discharged" not in div and "section" not in section
    assert [r["resourceType"] for r in _listed(document, section)] == ["Encounter"]


def test_a_discharge_shows_what_the_hospital_sent_and_the_medicines_it_changed(
    resident: Resident,
) -> None:
    stay = resident.admit()
    resident.discharge()
    letter = resident.post("hospital", _discharge_summary(resident, stay, "Discharge letter"))
    # The hospital starts an antibiotic; its discharge prescription also
    # lists donepezil, which the home gave before the stay: not new.
    resident.medicine("hospital", _request("Doxycycline 100mg capsules", "2026-11-28", stay))
    resident.medicine("hospital", _request("Donepezil 10mg tablets", "2026-11-28", stay))
    # It stops the amlodipine the GP prescribes (the GP's record still has
    # it); the GP's amoxicillin course ended in 2024, before the stay.
    amlodipine = resident.medicine(
        "hospital",
        {
            "resourceType": "MedicationStatement",
            "status": "stopped",
            "medicationCodeableConcept": {
                "coding": [
                    {"system": SNOMED, "code": "319283006", "display": "Amlodipine 5mg tablets"}
                ]
            },
            "effectivePeriod": {"start": "2016-03-21", "end": "2026-11-27"},
            "dateAsserted": "2026-11-28T11:00:00+00:00",
            "statusReason": [{"text": "Low blood pressure on standing"}],
        },
    )
    for who in ("home", "crew"):
        document = resident.document(who)
        section = _section(document, STAY)
        assert section is not None, who
        div = _text(section)
        assert "Discharged 28 Nov 2026 11:30" in div
        assert "Admitted 24 Nov 2026 14:05" in div
        assert "Whittington Hospital (RKE)" in div
        # The destination in the code list's words, never its code.
        assert "Discharged to: Non-NHS (other than Local Authority) run Care Home" in div
        assert ">85<" not in div and " 85" not in div
        # What the hospital sent: its letter and its diagnosis, each once.
        sent = _listed(document, section)
        assert [r["resourceType"] for r in sent] == ["Encounter", "DocumentReference", "Condition"]
        assert sent[1]["id"] == letter
        assert "Discharge letter" in div and "Pneumonia, unspecified" in div
        assert "Discharge diagnosis" in div

        started = _part(section, STARTED)
        assert [r["medicationCodeableConcept"]["text"] for r in _listed(document, started)] == [
            "Doxycycline 100mg capsules"
        ]
        assert "Donepezil" not in _text(started)
        stopped = _part(section, STOPPED)
        assert [r["id"] for r in _listed(document, stopped)] == [amlodipine]
        assert "Stopped 27 Nov 2026" in _text(stopped)
        assert "Low blood pressure on standing" in _text(stopped)
        assert "Amoxicillin" not in _text(stopped)
        for part in (started, stopped):
            assert part["code"]["coding"][0]["system"] == "urn:london-care-gateway:document-section"
            # Each entry points at a row of its own part's narrative.
            for entry in part["entry"]:
                assert f'id="{entry["extension"][0]["valueUrl"][1:]}"' in _text(part)
        # A medicine started in hospital is a current one too: listed in both
        # sections, in the Bundle once.
        urls = [entry["fullUrl"] for entry in document["entry"]]
        assert len(urls) == len(set(urls))
        medication = _section(document, "Medication")
        assert medication is not None and "Doxycycline" in _text(medication)

    # The page shows the stay and its medicines, in the Red Bag and the summary.
    page = render(resident.document("home"))
    assert STAY in page and STARTED in page and "Doxycycline 100mg capsules" in page
    summary = resident.document("home", "summary")
    assert _section(summary, STAY) is not None


def test_medicines_started_are_new_ones_and_stopped_ones_are_dated_from_the_stay(
    resident: Resident,
) -> None:
    """The GP's record of a medicine it began during the stay counts (the
    hospital started it, the GP recorded it); the hospital's stop of a
    prescription, undated but written after admission, counts by the day
    the hospital wrote it; a medicine the GP began after discharge does not."""
    resident.admit()
    resident.discharge()
    resident.medicine(
        "gp",
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": {"text": "Atorvastatin 20mg tablets"},
            "effectivePeriod": {"start": "2026-11-26"},
        },
    )
    resident.medicine(
        "gp",
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": {"text": "Colecalciferol 800unit capsules"},
            "effectivePeriod": {"start": "2026-12-03"},
        },
    )
    stopped = resident.medicine(
        "hospital", {**_request("Furosemide 40mg tablets", "2026-10-01"), "status": "stopped"}
    )
    section = _section(resident.document("home"), STAY)
    assert section is not None
    assert "Atorvastatin" in _text(_part(section, STARTED))
    assert "Colecalciferol" not in json.dumps(section)
    stopped_part = _part(section, STOPPED)
    assert stopped_part["entry"][0]["reference"] == f"MedicationRequest/{stopped}"
    assert "Furosemide 40mg tablets" in _text(stopped_part)
    # Dated the day the hospital wrote it: the day the gateway stamped, not
    # a day fixed in the test (which would fail on any other day).
    written = resident.api.get(
        f"/fhir/MedicationRequest/{stopped}", headers=resident.headers("hospital")
    )
    assert written.status_code == 200, written.text
    day = written.json()["meta"]["lastUpdated"][:10]
    assert f"Stopped {format_date(day)}" in _text(stopped_part)


def test_a_hidden_stay_and_what_names_it_are_neither_shown_nor_counted(
    resident: Resident,
) -> None:
    """A later stay for a depressive episode (PSY: its visit as sensitive as
    the diagnosis) is hidden from the home and the crew: their documents'
    stay is the one before, exactly as it was, and the hospital's letter and
    prescription of that hidden stay (which they may see) are not put under
    it. The hospital, its author, is shown the stay going on."""
    earlier = resident.admit()
    resident.discharge()
    before = {who: _section(resident.document(who), STAY) for who in ("home", "crew")}
    later = resident.admit(
        "V001001", "202612011000", "DG1|1||F32.1^Moderate depressive episode^I10|||A"
    )
    resident.post("hospital", _discharge_summary(resident, later, "Admission note"))
    resident.medicine("hospital", _request("Lansoprazole 15mg capsules", "2026-12-02", later))
    for who in ("home", "crew"):
        document = resident.document(who)
        assert _section(document, STAY) == before[who], who
        # The letter is in no other part of the Red Bag; the prescription is
        # a current medicine, which names the stay it was written in.
        assert "Admission note" not in json.dumps(document)
        assert [
            e["resource"]["resourceType"]
            for e in document["entry"]
            if later.split("/")[1] in json.dumps(e["resource"])
        ] == ["MedicationRequest"]
    assert earlier.split("/")[1] in json.dumps(before["home"])
    mine = _section(resident.document("hospital"), STAY)
    assert mine is not None and "In hospital since 1 Dec 2026 10:00" in _text(mine)


def test_a_stay_a_consent_withholds_is_not_there(resident: Resident) -> None:
    """A Consent that withholds hospital stays (Encounters) from the home:
    its Red Bag has no stay, and nothing the hospital sent about one."""
    stay = resident.admit()
    resident.discharge()
    resident.post("hospital", _discharge_summary(resident, stay, "Discharge letter"))
    assert _section(resident.document("home"), STAY) is not None
    role = {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
    resident.post(
        "gp",
        privacy_consent(
            resident.subject,
            {
                "type": "permit",
                "provision": [
                    {
                        "type": "deny",
                        "actor": [
                            {
                                "role": {"coding": [role]},
                                "reference": {"identifier": {"system": ODS, "value": HOME}},
                            }
                        ],
                        "class": [
                            {"system": "http://hl7.org/fhir/resource-types", "code": "Encounter"}
                        ],
                    }
                ],
            },
        ),
    )
    # Only valid: a Provenance of a write that named an Encounter with the
    # home's records is withheld with the Encounter, so those records come
    # without theirs.
    document = resident.document("home", whole=False)
    assert STAY not in _titles(document)
    assert "Discharge letter" not in json.dumps(document)
    assert not [e for e in document["entry"] if e["resource"]["resourceType"] == "Encounter"]
    assert _section(resident.document("crew"), STAY) is not None  # not the crew's Consent
