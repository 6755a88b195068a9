"""The demo's people as a clinician or a social worker would read them: body
sizes near the Health Survey for England's, a BMI that is the weight over the
height squared, vital signs that fit the person's age; one kind of placement
per care-home resident in every source, respite that is short, hospital
routes only for hospital contacts, a hospital and a care home that say where
a resident was when, and no date before birth or after the demo's day. Read
from the files the demo writes where the sources say it, from the people
where they do not."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import Any

import orjson
import pytest

from gateway.demo.generate import Manifest, generate
from gateway.demo.people import CLD_UNKNOWN_VALUE, Person, people
from gateway.demo.world import home_address
from mappings.cld.items import (
    ACCOMMODATION_STATUSES,
    EVENT_TYPES,
    ROUTES_OF_ACCESS,
    SERVICE_TYPES,
    canonical_item,
)

TODAY = date(2026, 11, 24)
SEED = 7
COUNT = 2_000
# The Health Survey for England's adult means (cm); under 75 the demo's
# should be within a centimetre of them, over 75 a few centimetres shorter.
SURVEY_HEIGHT = {"male": 175.5, "female": 161.9}
HEIGHTS = {"male": (150, 200), "female": (138, 186)}  # cm: no one outside these
WEIGHTS = (30.0, 200.0)  # kg
BMIS = (15.0, 50.0)
# The council's service for each kind of care-home stay (CLD Service_Type
# codes) and whether the person's accommodation is then the home.
SERVICE_FOR = {"residential": "LTS-RS", "nursing": "LTS-NC", "respite": "CS-SIPC"}
ACCOMMODATION_FOR = {
    "residential": "Registered care home",
    "nursing": "Registered nursing home",
}
CARE_HOMES = frozenset(ACCOMMODATION_FOR.values())
HOSPITAL_ROUTES = frozenset({"Discharge from Hospital", "Diversion from Hospital Services"})
RESPITE_LONGEST = timedelta(days=28)
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


def _day(text: str) -> date:
    """A CLD date, ISO or as UK spreadsheets write it."""
    if "/" in text:
        return datetime.strptime(text, "%d/%m/%Y").date()
    return date.fromisoformat(text)


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


@pytest.fixture(scope="module")
def council_rows(demo: Demo) -> list[dict[str, str]]:
    """Every row of every council's return, by canonical item, with coded
    values read onto their defined lists as the mapping reads them."""
    found = []
    for path in _files(demo, "cld"):
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = [canonical_item(name) or name for name in next(reader)]
            for row in reader:
                values = dict(zip(header, row, strict=True))
                for item, listed in (
                    ("Event_Type", EVENT_TYPES),
                    ("Service_Type", SERVICE_TYPES),
                    ("Request_Route_of_Access", ROUTES_OF_ACCESS),
                    ("Accommodation_Status", ACCOMMODATION_STATUSES),
                ):
                    if values.get(item):
                        values[item] = listed.value(values[item]) or f"unlisted: {values[item]}"
                values["NHS_Number"] = values.get("NHS_Number", "").replace(" ", "")
                found.append(values)
    return found


def test_the_home_and_the_council_agree_on_each_placement(
    demo: Demo, council_rows: list[dict[str, str]]
) -> None:
    spoilt = {p.nhs_number for p in demo.people if CLD_UNKNOWN_VALUE in p.defects}
    compared: dict[str, int] = {}
    for record in _lines(demo, "care-home"):
        number = record["resident"].get("nhsNumber", "").replace(" ", "")
        if not number or number in spoilt:
            continue
        kind = record["residence"]["careType"]
        rows = [r for r in council_rows if r["NHS_Number"] == number]
        services = [
            r
            for r in rows
            if r["Event_Type"] == "Service"
            and r["Provider_CQC_Location_Name"] == record["careHome"]["name"]
        ]
        if not rows:
            continue  # paying for themselves: the council does not know them
        (service,) = services
        assert service["Service_Type"] == SERVICE_FOR[kind], (number, kind, service)
        assert _day(service["Event_Start_Date"]) == date.fromisoformat(
            record["residence"]["startDate"]
        )
        accommodation = {r["Accommodation_Status"] for r in rows}
        if kind in ACCOMMODATION_FOR:
            assert accommodation == {ACCOMMODATION_FOR[kind]}, (number, accommodation)
        else:
            assert not accommodation & CARE_HOMES, (number, accommodation)
        compared[kind] = compared.get(kind, 0) + 1
    # Enough of each kind to mean something.
    assert compared.get("residential", 0) >= 20 and compared.get("nursing", 0) >= 20, compared
    assert compared.get("respite", 0) >= 5, compared


def test_a_permanent_resident_lives_at_the_home_in_every_source(
    demo: Demo, council_rows: list[dict[str, str]]
) -> None:
    """The GP, the hospital, the council and the home all give the home's
    address for someone who lives there; one on respite keeps their own."""
    homes = {
        p.nhs_number: home_address(p.residence.home)
        for p in demo.people
        if p.residence is not None and p.residence.permanent and p.nhs_number
    }
    found: dict[str, set[tuple[str, str]]] = {number: set() for number in homes}
    for bundle in _lines(demo, "gp-connect"):
        resources = [entry["resource"] for entry in bundle["entry"]]
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        number = patient["identifier"][0]["value"]
        if number in found:
            address = patient["address"][0]
            found[number].add(("gp", f"{address['line'][0]}|{address['postalCode']}"))
    for path in _files(demo, "hl7v2"):
        for segment in path.read_bytes().decode("latin-1").replace("\r\n", "\r").split("\r"):
            fields = segment.split("|")
            if fields[0] == "PID" and len(fields) > 11:
                number = fields[3].split("^")[0]
                if number in found:
                    xad = fields[11].split("^")
                    found[number].add(("hospital", f"{xad[0]}|{xad[4]}"))
    for row in council_rows:
        if row["NHS_Number"] in found:
            found[row["NHS_Number"]].add(("council", f"|{row['Postcode']}"))
    for record in _lines(demo, "care-home"):
        number = record["resident"].get("nhsNumber", "").replace(" ", "")
        if number in found:
            address = record["resident"]["address"]
            found[number].add(("home", f"{address['lines'][0]}|{address['postcode']}"))
    sources: set[str] = set()
    for number, said in found.items():
        name, *_, postcode = homes[number]
        for source, where in said:
            assert where in (f"{name}|{postcode}", f"|{postcode}"), (number, source, where)
            sources.add(source)
    assert sources == {"gp", "hospital", "council", "home"}
    for person in demo.people:
        if person.residence is not None and not person.residence.permanent:
            assert person.postcode != home_address(person.residence.home)[-1]


def test_respite_is_a_short_stay(demo: Demo, council_rows: list[dict[str, str]]) -> None:
    stays = [r for r in _lines(demo, "care-home") if r["residence"]["careType"] == "respite"]
    assert len(stays) >= 5
    for record in stays:
        started = date.fromisoformat(record["residence"]["startDate"])
        ended = date.fromisoformat(record["residence"].get("endDate", TODAY.isoformat()))
        assert timedelta(0) < ended - started <= RESPITE_LONGEST, record["residence"]
    respite = [r for r in council_rows if r.get("Service_Type") == SERVICE_FOR["respite"]]
    assert len(respite) >= 5
    for row in respite:
        started = _day(row["Event_Start_Date"])
        ended = _day(row["Event_End_Date"]) if row["Event_End_Date"] else TODAY
        assert ended - started <= RESPITE_LONGEST, row


def test_every_hospital_contact_came_by_a_hospital_route(
    demo: Demo, council_rows: list[dict[str, str]]
) -> None:
    requests = [r for r in council_rows if r["Event_Type"] == "Request"]
    hospital = [r for r in requests if r["Event_Description"] == "Hospital contact"]
    assert len(hospital) >= 20
    for row in hospital:
        assert row["Request_Route_of_Access"] in HOSPITAL_ROUTES, row
    # And a hospital route is a contact from the hospital.
    for row in requests:
        if row["Request_Route_of_Access"] in HOSPITAL_ROUTES:
            assert row["Event_Description"] != "Referral from GP", row


def test_a_recent_discharge_request_has_its_stay_in_the_hospitals_feed(demo: Demo) -> None:
    """The hospital's feed holds the last year's stays: a council request
    from a ward in that year falls during one of them."""
    checked = 0
    for person in demo.people:
        care = person.social_care
        if care is None:
            continue
        for event in care.events:
            recent = event.start > TODAY - timedelta(days=365)
            if event.kind == "Request" and event.route_of_access in HOSPITAL_ROUTES and recent:
                assert any(
                    s.admitted.date() <= event.start < s.discharged.date()
                    for s in person.stays
                    if s.discharged is not None
                ), (person.index, event)
                checked += 1
    assert checked >= 5


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


def _dates(person: Person) -> Iterator[tuple[str, date]]:
    """Every date the sources state about the person, named."""
    yield from (("problem", p.onset) for p in person.problems)
    yield from (("medicine", m.started) for m in person.medicines if m.started)
    yield from (("medicine stopped", m.stopped) for m in person.medicines if m.stopped)
    yield from (("allergy", a.recorded) for a in person.allergies if a.recorded)
    for stay in person.stays:
        yield "admitted", stay.admitted.date()
        if stay.discharged is not None:
            yield "discharged", stay.discharged.date()
    if person.vitals is not None:
        yield "vitals", person.vitals.taken.date()
    if person.residence is not None:
        yield "moved in", person.residence.start
        yield from (("fall", day) for day in person.residence.falls)
        if person.residence.dnacpr is not None:
            yield "dnacpr", person.residence.dnacpr
    if person.social_care is not None:
        for event in person.social_care.events:
            yield event.kind, event.start
            if event.end is not None:
                yield event.kind, event.end
        if person.social_care.carer is not None:
            yield "carer assessed", person.social_care.carer.assessed
    if person.dissented is not None:
        yield "dissented", person.dissented


def test_no_date_is_before_birth_or_after_today(demo: Demo) -> None:
    for person in demo.people:
        for what, day in _dates(person):
            assert person.birth_date <= day <= TODAY, (person.index, what, day)


def test_care_home_events_fall_within_the_stay(demo: Demo) -> None:
    for person in demo.people:
        stay = person.residence
        if stay is None:
            continue
        assert all(stay.start < fall < TODAY for fall in stay.falls), person.index
        for hospital in person.stays:
            # Never in hospital on the day a stay at the home began, unless
            # leaving hospital for a permanent place that day.
            left = hospital.discharged.date() if hospital.discharged else TODAY
            if hospital.admitted.date() < stay.start <= left:
                assert stay.permanent and left == stay.start, person.index


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
        assert "currentConcern" not in record
        for line in record.get("medications", []):
            if "lastGiven" in line:
                given = datetime.fromisoformat(line["lastGiven"]).replace(tzinfo=None)
                assert given < went_in, (record["recordId"], line)
                checked += 1
    assert checked >= 3


def test_contacts_and_carers_fit_the_person(demo: Demo) -> None:
    for person in demo.people:
        age = person.age(TODAY)
        kinds = [c.relationship for c in person.contacts]
        if age < 30:
            assert not {"son", "daughter"} & set(kinds), (person.index, age, kinds)
        assert sum(k in ("wife", "husband") for k in kinds) <= 1
        if {"wife", "husband"} & set(kinds):
            assert kinds[0] in ("wife", "husband")  # the partner is the next of kin
        given = [c.given for c in person.contacts]
        assert len(set(given)) == len(given), (person.index, given)
        carer = person.social_care.carer if person.social_care else None
        if carer is not None:
            assert 18 <= _age(carer.birth_date) <= 95, (person.index, carer)
            assert (carer.given, carer.family) == (
                person.contacts[0].given,
                person.contacts[0].family,
            )


def test_medicines_and_admissions_fit_the_problems(demo: Demo) -> None:
    antiplatelets = ("Clopidogrel", "Aspirin")
    for person in demo.people:
        names = [m.name for m in person.medicines]
        drugs = [name.split()[0] for name in names]
        assert len(set(drugs)) == len(drugs), (person.index, names)  # one statin, not two
        if "Apixaban" in drugs:
            assert not set(antiplatelets) & set(drugs), (person.index, names)
        allergic = {a.substance for a in person.allergies}
        assert not allergic & set(drugs), (person.index, names)
        problems = {p.code.display for p in person.problems}
        reasons = [s.diagnoses[0].display for s in person.stays]
        assert len(set(reasons)) == len(reasons), (person.index, reasons)  # one appendix
        for reason, needs in (
            ("Chronic obstructive pulmonary disease with acute exacerbation", "Chronic"),
            ("Moderate depressive episode", "Depressive disorder"),
            ("Acute severe asthma", "Asthma"),
        ):
            if reason in reasons:
                assert any(p.startswith(needs) for p in problems), (person.index, reason)
        for stay in person.stays:
            if stay.diagnoses[0].icd10 == "I21.9" and stay.discharged is not None:
                assert "Myocardial infarction" in problems, person.index


def test_a_medicine_a_hospital_stopped_was_taken_before_the_stay_that_stopped_it(
    demo: Demo,
) -> None:
    """Stopped on the day of a discharge from a stay that began after it
    was started: what the Red Bag's latest hospital stay shows as stopped."""
    stopped = 0
    for person in demo.people:
        for medicine in person.medicines:
            if medicine.stopped is None:
                continue
            stopped += 1
            (stay,) = [
                s
                for s in person.stays
                if s.discharged is not None and s.discharged.date() == medicine.stopped
            ]
            assert medicine.started is not None and medicine.started <= stay.admitted.date()
            assert medicine.why_stopped, person.index
    assert stopped


def test_about_me_speaks_of_the_resident_as_they_are(demo: Demo) -> None:
    for person in demo.people:
        if person.residence is None:
            continue
        words = person.residence.about_me.split()
        if person.gender == "male":
            assert "Her" not in words, person.index
        else:
            assert "His" not in words, person.index
