"""The clinical areas of a structured record, STU3 to UK Core shaped R4:
allergies, problems, immunisations, consultations, observations,
investigations, referrals and documents (medication has its own module).

Each resource is copied element by element where STU3 and R4 agree (the
``Shape`` tables) and transformed where they do not: status codes that
became CodeableConcepts, ``assertedDate`` that became ``recordedDate``,
``notGiven`` that became a status, ProcedureRequest and ReferralRequest
that became ServiceRequest, and GP Connect's extensions that UK Core has a
home for.

https://developer.nhs.uk/apis/gpconnect/accessrecord_structured_development_resources_overview.html
https://hl7.org/fhir/R4/r3maps.html
"""

from __future__ import annotations

from mappings.gpconnect.bundle import Item, Json
from mappings.gpconnect.codes import (
    ACT_CODE,
    ALLERGY_CATEGORY,
    ALLERGY_CLINICAL,
    ALLERGY_VERIFICATION,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    CONDITION_VERIFICATION_SYSTEM,
    ENCOUNTER_CLASS_DEFAULT,
    ENCOUNTER_CLASS_WORDS,
    EXT_ACTUAL_PROBLEM,
    EXT_ALLERGY_END,
    EXT_ASSOCIATED_ENCOUNTER,
    EXT_DATE_RECORDED,
    EXT_EVIDENCE,
    EXT_PARENT_PRESENT,
    EXT_PROBLEM_SIGNIFICANCE,
    EXT_RELATED_CONTENT,
    EXT_RELATED_PROBLEM,
    EXT_VACCINATION_PROCEDURE,
    OBSERVATION_RELATED,
    PROBLEM_LIST_ITEM,
    PROBLEM_SIGNIFICANCE,
    R4_ALLERGY_END,
    R4_EVIDENCE,
    R4_PARENT_PRESENT,
    R4_PROBLEM_EXTENSIONS,
    R4_VACCINATION_PROCEDURE,
    REFERRAL_CATEGORY,
    REQUEST_STATUS,
)
from mappings.gpconnect.elements import (
    Shape,
    clean,
    concept,
    extension,
    extensions,
    part,
    reshape,
    value,
)
from mappings.gpconnect.references import Record
from mappings.ukcore import ALLERGY_CLINICAL as ALLERGY_CLINICAL_SYSTEM
from mappings.ukcore import ALLERGY_VERIFICATION as ALLERGY_VERIFICATION_SYSTEM
from mappings.ukcore import CONDITION_CATEGORY
from mappings.ukcore import CONDITION_CLINICAL as CONDITION_CLINICAL_SYSTEM

