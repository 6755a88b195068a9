"""The demo councils' CLD returns: written from the demo's people, then
loaded through the real CLD mapping, which reads each council's header
spelling and value drift and refuses exactly the planted defects."""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gateway.demo.people import CLD_UNKNOWN_VALUE, Person, people
from gateway.demo.sources import SourceFile
from gateway.demo.sources.cld import CldWriter
from gateway.demo.world import BOROUGHS
from gateway.loading.records import LoadReport, load
from gateway.store import Store, open_store
from mappings.cld.items import canonical_item
from mappings.identity import mapped_id
from tests.unit.demo.stored import live

TODAY = date(2026, 11, 24)
SEED = 2  # 400 people of seed 2 all generate; the defects are planted below
COUNT = 400
COUNCILS = [borough.council for borough in BOROUGHS]


def _planted() -> list[Person]:
    """The demo's people with unknown values planted on a dozen cases (some
    with carers), two of them without NHS numbers, and a third without one
    whose carer must still find them by the council's id."""
    found = list(people(COUNT, SEED, TODAY))
    cases = [p for p in found if p.social_care is not None and not p.defects]
    with_carer = [p for p in cases if p.social_care and p.social_care.carer]
    without_carer = [p for p in cases if p not in with_carer]
    unknown = frozenset({CLD_UNKNOWN_VALUE})
    changes: dict[int, dict[str, Any]] = {p.index: {"defects": unknown} for p in with_carer[:4]}
    changes |= {p.index: {"defects": unknown} for p in without_carer[:8]}
    changes[with_carer[0].index]["nhs_number"] = None
    changes[without_carer[0].index]["nhs_number"] = None
    changes[with_carer[5].index] = {"nhs_number": None}
    return [dataclasses.replace(p, **changes[p.index]) if p.index in changes else p for p in found]


@dataclass
class Loaded:
    people: list[Person]
    out: Path
    files: list[SourceFile]
    reports: dict[str, LoadReport]
    store: Store


def _write(out: Path, persons: list[Person]) -> list[SourceFile]:
    writer = CldWriter(out, COUNCILS, TODAY)
    for person in persons:
        writer.add(person)
    return writer.close()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    out = tmp_path_factory.mktemp("demo-cld")
    persons = _planted()
    files = _write(out, persons)
    store = open_store(f"sqlite:///{out}/g.db")
    store.migrate()
    reports = {f.source_org: load(store, "cld", f.source_org, [out / f.path]) for f in files}
    yield Loaded(persons, out, files, reports, store)
    store.close()


def _rows(loaded: Loaded, written: SourceFile) -> list[dict[str, str]]:
    """A return's rows by canonical item, as the mapping reads the header."""
    with (loaded.out / written.path).open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = [canonical_item(name) or name for name in next(reader)]
        return [dict(zip(header, row, strict=True)) for row in reader]


def test_one_return_per_council_each_header_spelt_its_own_way(loaded: Loaded) -> None:
    assert [f.path for f in loaded.files] == [
        Path("council") / f"{c.ods}-cld.csv" for c in COUNCILS
    ]
    assert {(f.format, f.source_org) for f in loaded.files} == {("cld", c.ods) for c in COUNCILS}
    headers = []
    for written in loaded.files:
        with (loaded.out / written.path).open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f))
        assert all(canonical_item(name) for name in header), header
        headers.append(tuple(header))
    assert len(set(headers)) == 3
    assert {"NHS No", "DOB", "Person ID", "PSR"} <= set(headers[1])
    assert {"Sex", "Client_Postcode", "Start_Date"} <= set(headers[2])


def test_exactly_the_planted_defects_are_refused(loaded: Loaded) -> None:
    planted = {p.index for p in loaded.people if CLD_UNKNOWN_VALUE in p.defects and p.social_care}
    assert len(planted) >= 12
    refused: list[str] = []
    for written in loaded.files:
        report = loaded.reports[written.source_org]
        reasons = "\n".join(f"{r.record} {r.key}: {r.reason}" for r in report.rejections)
        assert report.records == written.records
        assert len(report.rejections) == written.defective, reasons
        for rejection in report.rejections:
            assert "is not a value of its CLD defined list" in rejection.reason, reasons
            refused.append(rejection.key.split("@")[0])
    # One row of each planted person, and only theirs (refs end in the index).
    assert sorted(int(ref.split("-")[1]) for ref in refused) == sorted(planted)
    rows = sum(
        len(p.social_care.events) + (p.social_care.carer is not None)
        for p in loaded.people
        if p.social_care
    )
    assert sum(f.records for f in loaded.files) == rows


