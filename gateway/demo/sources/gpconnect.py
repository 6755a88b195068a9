"""The GP practices' records as GP Connect sends them: one NDJSON file per
practice, each line the STU3 Bundle a practice's system answers
``$gpc.getstructuredrecord`` with (CareConnect-GPC profiles) for one person
registered there, shaped as ``mappings/gpconnect`` reads it.

Each Bundle holds the Patient, the practice's Organization, the person's
usual GP (Practitioner and PractitionerRole), and the Lists GP Connect
answers with for the areas asked for (problems, medications, allergies,
uncategorised data), each listing its items or saying it is empty: problems
as ProblemHeader Conditions, each medicine as its Medication, authorisation
(MedicationRequest, intent plan) and summary (MedicationStatement),
allergies, and the person's latest observations (blood pressure, pulse,
weight, height, BMI) as uncategorised data, with, for a person who refused
the local shared care record, the coded entry that says so (SNOMED CT
416409005).

Every identifier is a GUID made from the practice and the person's index
(the Patient's logical id is the GP system's number for the person), so the
same people make the same files. A person without an NHS number is not
written: a structured record is refused without one (GP Connect traces every
registered person on PDS, so a real practice has none). Planted defect
``GP_BAD_NHS_NUMBER``: the Patient's NHS number has a wrong check digit, so
the whole record is refused.

https://developer.nhs.uk/apis/gpconnect/accessrecord_structured.html
"""

from __future__ import annotations

import random
import uuid
import zlib
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.demo.people import GP_BAD_NHS_NUMBER, Allergy, Medicine, Person, Problem, Vitals
from gateway.demo.sources import SourceFile, london_at, london_moment, wrong_check_digit
from gateway.demo.world import Organisation, drama_landline

Json = dict[str, Any]

FORMAT = "gp-connect"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SDS_USER = "https://fhir.nhs.uk/Id/sds-user-id"
SDS_ROLE = "https://fhir.nhs.uk/Id/sds-role-profile-id"
CROSS_CARE = "https://fhir.nhs.uk/Id/cross-care-setting-identifier"
_STU3 = "https://fhir.nhs.uk/STU3/StructureDefinition"
_HL7UK = "https://fhir.hl7.org.uk/STU3/StructureDefinition"
_PROFILE = f"{_STU3}/CareConnect-GPC-"
_BUNDLE_PROFILE = f"{_STU3}/GPConnect-StructuredRecord-Bundle-1"
_EXT_VERIFICATION = f"{_STU3}/Extension-CareConnect-GPC-NHSNumberVerificationStatus-1"
_EXT_ETHNIC = f"{_HL7UK}/Extension-CareConnect-EthnicCategory-1"
_EXT_SIGNIFICANCE = f"{_HL7UK}/Extension-CareConnect-ProblemSignificance-1"
_EXT_LAST_ISSUE = f"{_STU3}/Extension-CareConnect-GPC-MedicationStatementLastIssueDate-1"
_EXT_AGENCY = f"{_STU3}/Extension-CareConnect-GPC-PrescribingAgency-1"
_EXT_REPEAT = f"{_STU3}/Extension-CareConnect-GPC-MedicationRepeatInformation-1"
_EXT_PRESCRIPTION_TYPE = f"{_STU3}/Extension-CareConnect-GPC-PrescriptionType-1"
_EXT_STATUS_REASON = f"{_STU3}/Extension-CareConnect-GPC-MedicationStatusReason-1"
_VERIFICATION_SYSTEM = (
    "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-NHSNumberVerificationStatus-1"
)
_ETHNIC_SYSTEM = "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-EthnicCategory-1"
_AGENCY_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescribingAgency-1"
_PRESCRIPTION_TYPE_SYSTEM = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescriptionType-1"
_JOB_ROLE_SYSTEM = "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-SDSJobRoleName-1"
_CONDITION_CATEGORY = "http://hl7.org/fhir/condition-category"
_OBSERVATION_CATEGORY = "http://hl7.org/fhir/observation-category"
_LIST_ORDER = "http://hl7.org/fhir/list-order"
_LIST_EMPTY = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ListEmptyReasonCode-1"
_EXT_WARNING = f"{_STU3}/Extension-CareConnect-GPC-ListWarningCode-1"
# A heading's warnings that it is incomplete, with the words a GP system
# puts in the List's note.
_WARNING_WORDS = {
    "confidential-items": "Items excluded as confidential or at the patient's wish.",
    "data-in-transit": "The record from the patient's previous practice has not all "
    "arrived yet: items recorded there may be missing.",
    "data-awaiting-filing": "Some items received by the practice await review before "
    "they are filed: they may be missing here.",
}

