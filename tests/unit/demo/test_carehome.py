"""The demo's care-home exports: written from the demo's residents, loaded
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
from gateway.demo.people import CARE_HOME_INVALID, Person, people
from gateway.demo.sources import SourceFile
from gateway.demo.sources.carehome import CareHomeWriter, home_address
from gateway.demo.world import BOROUGHS
from gateway.loading.records import LoadReport, load
from gateway.store import Store, open_store
from mappings.carehome.record import validate_record
from mappings.identity import mapped_id
from tests.unit.demo.stored import stored

TODAY = date(2026, 11, 24)
HOMES = [h for borough in BOROUGHS for h in borough.homes]
NOT_FOR_CPR = "304253006"
AT_RISK_OF_FALLS = "129839007"


@dataclass
class Written:
    people: list[Person]  # everyone written, the chosen ones changed
    wrong_route: Person
    misspelt: Person
    decided: Person
    unnumbered: Person
    files: list[SourceFile]
    out: Path
    reports: dict[str, LoadReport]
    store: Store


def _people() -> tuple[list[Person], list[int]]:
    """400 people (about 35 residents), four residents changed: two planted
    defects (one with medicines, one without), a DNACPR decision with falls,
    and no NHS number; and where those four are."""
    found = list(people(400, 1, TODAY))
    at = [i for i, p in enumerate(found) if p.residence is not None]
    wrong_route = next(i for i in at if found[i].medicines)
    misspelt, decided, unnumbered = [i for i in at if i != wrong_route][:3]
    found[wrong_route] = replace(found[wrong_route], defects=frozenset({CARE_HOME_INVALID}))
    found[misspelt] = replace(found[misspelt], defects=frozenset({CARE_HOME_INVALID}), medicines=())
    stay = found[decided].residence
    assert stay is not None
    found[decided] = replace(
        found[decided],
        residence=replace(stay, dnacpr=date(2026, 2, 9), falls=(date(2026, 6, 1),)),
        defects=frozenset(),
    )
    found[unnumbered] = replace(found[unnumbered], nhs_number=None, defects=frozenset())
    return found, [wrong_route, misspelt, decided, unnumbered]


def _write(out: Path, everyone: list[Person]) -> list[SourceFile]:
    writer = CareHomeWriter(out, HOMES, TODAY)
    for person in everyone:
        writer.add(person)
    return writer.close()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Written]:
    out = tmp_path_factory.mktemp("demo")
    everyone, chosen = _people()
    files = _write(out, everyone)
    store = open_store(f"sqlite:///{out}/g.db")
    store.migrate()
    reports = {f.source_org: load(store, f.format, f.source_org, [out / f.path]) for f in files}
    wrong_route, misspelt, decided, unnumbered = (everyone[i] for i in chosen)
    yield Written(everyone, wrong_route, misspelt, decided, unnumbered, files, out, reports, store)
    store.close()


def _patient_id(person: Person) -> str:
    stay = person.residence
    assert stay is not None
    if person.nhs_number is None:
        return mapped_id(stay.home.ods, "Patient", stay.resident_id)
    return mapped_id("NHS", "Patient", person.nhs_number)


def _theirs(store: Store, person: Person, res_type: str) -> list[dict[str, Any]]:
    rows = store.select(
        "SELECT DISTINCT res_id FROM search_reference WHERE res_type = ? "
        "AND target_type = 'Patient' AND target_id = ?",
        [res_type, _patient_id(person)],
    )
    return [stored(store, res_type, str(row[0])) for row in rows]


def test_a_file_per_home_with_a_record_per_resident(written: Written) -> None:
    assert [f.source_org for f in written.files] == [h.ods for h in HOMES]
    residents = [p for p in written.people if p.residence is not None]
    by_id = {p.residence.resident_id: p for p in residents if p.residence is not None}
    assert sum(f.records for f in written.files) == len(residents) >= 20
    assert sum(f.defective for f in written.files) == sum(
        CARE_HOME_INVALID in p.defects for p in residents
    )
    for file in written.files:
        assert file.path == Path("care-home") / f"{file.source_org}-export.ndjson"
        lines = (written.out / file.path).read_bytes().splitlines()
        assert len(lines) == file.records
        for line in lines:
            record = orjson.loads(line)
            assert record["careHome"]["odsCode"] == file.source_org
            # A permanent resident lives at the home; one on respite at home.
            address = record["resident"]["address"]
            if record["residence"]["careType"] == "respite":
                resident = by_id[record["resident"]["residentId"]]
                assert address["postcode"] == resident.postcode
            else:
                assert address == home_address(next(h for h in HOMES if h.ods == file.source_org))


def test_only_the_planted_defects_are_refused(written: Written) -> None:
    for file in written.files:
        report = written.reports[file.source_org]
        reasons = [f"{file.source_org} {r.record}: {r.reason}" for r in report.rejections]
        assert report.records == file.records
        assert len(report.rejections) == file.defective, reasons
        assert report.loaded == file.records - file.defective
    reasons = [r.reason for report in written.reports.values() for r in report.rejections]
    assert any("$.medications[0].route: 'by mouth' is not one of" in r for r in reasons)
    assert any("$.residence: Additional properties" in r for r in reasons)
    for person in (written.wrong_route, written.misspelt):
        assert written.store.read("Patient", _patient_id(person)) is None


def test_every_record_passes_the_checks_but_the_defective(written: Written) -> None:
    for file in written.files:
        for line in (written.out / file.path).read_bytes().splitlines():
            record = orjson.loads(line)
            if record["resident"]["residentId"] in (
                written.wrong_route.residence.resident_id,  # type: ignore[union-attr]
                written.misspelt.residence.resident_id,  # type: ignore[union-attr]
            ):
                continue
            validate_record(record)


def test_every_stored_resource_is_valid_fhir_r4(written: Written) -> None:
    rows = written.store.select(
        "SELECT res_type, res_id FROM resource_current WHERE deleted = 0", []
    )
    assert len(rows) > 10 * sum(r.loaded for r in written.reports.values())
    for res_type, res_id in rows:
        resource = stored(written.store, str(res_type), str(res_id))
        assert validate_resource(resource, str(res_type)) == [], resource


def test_a_dnacpr_is_an_active_not_for_cpr_flag_and_falls_an_alert(written: Written) -> None:
    flags = _theirs(written.store, written.decided, "Flag")
    codes = {f["code"]["coding"][0]["code"]: f for f in flags}
    assert codes[NOT_FOR_CPR]["status"] == "active"
    assert codes[NOT_FOR_CPR]["period"]["start"] == "2026-02-09"
    assert codes[AT_RISK_OF_FALLS]["status"] == "active"
    assert codes[AT_RISK_OF_FALLS]["period"]["start"] == "2026-06-01"
    (consent,) = _theirs(written.store, written.decided, "Consent")
    assert consent["category"][0]["coding"][0]["code"] == "dnr"
    # Every resident whose home recorded a DNACPR has the flag; no one else.
    for person in written.people:
        stay = person.residence
        if stay is None or person.defects & {CARE_HOME_INVALID}:
            continue
        flagged = [
            f
            for f in _theirs(written.store, person, "Flag")
            if f["code"]["coding"][0]["code"] == NOT_FOR_CPR and f["status"] == "active"
        ]
        assert len(flagged) == (stay.dnacpr is not None), person.index


def test_the_resident_without_an_nhs_number_is_known_by_the_homes_id(written: Written) -> None:
    person = written.unnumbered
    assert person.residence is not None and person.nhs_number is None
    patient = stored(written.store, "Patient", _patient_id(person))
    assert [i["value"] for i in patient["identifier"]] == [person.residence.resident_id]
    (episode,) = _theirs(written.store, person, "EpisodeOfCare")
    assert episode["status"] == "active"
    assert episode["managingOrganization"]["identifier"]["value"] == person.residence.home.ods
    statements = _theirs(written.store, person, "MedicationStatement")
    # The MAR chart: what the resident takes, not what a hospital stopped.
    assert len(statements) == len([m for m in person.medicines if m.stopped is None])


def test_writing_is_deterministic(tmp_path: Path) -> None:
    everyone = list(people(200, 7, TODAY))
    first = _write(tmp_path / "one", everyone)
    second = _write(tmp_path / "two", everyone)
    assert first == second and sum(f.records for f in first) > 0
    for file in first:
        assert (tmp_path / "one" / file.path).read_bytes() == (
            tmp_path / "two" / file.path
        ).read_bytes()