ALLERGY = Shape(
    copy=(
        "identifier",
        "type",
        "criticality",
        "code",
        "onset[DateTime,Age,Period,Range,String]",
        "recorder",
        "asserter",
        "lastOccurrence",
        "note",
        "reaction",
    ),
    rename={"assertedDate": "recordedDate"},
)
CONDITION = Shape(
    copy=(
        "identifier",
        "category",
        "severity",
        "code",
        "bodySite",
        "onset[DateTime,Age,Period,Range,String]",
        "abatement[DateTime,Age,Period,Range,String]",
        "asserter",
        "stage",
        "evidence",
        "note",
    ),
    rename={"context": "encounter", "assertedDate": "recordedDate"},
)
IMMUNIZATION = Shape(
    copy=(
        "identifier",
        "vaccineCode",
        "encounter",
        "primarySource",
        "reportOrigin",
        "location",
        "manufacturer",
        "lotNumber",
        "expirationDate",
        "site",
        "route",
        "doseQuantity",
        "note",
        "reaction",
    ),
    rename={"date": "occurrenceDateTime"},
)
ENCOUNTER = Shape(
    copy=(
        "identifier",
        "status",
        "statusHistory",
        "classHistory",
        "type",
        "priority",
        "episodeOfCare",
        "participant",
        "period",
        "length",
        "diagnosis",
        "hospitalization",
        "location",
        "serviceProvider",
        "partOf",
    ),
    rename={"reason": "reasonCode", "incomingReferral": "basedOn", "appointment": "appointment"},
    listed=frozenset({"appointment"}),
)
# STU3's Attachment value has no R4 counterpart and is not carried.
OBSERVATION = Shape(
    copy=(
        "identifier",
        "basedOn",
        "status",
        "category",
        "code",
        "effective[DateTime,Period]",
        "issued",
        "performer",
        "value[Quantity,CodeableConcept,String,Boolean,Range,Ratio,SampledData,Time,DateTime,Period]",
        "dataAbsentReason",
        "bodySite",
        "method",
        "specimen",
        "device",
        "referenceRange",
    ),
    rename={"context": "encounter", "interpretation": "interpretation"},
    listed=frozenset({"interpretation"}),
)
COMPONENT = Shape(
    copy=(
        "code",
        "value[Quantity,CodeableConcept,String,Boolean,Range,Ratio,SampledData,Time,DateTime,Period]",
        "dataAbsentReason",
        "referenceRange",
    ),
    rename={"interpretation": "interpretation"},
    listed=frozenset({"interpretation"}),
)
REPORT = Shape(
    copy=(
        "identifier",
        "basedOn",
        "status",
        "code",
        "effective[DateTime,Period]",
        "issued",
        "specimen",
        "result",
        "imagingStudy",
        "conclusion",
        "presentedForm",
    ),
    rename={"context": "encounter", "category": "category", "codedDiagnosis": "conclusionCode"},
    listed=frozenset({"category"}),
)
PROCEDURE_REQUEST = Shape(
    copy=(
        "identifier",
        "basedOn",
        "replaces",
        "requisition",
        "intent",
        "priority",
        "doNotPerform",
        "category",
        "code",
        "occurrence[DateTime,Period,Timing]",
        "asNeeded[Boolean,CodeableConcept]",
        "authoredOn",
        "performerType",
        "reasonCode",
        "reasonReference",
        "supportingInfo",
        "specimen",
        "bodySite",
        "note",
        "relevantHistory",
    ),
    rename={"context": "encounter", "performer": "performer"},
    listed=frozenset({"performer"}),
)
REFERRAL = Shape(
    copy=(
        "identifier",
        "basedOn",
        "replaces",
        "intent",
        "priority",
        "occurrence[DateTime,Period]",
        "authoredOn",
        "reasonCode",
        "reasonReference",
        "supportingInfo",
        "note",
        "relevantHistory",
    ),
    rename={
        "groupIdentifier": "requisition",
        "context": "encounter",
        "recipient": "performer",
        "specialty": "performerType",
    },
)
DOCUMENT = Shape(
    copy=(
        "masterIdentifier",
        "identifier",
        "status",
        "docStatus",
        "type",
        "author",
        "authenticator",
        "custodian",
        "relatesTo",
        "description",
        "securityLabel",
    ),
    rename={"indexed": "date", "class": "category"},
    listed=frozenset({"category"}),
)
DOCUMENT_CONTEXT = Shape(
    copy=("event", "period", "facilityType", "practiceSetting", "sourcePatientInfo"),
    rename={"encounter": "encounter"},
    listed=frozenset({"encounter"}),
)


def _header(item: Item, record: Record) -> Json:
    target = record.placed(item)
    return {"resourceType": target.type, "id": target.id}


def _note(result: Json, text: str) -> None:
    result.setdefault("note", []).append({"text": text})


def _linked(found: object, item: Item, record: Record) -> Json | None:
    """A reference only when it links to a resource carried over."""
    converted = record.reference(found, item) if isinstance(found, dict) else None
    return converted if converted is not None and "reference" in converted else None


