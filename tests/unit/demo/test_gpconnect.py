"""The demo's GP Connect files: written from the demo's people, loaded
through the real mapping and loader into a fresh store, with exactly the
planted defects refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from conformance.validation import validate_resource
from gateway.demo.people import DEPRESSION, GP_BAD_NHS_NUMBER, Person, Problem, people
from gateway.demo.sources import SourceFile
from gateway.demo.sources.gpconnect import REFUSED_SHARING, GpConnectWriter
from gateway.demo.world import BOROUGHS
from gateway.loading.records import LoadReport, load
from gateway.store import Store, open_store
from mappings.gpconnect import map_structured_record
from mappings.identity import mapped_id
from tests.unit.demo.stored import stored

TODAY = date(2026, 11, 24)
PRACTICES = [p for borough in BOROUGHS for p in borough.practices]
PRACTICE = PRACTICES[0]
DISSENTED = date(2025, 3, 4)


@dataclass
class Written:
    people: list[Person]  # everyone written, the chosen ones changed
    bad: Person
    dissenter: Person
    depressed: Person
    unnumbered: Person
    file: SourceFile
    path: Path
    report: LoadReport
    store: Store


def _people() -> list[Person]:
    """400 people, four of the practice's changed to show what is tested:
    a planted bad NHS number, a dissent, a depression and no NHS number."""
    found = list(people(400, 1, TODAY))
    at = [i for i, p in enumerate(found) if p.practice == PRACTICE]
    bad, dissenter, depressed, unnumbered = at[:4]
    found[bad] = replace(found[bad], defects=frozenset({GP_BAD_NHS_NUMBER}))
    found[dissenter] = replace(found[dissenter], dissented=DISSENTED, defects=frozenset())
    person = found[depressed]
    problems = person.problems
    if DEPRESSION not in {p.code for p in problems}:
        problems = (*problems, Problem(DEPRESSION, date(2019, 5, 1)))
    found[depressed] = replace(person, problems=problems, defects=frozenset())
    found[unnumbered] = replace(found[unnumbered], nhs_number=None)
    return found


def _write(out: Path, everyone: list[Person]) -> tuple[list[SourceFile], int]:
    writer = GpConnectWriter(out, PRACTICES, TODAY)
    for person in everyone:
        writer.add(person)
    return writer.close(), writer.skipped


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Written]:
    out = tmp_path_factory.mktemp("demo")
    everyone = _people()
    files, skipped = _write(out, everyone)
    assert skipped == 1  # the person without an NHS number
    (file,) = [f for f in files if f.source_org == PRACTICE.ods]
    store = open_store(f"sqlite:///{out}/g.db")
    store.migrate()
    report = load(store, file.format, PRACTICE.ods, [out / file.path])
    at = [p for p in everyone if p.practice == PRACTICE]
    yield Written(everyone, at[0], at[1], at[2], at[3], file, out / file.path, report, store)
    store.close()


def _with_code(store: Store, res_type: str, code: str) -> list[dict[str, Any]]:
    rows = store.select(
        "SELECT DISTINCT res_id FROM search_token WHERE res_type = ? AND param = 'code' "
        "AND code = ?",
        [res_type, code],
    )
    return [stored(store, res_type, str(row[0])) for row in rows]


def _patient_id(person: Person) -> str:
    assert person.nhs_number is not None
    return mapped_id("NHS", "Patient", person.nhs_number)


def test_a_file_per_practice_with_a_bundle_per_registered_person(written: Written) -> None:
    numbered = [p for p in written.people if p.practice == PRACTICE and p.nhs_number]
    assert written.file.path == Path("gp") / f"{PRACTICE.ods}-structured.ndjson"
    assert (written.file.format, written.file.records) == ("gp-connect", len(numbered))
    assert written.file.defective == sum(GP_BAD_NHS_NUMBER in p.defects for p in numbered) >= 1
    lines = written.path.read_bytes().splitlines()
    assert len(lines) == written.file.records
    first = orjson.loads(lines[0])
    kinds = [e["resource"]["resourceType"] for e in first["entry"]]
    assert kinds[:4] == ["Patient", "Organization", "Practitioner", "PractitionerRole"]
    headings = {
        e["resource"]["code"]["coding"][0]["code"]
        for e in first["entry"]
        if e["resource"]["resourceType"] == "List"
    }
    assert headings == {"886921000000105", "933361000000108", "717711000000103", "826501000000100"}
    assert b"\n" not in lines[0] and b": " not in lines[0]  # compact


def test_only_the_planted_defects_are_refused(written: Written) -> None:
    report, file = written.report, written.file
    reasons = [f"{r.record}: {r.reason}" for r in report.rejections]
    assert report.records == file.records
    assert len(report.rejections) == file.defective, reasons
    assert report.loaded == file.records - file.defective
    bad_line = [
        n
        for n, p in enumerate(
            (p for p in written.people if p.practice == PRACTICE and p.nhs_number), start=1
        )
        if p is written.bad
    ]
    assert f"line {bad_line[0]}" in [r.record for r in report.rejections]
    assert all("fails the Modulus 11 check" in r.reason for r in report.rejections), reasons
    assert written.store.read("Patient", _patient_id(written.bad)) is None


def test_every_stored_resource_is_valid_fhir_r4(written: Written) -> None:
    rows = written.store.select(
        "SELECT res_type, res_id FROM resource_current WHERE deleted = 0", []
    )
    assert len(rows) > 5 * written.report.loaded
    for res_type, res_id in rows:
        resource = stored(written.store, str(res_type), str(res_id))
        assert validate_resource(resource, str(res_type)) == [], resource


def test_the_person_keeps_their_practice_problems_and_medicines(written: Written) -> None:
    person = written.depressed
    patient = stored(written.store, "Patient", _patient_id(person))
    assert patient["birthDate"] == person.birth_date.isoformat()
    assert patient["name"][0]["family"] == person.family
    assert patient["address"][0]["postalCode"] == person.postcode
    assert patient["generalPractitioner"][0]["identifier"]["value"] == PRACTICE.ods
    subject = f"Patient/{patient['id']}"
    rows = written.store.select(
        "SELECT DISTINCT res_type, res_id FROM search_reference WHERE target_type = 'Patient' "
        "AND target_id = ? AND param NOT LIKE '!_access-%' ESCAPE '!'",
        [patient["id"]],
    )
    mine = [stored(written.store, str(t), str(i)) for t, i in rows if t != "Provenance"]
    assert all((r.get("subject") or r["patient"])["reference"] == subject for r in mine)
    kinds = [r["resourceType"] for r in mine]
    assert kinds.count("Condition") == len(person.problems)
    assert kinds.count("MedicationStatement") == len(person.medicines)
    assert kinds.count("Observation") == (5 if person.vitals else 0)


def test_a_depression_problem_is_labelled_psy(written: Written) -> None:
    conditions = _with_code(written.store, "Condition", DEPRESSION.snomed)
    subject = f"Patient/{_patient_id(written.depressed)}"
    (condition,) = [c for c in conditions if c["subject"]["reference"] == subject]
    assert condition["category"][0]["coding"][0]["code"] == "problem-list-item"
    labels = {label["code"] for label in condition["meta"].get("security", [])}
    assert "PSY" in labels


def test_a_dissent_is_the_coded_entry_and_a_privacy_consent(written: Written) -> None:
    patient_id = _patient_id(written.dissenter)
    observations = _with_code(written.store, "Observation", REFUSED_SHARING[0])
    (entry,) = [o for o in observations if o["subject"]["reference"] == f"Patient/{patient_id}"]
    assert entry["effectiveDateTime"] == DISSENTED.isoformat()
    rows = written.store.select(
        "SELECT DISTINCT res_id FROM search_reference WHERE res_type = 'Consent' "
        "AND target_type = 'Patient' AND target_id = ?",
        [patient_id],
    )
    consents = [stored(written.store, "Consent", str(row[0])) for row in rows]
    (consent,) = [c for c in consents if c["scope"]["coding"][0]["code"] == "patient-privacy"]
    assert consent["status"] == "active" and consent["provision"]["type"] == "deny"


def test_writing_is_deterministic(tmp_path: Path) -> None:
    everyone = [p for p in people(60, 7, TODAY)]
    first, _ = _write(tmp_path / "one", everyone)
    second, _ = _write(tmp_path / "two", everyone)
    assert first == second
    for file in first:
        assert (tmp_path / "one" / file.path).read_bytes() == (
            tmp_path / "two" / file.path
        ).read_bytes()


def test_a_medicine_a_hospital_stopped_is_stopped_in_the_gp_record(tmp_path: Path) -> None:
    """The GP's record once the discharge summary came: the course's
    statement ended on the day, its authorisation stopped with the
    hospital's reason, mapped as UK Core shaped R4."""
    person = next(p for p in people(400, 1, TODAY) if p.medicines and p.nhs_number)
    why = "Low blood pressure"
    stopped = replace(person.medicines[0], stopped=date(2026, 11, 23), why_stopped=why)
    person = replace(person, medicines=(stopped, *person.medicines[1:]), defects=frozenset())
    files, _ = _write(tmp_path, [person])
    (file,) = [f for f in files if f.source_org == person.practice.ods]
    (line,) = (tmp_path / file.path).read_bytes().splitlines()
    mapped = map_structured_record(orjson.loads(line), file.source_org)
    statements = [r for r in mapped.resources if r["resourceType"] == "MedicationStatement"]
    plans = [r for r in mapped.resources if r.get("intent") == "plan"]
    assert statements[0]["status"] == "stopped"
    assert statements[0]["effectivePeriod"]["end"] == "2026-11-23"
    assert plans[0]["status"] == "stopped"
    assert plans[0]["statusReason"] == {"text": why}
    assert {r["status"] for r in statements[1:] + plans[1:]} <= {"active"}
    for resource in (statements[0], plans[0]):
        assert validate_resource(resource, resource["resourceType"]) == []
