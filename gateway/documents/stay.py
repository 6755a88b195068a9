"""The person's latest hospital stay, as the documents show it: where they
were, when they went in and came out, where they went, what the hospital
sent about the stay, and which medicines were started or stopped.

Red Bag care is a round trip: the resident goes into hospital with the bag
and comes back with a discharge, and the home must know what changed. The
stay is an inpatient Encounter (https://hl7.org/fhir/R4/encounter.html,
class IMP, ACUTE or NONAC in v3 ActCode, as the HL7 v2 ADT mapping writes
A01 and A03); the rest is read from what the requester may see and nothing
else, so a stay, a record or a medicine it may not see is not counted,
named or dated here either.

- **The stay**: of the inpatient Encounters, the one that began last, if it
  is going on (in hospital) or finished (discharged); one planned,
  cancelled or entered in error is no stay.
- **The hospital**: the stay's service provider, else its author.
- **What the hospital sent**: the records that name the stay (a diagnosis,
  a procedure, a discharge summary's DocumentReference or Composition), and
  the hospital's own records (``meta.source``) dated from the day of
  admission on, of no other stay (naming no encounter but this one or a
  visit the requester may see).
- **Medicines started** (once discharged): a medicine that one of its
  sources says began during the stay, or that the hospital prescribed from
  the day of admission on, or that names the stay; unless a source says the
  person took it before they went in (a discharge prescription lists what
  they carry on taking, too).
- **Medicines stopped** (once discharged): one whose sources say it is
  stopped, completed or cancelled, with the change dated from the day of
  admission on (a statement's end, or the hospital's own version of it), or
  naming the stay.

Days are compared as written: a stay's day is the local day its start
states, as the narratives show it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.documents import narrative
from gateway.documents.narrative import Resource, Row, codes_in, dicts_in, text_of
from gateway.documents.reconcile import Origins, Reconciled, in_utc, reconcile
from gateway.identifiers import ODS_SYSTEM

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# Inpatient, acute inpatient and non-acute inpatient: a stay, not a visit.
INPATIENT = frozenset({"IMP", "ACUTE", "NONAC"})
_IN_HOSPITAL = frozenset({"arrived", "triaged", "in-progress", "onleave"})
_AUTHOR_PREFIX = "urn:ods:"
_DISCHARGE_METHOD = "Extension-UKCore-DischargeMethod"
# The records a stay leaves that a reader of it wants: the hospital's
# letters, what it found and what it did. Its contacts (RelatedPerson) and
# the person's other records are elsewhere in the document.
_SENT_TYPES = (
    "DocumentReference",
    "Composition",
    "Condition",
    "Procedure",
    "DiagnosticReport",
    "Observation",
    "AllergyIntolerance",
    "CarePlan",
    "ServiceRequest",
    "Flag",
    "Immunization",
)
Statuses = Mapping[str, frozenset[str]]
# What a medicine's current record is, by type: as the medication section
# has it, a dose given among them (it says the medicine was being taken).
_CURRENT: Statuses = {
    "MedicationStatement": frozenset({"active", "intended", "on-hold"}),
    "MedicationRequest": frozenset({"active", "on-hold"}),
    "MedicationAdministration": frozenset({"completed", "in-progress"}),
}
_ENDED: Statuses = {
    "MedicationStatement": frozenset({"stopped", "completed"}),
    "MedicationRequest": frozenset({"stopped", "completed", "cancelled"}),
}


@dataclass(frozen=True)
class Stay:
    """The latest inpatient stay the requester may see."""

    encounter: str  # Encounter/id
    discharged: bool  # False: still in hospital
    hospital: str  # in words: the directory's name with the code
    hospital_ods: str  # "" when neither provider nor author names one
    admitted: str  # the day it began (YYYY-MM-DD), "" when undated
    left: str  # the day it ended, "" when going on or undated


@dataclass(frozen=True)
class Changes:
    """The medicines the stay changed, one fact a row, in the order their
    first entries were found."""

    started: list[Reconciled]
    stopped: list[Reconciled]


def _day(value: Any) -> str:
    """The day a FHIR date or dateTime states, as written ("" if none)."""
    return value[:10] if isinstance(value, str) and len(value) >= 10 else ""


def author_ods(resource: Resource) -> str:
    """The ODS code of the organisation that wrote a record (upper case), or ""."""
    source = (resource.get("meta") or {}).get("source")
    if isinstance(source, str) and source.startswith(_AUTHOR_PREFIX):
        return source.removeprefix(_AUTHOR_PREFIX).upper()
    return ""


def _target(reference: Any) -> str:
    """``Type/id`` of a literal reference (its last two segments, any
    version left off), or ""."""
    if not isinstance(reference, dict):
        return ""
    value = text_of(reference.get("reference")).split("/_history/")[0]
    parts = value.rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else ""


def encounters_named(resource: Resource) -> set[str]:
    """The Encounters a record says it belongs to: ``encounter`` (most
    clinical types), ``context`` (a MedicationStatement), or
    ``context.encounter`` (a DocumentReference)."""
    named = [resource.get("encounter")]
    context = resource.get("context")
    if isinstance(context, dict):
        named += [context, *dicts_in(context.get("encounter"))]
    return {t for ref in named if (t := _target(ref)).startswith("Encounter/")}


def _is_inpatient(encounter: Resource) -> bool:
    kind = encounter.get("class")
    return (
        isinstance(kind, dict)
        and kind.get("system") == ACT_CODE
        and text_of(kind.get("code")) in INPATIENT
    )


def _provider_ods(encounter: Resource, resources: Mapping[str, Resource]) -> str:
    provider = encounter.get("serviceProvider")
    if not isinstance(provider, dict):
        return ""
    identifiers = [provider.get("identifier")]
    target = resources.get(_target(provider))
    if target is not None and target.get("resourceType") == "Organization":
        identifiers += dicts_in(target.get("identifier"))
    for identifier in dicts_in(identifiers):
        if identifier.get("system") == ODS_SYSTEM and text_of(identifier.get("value")):
            return text_of(identifier["value"]).upper()
    return ""


def _began(encounter: Resource) -> str:
    """When a stay began, comparable across offsets: an instant in UTC, a
    date as its midnight, "" when undated (before any other)."""
    period = encounter.get("period")
    start = period.get("start") if isinstance(period, dict) else None
    return in_utc(start) if isinstance(start, str) else ""


def latest_stay(
    resources: Mapping[str, Resource], organisation: Callable[[Any], str]
) -> Stay | None:
    """The latest inpatient stay among ``resources`` (what the requester
    may see), if it is going on or finished; ``organisation`` gives a
    Reference to an organisation in words."""
    stays = [
        (reference, resource)
        for reference, resource in resources.items()
        if resource["resourceType"] == "Encounter"
        and _is_inpatient(resource)
        and (resource.get("status") == "finished" or resource.get("status") in _IN_HOSPITAL)
    ]
    if not stays:
        return None
    # Ties go by reference, so the same records always give the same stay.
    reference, encounter = max(stays, key=lambda found: (_began(found[1]), found[0]))
    period = encounter.get("period")
    period = period if isinstance(period, dict) else {}
    discharged = encounter.get("status") == "finished"
    ods = _provider_ods(encounter, resources) or author_ods(encounter)
    hospital = organisation(encounter.get("serviceProvider"))
    if not hospital and ods:
        hospital = narrative.organisation(ods)
    return Stay(
        encounter=reference,
        discharged=discharged,
        hospital=hospital or "Hospital not named",
        hospital_ods=ods,
        admitted=_day(period.get("start")),
        left=_day(period.get("end")) if discharged else "",
    )


def stay_row(stay: Stay, encounter: Resource, resolve: narrative.Resolve) -> Row:
    """The stay in one row: where, since when and until when, and where the
    person went (in the code list's words, never its code)."""
    period = encounter.get("period")
    period = period if isinstance(period, dict) else {}
    admitted = narrative.format_date(period.get("start"))
    wards = [_place(at.get("location"), resolve) for at in dicts_in(encounter.get("location"))]
    reasons = [narrative.concept_text(reason) for reason in dicts_in(encounter.get("reasonCode"))]
    where = [stay.hospital, *wards, *reasons]
    status = narrative.in_words(encounter.get("status"))
    if not stay.discharged:
        # Where, and since when: no Date beside it to say it twice.
        return Row(
            f"In hospital since {admitted}" if admitted else "In hospital",
            narrative.join(where),
            "",
            status,
        )
    left = narrative.format_date(period.get("end"))
    hospitalization = encounter.get("hospitalization")
    destination = narrative.concept_text(
        hospitalization.get("dischargeDisposition") if isinstance(hospitalization, dict) else None
    )
    method = next(
        (
            narrative.concept_text(extension.get("valueCodeableConcept"))
            for extension in dicts_in(encounter.get("extension"))
            if text_of(extension.get("url")).endswith(_DISCHARGE_METHOD)
        ),
        "",
    )
    return Row(
        f"Discharged {left}" if left else "Discharged",
        narrative.join([*where, f"Discharged to: {destination}" if destination else "", method]),
        f"Admitted {admitted}" if admitted else "",
        status,
    )


def _place(reference: Any, resolve: narrative.Resolve) -> str:
    """A ward as the record names it: its display, else the Location's name."""
    if not isinstance(reference, dict):
        return ""
    if text_of(reference.get("display")):
        return text_of(reference["display"])
    target = resolve(_target(reference))
    return text_of(target.get("name")) if target is not None else ""


# -- what the hospital sent -------------------------------------------------------------


def _entered_in_error(resource: Resource) -> bool:
    return resource.get("status") == "entered-in-error" or "entered-in-error" in codes_in(
        resource.get("verificationStatus")
    )


def _dated(resource: Resource) -> str:
    """The day a record states for what it records (its clinical date, or a
    letter's date), "" when it states none."""
    for name in (
        "date",
        "effectiveDateTime",
        "effectiveInstant",
        "issued",
        "performedDateTime",
        "onsetDateTime",
        "recordedDate",
        "occurrenceDateTime",
        "authoredOn",
    ):
        if day := _day(resource.get(name)):
            return day
    for name in ("effectivePeriod", "performedPeriod", "period", "onsetPeriod"):
        period = resource.get(name)
        if isinstance(period, dict) and (day := _day(period.get("start"))):
            return day
    return ""


def _elsewhere(stay: Stay, resource: Resource, resources: Mapping[str, Resource]) -> bool:
    """Whether a record belongs to another stay: it names an encounter other
    than this one that is not a visit the requester may see (a GP
    consultation). One it may not see may be a stay: the record is left to
    its own section rather than put under a stay it may not be of."""
    return any(
        named != stay.encounter
        and ((found := resources.get(named)) is None or _is_inpatient(found))
        for named in encounters_named(resource)
    )


def _from_the_hospital(
    stay: Stay, resource: Resource, resources: Mapping[str, Resource], day: str
) -> bool:
    """The stay's hospital's own record, dated from the day of admission on,
    of no other stay."""
    return (
        bool(stay.hospital_ods and stay.admitted and day)
        and author_ods(resource) == stay.hospital_ods
        and day >= stay.admitted
        and not _elsewhere(stay, resource, resources)
    )


def sent(stay: Stay, resources: Mapping[str, Resource]) -> list[str]:
    """What the hospital sent about the stay: letters first, then what it
    found and did, each kind newest first."""
    found = []
    for reference, resource in resources.items():
        res_type = resource["resourceType"]
        if res_type not in _SENT_TYPES or _entered_in_error(resource):
            continue
        if res_type == "DocumentReference" and resource.get("status") != "current":
            continue  # superseded by a later letter
        if stay.encounter in encounters_named(resource) or _from_the_hospital(
            stay, resource, resources, _dated(resource)
        ):
            found.append(reference)
    by_date = sorted(found, key=lambda r: _dated(resources[r]), reverse=True)
    return sorted(by_date, key=lambda r: _SENT_TYPES.index(resources[r]["resourceType"]))


def with_roles(encounter: Resource, facts: list[Reconciled]) -> list[Reconciled]:
    """``facts`` of what the hospital sent, a diagnosis of the stay saying
    which it is (admission, discharge) as the stay names it."""
    roles = {
        _target(diagnosis.get("condition")): narrative.concept_text(diagnosis.get("use"))
        for diagnosis in dicts_in(encounter.get("diagnosis"))
    }
    found = []
    for fact in facts:
        role = next((roles[r] for r in fact.members if roles.get(r)), "")
        if role:
            row = fact.row
            fact = Reconciled(
                fact.members,
                Row(row.what, narrative.join([role, row.detail]), row.when, row.status),
                fact.sources,
                fact.conflicting,
            )
        found.append(fact)
    return found


# -- medicines --------------------------------------------------------------------------


def _started(resource: Resource) -> str:
    """The day a medicine began, as its record says: a statement's
    effective start, a prescription's date, a dose's day."""
    if resource["resourceType"] == "MedicationRequest":
        dispense = resource.get("dispenseRequest")
        validity = dispense.get("validityPeriod") if isinstance(dispense, dict) else None
        return _day(resource.get("authoredOn")) or (
            _day(validity.get("start")) if isinstance(validity, dict) else ""
        )
    period = resource.get("effectivePeriod")
    if isinstance(period, dict):
        return _day(period.get("start"))
    return _day(resource.get("effectiveDateTime"))


def stopped_on(stay: Stay, resource: Resource) -> str:
    """The day a medicine's stop is dated: when a statement says it ended,
    or when the hospital wrote the version that stops it; "" if undated."""
    if resource["resourceType"] == "MedicationStatement":
        period = resource.get("effectivePeriod")
        if isinstance(period, dict) and (day := _day(period.get("end"))):
            return day
    if stay.hospital_ods and author_ods(resource) == stay.hospital_ods:
        return _day((resource.get("meta") or {}).get("lastUpdated"))
    return ""


def _an_issue(resource: Resource) -> bool:
    """One issue of a repeat prescription (a request based on another),
    which is completed once dispensed and stops nothing."""
    return resource["resourceType"] == "MedicationRequest" and any(
        _target(based).startswith("MedicationRequest/")
        for based in dicts_in(resource.get("basedOn"))
    )


def _medicines(stay: Stay, resources: Mapping[str, Resource], statuses: Statuses) -> list[str]:
    """The person's medicine records in one of ``statuses``, of no other
    stay, as the medication section orders them: by type, then the latest
    begun first."""
    found = [
        reference
        for reference, resource in resources.items()
        if resource.get("status") in statuses.get(resource["resourceType"], ())
        and not (_an_issue(resource) and resource.get("status") == "completed")
        and not _elsewhere(stay, resource, resources)
    ]
    by_date = sorted(sorted(found), key=lambda r: _started(resources[r]), reverse=True)
    return sorted(by_date, key=lambda r: resources[r]["resourceType"])


def changes(stay: Stay, resources: Mapping[str, Resource], origins: Origins) -> Changes:
    """The medicines a finished stay started and stopped, reconciled as the
    medication section reconciles them: one row per medicine, each source
    an entry of it. A stay still going on has changed nothing yet: what a
    home acts on is the discharge."""
    if not stay.discharged:
        return Changes([], [])
    admitted, left = stay.admitted, stay.left or "9999-12-31"

    def began_in_stay(resource: Resource) -> bool:
        # A dose given says the medicine was taken then, not that it began.
        if resource["resourceType"] == "MedicationAdministration":
            return False
        if stay.encounter in encounters_named(resource):
            return True
        day = _started(resource)
        if not admitted or not day:
            return False
        by_the_hospital = bool(stay.hospital_ods) and author_ods(resource) == stay.hospital_ods
        return admitted <= day <= left or (by_the_hospital and day >= admitted)

    def taken_before(resource: Resource) -> bool:
        day = _started(resource)
        return bool(admitted and day and day < admitted)

    started = [
        fact
        for fact in reconcile(_medicines(stay, resources, _CURRENT), resources, origins)
        if any(began_in_stay(resources[r]) for r in fact.members)
        and not any(taken_before(resources[r]) for r in fact.members)
    ]
    stopped = []
    for fact in reconcile(_medicines(stay, resources, _ENDED), resources, origins):
        days = [stopped_on(stay, resources[r]) for r in fact.members]
        named = any(stay.encounter in encounters_named(resources[r]) for r in fact.members)
        in_stay = [day for day in days if admitted and day >= admitted]
        if not (named or in_stay):
            continue
        # Dated by its stop, not by when it began: that is what changed.
        row = fact.row
        when = f"Stopped {narrative.format_date(max(in_stay))}" if in_stay else "Stopped"
        stopped.append(
            Reconciled(
                fact.members,
                Row(row.what, row.detail, when, row.status),
                fact.sources,
                fact.conflicting,
            )
        )
    return Changes(started, stopped)