def test_open_services_become_active_episodes_managed_by_the_council(loaded: Loaded) -> None:
    refused = {r.key.split("@")[0] for report in loaded.reports.values() for r in report.rejections}
    episodes = {e["id"]: e for e in live(loaded.store, "EpisodeOfCare")}
    expected_active = 0
    for person in loaded.people:
        care = person.social_care
        if care is None:
            continue
        patient = (
            mapped_id("NHS", "Patient", person.nhs_number)
            if person.nhs_number
            else mapped_id(care.council.ods, "Patient", care.person_id)
        )
        # Each service its own episode (a respite stay beside care at home).
        for service in (e for e in care.events if e.kind == "Service"):
            key = mapped_id(care.council.ods, "EpisodeOfCare", service.reference)
            if service.reference in refused:
                assert key not in episodes
                continue
            episode = episodes[key]
            assert episode["status"] == ("active" if service.end is None else "finished")
            assert episode["managingOrganization"]["identifier"]["value"] == care.council.ods
            assert episode["period"]["start"] == service.start.isoformat()
            assert episode["patient"]["reference"] == f"Patient/{patient}"
            expected_active += service.end is None
    active = [e for e in episodes.values() if e["status"] == "active"]
    assert len(active) == expected_active > 0


def test_people_and_their_carers_arrive(loaded: Loaded) -> None:
    patients = {p["id"]: p for p in live(loaded.store, "Patient")}
    carers = {r["patient"]["reference"]: r for r in live(loaded.store, "RelatedPerson")}
    cases = [p for p in loaded.people if p.social_care]
    with_carer = [p for p in cases if p.social_care and p.social_care.carer]
    # Each person supported and each carer (on the council's books) is a Patient.
    assert len(patients) == len(cases) + len(with_carer)
    for person in cases:
        care = person.social_care
        assert care is not None
        key = (
            mapped_id("NHS", "Patient", person.nhs_number)
            if person.nhs_number
            else mapped_id(care.council.ods, "Patient", care.person_id)
        )
        patient = patients[key]
        assert patient["birthDate"] == person.birth_date.isoformat()
        assert patient["gender"] == person.gender
        assert patient["address"][0]["postalCode"] == person.postcode
        assert patient["generalPractitioner"][0]["identifier"]["value"] == person.practice.ods
        ethnic = patient["extension"][0]["valueCodeableConcept"]["coding"][0]["code"]
        # One planted row may carry an unknown ethnicity; the others say it right.
        assert ethnic == person.ethnicity
        if care.carer is not None:
            related = carers[f"Patient/{key}"]
            assert related["name"][0]["family"] == care.carer.family
            assert related["relationship"][0]["coding"][0]["code"] == "CAREGIVER"
    assert len(carers) == len(with_carer)


def test_values_drift_as_real_returns_do(loaded: Loaded) -> None:
    rows = [row for written in loaded.files for row in _rows(loaded, written)]
    numbers = [row["NHS_Number"] for row in rows if row["NHS_Number"]]
    assert any(re.fullmatch(r"\d{3} \d{3} \d{4}", n) for n in numbers)
    assert any(re.fullmatch(r"\d{10}", n) for n in numbers)
    births = [row["Date_of_Birth"] for row in rows]
    assert any(re.fullmatch(r"\d{2}/\d{2}/\d{4}", b) for b in births)
    assert any(re.fullmatch(r"\d{4}-\d{2}-\d{2}", b) for b in births)
    reasons = {row["Primary_Support_Reason"] for row in rows}
    assert any(r.isupper() and " - " in r for r in reasons)
    carer_rows = [row for row in rows if row["Client_Type"].lower() == "carer"]
    assert carer_rows and all(not row["NHS_Number"] for row in carer_rows)
    assert all(row["Linked_Person_ID"].startswith("LA") for row in carer_rows)
    services = [row for row in rows if row["Event_Type"].lower() == "service"]
    assert all(row["Unit_Cost"] and row["Planned_Units_Per_Week"] for row in services)


def test_the_same_people_make_the_same_returns(loaded: Loaded, tmp_path: Path) -> None:
    again = _write(tmp_path, loaded.people)
    assert again == loaded.files
    for written in again:
        assert (tmp_path / written.path).read_bytes() == (loaded.out / written.path).read_bytes()
