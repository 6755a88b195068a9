"""The demo's people as a clinician would read them: body sizes near the
Health Survey for England's, a BMI that is the weight over the height
squared, and vital signs that fit the person's age; a hospital and a care
home that say where a resident was when. Read from the files the demo
writes where the sources say it, from the people where they do not."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from statistics import mean
from typing import Any

import orjson
import pytest

from gateway.demo.generate import Manifest, generate
from gateway.demo.people import Person, people

TODAY = date(2026, 11, 24)
SEED = 7
COUNT = 2_000
# The Health Survey for England's adult means (cm); under 75 the demo's
# should be within a centimetre of them, over 75 a few centimetres shorter.
SURVEY_HEIGHT = {"male": 175.5, "female": 161.9}
HEIGHTS = {"male": (150, 200), "female": (138, 186)}  # cm: no one outside these
WEIGHTS = (30.0, 200.0)  # kg
BMIS = (15.0, 50.0)
SNOMED_WEIGHT, SNOMED_HEIGHT, SNOMED_BMI = "27113001", "50373000", "60621009"


@dataclass
class Demo:
    out: Path
    manifest: Manifest
    people: list[Person]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    out = tmp_path_factory.mktemp("plausible")
    manifest = generate(out, COUNT, SEED, TODAY)
    yield Demo(out, manifest, list(people(COUNT, SEED, TODAY)))


def _files(demo: Demo, kind: str) -> list[Path]:
    return [demo.out / f.path for f in demo.manifest.files if f.format == kind]


def _lines(demo: Demo, kind: str) -> Iterator[dict[str, Any]]:
    for path in _files(demo, kind):
        for line in path.read_bytes().splitlines():
            yield orjson.loads(line)


def _age(birth: date) -> int:
    return TODAY.year - birth.year - ((TODAY.month, TODAY.day) < (birth.month, birth.day))


@dataclass(frozen=True)
class Measured:
    gender: str
    age: int
    weight: float
    height: float
    bmi: float


@pytest.fixture(scope="module")
def measured(demo: Demo) -> list[Measured]:
    """Each GP record's weight, height and BMI, with the person's sex and age."""
    found = []
    for bundle in _lines(demo, "gp-connect"):
        resources = [entry["resource"] for entry in bundle["entry"]]
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        values = {
            r["code"]["coding"][0]["code"]: r["valueQuantity"]["value"]
            for r in resources
            if r["resourceType"] == "Observation" and "valueQuantity" in r
        }
        if SNOMED_WEIGHT in values:
            found.append(
                Measured(
                    patient["gender"],
                    _age(date.fromisoformat(patient["birthDate"])),
                    values[SNOMED_WEIGHT],
                    values[SNOMED_HEIGHT],
                    values[SNOMED_BMI],
                )
            )
    return found


def test_heights_and_weights_are_within_bounds_for_each_sex(measured: list[Measured]) -> None:
    assert len(measured) > 1_500
    for sex, (shortest, tallest) in HEIGHTS.items():
        heights = [m.height for m in measured if m.gender == sex]
        assert len(heights) > 600
        assert shortest <= min(heights) and max(heights) <= tallest, sex
    assert all(WEIGHTS[0] <= m.weight <= WEIGHTS[1] for m in measured)
    assert all(BMIS[0] <= m.bmi <= BMIS[1] for m in measured)


def test_heights_are_near_the_surveys_and_lower_over_75(measured: list[Measured]) -> None:
    for sex, survey in SURVEY_HEIGHT.items():
        younger = mean(m.height for m in measured if m.gender == sex and m.age < 75)
        older = mean(m.height for m in measured if m.gender == sex and m.age >= 75)
        assert abs(younger - survey) < 1.0, (sex, younger)
        assert 2.0 <= younger - older <= 6.0, (sex, younger, older)


def test_weights_and_bmis_are_near_the_surveys(measured: list[Measured]) -> None:
    # HSE 2019: mean weight about 85 kg for men and 72 kg for women; mean
    # BMI about 27 to 28 from middle age, lower in the young and very old.
    men = mean(m.weight for m in measured if m.gender == "male" and m.age < 75)
    women = mean(m.weight for m in measured if m.gender == "female" and m.age < 75)
    assert 80 <= men <= 90 and 67 <= women <= 76, (men, women)
    middle = mean(m.bmi for m in measured if 35 <= m.age < 75)
    young = mean(m.bmi for m in measured if m.age < 25)
    old = mean(m.bmi for m in measured if m.age >= 85)
    assert 26.5 <= middle <= 29.0, middle
    assert young < middle - 1 and old < middle - 1, (young, middle, old)


def test_every_stated_bmi_is_the_weight_over_the_height_squared(
    measured: list[Measured],
) -> None:
    for m in measured:
        assert m.bmi == round(m.weight / (m.height / 100) ** 2, 1), m


def test_blood_pressure_and_other_vitals_are_plausible(demo: Demo) -> None:
    measured = [p for p in demo.people if p.vitals is not None]
    for person in measured:
        v = person.vitals
        assert v is not None
        assert 95 <= v.systolic <= 185 and 50 <= v.diastolic <= 105
        assert v.systolic - v.diastolic >= 25, person.index  # a pulse pressure
        assert 50 <= v.pulse <= 125 and 12 <= v.respiratory_rate <= 22
        assert 88 <= v.oxygen_saturation <= 99 and 35.5 <= v.temperature <= 37.5
    # Systolic pressure rises with age.
    young = mean(p.vitals.systolic for p in measured if p.vitals and p.age(TODAY) < 35)
    old = mean(p.vitals.systolic for p in measured if p.vitals and p.age(TODAY) >= 75)
    assert old - young >= 10, (young, old)


def test_the_hospital_says_whether_a_resident_came_from_the_home(demo: Demo) -> None:
    """PV1-14 (source of admission) and PV1-36 (discharge destination): the
    care home (85) once the person's stay there had begun, else home (19)."""
    starts = {p.nhs_number: p.residence.start for p in demo.people if p.residence is not None}
    seen: dict[str, int] = {}
    for path in _files(demo, "hl7v2"):
        for message in path.read_bytes().decode("latin-1").split("\r\n"):
            segments = {s.split("|", 1)[0]: s.split("|") for s in message.split("\r") if s}
            if "PV1" not in segments or "PID" not in segments:
                continue
            pid, pv1 = segments["PID"], segments["PV1"]
            number = pid[3].split("^")[0] if len(pid) > 3 else ""
            moved_in = starts.get(number)
            for at, code in ((44, 14), (45, 36)):
                if len(pv1) <= at or not pv1[at]:
                    continue
                when = datetime.strptime(pv1[at], "%Y%m%d%H%M").date()
                expected = "85" if moved_in is not None and when >= moved_in else "19"
                assert pv1[code] == expected, (number, moved_in, pv1[at], pv1[code])
                seen[expected] = seen.get(expected, 0) + 1
    assert seen.get("85", 0) >= 10 and seen.get("19", 0) >= 100, seen


def test_in_hospital_now_the_home_gave_no_dose_after_admission(demo: Demo) -> None:
    admitted = {
        p.residence.resident_id: min(s.admitted for s in p.stays if s.discharged is None)
        for p in demo.people
        if p.residence is not None and any(s.discharged is None for s in p.stays)
    }
    checked = 0
    for record in _lines(demo, "care-home"):
        went_in = admitted.get(record["resident"]["residentId"])
        if went_in is None:
            continue
        for line in record.get("medications", []):
            if "lastGiven" in line:
                given = datetime.fromisoformat(line["lastGiven"]).replace(tzinfo=None)
                assert given < went_in, (record["recordId"], line)
                checked += 1
    assert checked >= 3