# The List headings asked for (SNOMED CT), as GP Connect answers them.
_LISTS: dict[str, tuple[str, str]] = {
    "allergies": ("886921000000105", "Allergies and adverse reactions"),
    "medications": ("933361000000108", "Medications and medical devices"),
    "problems": ("717711000000103", "Problems"),
    "uncategorised": ("826501000000100", "Miscellaneous record"),
}
# NHS ethnic categories (2001 census), as CareConnect codes them.
_ETHNIC: dict[str, str] = {
    "A": "British, Mixed British",
    "B": "Irish",
    "C": "Any other White background",
    "D": "White and Black Caribbean",
    "E": "White and Black African",
    "F": "White and Asian",
    "G": "Any other mixed background",
    "H": "Indian or British Indian",
    "J": "Pakistani or British Pakistani",
    "K": "Bangladeshi or British Bangladeshi",
    "L": "Any other Asian background",
    "M": "Caribbean",
    "N": "African",
    "P": "Any other Black background",
    "R": "Chinese",
    "S": "Any other ethnic group",
    "Z": "Not stated",
    "99": "Not known",
}
# The entry a GP system records when a person refuses the local shared care
# record (read by mappings/gpconnect/sharing.py into a privacy Consent).
REFUSED_SHARING = ("416409005", "Refused consent for upload to local shared electronic record")

# The practices' GPs: invented names, two per practice.
_GPS: tuple[tuple[str, str, str], ...] = (
    ("Helen", "Marwick", "female"),
    ("Olusegun", "Adebayo-Crane", "male"),
    ("Farah", "Qureshi", "female"),
    ("Tobias", "Lindgren", "male"),
    ("Aoife", "Delahunt", "female"),
    ("Rohan", "Varadarajan", "male"),
    ("Mirela", "Costescu", "female"),
    ("Kwabena", "Ofori-Atta", "male"),
    ("Sinead", "Moriarty", "female"),
    ("Daniel", "Achebe-Ross", "male"),
    ("Yuki", "Hargreaves", "female"),
    ("Idris", "Pemberton", "male"),
)
_VITALS: dict[str, tuple[str, str, str, str]] = {
    # field: (SNOMED CT code, display, UCUM unit, unit shown)
    "pulse": ("78564009", "Pulse rate", "/min", "beats/min"),
    "weight": ("27113001", "Body weight", "kg", "kg"),
    "height": ("50373000", "Body height measure", "cm", "cm"),
    "bmi": ("60621009", "Body mass index", "kg/m2", "kg/m2"),
}
_BLOOD_PRESSURE = ("75367002", "Blood pressure")
_SYSTOLIC = ("72313002", "Systolic arterial pressure")
_DIASTOLIC = ("1091811000000102", "Diastolic arterial pressure")
# Problems a GP marks major (the rest are minor).
_MINOR = frozenset({"105629000", "417430008"})  # chlamydia, vulnerable adult
_GUID_SPACE = uuid.UUID("0b6c1d2e-3f40-4a51-9b62-7c8d9e0fa1b2")


def _coding(code: str, display: str, system: str = SNOMED) -> Json:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _ref(kind: str, logical_id: str) -> Json:
    return {"reference": f"{kind}/{logical_id}"}


