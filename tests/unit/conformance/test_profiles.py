"""UK Core profiles from constraint tables (``conformance.profiles``): each
rule of each profile met and broken, the package's extensions checked
wherever they are used, and claims of profiles the gateway does not know
warned of, never refused."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from conformance import profiles, validator
from conformance.profiles import is_nhs_number
from conformance.profiles._tables import DATA
from conformance.registry import RESOURCES
from conformance.validation import validate_resource
from mappings.identity import InvalidNhsNumber, nhs_number

UK = "https://fhir.hl7.org.uk/StructureDefinition/"
UKCS = "https://fhir.hl7.org.uk/CodeSystem/"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
VERIFICATION = UK + "Extension-UKCore-NHSNumberVerificationStatus"
ETHNIC = UK + "Extension-UKCore-EthnicCategory"
SUBJECT = {"reference": "Patient/p1"}


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _claiming(res_type: str, **elements: Any) -> dict[str, Any]:
    """A valid R4 ``res_type`` that claims its UK Core profile."""
    return {
        "resourceType": res_type,
        "meta": {"profile": [f"{UK}UKCore-{res_type}"]},
        **BASE[res_type],
        **elements,
    }


BASE: dict[str, dict[str, Any]] = {
    "Patient": {},
    "RelatedPerson": {"patient": SUBJECT},
    "Practitioner": {},
    "PractitionerRole": {},
    "Organization": {"name": "Whittington Health NHS Trust"},
    "Location": {},
    "Encounter": {
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
    },
    "Condition": {"subject": SUBJECT, "code": {"text": "Asthma"}},
    "AllergyIntolerance": {
        "patient": SUBJECT,
        "clinicalStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active"
        ),
        "code": {"text": "Penicillin"},
    },
    "Medication": {"code": {"text": "Amoxicillin 500mg capsules"}},
    "MedicationStatement": {
        "status": "active",
        "medicationCodeableConcept": {"text": "Amoxicillin"},
        "subject": SUBJECT,
    },
    "MedicationRequest": {
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "Amoxicillin"},
        "subject": SUBJECT,
        "substitution": {"allowedBoolean": True},
    },
    "Immunization": {
        "status": "completed",
        "vaccineCode": {"text": "Influenza"},
        "patient": SUBJECT,
        "occurrenceDateTime": "2024-10-01",
    },
    "Observation": {"status": "final", "code": {"text": "Pulse"}},
    "Procedure": {"status": "completed", "subject": SUBJECT},
    "DiagnosticReport": {"status": "final", "code": {"text": "Full blood count"}},
    "ServiceRequest": {"status": "active", "intent": "order", "subject": SUBJECT},
    "Composition": {
        "status": "final",
        "type": {"text": "Discharge summary"},
        "date": "2024-10-01",
        "author": [{"display": "Dr A"}],
        "title": "Discharge summary",
    },
    "MedicationAdministration": {
        "status": "completed",
        "medicationCodeableConcept": {"text": "Paracetamol"},
        "subject": SUBJECT,
        "effectiveDateTime": "2024-10-01T08:00:00Z",
    },
    "List": {"status": "current", "mode": "snapshot"},
}


def _nhs(value: str = "9990000018", **extra: Any) -> dict[str, Any]:
    return {"system": NHS, "value": value, **extra}


def _verification(code: str = "01") -> dict[str, Any]:
    system = UKCS + "UKCore-NHSNumberVerificationStatusEngland"
    return {"url": VERIFICATION, "valueCodeableConcept": _concept(system, code)}


def _ethnic(code: str = "A") -> dict[str, Any]:
    return {
        "url": ETHNIC,
        "valueCodeableConcept": _concept(UKCS + "UKCore-EthnicCategoryEngland", code),
    }


def _ext(url: str, **value: Any) -> dict[str, Any]:
    return {"url": url, **value}


@dataclass(frozen=True)
class Case:
    """A rule's key, a resource that meets it and one that breaks it where
    ``path`` says."""

    key: str
    meets: dict[str, Any]
    breaks: dict[str, Any]
    path: str
    severity: str = "error"


ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SITE = "https://fhir.nhs.uk/Id/ods-site-code"
CARE_SETTING = UK + "Extension-UKCore-CareSettingType"

CASES = [
    Case(
        "Patient.identifier:nhsNumber max",
        _claiming("Patient", identifier=[_nhs(), {"system": "urn:x", "value": "1"}]),
        _claiming("Patient", identifier=[_nhs(), _nhs("9990000026")]),
        "Patient.identifier",
    ),
    Case(
        "Patient.identifier:nhsNumber.value min",
        _claiming("Patient", identifier=[_nhs()]),
        _claiming("Patient", identifier=[{"system": NHS, "extension": [_verification("03")]}]),
        "Patient.identifier[0].value",
    ),
    Case(
        "Patient.identifier:nhsNumber.value format",
        _claiming("Patient", identifier=[_nhs("9434765919")]),
        _claiming("Patient", identifier=[_nhs("9434765918")]),
        "Patient.identifier[0].value",
    ),
    Case(
        "Patient.identifier:nhsNumber.extension:nhsNumberVerificationStatus max",
        _claiming("Patient", identifier=[_nhs(extension=[_verification()])]),
        _claiming("Patient", identifier=[_nhs(extension=[_verification(), _verification("02")])]),
        "Patient.identifier[0].extension",
    ),
    Case(
        "Patient.extension:ethnicCategory max",
        _claiming("Patient", extension=[_ethnic()]),
        _claiming("Patient", extension=[_ethnic(), _ethnic("B")]),
        "Patient.extension",
    ),
    Case(
        "Patient.communication.extension:proficiency max",
        _claiming(
            "Patient",
            communication=[
                {
                    "language": {"text": "Welsh"},
                    "extension": [
                        _ext(
                            "http://hl7.org/fhir/StructureDefinition/patient-proficiency",
                            extension=[{"url": "type", "valueCoding": {"code": "ESP"}}],
                        )
                    ],
                }
            ],
        ),
        _claiming(
            "Patient",
            communication=[
                {
                    "language": {"text": "Welsh"},
                    "extension": [
                        _ext(
                            "http://hl7.org/fhir/StructureDefinition/patient-proficiency",
                            extension=[{"url": "type", "valueCoding": {"code": code}}],
                        )
                        for code in ("ESP", "ESGP")
                    ],
                }
            ],
        ),
        "Patient.communication[0].extension",
    ),
    Case(
        "Patient.maritalStatus binding",
        _claiming(
            "Patient",
            maritalStatus=_concept(UKCS + "UKCore-PersonMaritalStatusEngland", "M"),
        ),
        _claiming("Patient", maritalStatus=_concept("urn:local:marital", "married")),
        "Patient.maritalStatus",
        "warning",
    ),
    Case(
        "Patient.contact.relationship binding",
        _claiming(
            "Patient",
            contact=[
                {
                    "relationship": [
                        _concept("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "DAU")
                    ],
                    "name": {"family": "Okafor"},
                }
            ],
        ),
        _claiming(
            "Patient",
            contact=[
                {
                    "relationship": [_concept("urn:local:role", "daughter")],
                    "name": {"family": "Okafor"},
                }
            ],
        ),
        "Patient.contact[0].relationship[0]",
        "warning",
    ),
    Case(
        "RelatedPerson.relationship binding",
        _claiming(
            "RelatedPerson",
            relationship=[_concept(UKCS + "UKCore-AdditionalPersonRelationshipRole", "Carer")],
        ),
        _claiming("RelatedPerson", relationship=[_concept("urn:local:role", "carer")]),
        "RelatedPerson.relationship[0]",
        "warning",
    ),
    Case(
        "PractitionerRole.specialty binding",
        _claiming(
            "PractitionerRole", specialty=[_concept(UKCS + "UKCore-PracticeSettingCode", "100")]
        ),
        _claiming(
            "PractitionerRole", specialty=[_concept(UKCS + "UKCore-PracticeSettingCode", "1")]
        ),
        "PractitionerRole.specialty[0]",
        "warning",
    ),
    Case(
        "Organization.identifier:odsOrganisationCode max",
        _claiming("Organization", identifier=[{"system": ODS, "value": "RKE"}]),
        _claiming(
            "Organization",
            identifier=[{"system": ODS, "value": "RKE"}, {"system": ODS, "value": "RAL"}],
        ),
        "Organization.identifier",
    ),
    Case(
        "Organization.identifier:odsOrganisationCode.value min",
        _claiming("Organization", identifier=[{"system": ODS, "value": "RKE"}]),
        _claiming("Organization", identifier=[{"system": ODS, "period": {"start": "2020-01-01"}}]),
        "Organization.identifier[0].value",
    ),
    Case(
        "Organization.identifier:odsSiteCode max",
        _claiming("Organization", identifier=[{"system": SITE, "value": "RKE01"}]),
        _claiming(
            "Organization",
            identifier=[{"system": SITE, "value": "RKE01"}, {"system": SITE, "value": "RKE02"}],
        ),
        "Organization.identifier",
    ),
    Case(
        "Organization.identifier:odsSiteCode.value min",
        _claiming("Organization", identifier=[{"system": SITE, "value": "RKE01"}]),
        _claiming("Organization", identifier=[{"system": SITE, "period": {"start": "2020"}}]),
        "Organization.identifier[0].value",
    ),
    Case(
        "Organization.type binding",
        _claiming(
            "Organization",
            type=[_concept("http://terminology.hl7.org/CodeSystem/organization-type", "prov")],
        ),
        _claiming("Organization", type=[_concept("urn:local:kind", "trust")]),
        "Organization.type[0]",
        "warning",
    ),
    Case(
        "Location.identifier:odsSiteCode max",
        _claiming("Location", identifier=[{"system": SITE, "value": "RKE01"}]),
        _claiming(
            "Location",
            identifier=[{"system": SITE, "value": "RKE01"}, {"system": SITE, "value": "RKE02"}],
        ),
        "Location.identifier",
    ),
    Case(
        "Location.identifier:odsSiteCode.value min",
        _claiming("Location", identifier=[{"system": SITE, "value": "RKE01"}]),
        _claiming("Location", identifier=[{"system": SITE, "period": {"start": "2020"}}]),
        "Location.identifier[0].value",
    ),
    Case(
        "Condition.category binding",
        _claiming(
            "Condition",
            category=[
                _concept(
                    "http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item"
                )
            ],
        ),
        _claiming("Condition", category=[_concept("http://snomed.info/sct", "55607006")]),
        "Condition.category[0]",
        "warning",
    ),
    Case(
        "AllergyIntolerance.code min",
        _claiming("AllergyIntolerance"),
        {**_claiming("AllergyIntolerance"), "code": None},
        "AllergyIntolerance.code",
    ),
    Case(
        "Medication.code min",
        _claiming("Medication"),
        {**_claiming("Medication"), "code": None, "form": {"text": "capsule"}},
        "Medication.code",
    ),
    Case(
        "MedicationStatement.identifier.system min",
        _claiming("MedicationStatement", identifier=[{"system": "urn:x", "value": "1"}]),
        _claiming("MedicationStatement", identifier=[{"value": "1"}]),
        "MedicationStatement.identifier[0].system",
    ),
    Case(
        "MedicationStatement.identifier.value min",
        _claiming("MedicationStatement", identifier=[{"system": "urn:x", "value": "1"}]),
        _claiming("MedicationStatement", identifier=[{"system": "urn:x"}]),
        "MedicationStatement.identifier[0].value",
    ),
    Case(
        "MedicationStatement.category binding",
        _claiming(
            "MedicationStatement",
            category=_concept(
                "http://terminology.hl7.org/CodeSystem/medication-statement-category", "community"
            ),
        ),
        _claiming("MedicationStatement", category=_concept("urn:local:where", "home")),
        "MedicationStatement.category",
        "warning",
    ),
    Case(
        "MedicationRequest.substitution min",
        _claiming("MedicationRequest"),
        {**_claiming("MedicationRequest"), "substitution": None},
        "MedicationRequest.substitution",
    ),
    Case(
        "MedicationRequest.category binding",
        _claiming(
            "MedicationRequest",
            category=[
                _concept(
                    "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "discharge"
                )
            ],
        ),
        _claiming("MedicationRequest", category=[_concept("urn:local:where", "ward")]),
        "MedicationRequest.category[0]",
        "warning",
    ),
    Case(
        "MedicationRequest.courseOfTherapyType binding",
        _claiming(
            "MedicationRequest",
            courseOfTherapyType=_concept(
                UKCS + "UKCore-MedicationRequestCourseOfTherapy", "continuous-repeating-dispensing"
            ),
        ),
        _claiming(
            "MedicationRequest",
            courseOfTherapyType=_concept(
                "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
                "seasonal",  # in R4's code system, not in UK Core's value set
            ),
        ),
        "MedicationRequest.courseOfTherapyType",
        "warning",
    ),
    Case(
        "ukcore-imm-001",
        _claiming("Immunization", status="not-done", statusReason={"text": "Declined"}),
        _claiming("Immunization", status="not-done"),
        "Immunization",
    ),
    Case(
        "DiagnosticReport.extension:compositionReferenceR5 max",
        _claiming(
            "DiagnosticReport",
            extension=[
                _ext(
                    "http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.composition",
                    valueReference={"reference": "Composition/c1"},
                )
            ],
        ),
        _claiming(
            "DiagnosticReport",
            extension=[
                _ext(
                    "http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.composition",
                    valueReference={"reference": f"Composition/c{n}"},
                )
                for n in (1, 2)
            ],
        ),
        "DiagnosticReport.extension",
    ),
    Case(
        "DiagnosticReport.performer.extension:deviceReference max",
        _claiming(
            "DiagnosticReport",
            performer=[
                {
                    "display": "Analyser",
                    "extension": [
                        _ext(
                            UK + "Extension-UKCore-DeviceReference",
                            valueReference={"reference": "Device/d1"},
                        )
                    ],
                }
            ],
        ),
        _claiming(
            "DiagnosticReport",
            performer=[
                {
                    "display": "Analyser",
                    "extension": [
                        _ext(
                            UK + "Extension-UKCore-DeviceReference",
                            valueReference={"reference": f"Device/d{n}"},
                        )
                        for n in (1, 2)
                    ],
                }
            ],
        ),
        "DiagnosticReport.performer[0].extension",
    ),
    Case(
        "ServiceRequest.extension:sourceOfServiceRequest max",
        _claiming(
            "ServiceRequest",
            extension=[
                _ext(
                    UK + "Extension-UKCore-SourceOfServiceRequest",
                    valueCodeableConcept={"text": "GP"},
                )
            ],
        ),
        _claiming(
            "ServiceRequest",
            extension=[
                _ext(
                    UK + "Extension-UKCore-SourceOfServiceRequest", valueCodeableConcept={"text": t}
                )
                for t in ("GP", "A&E")
            ],
        ),
        "ServiceRequest.extension",
    ),
    Case(
        "ServiceRequest.extension:coverage max",
        _claiming(
            "ServiceRequest",
            extension=[
                _ext(
                    UK + "Extension-UKCore-Coverage",
                    valueCodeableConcept=_concept(UKCS + "UKCore-FundingCategory", "nhs"),
                )
            ],
        ),
        _claiming(
            "ServiceRequest",
            extension=[
                _ext(
                    UK + "Extension-UKCore-Coverage",
                    valueCodeableConcept=_concept(UKCS + "UKCore-FundingCategory", code),
                )
                for code in ("nhs", "private")
            ],
        ),
        "ServiceRequest.extension",
    ),
    Case(
        "ServiceRequest.category:genomicsWholeCaseSequencing binding",
        _claiming(
            "ServiceRequest",
            category=[_concept(UKCS + "UKCore-GenomeSequencingCategory", "rare-disease-wgs")],
        ),
        _claiming(
            "ServiceRequest",
            category=[_concept(UKCS + "UKCore-GenomeSequencingCategory", "trio")],
        ),
        "ServiceRequest.category[0]",
        "warning",
    ),
    Case(
        "Composition.extension:careSettingType max",
        _claiming(
            "Composition", extension=[_ext(CARE_SETTING, valueCodeableConcept={"text": "Hospital"})]
        ),
        _claiming(
            "Composition",
            extension=[_ext(CARE_SETTING, valueCodeableConcept={"text": t}) for t in ("A", "B")],
        ),
        "Composition.extension",
    ),
    Case(
        "Composition.section.code binding",
        _claiming(
            "Composition",
            section=[
                {
                    "title": "Allergies",
                    "code": _concept(UKCS + "UKCore-RecordStandardHeadings", "actions"),
                    "text": {
                        "status": "generated",
                        "div": '<div xmlns="http://www.w3.org/1999/xhtml">None known</div>',
                    },
                }
            ],
        ),
        _claiming(
            "Composition",
            section=[
                {
                    "title": "Allergies",
                    "code": _concept("http://loinc.org", "48765-2"),
                    "text": {
                        "status": "generated",
                        "div": '<div xmlns="http://www.w3.org/1999/xhtml">None known</div>',
                    },
                }
            ],
        ),
        "Composition.section[0].code",
        "warning",
    ),
    Case(
        "MedicationAdministration.category binding",
        _claiming(
            "MedicationAdministration",
            category=_concept(UKCS + "UKCore-MedicationAdministrationCategory", "discharge"),
        ),
        _claiming("MedicationAdministration", category=_concept("urn:local:where", "home")),
        "MedicationAdministration.category",
        "warning",
    ),
    Case(
        "List.extension:careSettingType max",
        _claiming(
            "List", extension=[_ext(CARE_SETTING, valueCodeableConcept={"text": "Care home"})]
        ),
        _claiming(
            "List",
            extension=[_ext(CARE_SETTING, valueCodeableConcept={"text": t}) for t in ("A", "B")],
        ),
        "List.extension",
    ),
    Case(
        "List.emptyReason binding",
        _claiming(
            "List",
            emptyReason=_concept(
                "http://terminology.hl7.org/CodeSystem/list-empty-reason", "nilknown"
            ),
        ),
        _claiming("List", emptyReason=_concept("urn:local:why", "none")),
        "List.emptyReason",
        "warning",
    ),
]


def _without_nulls(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if value is not None}


def _profile_issues(resource: dict[str, Any]) -> list[Any]:
    issues = validate_resource(resource, resource["resourceType"], warnings=True)
    return [issue for issue in issues if issue.profile is not None or issue.severity == "error"]


@pytest.mark.parametrize("case", CASES, ids=[case.key for case in CASES])
def test_each_rule_is_met_and_broken(case: Case) -> None:
    """The resource that meets the rule is valid with no profile issue; the
    one that breaks it has the rule's issue at its element, with its
    profile's URL."""
    assert _profile_issues(_without_nulls(case.meets)) == []
    found = _profile_issues(_without_nulls(case.breaks))
    assert [(i.key, i.path, i.severity) for i in found] == [(case.key, case.path, case.severity)]
    claimed = case.breaks["meta"]["profile"][0]
    assert found[0].profile == f"{claimed}|{profiles.profiles()[claimed].version}"
    assert found[0].profile in found[0].message
    # Only errors refuse a write.
    errors = validate_resource(_without_nulls(case.breaks), case.breaks["resourceType"])
    assert len(errors) == (case.severity == "error")