def allergy(item: Item, record: Record) -> Json:
    """An allergy; one under "Ended allergies" is resolved, its end date and
    reason kept in UK Core's extension on ``clinicalStatus`` and, for
    readers that ignore extensions, in a note."""
    source = item.resource
    result = _header(item, record)
    evidence = _linked(value(extension(source, EXT_EVIDENCE)), item, record)
    if evidence is not None:
        result["extension"] = [{"url": R4_EVIDENCE, "valueReference": evidence}]
    verification = source.get("verificationStatus")
    status = "resolved" if item.index in record.ended else source.get("clinicalStatus")
    end = extension(source, EXT_ALLERGY_END)
    ended_on = part(end, "endDate")
    ended_on = ended_on if isinstance(ended_on, str) else None
    # GP Connect's guidance names the part endReason; its examples reasonEnded.
    reason = part(end, "reasonEnded") or part(end, "endReason")
    reason = reason.strip() if isinstance(reason, str) and reason.strip() else None
    # R4 forbids a clinical status on an allergy entered in error.
    if status in ALLERGY_CLINICAL and verification != "entered-in-error":
        clinical = concept(ALLERGY_CLINICAL_SYSTEM, str(status))
        parts = [{"url": "endDate", "valueDateTime": ended_on}] if ended_on else []
        if reason:
            parts.append({"url": "reasonEnded", "valueString": reason})
        if parts and status != "active":
            clinical["extension"] = [{"url": R4_ALLERGY_END, "extension": parts}]
        result["clinicalStatus"] = clinical
    if verification in ALLERGY_VERIFICATION:
        result["verificationStatus"] = concept(ALLERGY_VERIFICATION_SYSTEM, str(verification))
    categories = [
        ALLERGY_CATEGORY[c] for c in source.get("category") or [] if c in ALLERGY_CATEGORY
    ]
    if categories:
        result["category"] = sorted(set(categories), key=categories.index)
    result.update(reshape(item, ALLERGY, record))
    result["patient"] = record.subject()
    encounter = _linked(value(extension(source, EXT_ASSOCIATED_ENCOUNTER)), item, record)
    if encounter is not None:
        result["encounter"] = encounter
    if status != "active" and (ended_on or reason):
        words = f"Ended {ended_on}" if ended_on else "Ended"
        _note(result, f"{words}: {reason}" if reason else words)
    return result


def _problem_extensions(item: Item, record: Record) -> list[Json]:
    """GP Connect's problem extensions, with the links that still resolve."""
    source = item.resource
    kept: list[Json] = []
    significance = value(extension(source, EXT_PROBLEM_SIGNIFICANCE))
    if significance in PROBLEM_SIGNIFICANCE:
        url = R4_PROBLEM_EXTENSIONS[EXT_PROBLEM_SIGNIFICANCE]
        kept.append({"url": url, "valueCode": significance})
    for name in (EXT_ACTUAL_PROBLEM, EXT_RELATED_CONTENT):
        for found in extensions(source, name):
            linked = _linked(value(found), item, record)
            if linked is not None:
                kept.append({"url": R4_PROBLEM_EXTENSIONS[name], "valueReference": linked})
    for found in extensions(source, EXT_RELATED_PROBLEM):
        target = _linked(part(found, "target"), item, record)
        kind = part(found, "type")
        if target is not None and kind in ("parent", "child"):
            kept.append(
                {
                    "url": R4_PROBLEM_EXTENSIONS[EXT_RELATED_PROBLEM],
                    "extension": [
                        {"url": "type", "valueCode": kind},
                        {"url": "target", "valueReference": target},
                    ],
                }
            )
    return kept


def condition(item: Item, record: Record) -> Json:
    """A problem (GP Connect's ProblemHeader): its significance and its
    links to the actual problem and related problems kept as GP Connect's
    extensions."""
    source = item.resource
    result = _header(item, record)
    kept = _problem_extensions(item, record)
    if kept:
        result["extension"] = kept
    verification = source.get("verificationStatus")
    status = source.get("clinicalStatus")
    if status in CONDITION_CLINICAL and verification != "entered-in-error":
        result["clinicalStatus"] = concept(CONDITION_CLINICAL_SYSTEM, str(status))
    if verification in CONDITION_VERIFICATION:
        result["verificationStatus"] = concept(CONDITION_VERIFICATION_SYSTEM, str(verification))
    result.update(reshape(item, CONDITION, record))
    if source.get("abatementBoolean") is True and not any(
        k.startswith("abatement") for k in result
    ):
        result["abatementString"] = "abated"
    categories: list[Json] = result.setdefault("category", [])
    listed = any(
        coding.get("code") == PROBLEM_LIST_ITEM
        for c in categories
        for coding in c.get("coding", [])
    )
    if not listed:
        # Every Condition GP Connect sends is a problem (ProblemHeader).
        categories.append(concept(CONDITION_CATEGORY, PROBLEM_LIST_ITEM, "Problem List Item"))
    result["subject"] = record.subject()
    return result


