"""What every mapping shares: the result of mapping one source record, the
error that says why a record cannot be mapped, and the UK Core systems and
small element builders the mapped resources are made of.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mappings.identity import (
    NHS_NUMBER_SYSTEM,
    InvalidNhsNumber,
    id_basis,
    mapped_id,
    nhs_number,
)

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
UKCORE = "https://fhir.hl7.org.uk"
VERIFICATION_URL = f"{UKCORE}/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
VERIFICATION_SYSTEM = f"{UKCORE}/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
ETHNIC_URL = f"{UKCORE}/StructureDefinition/Extension-UKCore-EthnicCategory"
# A List's warning that it is incomplete (items left out, a record in transit).
LIST_WARNING_URL = f"{UKCORE}/StructureDefinition/Extension-UKCore-ListWarningCode"
ETHNIC_SYSTEM = f"{UKCORE}/CodeSystem/UKCore-EthnicCategoryEngland"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
DMD = "https://dmd.nhs.uk"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
# The gateway's own identifier systems for keys that have no national system.
LOCAL_ID = "urn:london-care-gateway:local-id"


class Unmappable(ValueError):
    """A source record that cannot be mapped; the message says why."""


@dataclass
class Mapped:
    """What one source record maps to: resources with their ids, ready to
    write in one transaction. The Patient, when the record carries one, is
    ``resources[0]``."""

    patient_id: str
    resources: list[dict[str, Any]] = field(default_factory=list)
    # A merge: the id of the Patient retired into ``patient_id``.
    merged_from: str | None = None
    # A cancellation: the Encounter it cancels must already exist.
    cancels: str | None = None
    # Resources whose confidentiality the record leaves unstated (an HL7
    # update without PV2-22), "Type/id": each keeps the labels stored on the
    # resource named ("Type/id": its own, or its visit's), so that silence
    # never takes a protection off.
    labels_from: dict[str, str] = field(default_factory=dict)
    # Resources that state a standing fact as at a date (a person's
    # accommodation on the day of an event), "Type/id": the element holding
    # that date. Rows of a return come in any order, so a statement on file
    # as at a later date is not replaced by an earlier one.
    dated_by: dict[str, str] = field(default_factory=dict)
    # Resources with a list that gathers across records, "Type/id": (the
    # list element, the element of an item that names it). A record states
    # the items it knows (a message's diagnoses of the visit); those on file
    # that it does not name stay, as the resources they name do.
    gathered: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The moment the record stands as at (a care home's export, a GP
    # response, an HL7 message: ``utc_moment``). One as at an earlier moment
    # than the source's latest record of the person, loaded after it, does
    # not change the person; a whole record (a snapshot) changes nothing.
    as_at: str | None = None


def typed_id(resource: dict[str, Any]) -> str:
    """``Type/id``: how a record's tables (``Mapped.labels_from`` and the
    rest) and the loaded-record ledger name a resource."""
    return f"{resource['resourceType']}/{resource['id']}"


def dated_by(resources: list[dict[str, Any]], elements: dict[str, str]) -> dict[str, str]:
    """``Mapped.dated_by`` for those of ``resources`` whose type ``elements``
    names the dating element of."""
    return {
        typed_id(r): elements[r["resourceType"]] for r in resources if r["resourceType"] in elements
    }


def utc_moment(value: str) -> str | None:
    """A dateTime with a time and an offset (``2026-07-14T21:40:00+01:00``)
    as the fixed-width UTC moment records are compared by; ``None`` for
    anything less (a date alone), which dates nothing."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None or "T" not in value:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checked_nhs_number(raw: str, where: str) -> str:
    """The ten digits of ``raw``, or ``Unmappable`` naming ``where`` it was."""
    try:
        return nhs_number(raw)
    except InvalidNhsNumber as exc:
        raise Unmappable(f"{where}: {exc}") from None


def patient_id(source_org: str, number: str | None, local_id: str | None) -> str:
    """One Patient per NHS number whatever the source; else one per the
    source's own id for the person."""
    return mapped_id(*_patient_key(source_org, number, local_id))


def patient_basis(source_org: str, number: str | None, local_id: str | None) -> str:
    """The basis of ``patient_id``: what the key of a record of the person
    embeds (``mappings.identity``)."""
    return id_basis(*_patient_key(source_org, number, local_id))


def _patient_key(source_org: str, number: str | None, local_id: str | None) -> tuple[str, str, str]:
    if number:
        return "NHS", "Patient", number
    if local_id:
        return source_org, "Patient", local_id
    raise Unmappable("the record has neither an NHS number nor the source's id for the person")


def nhs_identifier(number: str, verification: str | None = None) -> dict[str, Any]:
    """The NHS number identifier; the UK Core verification status only when
    the source states one (``01``..``08``), never assumed."""
    identifier: dict[str, Any] = {"system": NHS_NUMBER_SYSTEM, "value": number}
    if verification:
        identifier["extension"] = [
            {
                "url": VERIFICATION_URL,
                "valueCodeableConcept": {
                    "coding": [{"system": VERIFICATION_SYSTEM, "code": verification}]
                },
            }
        ]
    return identifier


def local_identifier(source_org: str, value: str) -> dict[str, Any]:
    return {"system": f"{LOCAL_ID}:{source_org.upper()}", "value": value}


def organisation(ods_code: str, display: str | None = None) -> dict[str, Any]:
    """A reference to an organisation by its ODS code."""
    reference: dict[str, Any] = {"identifier": {"system": ODS, "value": ods_code.upper()}}
    if display:
        reference["display"] = display
    return reference


def concept(
    system: str | None, code: str | None, display: str | None = None, text: str | None = None
) -> dict[str, Any]:
    """A CodeableConcept with at most one coding; ``text`` falls back to the
    display so a reader always has words."""
    result: dict[str, Any] = {}
    if system and code:
        coding: dict[str, Any] = {"system": system, "code": code}
        if display:
            coding["display"] = display
        result["coding"] = [coding]
    words = text or display
    if words:
        result["text"] = words
    return result


def category(system: str, code: str, display: str | None = None) -> list[dict[str, Any]]:
    return [concept(system, code, display)]


def reference(resource: dict[str, Any]) -> dict[str, str]:
    return {"reference": typed_id(resource)}