def test_every_rule_of_the_tables_has_a_case() -> None:
    keys = {rule.key for profile in profiles.profiles().values() for rule in profile.rules}
    assert keys == {case.key for case in CASES}


def test_a_resource_that_claims_nothing_is_not_checked_against_uk_core() -> None:
    patient = {"resourceType": "Patient", "identifier": [_nhs("9434765918")]}
    assert validate_resource(patient, "Patient", warnings=True) == []
    asked = validate_resource(patient, "Patient", profile=UK + "UKCore-Patient")
    assert [i.key for i in asked] == ["Patient.identifier:nhsNumber.value format"]


# Claims ----------------------------------------------------------------------


def test_a_claim_of_an_unknown_profile_is_a_warning_never_an_error() -> None:
    """A client may claim profiles the gateway does not know (UKCore-Task is
    not in UK Core 2.0.1; another version of one it knows is another
    profile): warned of where warnings are asked for, not refused."""
    for claim in (
        UK + "UKCore-Task",
        "https://example.org/fhir/StructureDefinition/MyPatient",
        UK + "UKCore-Patient|1.0.0",
    ):
        patient = {"resourceType": "Patient", "meta": {"profile": [claim]}}
        assert validate_resource(patient, "Patient") == []
        (warning,) = validate_resource(patient, "Patient", warnings=True)
        assert (warning.severity, warning.code, warning.path) == (
            "warning",
            "not-supported",
            "Patient.meta.profile[0]",
        )
        assert warning.profile == claim