class _Practice:
    """One practice's file and what every Bundle of it says of the
    practice: its Organization and its GPs."""

    def __init__(self, out: Path, practice: Organisation) -> None:
        self.practice = practice
        self.path = Path("gp") / f"{practice.ods}-structured.ndjson"
        self.stream: IO[bytes] = (out / self.path).open("wb")
        self.records = 0
        self.defective = 0
        crc = zlib.crc32(practice.ods.encode())
        self.organization: Json = {
            "resourceType": "Organization",
            "id": "org-practice",
            "meta": {"profile": [f"{_PROFILE}Organization-1"]},
            "identifier": [{"system": ODS, "value": practice.ods}],
            "name": practice.name,
            "telecom": [{"system": "phone", "value": drama_landline(crc), "use": "work"}],
        }
        start = crc % len(_GPS)
        self.doctors: list[tuple[Json, Json]] = []
        for n in range(2):
            given, family, gender = _GPS[(start + n * 5) % len(_GPS)]
            doctor: Json = {
                "resourceType": "Practitioner",
                "id": "prac-gp",
                "meta": {"profile": [f"{_PROFILE}Practitioner-1"]},
                "identifier": [{"system": SDS_USER, "value": f"G9{crc % 100_000:05d}{n}"}],
                "name": [{"use": "usual", "family": family, "given": [given], "prefix": ["Dr"]}],
                "gender": gender,
            }
            role: Json = {
                "resourceType": "PractitionerRole",
                "id": "role-gp",
                "meta": {"profile": [f"{_PROFILE}PractitionerRole-1"]},
                "identifier": [{"system": SDS_ROLE, "value": f"5559{crc % 10**7:07d}{n}"}],
                "practitioner": _ref("Practitioner", "prac-gp"),
                "organization": _ref("Organization", "org-practice"),
                "code": [_coding("R0260", "General Medical Practitioner", _JOB_ROLE_SYSTEM)],
            }
            self.doctors.append((doctor, role))


class GpConnectWriter:
    """``SourceWriter`` of the practices' GP Connect structured records."""

    def __init__(self, out: Path, practices: Sequence[Organisation], today: date) -> None:
        (out / "gp").mkdir(parents=True, exist_ok=True)
        self.today = today
        # When every response was made: the record's version, with Bundle.id.
        self.answered = london_at(today, 7)
        self.practices = {p.ods: _Practice(out, p) for p in practices}
        self.skipped = 0  # registered people without an NHS number

    def add(self, person: Person) -> None:
        practice = self.practices.get(person.practice.ods)
        if practice is None:
            return
        if person.nhs_number is None:
            self.skipped += 1
            return
        bundle = _Bundle(person, practice, self.today, self.answered).build()
        practice.stream.write(orjson.dumps(bundle) + b"\n")
        practice.records += 1
        practice.defective += GP_BAD_NHS_NUMBER in person.defects

    def close(self) -> list[SourceFile]:
        files = []
        for practice in self.practices.values():
            practice.stream.close()
            files.append(
                SourceFile(
                    practice.path,
                    FORMAT,
                    practice.practice.ods,
                    practice.records,
                    practice.defective,
                )
            )
        return files


