"""What the consent rules look at in a stored resource, read with the search
engine's own extraction, so "the resource's code" or "its clinical date"
means what the search parameters of that name mean."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from consent.model import DIRECTORY, NO_PERSON, PERSON, Coding, ResourceFacts
from consent.parse import is_privacy_consent
from gateway.search.compartments import PATIENT_COMPARTMENT
from gateway.search.extract import extract
from gateway.search.parameters import parameter
from gateway.store.values import DateRange, ReferenceValue, TokenValue
from mappings.identity import NHS_NUMBER_SYSTEM

AUTHOR_PREFIX = "urn:ods:"
# The search parameter that is each type's own clinical date (the date the
# Consent.provision.dataPeriod is compared with).
CLINICAL_DATE: dict[str, str] = {
    "AllergyIntolerance": "date",
    "CarePlan": "date",
    "CareTeam": "date",
    "Composition": "date",
    "Condition": "onset-date",
    "DiagnosticReport": "date",
    "DocumentReference": "date",
    "Encounter": "date",
    "EpisodeOfCare": "date",
    "Flag": "date",
    "Immunization": "date",
    "MedicationRequest": "authoredon",
    "MedicationStatement": "effective",
    "Observation": "date",
    "Procedure": "date",
    "ServiceRequest": "authored",
    "Task": "authored-on",
    "MedicationAdministration": "effective-time",
    "List": "date",
}
# The parameter holding each type's main code (what Consent.provision.code
# and the restricted code lists match).
MAIN_CODE: dict[str, str] = {
    "AllergyIntolerance": "code",
    "Condition": "code",
    "DiagnosticReport": "code",
    "Encounter": "type",
    "EpisodeOfCare": "type",
    "Flag": "code",
    "Immunization": "vaccine-code",
    "MedicationRequest": "code",
    "MedicationStatement": "code",
    "Observation": "code",
    "Procedure": "code",
    "ServiceRequest": "code",
    "CarePlan": "category",
    "DocumentReference": "type",
    "Composition": "type",
    "Task": "code",
    "MedicationAdministration": "code",
    "Device": "type",
    "List": "code",
}


def _values(resource: dict[str, Any], code: str | None) -> list[Any]:
    if code is None:
        return []
    found = parameter(resource["resourceType"], code)
    return extract(resource, found) if found is not None else []


def codes_of(resource: dict[str, Any]) -> frozenset[Coding]:
    return frozenset(
        (value.system, value.code)
        for value in _values(resource, MAIN_CODE.get(resource["resourceType"]))
        if isinstance(value, TokenValue) and value.code
    )


def _codings(concepts: Any) -> list[Coding]:
    if isinstance(concepts, dict):
        concepts = [concepts]
    if not isinstance(concepts, list):
        return []
    return [
        (coding.get("system"), coding["code"])
        for concept in concepts
        if isinstance(concept, dict)
        for coding in concept.get("coding") or []
        if isinstance(coding, dict) and isinstance(coding.get("code"), str)
    ]


def labelling_codes(resource: dict[str, Any]) -> list[Coding]:
    """The codings that say what a record is about, for the restricted code
    lists: its main code, the reasons given for it and a coded value."""
    return [
        *codes_of(resource),
        *_codings(resource.get("reasonCode")),
        *_codings(resource.get("valueCodeableConcept")),
    ]


def labels_of(resource: dict[str, Any]) -> frozenset[Coding]:
    """The security labels ``resource`` carries (``meta.security``)."""
    return frozenset(
        (label.get("system"), label["code"])
        for label in (resource.get("meta") or {}).get("security") or []
        if isinstance(label, dict) and isinstance(label.get("code"), str)
    )


def facts_of(
    resource: dict[str, Any], content: bool = True, whose: str | None = None
) -> ResourceFacts:
    """The facts of ``resource``; without ``content``, its codes and clinical
    date are left out (for a person none of whose Consents looks at them).
    ``whose`` is ``whose_record(resource).whose``, when the caller has it."""
    res_type = resource["resourceType"]
    meta = resource.get("meta") or {}
    labels = labels_of(resource)
    dates = (
        [v for v in _values(resource, CLINICAL_DATE.get(res_type)) if isinstance(v, DateRange)]
        if content
        else []
    )
    source = meta.get("source")
    author = (
        source.removeprefix(AUTHOR_PREFIX)
        if isinstance(source, str) and source.startswith(AUTHOR_PREFIX)
        else None
    )
    return ResourceFacts(
        res_type=res_type,
        res_id=str(resource.get("id", "")),
        labels=labels,
        codes=codes_of(resource) if content else frozenset(),
        clinical_low=min(d.low for d in dates) if dates else None,
        clinical_high=max(d.high for d in dates) if dates else None,
        author_ods=author,
        sharing_policy=res_type == "Consent" and is_privacy_consent(resource),
        whose=whose if whose is not None else whose_record(resource).whose,
    )


# The element the first Patient compartment parameter of each type reads,
# where that parameter is the element itself: a relative ``Patient/<id>``
# there is read directly, anything else goes through the extraction.
_PERSON_ELEMENT: dict[str, str] = {
    "AllergyIntolerance": "patient",
    "CarePlan": "subject",
    "CareTeam": "subject",
    "Composition": "subject",
    "Condition": "subject",
    "Consent": "patient",
    "DiagnosticReport": "subject",
    "DocumentReference": "subject",
    "Encounter": "subject",
    "EpisodeOfCare": "patient",
    "Flag": "subject",
    "Immunization": "patient",
    "MedicationRequest": "subject",
    "MedicationStatement": "subject",
    "Observation": "subject",
    "Procedure": "subject",
    "RelatedPerson": "patient",
    "ServiceRequest": "subject",
    "Task": "for",
    "MedicationAdministration": "subject",
    "Device": "patient",
    "List": "subject",
}
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def person_of(resource: dict[str, Any]) -> str | None:
    """The id of the Patient whose record this resource is part of; ``None``
    for what is no one's record (an Organization, a Medication...)."""
    res_type = resource["resourceType"]
    if res_type == "Patient":
        return str(resource.get("id", ""))
    element = _PERSON_ELEMENT.get(res_type)
    if element is not None:
        reference = (resource.get(element) or {}).get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            target = reference[8:]
            if _ID.fullmatch(target):
                return target
    if res_type == "Provenance" and not _may_name_patient(resource.get("target")):
        # One write's Provenance names every resource it wrote, hundreds at
        # times, and seldom the Patient: extraction would parse each.
        return None
    for code in PATIENT_COMPARTMENT.get(res_type, ())[:1]:
        for value in _values(resource, code):
            if isinstance(value, ReferenceValue) and value.target_type == "Patient":
                return value.target_id
    return None