def immunization(item: Item, record: Record) -> Json:
    """An immunisation; one not given (STU3 ``notGiven``) is ``not-done``
    with its reason as ``statusReason``."""
    source = item.resource
    result = _header(item, record)
    kept: list[Json] = []
    procedure = clean(value(extension(source, EXT_VACCINATION_PROCEDURE)), item, record)
    if isinstance(procedure, dict):
        kept.append({"url": R4_VACCINATION_PROCEDURE, "valueCodeableConcept": procedure})
    parent = value(extension(source, EXT_PARENT_PRESENT))
    if isinstance(parent, bool):
        kept.append({"url": R4_PARENT_PRESENT, "valueBoolean": parent})
    if kept:
        result["extension"] = kept
    not_given = source.get("notGiven") is True
    if source.get("status") == "entered-in-error":
        result["status"] = "entered-in-error"
    else:
        result["status"] = "not-done" if not_given else "completed"
    explanation = source.get("explanation") or {}
    if not_given:
        reasons = clean(explanation.get("reasonNotGiven"), item, record) or []
        if reasons:
            result["statusReason"] = reasons[0]
    result.update(reshape(item, IMMUNIZATION, record))
    if "occurrenceDateTime" not in result:
        result["occurrenceString"] = "date not recorded"
    if isinstance(recorded := value(extension(source, EXT_DATE_RECORDED)), str):
        result["recorded"] = recorded
    reasons = clean(explanation.get("reason"), item, record)
    if reasons:
        result["reasonCode"] = reasons
    performers = []
    for found in source.get("practitioner") or []:
        actor = record.reference(found.get("actor") or {}, item)
        if actor is None:
            continue
        performer: Json = {"actor": actor}
        if role := clean(found.get("role"), item, record):
            performer["function"] = role
        performers.append(performer)
    if performers:
        result["performer"] = performers
    protocols = []
    for found in source.get("vaccinationProtocol") or []:
        protocol: Json = {}
        for name in ("series", "targetDisease"):
            if (converted := clean(found.get(name), item, record)) is not None:
                protocol[name] = converted
        if authority := clean(found.get("authority"), item, record):
            protocol["authority"] = authority
        # R4 requires the dose number; STU3 let it be left out.
        dose = found.get("doseSequence")
        if isinstance(dose, int):
            protocol["doseNumberPositiveInt"] = dose
        else:
            protocol["doseNumberString"] = "not recorded"
        if isinstance(found.get("seriesDoses"), int):
            protocol["seriesDosesPositiveInt"] = found["seriesDoses"]
        protocols.append(protocol)
    if protocols:
        result["protocolApplied"] = protocols
    result["patient"] = record.subject()
    return result


def _encounter_class(source: Json) -> Json:
    words = " ".join(
        str(text).lower()
        for concept_ in source.get("type") or []
        for text in [concept_.get("text"), *(c.get("display") for c in concept_.get("coding", []))]
        if text
    )
    for keys, code, display in ENCOUNTER_CLASS_WORDS:
        if any(key in words for key in keys):
            return {"system": ACT_CODE, "code": code, "display": display}
    code, display = ENCOUNTER_CLASS_DEFAULT
    return {"system": ACT_CODE, "code": code, "display": display}


def encounter(item: Item, record: Record) -> Json:
    """A consultation. R4 requires a class, which GP Connect does not send:
    the consultation type's words say virtual or home visit, else
    ambulatory."""
    source = item.resource
    result = _header(item, record)
    result.update(reshape(item, ENCOUNTER, record))
    given = clean(source.get("class"), item, record)
    result["class"] = given if isinstance(given, dict) else _encounter_class(source)
    result["subject"] = record.subject()
    return result


