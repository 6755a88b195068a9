"""One GP Connect structured record (the Bundle ``$gpc.getstructuredrecord``
answers with) into UK Core shaped R4 resources, or the reason it cannot be.

The walk: read the response as STU3; find the one Patient and its
registered practice, which must be the organisation loading it (a practice
sends only its own records); give every resource carried over its id; then
convert each, the Patient first; then each heading (allergies, medications,
problems...) as a List of what it holds, with the GP system's warnings that
it is incomplete; and last the person's sharing preference for the local
shared care record, when the GP's coded entries state one, as a privacy
Consent.

https://developer.nhs.uk/apis/gpconnect/accessrecord_structured_development_retrieve_patient_record.html
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mappings.gpconnect import clinical, headings, medication, people, sharing
from mappings.gpconnect.bundle import Item, Json, Response, read_response
from mappings.gpconnect.codes import R4_TYPES
from mappings.gpconnect.elements import clean
from mappings.gpconnect.references import Record, canonical_hash, identifier_key
from mappings.ukcore import (
    ODS,
    Mapped,
    Unmappable,
    dated_by,
    patient_basis,
    patient_id,
    utc_moment,
)

Converter = Callable[[Item, Record], Json]

CONVERTERS: dict[str, Converter] = {
    "Organization": people.organization,
    "Practitioner": people.practitioner,
    "PractitionerRole": people.practitioner_role,
    "Location": people.location,
    "AllergyIntolerance": clinical.allergy,
    "Condition": clinical.condition,
    "MedicationStatement": medication.medication_statement,
    "MedicationRequest": medication.medication_request,
    "Immunization": clinical.immunization,
    "Encounter": clinical.encounter,
    "Observation": clinical.observation,
    "DiagnosticReport": clinical.diagnostic_report,
    "ProcedureRequest": clinical.service_request,
    "ReferralRequest": clinical.service_request,
    "DocumentReference": clinical.document_reference,
}
# The order resources are listed in: who and where first, then the record,
# then the Consent the record's entries add up to.
ORDER = (
    "Patient",
    "Organization",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "Medication",
    "AllergyIntolerance",
    "Condition",
    "MedicationStatement",
    "MedicationRequest",
    "Immunization",
    "Encounter",
    "Observation",
    "DiagnosticReport",
    "ServiceRequest",
    "DocumentReference",
    "List",
    "Consent",
)


# The element dating each kind of statement that a later one replaces only
# when it is later.
_AS_AT = {"List": "date", "Consent": "dateTime"}


def _the_patient(response: Response) -> Item:
    patients = list(response.of_type("Patient"))
    if not patients:
        raise Unmappable("the response has no Patient")
    if len(patients) > 1:
        where = ", ".join(p.where for p in patients)
        raise Unmappable(
            f"a structured record is one person's, but it has {len(patients)} ({where})"
        )
    return patients[0]


def _practice(response: Response, patient: Item) -> tuple[str, str | None]:
    """The ODS code and name of the practice the person is registered with:
    the Patient's managingOrganization."""
    managing = patient.resource.get("managingOrganization")
    if not isinstance(managing, dict):
        raise Unmappable(f"{patient.where}.managingOrganization names no registered practice")
    found = (
        response.resolve(managing["reference"], patient)
        if isinstance(managing.get("reference"), str)
        else None
    )
    if found is not None and found.type == "Organization":
        ods = people.ods_code(found.resource)
        name = found.resource.get("name")
        if ods:
            return ods, name if isinstance(name, str) else None
    identifier = managing.get("identifier") or {}
    if identifier.get("system") == ODS and isinstance(identifier.get("value"), str):
        display = managing.get("display")
        return identifier["value"].strip().upper(), display if isinstance(display, str) else None
    raise Unmappable(
        f"{patient.where}.managingOrganization: the registered practice has no ODS code ({ODS})"
    )


def _ended_allergies(response: Response) -> set[int]:
    """The allergies the "Ended allergies" List names or contains."""
    ended: set[int] = set()
    for listing in response.of_type("List"):
        if response.area(listing) != "ended-allergies":
            continue
        for entry in listing.resource.get("entry") or []:
            reference = (entry.get("item") or {}).get("reference")
            found = response.resolve(reference, listing) if isinstance(reference, str) else None
            if found is not None:
                ended.add(found.index)
        ended.update(i.index for i in response.items if i.container == listing.index)
    return ended


