"""The GP Connect and UK Core vocabulary the structured-record mapping reads
and writes, as tables: List headings by SNOMED CT code, STU3 status codes
and their R4 counterparts, extension names and the code systems renamed
between the two versions.

GP Connect Access Record: Structured (STU3, CareConnect-GPC profiles):
https://developer.nhs.uk/apis/gpconnect/accessrecord_structured_development_list.html
UK Core (R4): https://simplifier.net/hl7fhirukcorer4
"""

from __future__ import annotations

import re

from mappings.ukcore import SNOMED, UKCORE

# The List headings of a structured record (List.code, SNOMED CT), by area.
LIST_AREAS: dict[str, str] = {
    "886921000000105": "allergies",
    "1103671000000101": "ended-allergies",
    "933361000000108": "medications",
    "717711000000103": "problems",
    "1102181000000102": "immunisations",
    "1149501000000101": "consultations",
    "325851000000107": "consultation",  # one consultation's topics
    "25851000000105": "topic",
    "24781000000107": "category",
    "887191000000108": "investigations",
    "792931000000107": "referrals",
    "886721000000107": "referrals",  # the code earlier examples used
    "714311000000108": "diary",
    "826501000000100": "uncategorised",
}

# STU3 resource types and what they become in R4. Anything else in the
# Bundle (List, Specimen, Appointment...) is not carried over as it is;
# references to it keep only what identifies it. (The headings' Lists are
# written anew, as Lists of what they hold: see ``headings``.)
R4_TYPES: dict[str, str] = {
    "Patient": "Patient",
    "Organization": "Organization",
    "Practitioner": "Practitioner",
    "PractitionerRole": "PractitionerRole",
    "Location": "Location",
    "Medication": "Medication",
    "AllergyIntolerance": "AllergyIntolerance",
    "MedicationStatement": "MedicationStatement",
    "MedicationRequest": "MedicationRequest",
    "Condition": "Condition",
    "Immunization": "Immunization",
    "Encounter": "Encounter",
    "Observation": "Observation",
    "DiagnosticReport": "DiagnosticReport",
    "ProcedureRequest": "ServiceRequest",
    "ReferralRequest": "ServiceRequest",
    "DocumentReference": "DocumentReference",
}

# Identifier systems that name a thing across care settings, preferred as
# the key of the resource they identify (GP Connect makes them persistent;
# logical ids need not be).
CROSS_CARE_SETTING = "https://fhir.nhs.uk/Id/cross-care-setting-identifier"
SDS_USER = "https://fhir.nhs.uk/Id/sds-user-id"
SDS_ROLE_PROFILE = "https://fhir.nhs.uk/Id/sds-role-profile-id"
PREFERRED_IDENTIFIERS = (
    CROSS_CARE_SETTING,
    "https://fhir.nhs.uk/Id/ods-organization-code",
    "https://fhir.nhs.uk/Id/ods-site-code",
    SDS_USER,
    SDS_ROLE_PROFILE,
)

TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"

# Systems of STU3 code systems renamed in R4 (HL7's moved to
# terminology.hl7.org; CareConnect's became UK Core's).
SYSTEMS: dict[str, str] = {
    "http://hl7.org/fhir/condition-category": f"{TERMINOLOGY}/condition-category",
    "http://hl7.org/fhir/observation-category": f"{TERMINOLOGY}/observation-category",
    "http://hl7.org/fhir/data-absent-reason": f"{TERMINOLOGY}/data-absent-reason",
    "http://hl7.org/fhir/medication-statement-category": (
        f"{TERMINOLOGY}/medication-statement-category"
    ),
    "http://hl7.org/fhir/medication-request-category": f"{TERMINOLOGY}/medicationrequest-category",
    "http://hl7.org/fhir/v2/0078": f"{TERMINOLOGY}/v3-ObservationInterpretation",
    "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-EthnicCategory-1": (
        f"{UKCORE}/CodeSystem/UKCore-EthnicCategoryEngland"
    ),
    "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-NHSNumberVerificationStatus-1": (
        f"{UKCORE}/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
    ),
    "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-SDSJobRoleName-1": (
        f"{UKCORE}/CodeSystem/UKCore-SDSJobRoleName"
    ),
    "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescribingAgency-1": (
        f"{UKCORE}/CodeSystem/UKCore-MedicationPrescribingOrganizationType"
    ),
    "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ListEmptyReasonCode-1": (
        f"{UKCORE}/CodeSystem/UKCore-ListEmptyReasonCode"
    ),
    "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-ListEmptyReasonCode-1": (
        f"{UKCORE}/CodeSystem/UKCore-ListEmptyReasonCode"
    ),
    "http://hl7.org/fhir/list-order": f"{TERMINOLOGY}/list-order",
    "http://hl7.org/fhir/list-empty-reason": f"{TERMINOLOGY}/list-empty-reason",
}
# HL7 v2 tables and v3 code systems kept their codes and moved.
V2_TABLE = re.compile(r"^http://hl7\.org/fhir/v2/(\d{4})$")
V3_SYSTEM = re.compile(r"^http://hl7\.org/fhir/v3/([A-Za-z]+)$")

