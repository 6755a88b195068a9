"""A deterministic population for the consent-filtered search benchmark
(``bench.search_consent``): people, their records, and the organisations
caring for them, shaped so that each of four requesters sees a known share
of the people.

Every resource carries its id from the start (``resource_id``: the shape of
the UUIDv7 ids the server mints, growing in load order, with bits drawn from
the seed), so records refer to their Patient by id, any part of the load can
be made on its own, and the same seed gives the same resources, ids, codes,
values and dates whatever the size of the load: person ``n`` is the same in
a load of 2,000 people as in one of 20,000.

Organisations (first in the load): ``PRACTICES`` GP practices, the council,
the community trust, the hospital and the organisation that sees no one,
each an Organization carrying its ODS code.

Each person (``records``), ``per_person`` resources in all: a Patient (NHS
number, name, gender, birth date, address) registered with one of the
practices (``Patient.generalPractitioner``: for even-numbered people by the
practice's ODS identifier, for odd ones by a reference to its Organization,
as both occur in real data); an active EpisodeOfCare managed by the
community trust (named by reference to its Organization); for about 10% of
people an active EpisodeOfCare managed by the council (by identifier); for
about 1% an active privacy Consent refusing the council (a dissent: the
person's record is then withheld from it); then 2-4 Conditions, 2-4
MedicationStatements, 2-4 Encounters (finished years ago, at the hospital:
no relationship comes of them) and vital-sign Observations for the rest
(``bench._synthetic``'s, over the ten years to 2025-06-30). Every record's
``meta.source`` is ``urn:ods:BENCH``: none of the requesters authored
anything, so what they see comes from the care relationships alone.

The requesters (``AUDIENCES``), each for direct care (TREAT):

- ``1%``: one GP practice (the people registered with it, ~1 in
  ``PRACTICES``);
- ``10%``: the council (its episodes, less the people who refused it);
- ``100%``: the community trust (an episode with every person);
- ``none``: a hospital with no relationship with anyone (every search
  matches nothing it may see).

``sees`` says which people a requester sees, from the plan alone
(``plan_person``); the benchmark's answer checks rely on it. Some Conditions
(depression, anxiety) get a restricted-data label when written
(``consent.labels``), which no requester's relationship opens; the
Observations and Patients the benchmark searches carry none.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass
from datetime import date
from itertools import islice
from typing import Any

from bench._synthetic import (
    _condition,
    _encounter,
    _medication_statement,
    _observation,
    _patient,
    nhs_numbers,
)
from consent.model import Requester

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SOURCE_ODS = "BENCH"  # meta.source urn:ods:BENCH: no requester's
PRACTICES = 100
GP_PRACTICE = 7  # the practice that is the 1% requester
COUNCIL = "E09000007"  # Camden
COUNCIL_SHARE = 0.10
DISSENT_SHARE = 0.01  # people refusing the council
TRUST = "RYX"  # Central London Community Healthcare NHS Trust
HOSPITAL = "RAL"  # Royal Free: Encounters long finished
STRANGER = "RRV"  # UCLH: a relationship with no one
MIN_PER_PERSON = 20
# Ids carry milliseconds from here on: 2025-07-01T00:00:00Z.
_ID_EPOCH_MS = 1_751_328_000_000
_CONSENT_SCOPE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
    ]
}
_RECIPIENT = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
    ]
}


def practice_ods(number: int) -> str:
    return f"F84{number:03d}"


@dataclass(frozen=True)
class Audience:
    """One requester of the benchmark and the share of people it sees."""

    key: str  # 1%, 10%, 100%, none
    requester: Requester
    about: str


AUDIENCES: tuple[Audience, ...] = (
    Audience(
        "1%",
        Requester(practice_ods(GP_PRACTICE), "gp-practice", "TREAT", org_name="Bench Practice"),
        f"GP practice {practice_ods(GP_PRACTICE)}: its registered patients",
    ),
    Audience(
        "10%",
        Requester(COUNCIL, "council", "TREAT", org_name="Camden Council"),
        f"council {COUNCIL}: active EpisodesOfCare, less dissents",
    ),
    Audience(
        "100%",
        Requester(TRUST, "hospital", "TREAT", org_name="Community trust"),
        f"community trust {TRUST}: an active EpisodeOfCare with everyone",
    ),
    Audience(
        "none",
        Requester(STRANGER, "hospital", "TREAT", org_name="Unrelated hospital"),
        f"hospital {STRANGER}: no relationship with anyone",
    ),
)


@dataclass(frozen=True)
class PersonPlan:
    """Who cares for person ``number``: everything visibility depends on."""

    number: int
    practice: int
    gp_by_reference: bool
    council: bool
    dissent: bool


def plan_person(seed: int, number: int) -> PersonPlan:
    rng = random.Random(f"{seed}-plan-{number}")
    practice = rng.randrange(PRACTICES)
    council = rng.random() < COUNCIL_SHARE
    dissent = rng.random() < DISSENT_SHARE
    return PersonPlan(number, practice, number % 2 == 1, council, dissent)


def sees(key: str, plan: PersonPlan) -> bool:
    """Whether the requester ``key`` (an ``Audience.key``) sees the person."""
    if key == "1%":
        return plan.practice == GP_PRACTICE
    if key == "10%":
        return plan.council and not plan.dissent
    if key == "100%":
        return True
    if key == "none":
        return False
    raise ValueError(key)


def resource_id(seed: int, index: int) -> str:
    """The id of the ``index``-th resource of the load: a UUIDv7 whose
    milliseconds grow with ``index`` (as the server's grow with time, so
    index B-trees grow at their right edge), its other bits from the seed."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=10).digest()
    raw = bytearray((_ID_EPOCH_MS + index).to_bytes(6, "big") + digest)
    raw[6] = 0x70 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    return str(uuid.UUID(bytes=bytes(raw)))


