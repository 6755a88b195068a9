"""Index values per parameter type (https://hl7.org/fhir/R4/search.html#ptypes),
on the R4 examples in tests/fixtures/r4 and on variants of them."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.search.extract import extract, extract_composite, index_values
from gateway.search.parameters import parameter
from gateway.store.values import (
    DateRange,
    QuantityValue,
    ReferenceValue,
    SearchValue,
    StringValue,
    TokenValue,
    UriValue,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "r4"
OPEN_HIGH = "9999-12-31T23:59:59.999999Z"
OPEN_LOW = "0001-01-01T00:00:00.000000Z"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"


def example(res_type: str, **changes: Any) -> dict[str, Any]:
    """The type's R4 example with top-level elements replaced (None removes)."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{res_type}.json").read_text("utf-8"))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def values(resource: dict[str, Any], code: str) -> list[SearchValue]:
    found = parameter(resource["resourceType"], code)
    assert found is not None, code
    return extract(resource, found)


def strings(*texts: str) -> list[SearchValue]:
    return [StringValue(t) for t in texts]


def ref(url: str, identifier: TokenValue | None = None) -> ReferenceValue:
    target_type, target_id = url.rsplit("/", 2)[-2:]
    return ReferenceValue(url, target_type, target_id, identifier)


# -- Patient ----------------------------------------------------------------------


def test_patient_name_family_and_given() -> None:
    """``name`` covers every part of every HumanName, one string each;
    ``family`` and ``given`` their own parts."""
    patient = example("Patient")
    assert values(patient, "name") == strings("Okafor", "Amara", "Ngozi", "Mrs", "Eze")
    assert values(patient, "family") == strings("Okafor", "Eze")
    assert values(patient, "given") == strings("Amara", "Ngozi")


def test_patient_name_text_and_suffix() -> None:
    """HumanName.text and suffix are name strings too."""
    patient = example("Patient", name=[{"text": "Dr A B Jones OBE", "suffix": ["OBE"]}])
    assert values(patient, "name") == strings("OBE", "Dr A B Jones OBE")
    assert values(patient, "family") == []


def test_patient_birthdate_is_the_whole_day() -> None:
    """A date covers its day, as a half-open UTC range."""
    assert values(example("Patient"), "birthdate") == [
        DateRange("1986-07-14T00:00:00.000000Z", "1986-07-15T00:00:00.000000Z")
    ]
    assert values(example("Patient", birthDate="1986"), "birthdate") == [
        DateRange("1986-01-01T00:00:00.000000Z", "1987-01-01T00:00:00.000000Z")
    ]


def test_patient_gender_is_a_code_token_with_its_bound_system() -> None:
    """A code carries the system of the code system its required binding
    names, so ``gender=<system>|female`` finds it as ``gender=female`` does."""
    assert values(example("Patient"), "gender") == [
        TokenValue("http://hl7.org/fhir/administrative-gender", "female")
    ]


def test_code_systems_are_only_given_to_token_parameters_of_their_base() -> None:
    from gateway.search.parameters import all_parameters

    given = [p for p in all_parameters() if p.code_systems]
    assert len(given) > 20
    for param in given:
        assert param.type == "token", param.url
        for base, system in param.code_systems:
            assert param.applies_to(base), (param.url, base)
            assert system.startswith(
                ("http://hl7.org/fhir/", "http://terminology.hl7.org/CodeSystem/")
            ), (param.url, system)


def test_patient_identifier() -> None:
    """Identifier is (system, value, type.text)."""
    assert values(example("Patient"), "identifier") == [
        TokenValue("https://fhir.nhs.uk/Id/nhs-number", "9990000018"),
        TokenValue("https://fhir.whittington.nhs.uk/Id/local-patient-identifier", "RKE4471902"),
    ]
    typed = example(
        "Patient",
        identifier=[{"type": {"text": "Hospital number"}, "system": "urn:x", "value": "7"}],
    )
    assert values(typed, "identifier") == [TokenValue("urn:x", "7", "Hospital number")]


