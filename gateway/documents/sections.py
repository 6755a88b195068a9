"""The sections of the two documents, as data: each section's title, its
code (LOINC as the International Patient Summary uses them, or the
gateway's own where IPS has none) and which resources it holds.

A resource goes in the first section of a document that holds it, so every
entry is listed once; what no section holds is not in the document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.documents.narrative import codes_in, format_date
from mappings.gpconnect.codes import LIST_AREAS

Resource = dict[str, Any]

LOINC = "http://loinc.org"
# Sections IPS has no code for: the social care a person receives, the care
# home they live in.
SECTION_SYSTEM = "urn:london-care-gateway:document-section"

_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
_SNOMED = "http://snomed.info/sct"
_NOT_FOR_CPR = "304253006"
# "Not for resuscitation" and "Not for attempted cardiopulmonary resuscitation".
_NOT_FOR_ANY_CPR = {_NOT_FOR_CPR, "450476008"}
_CONSENT_CATEGORY = "http://terminology.hl7.org/CodeSystem/consentcategorycodes"
_CPR = "89666000"  # a Consent (a ReSPECT form) whose provision denies it is a DNACPR too
_ACVPU = "1104441000000107"
# How the council and care-home mappings mark social care, so that it is
# told apart from health care by what the record says, not who sent it.
_SUPPORT_REASON_CATEGORY = (
    "https://fhir.interweavedigital.nhs.uk/CodeSystem/Interweave-SocialCareSupportReasonCategory"
)
_CLD_ITEM = "urn:london-care-gateway:cld-item"
EPISODE_TYPE = "urn:london-care-gateway:episode-type"
RESIDENCE = "care-home-residence"


# The section each GP record heading's warnings are repeated in: a reader of
# the section must know that the GP's part of it may be missing items. By
# heading code (SNOMED CT), from the areas the mapping knows them by.
_SECTION_OF_AREA = {
    "allergies": "allergies",
    "medications": "medications",
    "problems": "problems",
    "immunisations": "immunisations",
    "investigations": "results",
    "consultations": "encounters",
}
HEADING_SECTIONS = {
    code: _SECTION_OF_AREA[area] for code, area in LIST_AREAS.items() if area in _SECTION_OF_AREA
}


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    system: str
    code: str
    display: str
    holds: Callable[[Resource], bool]
    # Shown even when empty (with its emptyReason), as IPS requires of
    # allergies, medicines and problems, and as a crew expects of every part
    # of the Red Bag.
    always: bool = False
    # What an empty section says. It never says why it is empty beyond
    # "nothing is available": hidden data must read the same as no data.
    empty: str = "No information available."
    # Only the newest of each code (the latest blood pressure, not ten years
    # of them): what a baseline is.
    latest_only: bool = False


@dataclass(frozen=True)
class DocumentKind:
    name: str  # the operation: summary, red-bag
    title: str
    type_code: str
    type_display: str
    sections: tuple[Section, ...]


# -- what a resource says about itself ---------------------------------------------


def _is(res_type: str, *more: str) -> Callable[[Resource], bool]:
    types = {res_type, *more}
    return lambda resource: resource["resourceType"] in types


def _status(resource: Resource) -> str | None:
    status = resource.get("status")
    return status if isinstance(status, str) else None


def _clinical_status(resource: Resource) -> str | None:
    found = codes_in(resource.get("clinicalStatus"))
    return next(iter(sorted(found)), None)


def _entered_in_error(resource: Resource) -> bool:
    return _status(resource) == "entered-in-error" or "entered-in-error" in codes_in(
        resource.get("verificationStatus")
    )


def _observation_in(*categories: str) -> Callable[[Resource], bool]:
    wanted = set(categories)

    def holds(resource: Resource) -> bool:
        return resource["resourceType"] == "Observation" and bool(
            codes_in(resource.get("category"), _OBSERVATION_CATEGORY) & wanted
        )

    return holds


def _social_care(resource: Resource) -> bool:
    res_type = resource["resourceType"]
    if res_type == "EpisodeOfCare":
        return RESIDENCE not in codes_in(resource.get("type"), EPISODE_TYPE)
    if res_type == "Task":
        return True
    if res_type == "ServiceRequest":
        return bool(codes_in(resource.get("category"), _CLD_ITEM))
    if res_type == "Condition":
        return bool(codes_in(resource.get("category"), _SUPPORT_REASON_CATEGORY))
    return False


def is_residence(resource: Resource) -> bool:
    """A care-home stay (as the care-home mapping types it)."""
    return resource["resourceType"] == "EpisodeOfCare" and RESIDENCE in codes_in(
        resource.get("type"), EPISODE_TYPE
    )


def _advance_decision(resource: Resource) -> bool:
    res_type = resource["resourceType"]
    if res_type == "Consent":
        return "adr" in codes_in(resource.get("scope"), _CONSENT_SCOPE)
    return res_type == "Flag" and _NOT_FOR_CPR in codes_in(resource.get("code"), _SNOMED)


def not_for_cpr(resource: Resource) -> str | None:
    """The date of an active do-not-attempt-CPR decision this resource records
    ("" when undated), or None when it records none."""
    status = resource.get("status")
    if status is not None and status != "active":
        return None
    res_type = resource.get("resourceType")
    if res_type == "Consent":
        provision = resource.get("provision")
        refuses_cpr = (
            isinstance(provision, dict)
            and provision.get("type") == "deny"
            and bool(codes_in(provision.get("code"), _SNOMED) & {_CPR})
        )
        if not refuses_cpr and "dnr" not in codes_in(resource.get("category"), _CONSENT_CATEGORY):
            return None
        return format_date(resource.get("dateTime"))
    if (
        res_type in ("Flag", "Condition", "Observation")
        and codes_in(resource.get("code"), _SNOMED) & _NOT_FOR_ANY_CPR
    ):
        period = resource.get("period")
        start = period.get("start") if isinstance(period, dict) else None
        return format_date(
            start or resource.get("recordedDate") or resource.get("effectiveDateTime")
        )
    return None


def _allergy(resource: Resource) -> bool:
    return resource["resourceType"] == "AllergyIntolerance" and not _entered_in_error(resource)


_CURRENT_MEDICATION = {"active", "intended", "on-hold"}


def _current_medication(resource: Resource) -> bool:
    res_type = resource["resourceType"]
    if res_type == "MedicationStatement":
        return _status(resource) in _CURRENT_MEDICATION
    if res_type == "MedicationRequest":
        return _status(resource) in ("active", "on-hold")
    return False


def _last_dose(resource: Resource) -> bool:
    return resource["resourceType"] == "MedicationAdministration" and _status(resource) in (
        "completed",
        "in-progress",
    )


_PAST = {"inactive", "remission", "resolved"}


def _problem(resource: Resource) -> bool:
    return (
        resource["resourceType"] == "Condition"
        and not _entered_in_error(resource)
        and not _social_care(resource)
        and _clinical_status(resource) not in _PAST
    )


def _past_problem(resource: Resource) -> bool:
    return (
        resource["resourceType"] == "Condition"
        and not _entered_in_error(resource)
        and not _social_care(resource)
        and _clinical_status(resource) in _PAST
    )


def _vital_sign(resource: Resource) -> bool:
    return _observation_in("vital-signs")(resource) or (
        resource["resourceType"] == "Observation" and _ACVPU in codes_in(resource.get("code"))
    )


def _result(resource: Resource) -> bool:
    if resource["resourceType"] == "DiagnosticReport":
        return True
    return (
        resource["resourceType"] == "Observation"
        and not _entered_in_error(resource)
        and not _vital_sign(resource)
        and not _observation_in("survey", "social-history")(resource)
    )


def _alert(resource: Resource) -> bool:
    return (
        resource["resourceType"] == "Flag"
        and _status(resource) == "active"
        and not _advance_decision(resource)
    )


def _plan(resource: Resource) -> bool:
    res_type = resource["resourceType"]
    if res_type == "CarePlan":
        return _status(resource) in ("active", "draft", "on-hold")
    return (
        res_type == "ServiceRequest"
        and not _social_care(resource)
        and _status(resource) in ("active", "draft", "on-hold")
    )


def _contact(resource: Resource) -> bool:
    return resource["resourceType"] in ("RelatedPerson", "CareTeam") and (
        resource.get("active") is not False
        and _status(resource) not in ("inactive", "entered-in-error")
    )


# -- the sections ----------------------------------------------------------------------


ALLERGIES = Section(
    "allergies",
    "Allergies and intolerances",
    LOINC,
    "48765-2",
    "Allergies and adverse reactions Document",
    _allergy,
    always=True,
    empty="No allergy information available. This does not say the person has no allergies.",
)
MEDICATIONS = Section(
    "medications",
    "Medication",
    LOINC,
    "10160-0",
    "History of Medication use Narrative",
    lambda r: _current_medication(r) or _last_dose(r),
    always=True,
    empty="No current medication available.",
)
PROBLEMS = Section(
    "problems",
    "Problems",
    LOINC,
    "11450-4",
    "Problem list - Reported",
    _problem,
    always=True,
    empty="No current problems available.",
)
PAST_PROBLEMS = Section(
    "past-problems",
    "Past problems",
    LOINC,
    "11348-0",
    "History of Past illness Narrative",
    _past_problem,
)
IMMUNISATIONS = Section(
    "immunisations",
    "Immunisations",
    LOINC,
    "11369-6",
    "History of Immunization Narrative",
    _is("Immunization"),
)
RESULTS = Section(
    "results",
    "Results",
    LOINC,
    "30954-2",
    "Relevant diagnostic tests/laboratory data Narrative",
    _result,
)
VITAL_SIGNS = Section(
    "vital-signs", "Vital signs", LOINC, "8716-3", "Vital signs", _vital_sign, latest_only=True
)
PROCEDURES = Section(
    "procedures",
    "Procedures",
    LOINC,
    "47519-4",
    "History of Procedures Document",
    _is("Procedure"),
)
DEVICES = Section(
    "devices",
    "Medical devices and aids",
    LOINC,
    "46264-8",
    "History of medical device use",
    _is("Device"),
)
PLAN_OF_CARE = Section("plan-of-care", "Plan of care", LOINC, "18776-5", "Plan of care note", _plan)
ADVANCE_DECISIONS = Section(
    "advance-decisions",
    "Advance decisions",
    LOINC,
    "42348-3",
    "Advance directives",
    _advance_decision,
    empty="No advance decisions available. This does not say there are none.",
)
ALERTS = Section("alerts", "Alerts and risks", LOINC, "104605-1", "Alert", _alert)
FUNCTIONAL_STATUS = Section(
    "functional-status",
    "Functional status",
    LOINC,
    "47420-5",
    "Functional status assessment note",
    lambda r: _observation_in("survey")(r) and not _vital_sign(r),
)
SOCIAL_HISTORY = Section(
    "social-history",
    "Social history",
    LOINC,
    "29762-2",
    "Social history Narrative",
    _observation_in("social-history"),
)
ENCOUNTERS = Section(
    "encounters",
    "Hospital and other encounters",
    LOINC,
    "46240-8",
    "History of Hospitalizations+Outpatient visits Narrative",
    _is("Encounter"),
)
SOCIAL_CARE = Section(
    "social-care",
    "Social care",
    SECTION_SYSTEM,
    "social-care",
    "Social care episodes, services, assessments and reviews",
    _social_care,
)
CARE_HOME = Section(
    "care-home",
    "Care home",
    SECTION_SYSTEM,
    "care-home",
    "Care home residence",
    is_residence,
)
CARE_TEAM = Section(
    "care-team",
    "Care team and key contacts",
    LOINC,
    "85847-2",
    "Patient Care team information",
    _contact,
)
BELONGINGS = Section(
    "belongings",
    "Belongings and aids",
    SECTION_SYSTEM,
    "belongings",
    "Belongings that travel with the person",
    lambda r: (
        r["resourceType"] == "Device"
        or (r["resourceType"] == "List" and (r.get("code") or {}).get("text") == "Belongings")
    ),
)


def _built_apart(resource: Resource) -> bool:
    """A section built from something other than each record's kind: none
    is placed in it as a kind (see ``assemble``)."""
    return False


# The person's latest inpatient stay (``stay``): where and when, where they
# went, and what the hospital sent. LOINC's hospital course (the part of a
# discharge summary that tells the stay), not 18842-5, the discharge
# summary itself: that is a kind of document, which a letter the hospital
# sent and listed here may be, and it could not say "in hospital since".
LATEST_STAY = Section(
    "hospital-stay",
    "Latest hospital stay",
    LOINC,
    "8648-8",
    "Hospital course Narrative",
    _built_apart,
)
# Within it once the person is discharged, what a home must change on the
# MAR chart. LOINC's hospital discharge medications (10183-2) are the whole
# list they leave with; these are the changes, which no LOINC or IPS code
# names.
MEDICINES_STARTED = Section(
    "medicines-started",
    "Medicines started in hospital",
    SECTION_SYSTEM,
    "medicines-started",
    "Medicines started during a hospital stay",
    _built_apart,
    always=True,
    empty="No record of a medicine started in hospital is available.",
)
MEDICINES_STOPPED = Section(
    "medicines-stopped",
    "Medicines stopped in hospital",
    SECTION_SYSTEM,
    "medicines-stopped",
    "Medicines stopped during a hospital stay",
    _built_apart,
    always=True,
    empty="No record of a medicine stopped in hospital is available.",
)


def _required(section: Section, empty: str | None = None) -> Section:
    return Section(
        section.key,
        section.title,
        section.system,
        section.code,
        section.display,
        section.holds,
        always=True,
        empty=empty or section.empty,
        latest_only=section.latest_only,
    )


SUMMARY = DocumentKind(
    name="summary",
    title="Patient summary",
    type_code="60591-5",
    type_display="Patient summary Document",
    sections=(
        ALLERGIES,
        MEDICATIONS,
        PROBLEMS,
        LATEST_STAY,
        ADVANCE_DECISIONS,
        ALERTS,
        IMMUNISATIONS,
        RESULTS,
        VITAL_SIGNS,
        PROCEDURES,
        PLAN_OF_CARE,
        FUNCTIONAL_STATUS,
        SOCIAL_CARE,
        CARE_HOME,
        CARE_TEAM,
        DEVICES,
        SOCIAL_HISTORY,
        ENCOUNTERS,
        PAST_PROBLEMS,
    ),
)

# In the order a crew reads a Red Bag: what not to do first. Every part is
# there, empty or not, but the latest hospital stay: there is none to show
# until the person has been in hospital, and it follows what it changed.
RED_BAG = DocumentKind(
    name="red-bag",
    title="Red Bag: hospital transfer record",
    type_code="18761-7",
    type_display="Provider-unspecified transfer summary",
    sections=tuple(
        section if section is LATEST_STAY else _required(section, empty)
        for section, empty in (
            (ADVANCE_DECISIONS, None),
            (ALERTS, "No alerts or risks available."),
            (ALLERGIES, None),
            (MEDICATIONS, None),
            (PROBLEMS, None),
            (LATEST_STAY, None),
            (
                Section(
                    "about-me",
                    "About me",
                    LOINC,
                    "81338-6",
                    "Patient Goals, preferences, and priorities for care experience",
                    _observation_in("social-history"),
                ),
                "Nothing about the person's wishes and preferences is available.",
            ),
            (
                Section(
                    "baseline",
                    "Baseline observations",
                    LOINC,
                    "8716-3",
                    "Vital signs",
                    _vital_sign,
                    latest_only=True,
                ),
                "No baseline observations available.",
            ),
            (
                Section(
                    "usual-condition",
                    "Usual condition",
                    LOINC,
                    "47420-5",
                    "Functional status assessment note",
                    FUNCTIONAL_STATUS.holds,
                ),
                "Nothing about the person's usual condition is available.",
            ),
            (CARE_TEAM, "No key contacts available."),
            (CARE_HOME, "No care-home residence available."),
            (BELONGINGS, "No belongings or aids recorded as available."),
            (PLAN_OF_CARE, "No care plan available."),
        )
    ),
)

KINDS = {kind.name: kind for kind in (SUMMARY, RED_BAG)}
