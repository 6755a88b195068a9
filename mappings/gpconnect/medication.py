"""Medication in a structured record, STU3 to UK Core shaped R4: what was
prescribed (Medication, coded in dm+d), the authorisation (MedicationRequest,
intent plan), each issue of it (MedicationRequest, intent order, ``basedOn``
the plan) and the summary of the course (MedicationStatement, ``basedOn``
the plan).

dm+d concepts are SNOMED CT identifiers (the UK drug extension), and GP
Connect and UK Core both code them with the SNOMED CT system: the codings
are kept as sent.

https://developer.nhs.uk/apis/gpconnect/accessrecord_structured_development_medication_resource_relationships.html
https://simplifier.net/hl7fhirukcorer4/ukcore-medicationrequest
"""

from __future__ import annotations

from mappings.gpconnect.bundle import Item, Json
from mappings.gpconnect.codes import (
    COURSE_OF_THERAPY,
    EXT_LAST_ISSUE,
    EXT_PRESCRIBING_AGENCY,
    EXT_PRESCRIPTION_TYPE,
    EXT_REPEAT_INFORMATION,
    EXT_STATUS_REASON,
    R4_LAST_ISSUE,
    R4_PRESCRIBING_TYPE,
    R4_REPEAT_INFORMATION,
)
from mappings.gpconnect.elements import (
    Shape,
    clean,
    concept,
    dosage,
    extension,
    part,
    reshape,
    value,
)
from mappings.gpconnect.references import Record

# isBrand, isOverTheCounter, package and image are gone from R4.
MEDICATION = Shape(copy=("code", "status", "manufacturer", "form"))
STATEMENT = Shape(
    copy=(
        "identifier",
        "basedOn",
        "partOf",
        "context",
        "status",
        "category",
        "medication[CodeableConcept,Reference]",
        "effective[DateTime,Period]",
        "dateAsserted",
        "informationSource",
        "derivedFrom",
        "reasonCode",
        "reasonReference",
        "note",
    ),
    rename={"reasonNotTaken": "statusReason"},
)
REQUEST = Shape(
    copy=(
        "identifier",
        "basedOn",
        "groupIdentifier",
        "status",
        "intent",
        "priority",
        "medication[CodeableConcept,Reference]",
        "supportingInformation",
        "authoredOn",
        "recorder",
        "reasonCode",
        "reasonReference",
        "note",
        "dispenseRequest",
        "priorPrescription",
        "detectedIssue",
        "eventHistory",
    ),
    rename={"context": "encounter", "category": "category"},
    listed=frozenset({"category"}),
)


def medication_content(item: Item, record: Record) -> Json:
    """A Medication's R4 elements (its id comes from them: see
    ``structured``)."""
    source = item.resource
    result = reshape(item, MEDICATION, record)
    ingredients = []
    for found in source.get("ingredient") or []:
        ingredient = reshape(
            item,
            Shape(
                copy=("item[CodeableConcept,Reference]", "isActive"),
                rename={"amount": "strength"},
            ),
            record,
            found,
        )
        if any(key.startswith("item") for key in ingredient):
            ingredients.append(ingredient)
    if ingredients:
        result["ingredient"] = ingredients
    batches = (source.get("package") or {}).get("batch") or []
    if batches:
        batch = clean(
            {k: batches[0].get(k) for k in ("lotNumber", "expirationDate") if batches[0].get(k)},
            item,
            record,
        )
        if batch:
            result["batch"] = batch
    return result