# The kinds of record that are always a person's, whether or not they name
# them: the Patient compartment's and those naming their person by an element
# of their own (``_PERSON_ELEMENT``). Not a Device, which names no one when it
# is not assigned to anyone (equipment), nor a Provenance, which is decided by
# the records it is about (``named_records``).
PERSONAL_TYPES = (frozenset(PATIENT_COMPARTMENT) | frozenset(_PERSON_ELEMENT)) - {
    "Device",
    "Provenance",
}
# The kinds that are no one's record and yet not the directory's: a
# Subscription is one client's standing request, saying which events it is
# told of and where, with the headers to send (a credential among them).
# Decided as a record naming no person, it is its author's alone under every
# purpose, emergency access included, and no search's SQL lets it through to
# anyone else (``gateway.access.scope``). A Group is a cohort definition, a
# list of people (who is on a register, who an export is run for): its
# author's alone, for no one else may read who is in it. Naming its members
# does not make it part of their records: R4 puts Group in the Patient
# compartment by ``member``, the gateway does not
# (``gateway.search.compartments``).
AUTHORS_OWN_TYPES = frozenset({"Subscription", "Group"})


class Whose(NamedTuple):
    """Whose record a resource says it is: the id of the Patient it names
    (``person_of``); the identifier it names its person by where it names no
    Patient by id (a logical reference: resolved to the Patient that carries
    it, when there is one); and ``ResourceFacts.whose``."""

    patient_id: str | None
    identifier: Coding | None
    whose: str