ALLERGY_CLINICAL = frozenset({"active", "inactive", "resolved"})
ALLERGY_VERIFICATION = frozenset({"unconfirmed", "confirmed", "refuted", "entered-in-error"})
# GP Connect's guidance says "environmental"; the code is "environment".
ALLERGY_CATEGORY = {
    "food": "food",
    "medication": "medication",
    "environment": "environment",
    "environmental": "environment",
    "biologic": "biologic",
}
CONDITION_CLINICAL = frozenset(
    {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
)
# R4 has no "unknown" verification status: it is left out.
CONDITION_VERIFICATION = frozenset(
    {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
)
CONDITION_VERIFICATION_SYSTEM = f"{TERMINOLOGY}/condition-ver-status"
PROBLEM_LIST_ITEM = "problem-list-item"

# ProcedureRequest and ReferralRequest status -> ServiceRequest status.
REQUEST_STATUS = {
    "draft": "draft",
    "active": "active",
    "suspended": "on-hold",
    "cancelled": "revoked",
    "completed": "completed",
    "entered-in-error": "entered-in-error",
    "unknown": "unknown",
}
# What marks a ServiceRequest that was a referral.
REFERRAL_CATEGORY = (SNOMED, "3457005", "Patient referral")

# Observation.related.type -> the R4 element holding the target; the other
# STU3 kinds (sequel-to, replaces, qualified-by, interfered-by) have none.
OBSERVATION_RELATED = {"has-member": "hasMember", "derived-from": "derivedFrom"}

# CareConnect prescription type -> MedicationRequest.courseOfTherapyType, as
# NHS England's medicines guidance maps them.
COURSE_OF_THERAPY_HL7 = f"{TERMINOLOGY}/medicationrequest-course-of-therapy"
COURSE_OF_THERAPY_NHS = "https://fhir.nhs.uk/CodeSystem/medicationrequest-course-of-therapy"
COURSE_OF_THERAPY: dict[str, tuple[str, str, str]] = {
    "acute": (COURSE_OF_THERAPY_HL7, "acute", "Short course (acute) therapy"),
    "acute-handwritten": (COURSE_OF_THERAPY_HL7, "acute", "Short course (acute) therapy"),
    "delayed-prescribing": (COURSE_OF_THERAPY_HL7, "acute", "Short course (acute) therapy"),
    "repeat": (COURSE_OF_THERAPY_HL7, "continuous", "Continuous long term therapy"),
    "repeat-dispensing": (
        COURSE_OF_THERAPY_NHS,
        "continuous-repeat-dispensing",
        "Continuous long term (repeat dispensing)",
    ),
}

# A consultation has no Encounter.class in GP Connect; R4 requires one.
# Words of the consultation type that say where it happened, else AMB.
ACT_CODE = f"{TERMINOLOGY}/v3-ActCode"
ENCOUNTER_CLASS_WORDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("telephone", "video", "online", "e-consultation", "econsultation"), "VR", "virtual"),
    (("home visit", "home-visit"), "HH", "home health"),
)
ENCOUNTER_CLASS_DEFAULT = ("AMB", "ambulatory")