def test_the_version_a_claim_names_is_the_one_tabled_or_another() -> None:
    patient = _claiming("Patient", identifier=[_nhs("9434765918")])
    patient["meta"]["profile"] = [UK + "UKCore-Patient|2.5.0"]
    assert [i.key for i in validate_resource(patient, "Patient")] == [
        "Patient.identifier:nhsNumber.value format"
    ]


def test_a_claim_of_another_types_profile_is_an_error() -> None:
    patient = {"resourceType": "Patient", "meta": {"profile": [UK + "UKCore-Observation"]}}
    (issue,) = validate_resource(patient, "Patient")
    assert (issue.code, issue.path) == ("invalid", "Patient.meta.profile[0]")
    base = {"resourceType": "Patient", "meta": {"profile": [profiles.CORE + "Observation"]}}
    assert [i.code for i in validate_resource(base, "Patient")] == ["invalid"]
    own = {"resourceType": "Patient", "meta": {"profile": [profiles.CORE + "Patient"]}}
    assert validate_resource(own, "Patient", warnings=True) == []


def test_a_profile_asked_for_that_is_not_known_is_an_error() -> None:
    """``$validate``'s ``profile=``: what cannot be checked is not valid."""
    (issue,) = validate_resource(
        {"resourceType": "Task", "status": "requested", "intent": "order"},
        "Task",
        profile=UK + "UKCore-Task",
    )
    assert (issue.severity, issue.code) == ("error", "not-supported")
    patient = {"resourceType": "Patient", "identifier": [_nhs()]}
    assert validate_resource(patient, "Patient", profile=UK + "UKCore-Patient") == []