class _Bundle:
    """One person's structured record, built once and dropped."""

    def __init__(self, person: Person, practice: _Practice, today: date, answered: str) -> None:
        self.person = person
        self.practice = practice
        self.today = today
        self.answered = answered
        self.rng = random.Random(f"gp-connect:{person.index}")
        self.guid = str(uuid.uuid5(_GUID_SPACE, f"{practice.practice.ods}:{person.index}"))
        # The GP system's own number for the person (its logical id).
        self.number = str(1_000_000 + person.index)
        self.patient = _ref("Patient", self.number)
        self.doctor, self.role = practice.doctors[self.rng.randrange(len(practice.doctors))]
        self.warnings = self._warnings(random.Random(f"gp-connect-warnings:{person.index}"))

    @staticmethod
    def _warnings(rng: random.Random) -> dict[str, list[str]]:
        """The headings this record warns are incomplete: a few people
        moved practice lately (every heading), some have items awaiting
        filing (medication) or left out as confidential (problems)."""
        found: dict[str, list[str]] = {area: [] for area in _LISTS}
        if rng.random() < 0.04:
            for codes in found.values():
                codes.append("data-in-transit")
        if rng.random() < 0.05:
            found["medications"].append("data-awaiting-filing")
        if rng.random() < 0.03:
            found["problems"].append("confidential-items")
        return found

    def id(self, kind: int, n: int = 0) -> str:
        """A GUID of this person's, for item ``n`` of kind ``kind`` (the
        cross-care-setting identifier GP Connect keeps persistent)."""
        return f"{self.guid[:-5]}{kind:1x}{n:04x}"

    def identifier(self, kind: int, n: int = 0) -> list[Json]:
        return [{"system": CROSS_CARE, "value": self.id(kind, n)}]

    def build(self) -> Json:
        entries: dict[str, list[str]] = {area: [] for area in _LISTS}
        items: list[Json] = []
        for n, allergy in enumerate(self.person.allergies):
            items.append(self.allergy(n, allergy))
            entries["allergies"].append(f"AllergyIntolerance/{items[-1]['id']}")
        for n, medicine in enumerate(self.person.medicines):
            course = self.medicine(n, medicine)
            items += course
            entries["medications"].append(f"MedicationStatement/{course[1]['id']}")
        for n, problem in enumerate(self.person.problems):
            items.append(self.problem(n, problem))
            entries["problems"].append(f"Condition/{items[-1]['id']}")
        if self.person.vitals is not None:
            for observation in self.vitals(self.person.vitals):
                items.append(observation)
                entries["uncategorised"].append(f"Observation/{observation['id']}")
        if self.person.dissented is not None:
            items.append(self.dissent(self.person.dissented))
            entries["uncategorised"].append(f"Observation/{items[-1]['id']}")
        resources = [
            self.patient_resource(),
            self.practice.organization,
            self.doctor,
            self.role,
            *(self.listing(area, named) for area, named in entries.items()),
            *items,
        ]
        return {
            "resourceType": "Bundle",
            "id": self.id(0xF),
            "meta": {"lastUpdated": self.answered, "profile": [_BUNDLE_PROFILE]},
            "type": "collection",
            "entry": [{"resource": r} for r in resources],
        }

    def patient_resource(self) -> Json:
        person = self.person
        assert person.nhs_number is not None
        number = person.nhs_number
        if GP_BAD_NHS_NUMBER in person.defects:
            number = wrong_check_digit(number)
        name: Json = {"use": "official", "family": person.family, "given": list(person.given)}
        if person.title:
            name["prefix"] = [person.title]
        mobile = person.phone.startswith("07")
        *lines, town, postcode = person.address
        resource: Json = {
            "resourceType": "Patient",
            "id": self.number,
            "meta": {"profile": [f"{_PROFILE}Patient-1"]},
        }
        if person.ethnicity in _ETHNIC:
            resource["extension"] = [
                {
                    "url": _EXT_ETHNIC,
                    "valueCodeableConcept": _coding(
                        person.ethnicity, _ETHNIC[person.ethnicity], _ETHNIC_SYSTEM
                    ),
                }
            ]
        resource.update(
            {
                "identifier": [
                    {
                        "extension": [
                            {
                                "url": _EXT_VERIFICATION,
                                "valueCodeableConcept": _coding(
                                    "01", "Number present and verified", _VERIFICATION_SYSTEM
                                ),
                            }
                        ],
                        "system": NHS_NUMBER,
                        "value": number,
                    }
                ],
                "active": True,
                "name": [name],
                "telecom": [
                    {
                        "system": "phone",
                        "value": person.phone,
                        "use": "mobile" if mobile else "home",
                    }
                ],
                "gender": person.gender,
                "birthDate": person.birth_date.isoformat(),
                "address": [
                    {
                        "use": "home",
                        "type": "physical",
                        "line": lines,
                        "city": town,
                        "district": person.borough.name,
                        "postalCode": postcode,
                    }
                ],
                "generalPractitioner": [_ref("Practitioner", "prac-gp")],
                "managingOrganization": _ref("Organization", "org-practice"),
            }
        )
        return resource

    def listing(self, area: str, named: list[str]) -> Json:
        code, title = _LISTS[area]
        resource: Json = {
            "resourceType": "List",
            "id": f"list-{area}",
            "meta": {"profile": [f"{_PROFILE}List-1"]},
            "status": "current",
            "mode": "snapshot",
            "title": title,
            "code": _coding(code, title),
            "subject": self.patient,
            "date": self.answered,
            "orderedBy": {"coding": [{"system": _LIST_ORDER, "code": "event-date"}]},
        }
        warnings = self.warnings[area]
        if warnings:
            resource["extension"] = [{"url": _EXT_WARNING, "valueCode": code} for code in warnings]
            resource["note"] = [{"text": _WARNING_WORDS[code]} for code in warnings]
        if named:
            resource["entry"] = [{"item": {"reference": ref}} for ref in named]
        else:
            resource.setdefault("note", []).append({"text": "Information not available"})
            resource["emptyReason"] = _coding(
                "no-content-recorded", "No Content Recorded", _LIST_EMPTY
            )
        return resource

    def allergy(self, n: int, allergy: Allergy) -> Json:
        recorded = allergy.recorded or self.person.birth_date
        return {
            "resourceType": "AllergyIntolerance",
            "id": f"allergy-{n}",
            "meta": {"profile": [f"{_PROFILE}AllergyIntolerance-1"]},
            "identifier": self.identifier(1, n),
            "clinicalStatus": "active",
            "verificationStatus": "unconfirmed",
            "type": "allergy",
            "category": [allergy.category],
            "criticality": "high" if allergy.severity == "severe" else "low",
            "code": _coding(allergy.snomed, f"Allergy to {allergy.substance.lower()}"),
            "patient": self.patient,
            "assertedDate": london_at(recorded, 10, 5 * (n % 12)),
            "recorder": _ref("Practitioner", "prac-gp"),
            "reaction": [
                {
                    "manifestation": [{"text": allergy.reaction}],
                    "severity": allergy.severity,
                }
            ],
        }

    def medicine(self, n: int, medicine: Medicine) -> list[Json]:
        """The Medication, its authorisation (plan) and the summary of the
        course (statement), which points at the plan. One a hospital
        stopped is stopped in both, as GP Connect says it: the statement's
        end, the plan's status reason with the day it changed."""
        rng = self.rng
        started = medicine.started or self.today - timedelta(days=rng.randint(30, 900))
        if medicine.as_required:
            last_issue = self.today - timedelta(days=rng.randint(10, 200))
        else:
            last_issue = self.today - timedelta(days=rng.randint(2, 27))
        last_issue = max(last_issue, started)
        if medicine.stopped is not None:
            last_issue = min(last_issue, medicine.stopped)
        authorised = london_at(started, 9 + n % 8, 10 * (n % 6))
        code = _coding(medicine.dmd, medicine.name) if medicine.dmd else {"text": medicine.name}
        dosage = [{"text": medicine.dose}]
        medication: Json = {
            "resourceType": "Medication",
            "id": f"med-{n}",
            "meta": {"profile": [f"{_PROFILE}Medication-1"]},
            "code": code,
        }
        statement: Json = {
            "resourceType": "MedicationStatement",
            "id": f"ms-{n}",
            "meta": {"profile": [f"{_PROFILE}MedicationStatement-1"]},
            "extension": [
                {"url": _EXT_LAST_ISSUE, "valueDateTime": last_issue.isoformat()},
                {
                    "url": _EXT_AGENCY,
                    "valueCodeableConcept": _coding(
                        "prescribed-at-gp-practice", "Prescribed at GP practice", _AGENCY_SYSTEM
                    ),
                },
            ],
            "identifier": self.identifier(2, n),
            "basedOn": [_ref("MedicationRequest", f"mr-{n}")],
            "status": "active",
            "medicationReference": _ref("Medication", f"med-{n}"),
            "effectivePeriod": {"start": started.isoformat()},
            "dateAsserted": authorised,
            "subject": self.patient,
            "taken": "unk",
            "dosage": dosage,
        }
        if medicine.stopped is not None:
            statement["status"] = "stopped"
            statement["effectivePeriod"]["end"] = medicine.stopped.isoformat()
        issued = min(max((last_issue - started).days // 28, 0), 12)
        plan: Json = {
            "resourceType": "MedicationRequest",
            "id": f"mr-{n}",
            "meta": {"profile": [f"{_PROFILE}MedicationRequest-1"]},
            "extension": [
                {
                    "url": _EXT_REPEAT,
                    "extension": [
                        {"url": "numberOfRepeatPrescriptionsAllowed", "valuePositiveInt": 12},
                        {"url": "numberOfRepeatPrescriptionsIssued", "valueUnsignedInt": issued},
                    ],
                },
                {
                    "url": _EXT_PRESCRIPTION_TYPE,
                    "valueCodeableConcept": _coding("repeat", "Repeat", _PRESCRIPTION_TYPE_SYSTEM),
                },
            ],
            "identifier": self.identifier(3, n),
            "status": "active",
            "intent": "plan",
            "medicationReference": _ref("Medication", f"med-{n}"),
            "subject": self.patient,
            "authoredOn": authorised,
            "recorder": _ref("PractitionerRole", "role-gp"),
            "dosageInstruction": dosage,
            "dispenseRequest": {
                "validityPeriod": {"start": started.isoformat()},
                "expectedSupplyDuration": {
                    "value": 28,
                    "unit": "day",
                    "system": UCUM,
                    "code": "d",
                },
            },
        }
        if medicine.stopped is not None:
            plan["status"] = "stopped"
            plan["extension"].append(
                {
                    "url": _EXT_STATUS_REASON,
                    "extension": [
                        {"url": "statusChangeDate", "valueDateTime": medicine.stopped.isoformat()},
                        {
                            "url": "statusReason",
                            "valueCodeableConcept": {"text": medicine.why_stopped},
                        },
                    ],
                }
            )
        return [medication, statement, plan]

    def problem(self, n: int, problem: Problem) -> Json:
        code = problem.code
        return {
            "resourceType": "Condition",
            "id": f"problem-{n}",
            "meta": {"profile": [f"{_PROFILE}ProblemHeader-Condition-1"]},
            "extension": [
                {
                    "url": _EXT_SIGNIFICANCE,
                    "valueCode": "minor" if code.snomed in _MINOR else "major",
                }
            ],
            "identifier": self.identifier(4, n),
            "clinicalStatus": "active" if problem.active else "resolved",
            "category": [_coding("problem-list-item", "Problem List Item", _CONDITION_CATEGORY)],
            "code": _coding(code.snomed, code.display),
            "subject": self.patient,
            "onsetDateTime": problem.onset.isoformat(),
            "assertedDate": london_at(problem.onset, 9 + n % 8, 5 * (n % 12)),
            "asserter": _ref("Practitioner", "prac-gp"),
        }

    def _observation(
        self, n: int, taken: tuple[str, str], code: tuple[str, str], **values: Any
    ) -> Json:
        return {
            "resourceType": "Observation",
            "id": f"obs-{n}",
            "meta": {"profile": [f"{_PROFILE}Observation-1"]},
            "identifier": self.identifier(5, n),
            "status": "final",
            "category": [_coding("vital-signs", "Vital Signs", _OBSERVATION_CATEGORY)],
            "code": _coding(*code),
            "subject": self.patient,
            "effectiveDateTime": taken[0],
            "issued": taken[1],
            "performer": [_ref("Practitioner", "prac-gp")],
            **values,
        }

    def vitals(self, vitals: Vitals) -> list[Json]:
        """Blood pressure, pulse, weight, height and BMI as the GP recorded
        them at the person's last check."""
        # When measured, and when the GP system recorded it.
        taken = (london_moment(vitals.taken), london_moment(vitals.taken + timedelta(minutes=9)))

        def quantity(value: float, field: str) -> Json:
            _, _, ucum, unit = _VITALS[field]
            return {"value": value, "unit": unit, "system": UCUM, "code": ucum}

        def mmhg(value: int) -> Json:
            return {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}

        found = [
            self._observation(
                0,
                taken,
                _BLOOD_PRESSURE,
                component=[
                    {"code": _coding(*_SYSTOLIC), "valueQuantity": mmhg(vitals.systolic)},
                    {"code": _coding(*_DIASTOLIC), "valueQuantity": mmhg(vitals.diastolic)},
                ],
            )
        ]
        for n, (field, value) in enumerate(
            (
                ("pulse", vitals.pulse),
                ("weight", vitals.weight_kg),
                ("height", vitals.height_cm),
                ("bmi", vitals.bmi),
            ),
            start=1,
        ):
            code, display, _, _ = _VITALS[field]
            found.append(
                self._observation(n, taken, (code, display), valueQuantity=quantity(value, field))
            )
        return found

    def dissent(self, day: date) -> Json:
        """The coded entry of the person's refusal of the local shared care
        record, as uncategorised data."""
        return {
            "resourceType": "Observation",
            "id": "obs-sharing",
            "meta": {"profile": [f"{_PROFILE}Observation-1"]},
            "identifier": self.identifier(6),
            "status": "final",
            "code": _coding(*REFUSED_SHARING),
            "subject": self.patient,
            "effectiveDateTime": day.isoformat(),
            "issued": london_at(day, 11, 20),
            "performer": [_ref("Practitioner", "prac-gp")],
        }