def observation(item: Item, record: Record) -> Json:
    """An observation (uncategorised data, a test result or group): STU3's
    ``related`` becomes ``hasMember`` or ``derivedFrom``, its ``comment`` a
    note."""
    source = item.resource
    result = _header(item, record)
    result.update(reshape(item, OBSERVATION, record))
    if isinstance(comment := source.get("comment"), str) and comment.strip():
        _note(result, comment.strip())
    for found in source.get("related") or []:
        element = OBSERVATION_RELATED.get(found.get("type", ""))
        target = record.reference(found.get("target") or {}, item)
        if element is not None and target is not None:
            result.setdefault(element, []).append(target)
    components = [
        converted
        for found in source.get("component") or []
        if "code" in (converted := reshape(item, COMPONENT, record, found))
    ]
    if components:
        result["component"] = components
    result["subject"] = record.subject()
    return result


def diagnostic_report(item: Item, record: Record) -> Json:
    """An investigation's report; STU3's performer roles are not in R4."""
    source = item.resource
    result = _header(item, record)
    result.update(reshape(item, REPORT, record))
    performers = [
        converted
        for found in source.get("performer") or []
        if (converted := record.reference(found.get("actor") or {}, item)) is not None
    ]
    if performers:
        result["performer"] = performers
    result["subject"] = record.subject()
    return result


def _requester(source: Json, item: Item, record: Record) -> Json | None:
    agent = (source.get("requester") or {}).get("agent")
    return record.reference(agent, item) if isinstance(agent, dict) else None


def service_request(item: Item, record: Record) -> Json:
    """A ProcedureRequest (an investigation's request, a diary entry) or a
    ReferralRequest (an outbound referral), both ServiceRequest in R4; a
    referral is marked by its category."""
    source = item.resource
    result = _header(item, record)
    status = REQUEST_STATUS.get(str(source.get("status")), "unknown")
    result["status"] = status
    referral = item.type == "ReferralRequest"
    result.update(reshape(item, REFERRAL if referral else PROCEDURE_REQUEST, record))
    if referral:
        system, code, display = REFERRAL_CATEGORY
        categories = [concept(system, code, display)]
        if isinstance(kind := clean(source.get("type"), item, record), dict):
            categories.append(kind)
        result["category"] = categories
        services = clean(source.get("serviceRequested"), item, record) or []
        if services:
            result["code"] = services[0]
        if len(services) > 1:
            result["orderDetail"] = services[1:]
        if isinstance(description := source.get("description"), str) and description.strip():
            _note(result, description.strip())
    if (requester := _requester(source, item, record)) is not None:
        result["requester"] = requester
    result["subject"] = record.subject()
    return result


def document_reference(item: Item, record: Record) -> Json:
    """A document's index entry: ``indexed`` is R4's ``date``, ``class`` its
    category, and ``created`` (gone from R4) the attachment's creation."""
    source = item.resource
    result = _header(item, record)
    result.update(reshape(item, DOCUMENT, record))
    created = source.get("created")
    contents = []
    for found in source.get("content") or []:
        attachment = clean(found.get("attachment"), item, record)
        if not isinstance(attachment, dict):
            continue
        if isinstance(created, str) and "creation" not in attachment:
            attachment["creation"] = created
        content: Json = {"attachment": attachment}
        if isinstance(form := clean(found.get("format"), item, record), dict):
            content["format"] = form
        contents.append(content)
    result["content"] = contents
    context = source.get("context")
    if isinstance(context, dict):
        converted = reshape(item, DOCUMENT_CONTEXT, record, context)
        related = [
            ref
            for found in context.get("related") or []
            if (ref := _related(found, item, record)) is not None
        ]
        if related:
            converted["related"] = related
        if converted:
            result["context"] = converted
    result["subject"] = record.subject()
    return result


def _related(found: Json, item: Item, record: Record) -> Json | None:
    """STU3's ``context.related`` (an identifier and a reference) as R4's
    Reference."""
    if isinstance(found.get("ref"), dict):
        return record.reference(found["ref"], item)
    identifier = clean(found.get("identifier"), item, record)
    return {"identifier": identifier} if isinstance(identifier, dict) else None