@dataclass(frozen=True)
class Record:
    res_type: str
    res_id: str
    resource: dict[str, Any]  # without id and meta: the write path adds them


def _identifier(ods: str) -> dict[str, Any]:
    return {"system": ODS_SYSTEM, "value": ods}


def _organisation(name: str, ods: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "identifier": [_identifier(ods)],
        "active": True,
        "name": name,
    }


def organisation_codes() -> list[tuple[str, str]]:
    """(ODS code, name) of every Organization, in load order."""
    practices = [(practice_ods(n), f"Practice {n}") for n in range(PRACTICES)]
    return [
        *practices,
        (COUNCIL, "Camden Council"),
        (TRUST, "Central London Community Healthcare NHS Trust"),
        (HOSPITAL, "Royal Free London NHS Foundation Trust"),
        (STRANGER, "University College London Hospitals NHS Foundation Trust"),
    ]


ORGANISATIONS = len(organisation_codes())


def organisation_id(seed: int, ods: str) -> str:
    codes = [code for code, _ in organisation_codes()]
    return resource_id(seed, codes.index(ods))


def organisations(seed: int) -> list[Record]:
    return [
        Record("Organization", resource_id(seed, n), _organisation(name, ods))
        for n, (ods, name) in enumerate(organisation_codes())
    ]


@dataclass
class PersonRecords:
    plan: PersonPlan
    patient_id: str
    records: list[Record]  # the Patient first
    observations: list[tuple[str, str]]  # (effectiveDateTime, id) of each Observation


def nhs_numbers_for(seed: int, people: int) -> list[str]:
    """The NHS numbers of people 0 to ``people - 1``."""
    return list(islice(nhs_numbers(seed), people))


def _first_index(number: int, per_person: int) -> int:
    """The position in the load of person ``number``'s Patient."""
    return ORGANISATIONS + number * per_person


def patient_id(seed: int, number: int, per_person: int) -> str:
    return resource_id(seed, _first_index(number, per_person))


def records(seed: int, number: int, nhs: str, per_person: int) -> PersonRecords:
    """Person ``number``'s ``per_person`` resources, the Patient first."""
    if per_person < MIN_PER_PERSON:
        raise ValueError(f"at least {MIN_PER_PERSON} resources per person")
    plan = plan_person(seed, number)
    first = _first_index(number, per_person)
    ids = (resource_id(seed, first + k) for k in range(per_person))
    rng = random.Random(f"{seed}-{number}")
    patient = _patient(rng, nhs)
    gp_ods = practice_ods(plan.practice)
    gp: dict[str, Any]
    if plan.gp_by_reference:
        gp = {"reference": f"Organization/{organisation_id(seed, gp_ods)}", "display": gp_ods}
    else:
        gp = {"type": "Organization", "identifier": _identifier(gp_ods)}
    patient["generalPractitioner"] = [gp]
    patient_id = next(ids)
    subject = f"Patient/{patient_id}"
    out = [Record("Patient", patient_id, patient)]
    registered = date(2000, 1, 1).toordinal() + rng.randrange(9000)
    out.append(
        Record(
            "EpisodeOfCare",
            next(ids),
            _episode(
                subject,
                {"reference": f"Organization/{organisation_id(seed, TRUST)}", "display": TRUST},
                date.fromordinal(registered),
            ),
        )
    )
    if plan.council:
        started = date.fromordinal(registered + rng.randrange(3000))
        out.append(
            Record(
                "EpisodeOfCare",
                next(ids),
                _episode(
                    subject, {"type": "Organization", "identifier": _identifier(COUNCIL)}, started
                ),
            )
        )
    if plan.dissent:
        out.append(Record("Consent", next(ids), _dissent(subject, COUNCIL)))
    rest = per_person - len(out)
    conditions = rng.randint(2, 4)
    medications = rng.randint(2, 4)
    encounters = rng.randint(2, 4)
    observations = rest - conditions - medications - encounters
    clinical: list[dict[str, Any]] = []
    for _ in range(observations):
        clinical.append(_observation(rng, subject)[0])
    clinical += [_condition(rng, subject) for _ in range(conditions)]
    clinical += [_medication_statement(rng, subject) for _ in range(medications)]
    for _ in range(encounters):
        encounter = _encounter(rng, subject)
        encounter["serviceProvider"] = {"type": "Organization", "identifier": _identifier(HOSPITAL)}
        clinical.append(encounter)
    rng.shuffle(clinical)
    seen: list[tuple[str, str]] = []
    for resource in clinical:
        record = Record(resource["resourceType"], next(ids), resource)
        out.append(record)
        if record.res_type == "Observation":
            seen.append((resource["effectiveDateTime"], record.res_id))
    assert len(out) == per_person
    return PersonRecords(plan, patient_id, out, seen)


def _episode(subject: str, manager: dict[str, Any], start: date) -> dict[str, Any]:
    return {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "patient": {"reference": subject},
        "managingOrganization": manager,
        "period": {"start": start.isoformat()},
    }


def _dissent(subject: str, refused: str) -> dict[str, Any]:
    """An active privacy Consent refusing ``refused`` (an ODS code) access
    to the person's record."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": _CONSENT_SCOPE,
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": subject},
        "dateTime": "2024-01-15T10:00:00Z",
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}
            ]
        },
        "provision": {
            "type": "deny",
            "actor": [{"role": _RECIPIENT, "reference": {"identifier": _identifier(refused)}}],
        },
    }