def test_patient_address_parts() -> None:
    """``address`` covers every part; ``address-postalcode`` only the postcode."""
    patient = example("Patient")
    assert values(patient, "address-postalcode") == strings("ZZ9 5QT")
    assert values(patient, "address-city") == strings("London")
    assert values(patient, "address") == strings(
        "Flat 4", "27 Junction Road", "London", "Islington", "ZZ9 5QT", "GB"
    )
    assert values(patient, "address-use") == [TokenValue("http://hl7.org/fhir/address-use", "home")]


def test_patient_general_practitioner_keeps_the_identifier() -> None:
    """A Reference gives its url, target type and id, and its identifier."""
    assert values(example("Patient"), "general-practitioner") == [
        ref(
            "Organization/archway-medical-centre",
            TokenValue("https://fhir.nhs.uk/Id/ods-organization-code", "F83004"),
        )
    ]


def test_patient_telecom_phone_and_email() -> None:
    """ContactPoint tokens are (None, value); ``phone`` and ``email`` keep
    their system only."""
    patient = example("Patient")
    assert values(patient, "phone") == [
        TokenValue(None, "020 7946 0321"),
        TokenValue(None, "07700 900461"),
    ]
    assert values(patient, "email") == [TokenValue(None, "amara.okafor@example.org.uk")]
    assert len(values(patient, "telecom")) == 3


@pytest.mark.parametrize(
    ("deceased", "expected"),
    [
        ({"deceasedBoolean": False}, "false"),
        ({"deceasedBoolean": True}, "true"),
        ({"deceasedDateTime": "2024-05-01T10:00:00Z"}, "true"),
        ({}, "false"),
    ],
)
def test_patient_deceased_is_a_boolean_token(deceased: dict[str, Any], expected: str) -> None:
    """``deceased.exists() and deceased != false``: a death date counts as
    deceased, no element as not."""
    patient = example("Patient", deceasedBoolean=None)
    patient.update(deceased)
    assert values(patient, "deceased") == [TokenValue(None, expected)]


def test_patient_death_date_only_from_a_date_time() -> None:
    """``(Patient.deceased as dateTime)``: a boolean gives no date."""
    assert values(example("Patient"), "death-date") == []
    dead = example("Patient", deceasedBoolean=None, deceasedDateTime="2024-05-01T10:00:00+01:00")
    assert values(dead, "death-date") == [
        DateRange("2024-05-01T09:00:00.000000Z", "2024-05-01T09:00:01.000000Z")
    ]


def test_patient_active_boolean_token() -> None:
    """A boolean is the token "true" or "false"."""
    assert values(example("Patient"), "active") == [TokenValue(None, "true")]


def test_resource_level_parameters() -> None:
    """_id, _lastUpdated, _profile, _tag, _security and _source read meta."""
    patient = example(
        "Patient",
        meta={
            "lastUpdated": "2024-03-12T10:15:00.123+00:00",
            "source": "https://fhir.example.org/feed#42",
            "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"],
            "tag": [{"system": "urn:tags", "code": "imported"}],
            "security": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                    "code": "R",
                    "display": "restricted",
                }
            ],
        },
    )
    assert values(patient, "_id") == [TokenValue(None, "amara-okafor")]
    assert values(patient, "_lastUpdated") == [
        DateRange("2024-03-12T10:15:00.123000Z", "2024-03-12T10:15:00.123001Z")
    ]
    assert values(patient, "_profile") == [
        UriValue("https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient")
    ]
    assert values(patient, "_tag") == [TokenValue("urn:tags", "imported")]
    assert values(patient, "_security") == [
        TokenValue("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R", "restricted")
    ]
    assert values(patient, "_source") == [UriValue("https://fhir.example.org/feed#42")]


# -- Observation ------------------------------------------------------------------


def test_observation_code_codings_and_text() -> None:
    """A CodeableConcept is each coding (display as text), then its text alone."""
    assert values(example("Observation"), "code") == [
        TokenValue(SNOMED, "75367002", "Blood pressure"),
        TokenValue(
            "http://loinc.org", "85354-9", "Blood pressure panel with all children optional"
        ),
        TokenValue(None, None, "Blood pressure"),
    ]


