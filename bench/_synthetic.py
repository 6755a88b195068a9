"""Deterministic synthetic patient records for the search benchmark.

``plan_jobs(resources, batch, seed)`` yields the load as *jobs*: each job is a
list of transaction Bundles (serialised, as a client would send them) that
must run in order, holding whole patients: a Patient with an NHS number and
its ~99 records (Observations, Conditions, MedicationStatements,
Encounters). Every entry is a ``POST`` with a ``urn:uuid:`` full URL; the
records refer to their Patient by its full URL. When a patient's records do
not fit in one Bundle of ``batch`` entries, its later Bundles refer to the
Patient by the same ``urn:uuid:``, and the loader replaces it with the id the
first Bundle's response gave (``Job.bundles`` runs in order for this reason).
Jobs are independent of one another, so they can be loaded concurrently.

The same seed gives the same resources, codes, values and dates (ids are
assigned by the server); patient n is the same whatever the size of the load.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RESOURCES_PER_PATIENT = 100  # the Patient and 99 records

# The data covers the ten years up to this instant (fixed, so that the data
# and the queries' "five years ago" do not depend on the day of the run).
ANCHOR = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
SPAN = timedelta(days=3652)
FIVE_YEARS_BEFORE_ANCHOR = date(2020, 6, 30)

HEART_RATE = "364075005"


@dataclass(frozen=True)
class VitalSign:
    snomed: str
    loinc: str
    display: str
    unit: str
    ucum: str
    low: float
    high: float
    decimals: int


VITAL_SIGNS: tuple[VitalSign, ...] = (
    VitalSign(HEART_RATE, "8867-4", "Heart rate", "beats/minute", "/min", 50, 110, 0),
    VitalSign("271649006", "8480-6", "Systolic blood pressure", "mmHg", "mm[Hg]", 95, 180, 0),
    VitalSign("27113001", "29463-7", "Body weight", "kg", "kg", 45, 130, 1),
    VitalSign("86290005", "9279-1", "Respiratory rate", "breaths/minute", "/min", 10, 24, 0),
    VitalSign("386725007", "8310-5", "Body temperature", "Cel", "Cel", 35.8, 38.5, 1),
    VitalSign(
        "431314004", "59408-5", "Oxygen saturation", "%", "%", 90, 100, 0
    ),  # SpO2 by pulse oximetry
)
# Heart rate, blood pressure and weight are the common ones.
_VITAL_WEIGHTS = (3, 3, 2, 1, 1, 1)

CONDITIONS: tuple[tuple[str, str], ...] = (
    ("38341003", "Hypertensive disorder"),
    ("44054006", "Diabetes mellitus type 2"),
    ("195967001", "Asthma"),
    ("13645005", "Chronic obstructive lung disease"),
    ("35489007", "Depressive disorder"),
    ("49436004", "Atrial fibrillation"),
    ("709044004", "Chronic kidney disease"),
    ("414545008", "Ischaemic heart disease"),
    ("69896004", "Rheumatoid arthritis"),
    ("197480006", "Anxiety disorder"),
)

# dm+d virtual medicinal products (SNOMED CT UK drug extension identifiers).
MEDICINES: tuple[tuple[str, str], ...] = (
    ("322236009", "Paracetamol 500mg tablets"),
    ("319283006", "Amlodipine 5mg tablets"),
    ("320000009", "Atorvastatin 20mg tablets"),
    ("325278007", "Metformin 500mg tablets"),
    ("323509004", "Amoxicillin 500mg capsules"),
    ("317335009", "Omeprazole 20mg gastro-resistant capsules"),
    ("318904008", "Ramipril 5mg capsules"),
    ("320176004", "Salbutamol 100micrograms/dose inhaler CFC free"),
)

_FAMILIES = ("Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson",
             "Patel", "Khan", "Okafor", "Nowak", "Chen", "Murphy", "Hughes", "Ali")  # fmt: skip
_GIVEN_FEMALE = ("Olivia", "Amelia", "Priya", "Mei", "Sofia", "Grace", "Aisha", "Zofia")
_GIVEN_MALE = ("Oliver", "George", "Mohammed", "Kwame", "Arjun", "Jack", "Tomasz", "Liam")


def nhs_check_digit(stem: str) -> int | None:
    """The modulus-11 check digit of a 9-digit stem, or None when the stem
    has none (remainder 10: such numbers are never issued)."""
    total = sum(int(d) * (10 - i) for i, d in enumerate(stem))
    check = 11 - total % 11
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def valid_nhs_number(number: str) -> bool:
    if len(number) != 10 or not number.isdigit():
        return False
    return nhs_check_digit(number[:9]) == int(number[9])


def nhs_numbers(seed: int) -> Iterator[str]:
    """Distinct valid NHS numbers in the 999 range (reserved for test data),
    in an order the seed picks: an affine permutation of the 10**6 stems, so
    the first n numbers are the same whatever n."""
    rng = random.Random(f"nhs-{seed}")
    step = rng.randrange(1, 10**6)
    while step % 2 == 0 or step % 5 == 0:
        step = rng.randrange(1, 10**6)
    offset = rng.randrange(10**6)
    for n in range(10**6):
        stem = f"999{(step * n + offset) % 10**6:06d}"
        check = nhs_check_digit(stem)
        if check is not None:
            yield f"{stem}{check}"


def _urn(rng: random.Random) -> str:
    return f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def _instant(rng: random.Random, start: datetime, span: timedelta) -> datetime:
    return start + timedelta(seconds=rng.randrange(int(span.total_seconds())))


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PatientInfo:
    """What the queries need to know about one generated patient."""

    number: int  # position in the load, from 0
    nhs: str
    full_url: str
    resources: int  # the Patient and its records
    conditions: int
    medications: int
    recent_heart_rates: int  # heart-rate Observations on or after 5 years before ANCHOR
    res_id: str | None = None  # assigned by the server when loaded


@dataclass
class Job:
    """Bundles to run in order; they hold whole patients."""

    bundles: list[bytes]
    patients: list[PatientInfo]
    # Per Bundle: (entry index, patient) for the Patient entries, to pick up
    # the ids the server assigns.
    patient_entries: list[list[tuple[int, PatientInfo]]] = field(default_factory=list)

    @property
    def resources(self) -> int:
        return sum(p.resources for p in self.patients)


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _patient(rng: random.Random, nhs: str) -> dict[str, Any]:
    female = rng.random() < 0.51
    born = date(1930, 1, 1) + timedelta(days=rng.randrange(365 * 85))
    given = rng.choice(_GIVEN_FEMALE if female else _GIVEN_MALE)
    return {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
        "active": True,
        "name": [{"use": "official", "family": rng.choice(_FAMILIES), "given": [given]}],
        "gender": "female" if female else "male",
        "birthDate": born.isoformat(),
        "address": [
            {
                "use": "home",
                "line": [f"{rng.randrange(1, 300)} High Street"],
                "city": "London",
                "country": "GB",
            }
        ],
    }


def _observation(rng: random.Random, subject: str) -> tuple[dict[str, Any], VitalSign, datetime]:
    sign = rng.choices(VITAL_SIGNS, weights=_VITAL_WEIGHTS)[0]
    when = _instant(rng, ANCHOR - SPAN, SPAN)
    value = round(rng.uniform(sign.low, sign.high), sign.decimals)
    if sign.decimals == 0:
        value = int(value)
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                _coding(SNOMED, sign.snomed, sign.display),
                _coding(LOINC, sign.loinc, sign.display),
            ],
            "text": sign.display,
        },
        "subject": {"reference": subject},
        "effectiveDateTime": _stamp(when),
        "valueQuantity": {"value": value, "unit": sign.unit, "system": UCUM, "code": sign.ucum},
    }
    return resource, sign, when


def _condition(rng: random.Random, subject: str) -> dict[str, Any]:
    code, display = rng.choice(CONDITIONS)
    onset = _instant(rng, ANCHOR - SPAN, SPAN)
    return {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {"coding": [_coding(SNOMED, code, display)], "text": display},
        "subject": {"reference": subject},
        "onsetDateTime": _stamp(onset),
        "recordedDate": onset.date().isoformat(),
    }


def _medication_statement(rng: random.Random, subject: str) -> dict[str, Any]:
    code, display = rng.choice(MEDICINES)
    start = _instant(rng, ANCHOR - SPAN, SPAN)
    return {
        "resourceType": "MedicationStatement",
        "status": rng.choice(("active", "active", "completed")),
        "medicationCodeableConcept": {"coding": [_coding(SNOMED, code, display)], "text": display},
        "subject": {"reference": subject},
        "effectivePeriod": {"start": _stamp(start)},
        "dateAsserted": _stamp(start + timedelta(days=rng.randrange(1, 30))),
    }


def _encounter(rng: random.Random, subject: str) -> dict[str, Any]:
    start = _instant(rng, ANCHOR - SPAN, SPAN)
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB",
            "display": "ambulatory",
        },
        "type": [{"coding": [_coding(SNOMED, "185347001", "Encounter for problem")]}],
        "subject": {"reference": subject},
        "period": {
            "start": _stamp(start),
            "end": _stamp(start + timedelta(minutes=rng.randrange(10, 40))),
        },
    }


def patient_records(
    rng: random.Random, number: int, nhs: str, size: int
) -> tuple[list[dict[str, Any]], PatientInfo]:
    """Bundle entries for one patient: its Patient first, then ``size - 1``
    records (about 5 each of Conditions, MedicationStatements and
    Encounters, Observations for the rest)."""
    full_url = _urn(rng)
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": full_url,
            "resource": _patient(rng, nhs),
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    records = size - 1
    conditions = min(records, rng.randint(3, 7))
    medications = min(records - conditions, rng.randint(3, 7))
    encounters = min(records - conditions - medications, rng.randint(3, 7))
    observations = records - conditions - medications - encounters
    recent = datetime.combine(FIVE_YEARS_BEFORE_ANCHOR, datetime.min.time(), UTC)
    recent_heart_rates = 0
    resources: list[dict[str, Any]] = []
    for _ in range(observations):
        resource, sign, when = _observation(rng, full_url)
        if sign.snomed == HEART_RATE and when >= recent:
            recent_heart_rates += 1
        resources.append(resource)
    resources += [_condition(rng, full_url) for _ in range(conditions)]
    resources += [_medication_statement(rng, full_url) for _ in range(medications)]
    resources += [_encounter(rng, full_url) for _ in range(encounters)]
    rng.shuffle(resources)
    entries += [
        {
            "fullUrl": _urn(rng),
            "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"]},
        }
        for resource in resources
    ]
    info = PatientInfo(
        number=number,
        nhs=nhs,
        full_url=full_url,
        resources=size,
        conditions=conditions,
        medications=medications,
        recent_heart_rates=recent_heart_rates,
    )
    return entries, info


def _bundle(entries: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def plan_jobs(resources: int, batch: int, seed: int) -> Iterator[Job]:
    """The whole load, ``resources`` resources in all, as jobs of whole
    patients: ``batch`` entries per Bundle, as many whole patients as fit in
    one (at least one; a patient larger than ``batch`` is split over several
    Bundles of one job)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    numbers = nhs_numbers(seed)
    per_bundle = max(1, batch // RESOURCES_PER_PATIENT)
    remaining = resources
    number = 0
    while remaining > 0:
        group: list[tuple[list[dict[str, Any]], PatientInfo]] = []
        while len(group) < per_bundle and remaining > 0:
            size = min(RESOURCES_PER_PATIENT, remaining)
            # A generator per patient: patient n is the same in any size of load.
            rng = random.Random(f"{seed}-{number}")
            group.append(patient_records(rng, number, next(numbers), size))
            remaining -= size
            number += 1
        entries = [e for es, _ in group for e in es]
        infos = [info for _, info in group]
        chunks = [entries[i : i + batch] for i in range(0, len(entries), batch)]
        job = Job(bundles=[_bundle(chunk) for chunk in chunks], patients=infos)
        for chunk in chunks:
            job.patient_entries.append(
                [
                    (i, next(p for p in infos if p.full_url == e["fullUrl"]))
                    for i, e in enumerate(chunk)
                    if e["resource"]["resourceType"] == "Patient"
                ]
            )
        yield job
