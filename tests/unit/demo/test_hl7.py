"""The demo hospital's ADT feed: written from the demo's people, then loaded
through the real HL7 v2 mapping, which refuses exactly the planted defects."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gateway.demo.people import HL7_BAD_NHS_NUMBER, HL7_BROKEN, Person, people
from gateway.demo.sources import SourceFile
from gateway.demo.sources.hl7 import AdtWriter
from gateway.demo.world import HOSPITAL
from gateway.loading.records import LoadReport, load
from gateway.store import Store, open_store
from mappings.hl7v2.parser import BrokenMessage, parse_message, split_messages
from mappings.identity import mapped_id
from tests.unit.demo.stored import live

TODAY = date(2026, 11, 24)
SEED = 2  # 400 people of seed 2 all generate; the defects are planted below
COUNT = 400
ODS = HOSPITAL.ods


def _planted() -> list[Person]:
    """The demo's people with defects planted where the test needs them:
    bad NHS numbers (one on a stay still going on, one on a person without a
    number), broken messages, a person without an NHS number, a protected
    visit, and defects on someone never in hospital (who sends nothing)."""
    found = list(people(COUNT, SEED, TODAY))
    in_hospital = [p for p in found if p.stays and p.nhs_number and not p.defects]
    current = next(p for p in in_hospital if p.stays[0].discharged is None)
    others = [p for p in in_hospital if p is not current]
    never = next(p for p in found if not p.stays)
    changes: dict[int, dict[str, Any]] = {
        current.index: {"defects": frozenset({HL7_BAD_NHS_NUMBER})},
        others[0].index: {"defects": frozenset({HL7_BAD_NHS_NUMBER})},
        others[1].index: {"defects": frozenset({HL7_BAD_NHS_NUMBER, HL7_BROKEN})},
        others[2].index: {"nhs_number": None},
        others[3].index: {"nhs_number": None, "defects": frozenset({HL7_BAD_NHS_NUMBER})},
        never.index: {"defects": frozenset({HL7_BAD_NHS_NUMBER, HL7_BROKEN})},
        others[5].index: {
            "stays": tuple(dataclasses.replace(s, protected=True) for s in others[5].stays)
        },
    }
    for broken in others[6:14]:
        changes[broken.index] = {"defects": frozenset({HL7_BROKEN})}
    return [dataclasses.replace(p, **changes[p.index]) if p.index in changes else p for p in found]


@dataclass
class Loaded:
    people: list[Person]
    file: SourceFile
    path: Path
    report: LoadReport
    store: Store


def _write(out: Path, persons: list[Person]) -> SourceFile:
    writer = AdtWriter(out, HOSPITAL, TODAY)
    for person in persons:
        writer.add(person)
    (written,) = writer.close()
    return written


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    out = tmp_path_factory.mktemp("demo-hl7")
    persons = _planted()
    written = _write(out, persons)
    store = open_store(f"sqlite:///{out}/g.db")
    store.migrate()
    report = load(store, "hl7v2", ODS, [out / written.path])
    yield Loaded(persons, written, out / written.path, report, store)
    store.close()


def test_the_file_is_where_and_what_the_manifest_says(loaded: Loaded) -> None:
    assert loaded.file.path == Path("hospital") / "R9D-adt.hl7"
    assert (loaded.file.format, loaded.file.source_org) == ("hl7v2", "R9D")
    data = loaded.path.read_bytes()
    data.decode("latin-1")
    assert b"\r\nMSH|" in data and data.startswith(b"MSH|^~\\&|PAS|R9D|")
    stays = sum(len(p.stays) for p in loaded.people)
    discharges = sum(1 for p in loaded.people for s in p.stays if s.discharged)
    broken = sum(1 for p in loaded.people if HL7_BROKEN in p.defects and p.stays)
    assert loaded.file.records == stays + discharges + broken


def test_exactly_the_planted_defects_are_refused(loaded: Loaded) -> None:
    report, written = loaded.report, loaded.file
    reasons = "\n".join(f"{r.record} {r.key}: {r.reason}" for r in report.rejections)
    assert report.records == written.records
    assert len(report.rejections) == written.defective, reasons
    bad = [p for p in loaded.people if HL7_BAD_NHS_NUMBER in p.defects and p.stays]
    broken = [p for p in loaded.people if HL7_BROKEN in p.defects and p.stays]
    assert written.defective == len(bad) + len(broken)
    by_reason: dict[str, list[str]] = {}
    for rejection in report.rejections:
        if "fails the Modulus 11 check" in rejection.reason:
            by_reason.setdefault("nhs", []).append(rejection.key)
        elif "PID-3 has neither an NHS number nor a local identifier" in rejection.reason:
            by_reason.setdefault("nobody", []).append(rejection.key)
        elif rejection.reason == "MSH-10 (message control id) is empty":
            by_reason.setdefault("cut", []).append(rejection.key)
        else:
            pytest.fail(f"unexpected rejection: {reasons}")
    # The bad number is on the first message of the person's first stay.
    assert sorted(by_reason["nhs"]) == sorted(f"{ODS}-{p.index:07d}-0-A01" for p in bad)
    # Both kinds of broken message are planted, each refused on its own.
    assert by_reason["nobody"] and by_reason["cut"]
    assert len(by_reason["nobody"]) + len(by_reason["cut"]) == len(broken)
    assert report.loaded + report.unchanged + len(report.rejections) == report.records


def test_every_stay_with_a_message_loaded_is_an_encounter(loaded: Loaded) -> None:
    expected: dict[str, str] = {}
    for person in loaded.people:
        for n, stay in enumerate(person.stays):
            # A stay whose only message carried the bad number never arrives;
            # a discharge after a refused admission still states the visit.
            if n == 0 and HL7_BAD_NHS_NUMBER in person.defects and stay.discharged is None:
                continue
            expected[stay.visit] = "finished" if stay.discharged else "in-progress"
    encounters = live(loaded.store, "Encounter")
    assert len(encounters) == len(expected)
    found = {e["identifier"][0]["value"]: e for e in encounters}
    assert {visit: e["status"] for visit, e in found.items()} == expected
    protected = {s.visit for p in loaded.people for s in p.stays if s.protected}
    assert protected
    for visit, encounter in found.items():
        labels = {label["code"] for label in encounter["meta"].get("security", [])}
        assert ("R" in labels) == (visit in protected), visit
        assert encounter["serviceProvider"]["identifier"]["value"] == ODS


def test_people_procedures_diagnoses_and_allergies_arrive(loaded: Loaded) -> None:
    store = loaded.store
    patients = {p["id"]: p for p in live(store, "Patient")}
    arrived = [
        p
        for p in loaded.people
        if p.stays
        and not (
            HL7_BAD_NHS_NUMBER in p.defects and len(p.stays) == 1 and not p.stays[0].discharged
        )
    ]
    assert len(patients) == len(arrived)
    for person in arrived:
        key = (
            mapped_id("NHS", "Patient", person.nhs_number)
            if person.nhs_number
            else mapped_id(ODS, "Patient", f"H{person.index:07d}")
        )
        patient = patients[key]
        assert patient["birthDate"] == person.birth_date.isoformat()
        assert patient["name"][0]["family"] == person.family
        assert patient["address"][0]["postalCode"] == person.postcode
        assert patient["generalPractitioner"][0]["identifier"]["value"] == person.practice.ods
        systems = {i["system"] for i in patient["identifier"]}
        nhs = "https://fhir.nhs.uk/Id/nhs-number"
        assert (nhs in systems) == (person.nhs_number is not None)
        assert f"urn:london-care-gateway:local-id:{ODS}" in systems

    procedures = live(store, "Procedure")
    done = [s for p in loaded.people for s in p.stays if s.procedure and s.discharged]
    assert len(procedures) == len(done) > 0
    words = {p["code"]["text"] for p in procedures}
    assert words <= {s.procedure for s in done}
    assert all("(OPCS-4 " in w for w in words)

    conditions = live(store, "Condition")
    assert len(conditions) == len(live(store, "Encounter"))
    assert all(c["code"]["coding"][0]["system"].endswith("icd-10") for c in conditions)

    # Allergies come with admissions: those of everyone with one admission loaded.
    admitted = [p for p in loaded.people if len(p.stays) > (HL7_BAD_NHS_NUMBER in p.defects)]
    allergies = sum(a.category == "medication" for p in admitted for a in p.allergies)
    assert len(live(store, "AllergyIntolerance")) == allergies > 0
    contacts = sum(1 for p in admitted if p.contacts)
    assert len(live(store, "RelatedPerson")) == contacts > 0


def test_messages_are_hl7_v2_4_with_unique_control_ids(loaded: Loaded) -> None:
    ids, cut = [], 0
    for _, text in split_messages(loaded.path.read_bytes()):
        try:
            message = parse_message(text)
        except BrokenMessage:
            cut += 1  # an MSH cut short on purpose
            continue
        msh = message.segments[0]
        assert msh.value(12) == "2.4" and msh.value(4) == ODS
        ids.append(message.control_id)
    assert len(ids) == len(set(ids))
    assert cut == sum("MSH-10" in r.reason for r in loaded.report.rejections) > 0


def test_the_same_people_make_the_same_file(loaded: Loaded, tmp_path: Path) -> None:
    again = _write(tmp_path, loaded.people)
    assert again == loaded.file
    assert (tmp_path / again.path).read_bytes() == loaded.path.read_bytes()