# STU3 extensions, by the last part of their URL with "-GPC" taken out, so
# the CareConnect and the GP Connect variants read alike.
EXT_NHS_VERIFICATION = "Extension-CareConnect-NHSNumberVerificationStatus-1"
EXT_ETHNIC = "Extension-CareConnect-EthnicCategory-1"
EXT_SCT_DESC_ID = "Extension-coding-sctdescid"
EXT_QUANTITY_TEXT = "Extension-CareConnect-MedicationQuantityText-1"
EXT_ASSOCIATED_ENCOUNTER = "encounter-associatedEncounter"
EXT_ALLERGY_END = "Extension-CareConnect-AllergyIntoleranceEnd-1"
EXT_EVIDENCE = "Extension-CareConnect-Evidence-1"
EXT_LAST_ISSUE = "Extension-CareConnect-MedicationStatementLastIssueDate-1"
EXT_PRESCRIBING_AGENCY = "Extension-CareConnect-PrescribingAgency-1"
EXT_REPEAT_INFORMATION = "Extension-CareConnect-MedicationRepeatInformation-1"
EXT_PRESCRIPTION_TYPE = "Extension-CareConnect-PrescriptionType-1"
EXT_STATUS_REASON = "Extension-CareConnect-MedicationStatusReason-1"
EXT_PARENT_PRESENT = "Extension-CareConnect-ParentPresent-1"
EXT_DATE_RECORDED = "Extension-CareConnect-DateRecorded-1"
EXT_VACCINATION_PROCEDURE = "Extension-CareConnect-VaccinationProcedure-1"
EXT_PROBLEM_SIGNIFICANCE = "Extension-CareConnect-ProblemSignificance-1"
EXT_ACTUAL_PROBLEM = "Extension-CareConnect-ActualProblem-1"
EXT_RELATED_PROBLEM = "Extension-CareConnect-RelatedProblemHeader-1"
EXT_RELATED_CONTENT = "Extension-CareConnect-RelatedClinicalContent-1"
EXT_LIST_WARNING = "Extension-CareConnect-ListWarningCode-1"

# R4 extensions written: UK Core's where it has one, HL7's for the SNOMED
# CT description id, and GP Connect's own for the problem links, which UK
# Core defined once and retired without a successor.
UK_EXT = f"{UKCORE}/StructureDefinition"
R4_ALLERGY_END = f"{UK_EXT}/Extension-UKCore-AllergyIntoleranceEnd"
R4_EVIDENCE = f"{UK_EXT}/Extension-UKCore-Evidence"
R4_LAST_ISSUE = f"{UK_EXT}/Extension-UKCore-MedicationStatementLastIssueDate"
R4_PRESCRIBING_TYPE = f"{UK_EXT}/Extension-UKCore-MedicationPrescribingOrganizationType"
R4_REPEAT_INFORMATION = f"{UK_EXT}/Extension-UKCore-MedicationRepeatInformation"
R4_PARENT_PRESENT = f"{UK_EXT}/Extension-UKCore-ParentPresent"
R4_VACCINATION_PROCEDURE = f"{UK_EXT}/Extension-UKCore-VaccinationProcedure"
R4_SCT_DESC_DISPLAY = f"{UK_EXT}/Extension-UKCore-CodingSCTDescDisplay"
R4_SCT_DESC_ID = "http://hl7.org/fhir/StructureDefinition/coding-sctdescid"
CARECONNECT_EXT = "https://fhir.hl7.org.uk/STU3/StructureDefinition"
R4_PROBLEM_EXTENSIONS = {
    name: f"{CARECONNECT_EXT}/{name}"
    for name in (
        EXT_PROBLEM_SIGNIFICANCE,
        EXT_ACTUAL_PROBLEM,
        EXT_RELATED_PROBLEM,
        EXT_RELATED_CONTENT,
    )
}
PROBLEM_SIGNIFICANCE = frozenset({"major", "minor"})

# A heading's warnings that it is incomplete: GP Connect's codes, which UK
# Core's code system shares, with UK Core's displays.
LIST_WARNING_SYSTEM = f"{UKCORE}/CodeSystem/UKCore-ListWarningCode"
LIST_WARNINGS = {
    "confidential-items": "Confidential Items",
    "data-in-transit": "Data in Transit",
    "data-awaiting-filing": "Data Awaiting Filing",
}

# A person's sharing preference for local shared care records, as English GP
# systems record it (SNOMED CT coded entries, sent as Observations): refused
# (a dissent) or given (consent, which withdraws an earlier dissent). The
# terms are the ones written in the Consent's narrative, whatever display
# the GP system sent. "Declined consent to share patient data with specified
# third party" (320011000000108) is not read: nothing in the entry names the
# third party reliably, so it stays an ordinary Observation.
SHARING_REFUSED = ("416409005", "Refused consent for upload to local shared electronic record")
SHARING_GIVEN = ("417528008", "Consent given for upload to local shared electronic record")
CONSENT_SCOPE = f"{TERMINOLOGY}/consentscope"
PATIENT_CONSENT = ("59284-0", "Patient Consent")  # LOINC, Consent.category
SHARED_RECORD_POLICY = (
    "Local shared care record: records are shared for direct care unless the person dissents"
)