def medication_statement(item: Item, record: Record) -> Json:
    """The summary of a course of medication. Its last issue date and the
    kind of organisation that prescribed it go to UK Core's extensions; a
    medication recorded as not taken is R4's ``not-taken``."""
    source = item.resource
    target = record.placed(item)
    result: Json = {"resourceType": target.type, "id": target.id}
    kept: list[Json] = []
    last_issue = value(extension(source, EXT_LAST_ISSUE))
    if isinstance(last_issue, str):
        kept.append({"url": R4_LAST_ISSUE, "valueDateTime": last_issue})
    agency = clean(value(extension(source, EXT_PRESCRIBING_AGENCY)), item, record)
    if isinstance(agency, dict):
        kept.append({"url": R4_PRESCRIBING_TYPE, "valueCodeableConcept": agency})
    if kept:
        result["extension"] = kept
    result.update(reshape(item, STATEMENT, record))
    if source.get("taken") == "n" and result.get("status") != "entered-in-error":
        result["status"] = "not-taken"
    dosages = [d for found in source.get("dosage") or [] if (d := dosage(found, item, record))]
    if dosages:
        result["dosage"] = dosages
    result["subject"] = record.subject()
    return result


def _repeat_information(source: Json, result: Json) -> Json | None:
    """GP Connect's repeat information: the count issued and the review date
    to UK Core's extension, the count allowed to ``dispenseRequest``."""
    found = extension(source, EXT_REPEAT_INFORMATION)
    if found is None:
        return None
    allowed = part(found, "numberOfRepeatPrescriptionsAllowed")
    if isinstance(allowed, int):
        result.setdefault("dispenseRequest", {}).setdefault("numberOfRepeatsAllowed", allowed)
    parts: list[Json] = []
    issued = part(found, "numberOfRepeatPrescriptionsIssued")
    if isinstance(issued, int):
        parts.append({"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": issued})
    expiry = part(found, "authorisationExpiryDate")
    if isinstance(expiry, str):
        parts.append({"url": "authorisationExpiryDate", "valueDateTime": expiry})
    return {"url": R4_REPEAT_INFORMATION, "extension": parts} if parts else None


def medication_request(item: Item, record: Record) -> Json:
    """An authorisation (intent plan) or one issue of it (intent order,
    ``basedOn`` the plan). The prescription type is R4's
    ``courseOfTherapyType``; a status reason GP Connect sends as an
    extension is R4's ``statusReason``, the date it changed a note."""
    source = item.resource
    target = record.placed(item)
    result: Json = {"resourceType": target.type, "id": target.id}
    result.update(reshape(item, REQUEST, record))
    repeat = _repeat_information(source, result)
    if repeat is not None:
        result["extension"] = [repeat]
    kind = value(extension(source, EXT_PRESCRIPTION_TYPE))
    codings = (kind or {}).get("coding") or [] if isinstance(kind, dict) else []
    for coding in codings:
        if coding.get("code") in COURSE_OF_THERAPY:
            result["courseOfTherapyType"] = concept(*COURSE_OF_THERAPY[coding["code"]])
            break
    else:
        words = next((c.get("display") or c.get("code") for c in codings), None)
        if isinstance(words, str) and words:
            result["courseOfTherapyType"] = {"text": words}
    change = extension(source, EXT_STATUS_REASON)
    reason = clean(part(change, "statusReason"), item, record)
    if isinstance(reason, dict):
        result["statusReason"] = reason
    changed_on = part(change, "statusChangeDate")
    if isinstance(changed_on, str):
        result.setdefault("note", []).append({"text": f"Status changed on {changed_on}"})
    requester = (source.get("requester") or {}).get("agent")
    if isinstance(requester, dict) and (agent := record.reference(requester, item)):
        result["requester"] = agent
    dosages = [
        d for found in source.get("dosageInstruction") or [] if (d := dosage(found, item, record))
    ]
    if dosages:
        result["dosageInstruction"] = dosages
    substitution = source.get("substitution")
    if isinstance(substitution, dict) and isinstance(substitution.get("allowed"), bool):
        swap: Json = {"allowedBoolean": substitution["allowed"]}
        if isinstance(why := clean(substitution.get("reason"), item, record), dict):
            swap["reason"] = why
        result["substitution"] = swap
    result["subject"] = record.subject()
    return result