def test_observation_subject_and_patient() -> None:
    """``patient`` is the subject when it is a Patient, relative or absolute."""
    observation = example("Observation")
    assert values(observation, "subject") == [ref("Patient/amara-okafor")]
    assert values(observation, "patient") == [ref("Patient/amara-okafor")]
    group = example("Observation", subject={"reference": "Group/ward-7"})
    assert values(group, "subject") == [ref("Group/ward-7")]
    assert values(group, "patient") == []
    absolute = example("Observation", subject={"reference": "https://fhir.example.org/Patient/p1"})
    assert values(absolute, "patient") == [
        ReferenceValue("https://fhir.example.org/Patient/p1", "Patient", "p1")
    ]


def test_observation_date_from_each_effective_type() -> None:
    """effectiveDateTime, effectivePeriod, effectiveInstant and a Timing."""
    assert values(example("Observation"), "date") == [
        DateRange("2024-03-12T08:25:00.000000Z", "2024-03-12T08:25:01.000000Z")
    ]
    period = example(
        "Observation",
        effectiveDateTime=None,
        effectivePeriod={"start": "2024-03-12T08:00:00Z", "end": "2024-03-12T09:00:00Z"},
    )
    assert values(period, "date") == [
        DateRange("2024-03-12T08:00:00.000000Z", "2024-03-12T09:00:01.000000Z")
    ]
    open_ended = example("Observation", effectiveDateTime=None, effectivePeriod={"end": "2024"})
    assert values(open_ended, "date") == [DateRange(OPEN_LOW, "2025-01-01T00:00:00.000000Z")]
    instant = example(
        "Observation", effectiveDateTime=None, effectiveInstant="2024-03-12T08:25:00.5-01:00"
    )
    assert values(instant, "date") == [
        DateRange("2024-03-12T09:25:00.500000Z", "2024-03-12T09:25:00.500001Z")
    ]
    timing = example(
        "Observation",
        effectiveDateTime=None,
        effectiveTiming={"event": ["2024-03-14", "2024-03-12T10:00:00Z"]},
    )
    assert values(timing, "date") == [
        DateRange("2024-03-12T10:00:00.000000Z", "2024-03-15T00:00:00.000000Z")
    ]


