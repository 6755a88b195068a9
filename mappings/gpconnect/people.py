"""The person and the organisations and staff a structured record names, as
UK Core R4 Patient, Organization, Practitioner, PractitionerRole and
Location.

The Patient is the one every source shares (keyed by NHS number); its
registered practice becomes ``generalPractitioner`` by ODS code, which is
what gives the practice its care relationship under the consent rules.

https://developer.nhs.uk/apis/gpconnect/accessrecord_structured_development_patient.html
https://simplifier.net/hl7fhirukcorer4/ukcore-patient
"""

from __future__ import annotations

from mappings.gpconnect.bundle import Item, Json
from mappings.gpconnect.codes import EXT_ETHNIC, EXT_NHS_VERIFICATION
from mappings.gpconnect.elements import Shape, clean, extension, reshape
from mappings.gpconnect.references import Record
from mappings.identity import NHS_NUMBER_SYSTEM
from mappings.ukcore import (
    ETHNIC_URL,
    ODS,
    Unmappable,
    checked_nhs_number,
    local_identifier,
    nhs_identifier,
    organisation,
)

_VERIFICATION_CODES = frozenset(f"0{n}" for n in range(1, 9))

# Registration details, NHS communication, religion and the other
# CareConnect extensions have no UK Core R4 home and are not carried;
# managingOrganization is left out as the Patient is shared by every source.
PATIENT = Shape(
    copy=(
        "active",
        "name",
        "telecom",
        "gender",
        "birthDate",
        "deceased[Boolean,DateTime]",
        "address",
        "maritalStatus",
        "multipleBirth[Boolean,Integer]",
        "contact",
        "communication",
    )
)
ORGANIZATION = Shape(
    copy=(
        "identifier",
        "active",
        "type",
        "name",
        "alias",
        "telecom",
        "address",
        "partOf",
        "contact",
    )
)
PRACTITIONER = Shape(
    copy=(
        "identifier",
        "active",
        "name",
        "telecom",
        "address",
        "gender",
        "birthDate",
        "qualification",
        "communication",
    )
)
PRACTITIONER_ROLE = Shape(
    copy=(
        "identifier",
        "active",
        "period",
        "practitioner",
        "organization",
        "code",
        "specialty",
        "location",
        "telecom",
        "availableTime",
        "notAvailable",
        "availabilityExceptions",
    )
)
LOCATION = Shape(
    copy=(
        "identifier",
        "status",
        "operationalStatus",
        "name",
        "alias",
        "description",
        "mode",
        "telecom",
        "address",
        "physicalType",
        "position",
        "managingOrganization",
        "partOf",
    ),
    rename={"type": "type"},
    listed=frozenset({"type"}),
)


def nhs_number(item: Item) -> tuple[str, str | None]:
    """The Patient's NHS number, checked, and its verification status when
    the response states one (``01``..``08``)."""
    for number, found in enumerate(item.resource.get("identifier") or []):
        if found.get("system") != NHS_NUMBER_SYSTEM:
            continue
        checked = checked_nhs_number(
            str(found.get("value", "")), f"{item.where}.identifier[{number}]"
        )
        status = extension(found, EXT_NHS_VERIFICATION)
        codes = [
            coding.get("code")
            for coding in ((status or {}).get("valueCodeableConcept") or {}).get("coding") or []
        ]
        return checked, next((c for c in codes if c in _VERIFICATION_CODES), None)
    raise Unmappable(f"{item.where} has no NHS number ({NHS_NUMBER_SYSTEM})")


def ods_code(resource: Json) -> str | None:
    for found in resource.get("identifier") or []:
        if found.get("system") == ODS and isinstance(found.get("value"), str):
            return str(found["value"]).strip().upper()
    return None


def person_name(resource: Json) -> str | None:
    """A name to show for a person, from their first HumanName."""
    for name in resource.get("name") or []:
        if isinstance(name.get("text"), str):
            return str(name["text"])
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family")]
        words = " ".join(p for p in parts if isinstance(p, str) and p)
        if words:
            return words
    return None


def patient(
    record: Record, number: str, verification: str | None, practice: str, practice_name: str | None
) -> Json:
    item = record.patient
    identifiers = [nhs_identifier(number, verification)]
    if item.id:
        # The GP system's own id for the person, for tracing back.
        identifiers.append(local_identifier(record.source, item.id))
    result: Json = {"resourceType": "Patient", "id": record.patient_id}
    ethnic = extension(item.resource, EXT_ETHNIC)
    category = clean((ethnic or {}).get("valueCodeableConcept"), item, record)
    if category:
        result["extension"] = [{"url": ETHNIC_URL, "valueCodeableConcept": category}]
    result["identifier"] = identifiers
    result.update(reshape(item, PATIENT, record))
    doctors = [organisation(practice, practice_name)]
    for found in item.resource.get("generalPractitioner") or []:
        target = record.resolve(found, item)
        if target is not None and target.type == "Organization":
            continue  # the practice, already named by its ODS code
        converted = record.reference(found, item)
        if converted is None:
            continue
        words = person_name(target.resource) if target is not None else None
        if words and "display" not in converted:
            converted["display"] = words
        doctors.append(converted)
    result["generalPractitioner"] = doctors
    return result


def _carried(item: Item, record: Record, shape: Shape) -> Json:
    target = record.placed(item)
    return {"resourceType": target.type, "id": target.id, **reshape(item, shape, record)}


def organization(item: Item, record: Record) -> Json:
    return _carried(item, record, ORGANIZATION)


def practitioner(item: Item, record: Record) -> Json:
    return _carried(item, record, PRACTITIONER)


def practitioner_role(item: Item, record: Record) -> Json:
    return _carried(item, record, PRACTITIONER_ROLE)


def location(item: Item, record: Record) -> Json:
    return _carried(item, record, LOCATION)