def _role_key(item: Item, record: Record) -> str:
    """A PractitionerRole without an identifier is who, where and as what."""
    parts = []
    for name in ("practitioner", "organization"):
        found = record.resolve(item.resource.get(name), item)
        target = record.target(found) if found is not None else None
        parts.append(target.basis if target is not None else "")
    codes = sorted(
        f"{coding.get('system')}|{coding.get('code')}"
        for concept in item.resource.get("code") or []
        for coding in concept.get("coding") or []
    )
    return "role|" + "|".join(parts + codes)


def _place(record: Record) -> dict[int, Json]:
    """Give every resource carried over its id. Medications have no
    identifier in GP Connect and a logical id that need not persist, so
    theirs comes from what they say: the same medicine is one Medication.
    Those are converted here, as their ids need their content."""
    roles: list[Item] = []
    medicines: list[Item] = []
    for item in record.response.items:
        r4_type = R4_TYPES.get(item.type)
        if r4_type is None or item is record.patient:
            continue
        key = identifier_key(item.resource)
        if item.type == "Medication":
            medicines.append(item)
        elif item.type == "PractitionerRole" and key is None:
            roles.append(item)
        else:
            record.assign(item, r4_type, key or record.logical_key(item))
    for item in roles:
        record.assign(item, "PractitionerRole", _role_key(item, record))
    converted: dict[int, Json] = {}
    for item in medicines:
        content = medication.medication_content(item, record)
        target = record.assign(
            item, "Medication", "content|" + canonical_hash(record.with_bases(content)), check=False
        )
        converted[item.index] = {"resourceType": "Medication", "id": target.id, **content}
    return converted


def _security(item: Item, record: Record) -> list[Any] | None:
    """The response's own security labels (GP Connect marks with NOPAT what
    is not for the patient's eyes); the gateway adds its own on write."""
    labels = clean((item.resource.get("meta") or {}).get("security"), item, record)
    return labels if isinstance(labels, list) else None


def map_structured_record(bundle: dict[str, Any], source_org: str) -> Mapped:
    """The resources of one structured record from ``source_org`` (the
    practice's ODS code), the Patient first; ``Unmappable`` if it cannot be
    read, has no single Patient with a valid NHS number, or is another
    practice's."""
    source = source_org.strip().upper()
    response = read_response(bundle)
    patient = _the_patient(response)
    number, verification = people.nhs_number(patient)
    practice, practice_name = _practice(response, patient)
    if practice != source:
        raise Unmappable(
            f"the person is registered at {practice} (Patient.managingOrganization), but the "
            f"record is loaded as {source}: a practice sends only its own records"
        )
    record = Record(
        source,
        response,
        patient,
        patient_id(source, number, patient.id),
        patient_basis(source, number, patient.id),
    )
    record.ended = _ended_allergies(response)
    converted = _place(record)
    resources: dict[tuple[str, str], Json] = {}
    first = people.patient(record, number, verification, practice, practice_name)
    for item in response.items:
        if item is patient:
            resource = first
        elif item.index in converted:
            resource = converted[item.index]
        elif item.type in CONVERTERS:
            resource = CONVERTERS[item.type](item, record)
        else:
            continue
        if labels := _security(item, record):
            resource["meta"] = {"security": labels}
        key = (resource["resourceType"], resource["id"])
        if resources.setdefault(key, resource) != resource:
            raise Unmappable(f"{item.where} ({item}) says something else than another {key[0]}")
    for listing in headings.heading_lists(record):
        resources[("List", listing["id"])] = listing
    consent = sharing.sharing_consent(record, practice_name)
    if consent is not None:
        resources[("Consent", consent["id"])] = consent
    ordered = sorted(resources.values(), key=lambda r: ORDER.index(r["resourceType"]))
    # Responses can be loaded out of order: a heading stands as at its
    # response, the sharing preference as at the entry that decided it.
    updated = (bundle.get("meta") or {}).get("lastUpdated")
    as_at = utc_moment(updated) if isinstance(updated, str) else None
    return Mapped(record.patient_id, ordered, dated_by=dated_by(ordered, _AS_AT), as_at=as_at)