def test_claims_inside_are_checked_where_they_are() -> None:
    """A contained resource and a Bundle's entries are resources with
    claims of their own."""
    broken = _claiming("AllergyIntolerance")
    del broken["code"]
    outer = _claiming("Condition", contained=[{**broken, "id": "a1"}])
    outer["evidence"] = [{"detail": [{"reference": "#a1"}]}]
    assert [(i.key, i.path) for i in validate_resource(outer, "Condition")] == [
        ("AllergyIntolerance.code min", "Condition.contained[0].code")
    ]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:7d1c0d0e-0000-4000-8000-000000000001", "resource": broken}],
    }
    assert [(i.key, i.path) for i in validate_resource(bundle, "Bundle")] == [
        ("AllergyIntolerance.code min", "Bundle.entry[0].resource.code")
    ]


# Extensions ------------------------------------------------------------------


def _patient(**elements: Any) -> dict[str, Any]:
    return _claiming("Patient", **elements)


def _keys(resource: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    return [(i.key, i.path, i.severity) for i in _profile_issues(resource)]


def test_the_nhs_number_verification_status_is_bound_required() -> None:
    assert _keys(_patient(identifier=[_nhs(extension=[_verification("08")])])) == []
    assert _keys(_patient(identifier=[_nhs(extension=[_verification("09")])])) == [
        (
            "Extension-UKCore-NHSNumberVerificationStatus binding",
            "Patient.identifier[0].extension[0].valueCodeableConcept",
            "error",
        )
    ]
    welsh = _ext(
        VERIFICATION,
        valueCodeableConcept=_concept(UKCS + "UKCore-NHSNumberVerificationStatusWales", "nn"),
    )
    assert _keys(_patient(identifier=[_nhs(extension=[welsh])])) == []


def test_an_extension_is_used_only_in_its_contexts() -> None:
    """NHSNumberVerificationStatus belongs on Patient.identifier only: not
    on the Patient, not on a RelatedPerson's identifier."""
    assert _keys(_patient(extension=[_verification()])) == [
        ("Extension-UKCore-NHSNumberVerificationStatus context", "Patient.extension[0]", "error")
    ]
    related = _claiming(
        "RelatedPerson",
        identifier=[{"system": NHS, "value": "9990000026", "extension": [_verification()]}],
    )
    assert _keys(related) == [
        (
            "Extension-UKCore-NHSNumberVerificationStatus context",
            "RelatedPerson.identifier[0].extension[0]",
            "error",
        )
    ]


def test_contexts_by_type_and_by_path_in_a_type() -> None:
    """CodingSCTDescDisplay on any Coding; OtherContactSystem on a
    ContactPoint's system, a primitive whose extensions JSON keeps in
    ``_system``."""
    display = _ext(UK + "Extension-UKCore-CodingSCTDescDisplay", valueString="Married")
    coded = {
        "coding": [{"system": "http://snomed.info/sct", "code": "87915002", "extension": [display]}]
    }
    assert _keys(_patient(maritalStatus=coded)) == [
        ("Patient.maritalStatus binding", "Patient.maritalStatus", "warning")
    ]
    assert _keys(_patient(extension=[display])) == [
        ("Extension-UKCore-CodingSCTDescDisplay context", "Patient.extension[0]", "error")
    ]
    other = _ext(
        UK + "Extension-UKCore-OtherContactSystem",
        valueCodeableConcept=_concept(UKCS + "UKCore-OtherContactSystem", "textphone"),
    )
    telecom = [
        {"system": "other", "_system": {"extension": [other]}, "value": "18001 020 7946 0000"}
    ]
    assert _keys(_patient(telecom=telecom)) == []
    assert _keys(_patient(telecom=[{"system": "phone", "value": "x", "extension": [other]}])) == [
        ("Extension-UKCore-OtherContactSystem context", "Patient.telecom[0].extension[0]", "error")
    ]


def test_an_extension_holds_a_value_of_its_type() -> None:
    assert _keys(_patient(extension=[_ext(ETHNIC, valueCode="A")])) == [
        ("Extension-UKCore-EthnicCategory value type", "Patient.extension[0].valueCode", "error")
    ]
    assert _keys(
        _patient(extension=[_ext(ETHNIC, extension=[{"url": "x", "valueString": "A"}])])
    ) == [("Extension-UKCore-EthnicCategory value min", "Patient.extension[0]", "error")]
    assert _keys(_patient(extension=[_ethnic("X")])) == [
        (
            "Extension-UKCore-EthnicCategory binding",
            "Patient.extension[0].valueCodeableConcept",
            "warning",
        )
    ]


def test_an_extension_appears_no_more_often_than_its_definition_allows() -> None:
    residential = UK + "Extension-UKCore-ResidentialStatus"
    one = _ext(residential, valueCodeableConcept=_concept(UKCS + "UKCore-ResidentialStatus", "H"))
    assert _keys(_patient(extension=[one])) == []
    assert _keys(_patient(extension=[one, copy.deepcopy(one)])) == [
        ("Extension-UKCore-ResidentialStatus max", "Patient.extension", "error")
    ]


def test_a_complex_extension_has_its_sub_extensions_and_no_value() -> None:
    end = UK + "Extension-UKCore-AllergyIntoleranceEnd"
    clinical = _concept(
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "resolved"
    )

    def allergy(extension: dict[str, Any]) -> dict[str, Any]:
        return _claiming(
            "AllergyIntolerance", clinicalStatus={**clinical, "extension": [extension]}
        )

    ended = _ext(end, extension=[{"url": "endDate", "valueDateTime": "2024-01-02"}])
    assert _keys(allergy(ended)) == []
    twice = _ext(
        end,
        extension=[
            {"url": "endDate", "valueDateTime": "2024-01-02"},
            {"url": "endDate", "valueDateTime": "2024-01-03"},
            {"url": "reasonEnded", "valueBoolean": True},
        ],
    )
    assert _keys(allergy(twice)) == [
        (
            "Extension-UKCore-AllergyIntoleranceEnd reasonEnded value type",
            "AllergyIntolerance.clinicalStatus.extension[0].extension[2].valueBoolean",
            "error",
        ),
        (
            "Extension-UKCore-AllergyIntoleranceEnd endDate max",
            "AllergyIntolerance.clinicalStatus.extension[0].extension",
            "error",
        ),
    ]
    status = UK + "Extension-UKCore-DeathNotificationStatus"
    missing = _ext(status, extension=[{"url": "systemEffectiveDate", "valueDateTime": "2024"}])
    assert _keys(_patient(extension=[missing])) == [
        (
            "Extension-UKCore-DeathNotificationStatus deathNotificationStatus min",
            "Patient.extension[0].extension",
            "error",
        )
    ]


def test_no_extension_of_the_package_is_a_modifier() -> None:
    assert _keys(_patient(modifierExtension=[_ethnic()])) == [
        ("Extension-UKCore-EthnicCategory modifier", "Patient.modifierExtension[0]", "error")
    ]


def test_a_simple_extension_with_no_sub_extensions_allowed_has_none() -> None:
    """CodingSCTDescDisplay's Extension.extension is 0..0 (R4's ext-1 says
    as much of any extension with a value, and is reported too)."""
    display = _ext(
        UK + "Extension-UKCore-CodingSCTDescDisplay",
        valueString="Married",
        extension=[{"url": "x", "valueString": "y"}],
    )
    coded = {
        "coding": [{"system": "http://snomed.info/sct", "code": "87915002", "extension": [display]}]
    }
    found = [i.key for i in _profile_issues(_patient(maritalStatus=coded))]
    assert found == [
        "ext-1",
        "Patient.maritalStatus binding",
        "Extension-UKCore-CodingSCTDescDisplay extension",
    ]


_SAMPLES: dict[str, Any] = {
    "CodeableConcept": {"text": "x"},
    "Reference": {"display": "x"},
    "Annotation": {"text": "x"},
    "Timing": {"code": {"text": "x"}},
    "Boolean": True,
    "PositiveInt": 1,
    "UnsignedInt": 0,
    "DateTime": "2024-01-02",
    "String": "x",
    "Code": "x",
}
_TABLED = {profile.type for profile in profiles.profiles().values()}
_SPECS = {
    spec["url"]: spec
    for spec in json.loads((DATA / "extensions.json").read_text("utf-8"))["extensions"]
}
_VALUE_SETS = json.loads((DATA / "valuesets.json").read_text("utf-8"))["valueSets"]


def _sample(spec: dict[str, Any]) -> tuple[str, Any]:
    """A value of the first type an extension (or sub-extension) allows,
    from its value set where it is bound to one."""
    type_name = spec["value"][0]
    name = "value" + type_name[0].upper() + type_name[1:]
    codes = _VALUE_SETS.get(spec.get("binding", {}).get("valueSet"), {}).get("codes")
    if codes:
        system, values = next(iter(codes.items()))
        return name, _concept(system, values[0])
    return name, _SAMPLES[name[len("value") :]]


def _instance(url: str) -> dict[str, Any]:
    spec = _SPECS[url]
    if spec["value"]:
        name, value = _sample(spec)
        return {"url": url, name: value}
    subs = spec["extensions"]
    chosen = [name for name, sub in subs.items() if sub.get("min")] or list(subs)[:1]
    return {"url": url, "extension": [dict([("url", n), _sample(subs[n])]) for n in chosen]}


def _holder(context: str) -> tuple[dict[str, Any], Callable[[dict[str, Any]], None]] | None:
    """A resource of a tabled type with the element ``context`` names, and
    how to put an extension on it; None for a context the tests do not build."""
    res_type, _, rest = context.partition(".")
    if res_type not in _TABLED or "." in rest:
        return None
    resource = _claiming(res_type)
    if not rest:
        return resource, lambda ext: resource.setdefault("extension", []).append(ext)
    element = validator.table(res_type).elements.get(rest)
    if element is None:
        return None
    holder: dict[str, Any] = {}
    if element.table is None:  # a primitive: its extensions in "_name"
        resource["_" + rest] = holder
    else:
        resource[rest] = [holder] if element.many else holder
    return resource, lambda ext: holder.setdefault("extension", []).append(ext)


def _placed() -> list[tuple[str, str]]:
    return [
        (definition.url, context)
        for definition in profiles.extensions().values()
        for context in sorted(definition.contexts)
        if _holder(context) is not None
    ]


def _theirs(resource: dict[str, Any], url: str) -> list[Any]:
    return [i for i in _profile_issues(resource) if i.profile and url in i.profile]


@pytest.mark.parametrize(
    ("url", "context"), _placed(), ids=[f"{u.rsplit('/', 1)[1]}@{c}" for u, c in _placed()]
)
def test_every_extension_in_each_context_built_is_checked(url: str, context: str) -> None:
    """Each extension of the package, in each of its contexts on a tabled
    profile's type: with a value of its type it passes; with a value of
    another type it fails; on a resource it may not be on, it fails."""
    definition = profiles.extensions()[url]
    built = _holder(context)
    assert built is not None
    resource, put = built
    extension = _instance(url)
    put(extension)
    assert _theirs(resource, url) == []
    if definition.values:
        assert "valueInstant" not in definition.values
        extension.clear()
        extension.update({"url": url, "valueInstant": "2024-01-02T00:00:00Z"})
        assert [i.key for i in _theirs(resource, url)] == [f"{definition.name} value type"]
    elsewhere = "Organization" if "Organization" not in definition.contexts else "Location"
    misplaced = _claiming(elsewhere, extension=[_instance(url)])
    assert [i.key for i in _theirs(misplaced, url)] == [f"{definition.name} context"]


def test_the_contexts_built_cover_the_profiles_extension_slices() -> None:
    """Every extension a tabled profile slices is among those tried in
    place (the types' own contexts; Address, Coding and ContactPoint.system
    are tried above)."""
    placed = {url for url, _ in _placed()}
    sliced = {
        spec["url"]
        for spec in _SPECS.values()
        if any(c.split(".")[0] in _TABLED for c in spec["context"])
    }
    assert sliced <= placed


# The tables ------------------------------------------------------------------


def test_the_tables_are_uk_core_2_0_1_for_types_in_scope() -> None:
    source = profiles.source()
    assert "2.0.1" in source["package"] and source["commit"]
    for profile in profiles.profiles().values():
        assert profile.type in RESOURCES
        assert profile.url == f"{UK}{profile.name}"
        assert "version=2.0.1" in profile.page and "/blob/2.0.1/" in profile.definition


def test_every_binding_names_a_value_set_of_the_tables() -> None:
    """A profile rule's value set must be expanded (compiling would fail
    otherwise); an extension's may be one of the package's outside it,
    listed as unexpandable, and then only that binding is not checked."""
    tabled = json.loads((DATA / "valuesets.json").read_text("utf-8"))["valueSets"]
    extensions = json.loads((DATA / "extensions.json").read_text("utf-8"))["extensions"]
    for spec in extensions:
        for part in [spec, *spec.get("extensions", {}).values()]:
            if "binding" in part:
                assert part["binding"]["valueSet"] in tabled
    unexpandable = {url for url, entry in tabled.items() if "codes" not in entry}
    assert unexpandable == {
        "http://hl7.org/fhir/ValueSet/observation-triggeredbytype",
        "http://hl7.org/fhir/ValueSet/participation-role-type",
    }


def test_the_modulus_11_check_agrees_with_the_mappings() -> None:
    """The profile's NHS number check and ``mappings.identity``'s agree,
    but for numbers of one repeated digit, which the mappings refuse as never
    issued and the NHS Data Dictionary does not mention."""
    rng = random.Random(26)
    numbers = [f"{rng.randrange(10**10):010d}" for _ in range(20000)]
    numbers += [str(d) * 10 for d in range(10)] + [
        "943 476 5919",
        "94347659",
        "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19",
    ]
    for number in numbers:
        try:
            mapped = nhs_number(number) == number
        except InvalidNhsNumber:
            mapped = False
        repeated = len(set(number)) == 1
        assert is_nhs_number(number) == (mapped or (repeated and _mod_11(number))), number
    assert sum(map(is_nhs_number, numbers)) > 1000


def _mod_11(number: str) -> bool:
    total = sum(int(d) * w for d, w in zip(number[:9], range(10, 1, -1), strict=True))
    check = (11 - total % 11) % 11
    return check != 10 and check == int(number[9])


def test_supported_profiles_are_those_tabled() -> None:
    assert profiles.supported("Patient") == (UK + "UKCore-Patient",)
    assert profiles.supported("Consent") == ()
    assert profiles.supported("Task") == ()