def test_observation_value_quantity() -> None:
    """A Quantity's value is a Decimal, as written; SampledData gives nothing."""
    observation = example(
        "Observation",
        component=None,
        valueQuantity={"value": 7.20, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
    )
    assert values(observation, "value-quantity") == [
        QuantityValue(Decimal("7.2"), UCUM, "mmol/L", "mmol/L")
    ]
    sampled = example(
        "Observation",
        component=None,
        valueSampledData={"origin": {"value": 0}, "period": 10, "dimensions": 1, "data": "1 2"},
    )
    assert values(sampled, "value-quantity") == []
    assert values(example("Observation"), "value-quantity") == []


def test_observation_component_values_and_composites() -> None:
    """Component quantities and the code-value pairs of each component."""
    observation = example("Observation")
    mm_hg = {"system": UCUM, "code": "mm[Hg]", "unit": "mmHg"}
    systolic = QuantityValue(Decimal(148), **mm_hg)
    diastolic = QuantityValue(Decimal(92), **mm_hg)
    assert values(observation, "component-value-quantity") == [systolic, diastolic]
    assert values(observation, "combo-value-quantity") == [systolic, diastolic]
    composite = parameter("Observation", "component-code-value-quantity")
    assert composite is not None
    assert extract_composite(observation, composite) == [
        (TokenValue(SNOMED, "271649006", "Systolic blood pressure"), systolic),
        (TokenValue("http://loinc.org", "8480-6", "Systolic blood pressure"), systolic),
        (TokenValue(SNOMED, "271650006", "Diastolic blood pressure"), diastolic),
        (TokenValue("http://loinc.org", "8462-4", "Diastolic blood pressure"), diastolic),
    ]
    code_value = parameter("Observation", "code-value-quantity")
    assert code_value is not None
    assert extract_composite(observation, code_value) == []


def test_observation_status_and_category() -> None:
    """A code and a CodeableConcept's coding."""
    observation = example("Observation")
    assert values(observation, "status") == [
        TokenValue("http://hl7.org/fhir/observation-status", "final")
    ]
    assert values(observation, "category") == [
        TokenValue(
            "http://terminology.hl7.org/CodeSystem/observation-category",
            "vital-signs",
            "Vital Signs",
        )
    ]


def test_observation_value_string_and_concept_text() -> None:
    """``value-string`` is valueString or a valueCodeableConcept's text."""
    text = example("Observation", component=None, valueString="Trace")
    assert values(text, "value-string") == strings("Trace")
    concept = example("Observation", component=None, valueCodeableConcept={"text": "Positive"})
    assert values(concept, "value-string") == strings("Positive")
    assert values(concept, "value-concept") == [TokenValue(None, None, "Positive")]


# -- Encounter, Condition, MedicationRequest, Consent, others ------------------------


def test_encounter_date_subject_and_class() -> None:
    """The period as one range; ``class`` is a Coding."""
    encounter = example("Encounter")
    assert values(encounter, "date") == [
        DateRange("2024-03-12T08:02:00.000000Z", "2024-03-12T11:30:01.000000Z")
    ]
    assert values(encounter, "subject") == [ref("Patient/amara-okafor")]
    assert values(encounter, "patient") == [ref("Patient/amara-okafor")]
    assert values(encounter, "class") == [
        TokenValue("http://terminology.hl7.org/CodeSystem/v3-ActCode", "EMER", "emergency")
    ]
    assert values(encounter, "length") == [QuantityValue(Decimal(208), UCUM, "min", "min")]
    ongoing = example("Encounter", period={"start": "2024-03-12T08:02:00+00:00"})
    assert values(ongoing, "date") == [DateRange("2024-03-12T08:02:00.000000Z", OPEN_HIGH)]


def test_condition_code_clinical_status_and_onset() -> None:
    """Condition's code, clinical status and onset as a date or a Period."""
    condition = example("Condition")
    assert values(condition, "code") == [
        TokenValue(SNOMED, "195967001", "Asthma"),
        TokenValue(None, None, "Asthma"),
    ]
    assert values(condition, "clinical-status") == [
        TokenValue("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active")
    ]
    assert values(condition, "onset-date") == [
        DateRange("2019-01-14T00:00:00.000000Z", "2019-01-15T00:00:00.000000Z")
    ]
    period = example("Condition", onsetDateTime=None, onsetPeriod={"start": "2019-01"})
    assert values(period, "onset-date") == [DateRange("2019-01-01T00:00:00.000000Z", OPEN_HIGH)]
    age = example("Condition", onsetDateTime=None, onsetAge={"value": 34, "code": "a"})
    assert values(age, "onset-date") == []
    assert values(age, "onset-age") == [QuantityValue(Decimal(34), None, "a")]
    assert values(age, "onset-info") == []
    words = example("Condition", onsetDateTime=None, onsetString="In childhood")
    assert values(words, "onset-info") == strings("In childhood")


def test_medication_request_medication_as_concept_or_reference() -> None:
    """``code`` reads medicationCodeableConcept, ``medication`` medicationReference."""
    concept = example("MedicationRequest")
    assert values(concept, "code") == [
        TokenValue("https://dmd.nhs.uk", "319283006", "Amlodipine 5mg tablets")
    ]
    assert values(concept, "medication") == []
    reference = example(
        "MedicationRequest",
        medicationCodeableConcept=None,
        medicationReference={"reference": "Medication/amlodipine-5mg-tablets"},
    )
    assert values(reference, "code") == []
    assert values(reference, "medication") == [ref("Medication/amlodipine-5mg-tablets")]


def test_medication_request_dosage_timing_events() -> None:
    """``date`` is each dosage timing event."""
    request = example(
        "MedicationRequest",
        dosageInstruction=[{"timing": {"event": ["2024-03-12T08:00:00Z", "2024-03-13"]}}],
    )
    assert values(request, "date") == [
        DateRange("2024-03-12T08:00:00.000000Z", "2024-03-12T08:00:01.000000Z"),
        DateRange("2024-03-13T00:00:00.000000Z", "2024-03-14T00:00:00.000000Z"),
    ]


def test_medication_request_logical_reference() -> None:
    """A Reference with only an identifier is indexed by the identifier."""
    assert values(example("MedicationRequest"), "intended-dispenser") == [
        ReferenceValue(
            None, identifier=TokenValue("https://fhir.nhs.uk/Id/ods-organization-code", "FA123")
        )
    ]


def test_consent_patient_status_period_and_source() -> None:
    """Consent's patient, status, provision period and source[x] (an
    Attachment is no reference)."""
    consent = example("Consent")
    assert values(consent, "patient") == [ref("Patient/amara-okafor")]
    assert values(consent, "status") == [
        TokenValue("http://hl7.org/fhir/consent-state-codes", "active")
    ]
    assert values(consent, "period") == [
        DateRange("2024-03-12T00:00:00.000000Z", "2025-03-13T00:00:00.000000Z")
    ]
    assert values(consent, "source-reference") == [
        ref("DocumentReference/amara-okafor-consent-form")
    ]
    by_attachment = example(
        "Consent", sourceReference=None, sourceAttachment={"url": "https://x.example/f.pdf"}
    )
    assert values(by_attachment, "source-reference") == []


def test_document_reference_relationship_composite() -> None:
    """The corrected components pair the target with its relation code."""
    document = example("DocumentReference")
    relationship = parameter("DocumentReference", "relationship")
    assert relationship is not None
    assert extract_composite(document, relationship) == [
        (ref("DocumentReference/amara-okafor-ed-triage-note"), TokenValue(None, "appends"))
    ]


def test_care_plan_activity_date_timing_outer_limits() -> None:
    """A Timing covers its events and bounds; a schedule without either, nothing."""
    care_plan = example("CarePlan")
    assert values(care_plan, "activity-date") == []
    detail = care_plan["activity"][0]["detail"]
    detail["scheduledTiming"] = {
        "event": ["2024-06-01T09:00:00Z"],
        "repeat": {"boundsPeriod": {"start": "2024-04-01", "end": "2024-09-30"}},
    }
    assert values(care_plan, "activity-date") == [
        DateRange("2024-04-01T00:00:00.000000Z", "2024-10-01T00:00:00.000000Z")
    ]
    detail.pop("scheduledTiming")
    detail["scheduledString"] = "every six months"
    assert values(care_plan, "activity-date") == []


def test_contained_reference_keeps_the_url_only() -> None:
    """``#id`` has no type or id to search by."""
    request = example("MedicationRequest", requester={"reference": "#prescriber"})
    assert values(request, "requester") == [ReferenceValue("#prescriber")]


def test_canonical_reference_is_the_url() -> None:
    """A canonical is a reference by url alone."""
    plan = example(
        "CarePlan",
        instantiatesCanonical=["https://fhir.example.org/PlanDefinition/asthma|2"],
    )
    assert values(plan, "instantiates-canonical") == [
        ReferenceValue("https://fhir.example.org/PlanDefinition/asthma|2")
    ]


def test_values_are_not_repeated() -> None:
    """The same value found twice is indexed once."""
    patient = example("Patient", name=[{"family": "Eze"}, {"family": "Eze", "given": ["Eze"]}])
    assert values(patient, "family") == strings("Eze")
    assert values(patient, "name") == strings("Eze")


def test_index_values_by_code() -> None:
    """Every parameter with a value, by code; no composite or special ones."""
    indexed = index_values(example("Patient"))
    assert set(indexed) == {
        "_id",
        "_lastUpdated",
        "_profile",
        "active",
        "address",
        "address-city",
        "address-country",
        "address-postalcode",
        "address-use",
        "birthdate",
        "deceased",
        "email",
        "family",
        "gender",
        "general-practitioner",
        "given",
        "identifier",
        "language",
        "link",
        "name",
        "organization",
        "phone",
        "phonetic",
        "telecom",
    }
    assert indexed["gender"] == [TokenValue("http://hl7.org/fhir/administrative-gender", "female")]
    observation = index_values(example("Observation"))
    assert "component-code-value-quantity" not in observation
    assert observation["status"] == [TokenValue("http://hl7.org/fhir/observation-status", "final")]
    location = index_values(example("Location"))
    assert "near" not in location


def test_composite_and_special_parameters_have_no_single_values() -> None:
    """``extract`` refuses them rather than return nothing."""
    composite = parameter("Observation", "code-value-quantity")
    near = parameter("Location", "near")
    assert composite is not None and near is not None
    with pytest.raises(ValueError, match="composite parameters have no single values"):
        extract(example("Observation"), composite)
    with pytest.raises(ValueError, match="special parameters have no single values"):
        extract(example("Location"), near)