def whose_record(resource: dict[str, Any]) -> Whose:
    """Whose record ``resource`` is, as far as it says itself."""
    patient_id = person_of(resource)
    if patient_id is not None:
        return Whose(patient_id, None, PERSON)
    identifier = person_identifier(resource)
    if identifier is not None:
        return Whose(None, identifier, PERSON)
    res_type = resource["resourceType"]
    if res_type in PERSONAL_TYPES or res_type in AUTHORS_OWN_TYPES:
        return Whose(None, None, NO_PERSON)
    return Whose(None, None, DIRECTORY)


def person_element(res_type: str) -> str | None:
    """The element by which a ``res_type`` names its person (``subject``,
    ``patient``, ``for``), where it has one of its own."""
    return _PERSON_ELEMENT.get(res_type)


def person_reference(resource: dict[str, Any]) -> dict[str, Any] | None:
    """The Reference naming the person whose record ``resource`` is, where
    its type names them by an element of its own, if it is there."""
    element = person_element(resource["resourceType"])
    reference = resource.get(element) if element is not None else None
    return reference if isinstance(reference, dict) else None


def _typed_patient(kind: Any) -> bool:
    return kind == "Patient" or (
        isinstance(kind, str) and kind.endswith("/StructureDefinition/Patient")
    )


def person_identifier(resource: dict[str, Any]) -> Coding | None:
    """The identifier, as (system, value), by which ``resource`` names its
    person where it names them by identifier alone (a logical reference,
    with no ``reference``): an NHS number, or any identifier of a Reference
    typed ``Patient``. ``None`` when it names its person by id, or names
    none (a reference typed as anything else names no person)."""
    reference = person_reference(resource)
    if reference is None or reference.get("reference") is not None:
        return None
    identifier = reference.get("identifier")
    if not isinstance(identifier, dict):
        return None
    system, value = identifier.get("system"), identifier.get("value")
    kind = reference.get("type")
    if not isinstance(value, str) or not value:
        return None
    if _typed_patient(kind) or (kind is None and system == NHS_NUMBER_SYSTEM):
        return (system if isinstance(system, str) else None, value)
    return None


def _may_name_patient(references: Any) -> bool:
    """Whether a Patient could be among ``references`` (a Reference or a
    list of them): a reference to one names the type in its text or in its
    ``type``; anything unexpected is left to the extraction to judge."""
    if not isinstance(references, list):
        references = [references]
    for reference in references:
        if not isinstance(reference, dict):
            return True
        text = reference.get("reference")
        if not isinstance(text, str) or "Patient" in text or reference.get("type") is not None:
            return True
    return False


def _sections(resource: dict[str, Any]) -> list[Any]:
    named: list[Any] = []
    sections = _dicts(resource.get("section"))
    while sections:
        section = sections.pop()
        named += _dicts(section.get("entry"))
        sections += _dicts(section.get("section"))
    return named


# What each kind of resource that gathers records names: it is shown only
# with every one of them (the high-water mark of what it holds).
_NAMED_BY: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
    "Provenance": lambda r: _dicts(r.get("target")),
    "List": lambda r: [e.get("item") for e in _dicts(r.get("entry"))],
    "Composition": _sections,
    "Encounter": lambda r: [d.get("condition") for d in _dicts(r.get("diagnosis"))],
    "DiagnosticReport": lambda r: _dicts(r.get("result")),
    "Observation": lambda r: _dicts(r.get("hasMember")),
}
NAMING_TYPES = frozenset(_NAMED_BY)


def named_records(resource: dict[str, Any]) -> list[str]:
    """The records ``resource`` names as what it is about or holds
    (``Type/id`` or ``Type/id/_history/n``): a Provenance's targets, a
    List's items, a Composition's section entries (nested sections too), an
    Encounter's diagnoses, a DiagnosticReport's results, an Observation's
    members. A visit for a mental health diagnosis is as sensitive as the
    diagnosis. Contained resources (``#id``) are part of the resource
    itself, not named."""
    named_by = _NAMED_BY.get(str(resource.get("resourceType")))
    if named_by is None:
        return []
    return [
        reference
        for target in _dicts(named_by(resource))
        if isinstance(reference := target.get("reference"), str) and not reference.startswith("#")
    ]


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
