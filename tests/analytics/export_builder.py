"""A small pseudonymised bulk export, written by hand in the shape the
export contract gives (``docs/export.md``, "Pseudonymised output"): ids and
person references are 32-hex pseudonyms, Organisations keep their ids and
ODS codes, organisations named by ODS code keep the identifier, no names or
free text (no ``CodeableConcept.text``, no displays of local systems),
birth dates as YYYY-MM.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
PSEUDONYM = "urn:london-care-gateway:pseudonym"
ADMISSION_METHOD = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod"
ADMISSION_METHODS = "https://fhir.hl7.org.uk/CodeSystem/UKCore-AdmissionMethodEngland"
SERVICE_CATEGORY = (
    "https://fhir.interweavedigital.nhs.uk/CodeSystem/Interweave-SocialCareServiceCategory"
)
EPISODE_TYPE = "urn:london-care-gateway:episode-type"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SNOMED = "http://snomed.info/sct"
TRANSACTION_TIME = "2026-12-01T09:00:00Z"


def pseudonym(name: str) -> str:
    """A stable 32-hex pseudonym for a test's name for someone."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def patient(
    name: str,
    *,
    birth: str = "1950-03",
    gender: str = "female",
    district: str = "NW1",
    borough: str | None = "Camden",
    practice: dict[str, Any] | None = None,
) -> dict[str, Any]:
    key = pseudonym(name)
    address: dict[str, Any] = {"postalCode": district, "country": "GB"}
    if borough:
        address["district"] = borough
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": key,
        "identifier": [{"system": PSEUDONYM, "value": key}],
        "gender": gender,
        "birthDate": birth,
        "address": [address],
    }
    if practice is not None:
        resource["generalPractitioner"] = [practice]
    return resource


def by_ods(code: str) -> dict[str, Any]:
    return {"identifier": {"system": ODS, "value": code}}


def organisation(key: str, code: str, name: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": key,
        "identifier": [{"system": ODS, "value": code}],
        "name": name,
    }


def admission(
    name: str,
    number: int,
    start: str,
    end: str | None = None,
    *,
    method: str = "21",
    kind: str = "IMP",
    status: str | None = None,
) -> dict[str, Any]:
    period = {"start": start, **({"end": end} if end else {})}
    return {
        "resourceType": "Encounter",
        "id": pseudonym(f"{name} encounter {number}"),
        "status": status or ("finished" if end else "in-progress"),
        "class": {"system": ACT_CODE, "code": kind},
        "subject": {"reference": f"Patient/{pseudonym(name)}"},
        "period": period,
        "hospitalization": {
            "extension": [
                {
                    "url": ADMISSION_METHOD,
                    "valueCodeableConcept": {
                        "coding": [{"system": ADMISSION_METHODS, "code": method}]
                    },
                }
            ],
            "admitSource": {"coding": [{"code": "19"}]},
        },
        "serviceProvider": by_ods("RAL"),
    }


def social_care(
    name: str, number: int, start: str, end: str | None = None, *, service: str = "LTS-C"
) -> dict[str, Any]:
    return {
        "resourceType": "EpisodeOfCare",
        "id": pseudonym(f"{name} service {number}"),
        "status": "finished" if end else "active",
        # Displays of local and Interweave systems are removed by the export.
        "type": [{"coding": [{"system": SERVICE_CATEGORY, "code": service}]}],
        "patient": {"reference": f"Patient/{pseudonym(name)}"},
        "managingOrganization": by_ods("202"),
        "period": {"start": start, **({"end": end} if end else {})},
    }


def residence(
    name: str, start: str, end: str | None = None, *, home: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "resourceType": "EpisodeOfCare",
        "id": pseudonym(f"{name} residence {start}"),
        "status": "finished" if end else "active",
        # The kind of care (the concept's text) and the local system's
        # display are removed by the export.
        "type": [{"coding": [{"system": EPISODE_TYPE, "code": "care-home-residence"}]}],
        "patient": {"reference": f"Patient/{pseudonym(name)}"},
        "managingOrganization": home or by_ods("VM1A2"),
        "period": {"start": start, **({"end": end} if end else {})},
    }


def condition(
    name: str, number: int, code: str, display: str, *, status: str = "active"
) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": pseudonym(f"{name} condition {number}"),
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": status,
                }
            ]
        },
        "code": {
            "coding": [
                {"system": SNOMED, "code": code, "display": display},
                {"system": "http://hl7.org/fhir/sid/icd-10", "code": "X00"},
            ]
        },
        "subject": {"reference": f"Patient/{pseudonym(name)}"},
        "onsetDateTime": "2015-04-01",
    }


def write_export(
    folder: Path,
    resources: list[dict[str, Any]],
    *,
    transaction_time: str | None = TRANSACTION_TIME,
    split: int = 0,
) -> Path:
    """The resources as an export folder: a file per type (or, with
    ``split``, parts of ``split`` lines: ``Encounter-1.ndjson``...) and
    the completion manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    output = []
    for kind, items in by_type.items():
        parts = [items[i : i + split] for i in range(0, len(items), split)] if split else [items]
        for number, part in enumerate(parts, 1):
            name = f"{kind}-{number}.ndjson" if split else f"{kind}.ndjson"
            (folder / name).write_text("".join(json.dumps(r) + "\n" for r in part), "utf-8")
            output.append(
                {"type": kind, "url": f"https://gateway.example/files/{name}", "count": len(part)}
            )
    manifest: dict[str, Any] = {
        "request": "https://gateway.example/fhir/$export",
        "requiresAccessToken": True,
        "output": output,
        "error": [],
    }
    if transaction_time is not None:
        manifest["transactionTime"] = transaction_time
    (folder / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    return folder
