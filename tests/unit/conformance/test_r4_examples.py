"""FHIR R4 on the wire, validated by the validator generated from the R4
definitions (``conformance.validation``).

Every type in ``conformance.registry.RESOURCES`` has a rich R4 example in
``tests/fixtures/r4`` that must validate with no issues. Where R4 and R4B
differ in a way that reaches the types in scope, a test below pins down that
the gateway follows R4 (the gateway once validated with R4B models; the
table of the differences, with sources, is docs/r4-r4b.md).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from conformance.registry import RESOURCES
from conformance.validation import ValidationIssue, validate_resource

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "r4"
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
TYPES = sorted(RESOURCES)


def example(res_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{res_type}.json").read_text("utf-8"))
    return data


def where(issues: list[ValidationIssue]) -> list[tuple[str, str]]:
    return [(issue.path, issue.code) for issue in issues]


def patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **elements}


def observation(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "75367002"}]},
        **elements,
    }


def medication_request(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/amara-okafor"},
        **elements,
    }


def nhs_numbers(value: Any) -> list[str]:
    """Every NHS number in an identifier anywhere inside ``value``."""
    if isinstance(value, dict):
        found = [value["value"]] if value.get("system") == NHS_NUMBER else []
        return found + [n for item in value.values() for n in nhs_numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in nhs_numbers(item)]
    return []


def nhs_check_digit_ok(number: str) -> bool:
    digits = [int(c) for c in number]
    remainder = 11 - sum(d * (10 - i) for i, d in enumerate(digits[:9])) % 11
    check = 0 if remainder == 11 else remainder
    return check != 10 and check == digits[9]


# -- the examples -----------------------------------------------------------------


def test_every_registry_type_has_exactly_one_example() -> None:
    """tests/fixtures/r4 holds one <Type>.json per registry type, and nothing else."""
    assert sorted(path.stem for path in FIXTURES.glob("*.json")) == TYPES


@pytest.mark.parametrize("res_type", TYPES)
def test_r4_example_validates_without_issues(res_type: str) -> None:
    """The R4 example of each type in scope passes validate_resource with no issues."""
    resource = example(res_type)
    assert resource["resourceType"] == res_type
    assert validate_resource(resource, res_type) == []


@pytest.mark.parametrize("res_type", TYPES)
def test_r4_example_rejected_as_any_other_type(res_type: str) -> None:
    """An example validated as a different type is refused on resourceType alone."""
    other = "Patient" if res_type != "Patient" else "Practitioner"
    issues = validate_resource(example(res_type), other)
    assert where(issues) == [(f"{other}.resourceType", "invalid")]


@pytest.mark.parametrize("res_type", TYPES)
def test_unknown_top_level_element_is_rejected_on_every_type(res_type: str) -> None:
    """An element R4 does not define is reported at its own path as a structure issue."""
    resource = example(res_type)
    resource["nhsLocalFlag"] = True
    issues = validate_resource(resource, res_type)
    assert where(issues) == [(f"{res_type}.nhsLocalFlag", "structure")]
    assert issues[0].message == "unknown element"


def test_examples_use_valid_test_range_nhs_numbers() -> None:
    """NHS numbers in the examples are 999-range test numbers with a valid check digit."""
    numbers = [n for res_type in TYPES for n in nhs_numbers(example(res_type))]
    assert numbers, "the examples carry NHS numbers"
    for number in numbers:
        assert len(number) == 10 and number.startswith("999"), number
        assert nhs_check_digit_ok(number), number


# -- where R4 and R4B differ --------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        (
            patient(extension=[{"url": "https://example.org/x", "valueMeta": {"versionId": "2"}}]),
            "Patient.extension[0].valueMeta",
        ),
        (
            patient(
                name=[
                    {
                        "family": "Okafor",
                        "extension": [
                            {"url": "https://example.org/x", "valueMeta": {"versionId": "2"}}
                        ],
                    }
                ]
            ),
            "Patient.name[0].extension[0].valueMeta",
        ),
    ],
)
def test_r4_extension_value_meta_is_accepted(resource: dict[str, Any], path: str) -> None:
    """R4 allows Meta in Extension.value[x] (R4B dropped it), wherever the
    extension sits."""
    assert validate_resource(resource, "Patient") == [], path


@pytest.mark.parametrize(
    "value",
    [
        {"valueCodeableReference": {"concept": {"text": "Amlodipine"}}},
        {"valueRatioRange": {"lowNumerator": {"value": 1}, "denominator": {"value": 2}}},
    ],
)
def test_r4b_only_extension_value_types_are_rejected(value: dict[str, Any]) -> None:
    """CodeableReference and RatioRange are R4B data types that R4's
    Extension.value[x] does not allow."""
    resource = patient(extension=[{"url": "https://example.org/x", **value}])
    (name,) = value
    assert (f"Patient.extension[0].{name}", "structure") in where(
        validate_resource(resource, "Patient")
    )


@pytest.mark.parametrize("res_type", ["Observation", "DiagnosticReport"])
@pytest.mark.parametrize(
    "target",
    [
        "Patient/amara-okafor",  # R4 and R4B
        "Practitioner/dr-sarah-khan",  # R4B only
        "Substance/peanut-protein",  # R4B only
        "Encounter/ae-attendance-20240312",  # neither
    ],
)
def test_subject_reference_targets_are_checked_as_r4_lists_them(res_type: str, target: str) -> None:
    """R4 allows Observation.subject and DiagnosticReport.subject to name a
    Patient, Group, Device or Location (R4B widened both): a literal reference
    to another type is refused at the reference."""
    resource = example(res_type)
    resource["subject"] = {"reference": target}
    issues = validate_resource(resource, res_type)
    if target.startswith("Patient/"):
        assert issues == []
    else:
        assert [issue.path for issue in issues] == [f"{res_type}.subject.reference"]


def test_contained_r4_only_resource_type_is_accepted() -> None:
    """A contained resource of an R4 type that R4B removed (the MedicinalProduct
    family) is R4, and validated as its type."""
    resource = medication_request(
        medicationReference={"reference": "#mp"},
        contained=[
            {"resourceType": "MedicinalProduct", "id": "mp", "name": [{"productName": "Amlo"}]}
        ],
    )
    assert validate_resource(resource, "MedicationRequest") == []


def test_contained_r4b_only_resource_type_is_rejected() -> None:
    """Ingredient exists only from R4B: a contained Ingredient is refused."""
    resource = {
        "resourceType": "Medication",
        "contained": [
            {
                "resourceType": "Ingredient",
                "id": "ing",
                "status": "active",
                "role": {"text": "active"},
                "substance": {"code": {"concept": {"text": "Amlodipine"}}},
            }
        ],
    }
    # Besides, dom-3: nothing in the Medication refers to what it contains.
    assert where(validate_resource(resource, "Medication")) == [
        ("Medication.contained[0].resourceType", "structure"),
        ("Medication", "invariant"),
    ]


@pytest.mark.parametrize("comparator", ["<", "<=", ">=", ">"])
def test_r4_quantity_comparators_are_accepted(comparator: str) -> None:
    """Every QuantityComparator code of R4 is accepted."""
    resource = observation(valueQuantity={"value": 5, "unit": "mmol/L", "comparator": comparator})
    assert validate_resource(resource, "Observation") == []


@pytest.mark.parametrize(
    ("res_type", "resource"),
    [
        ("Observation", observation(valueQuantity={"value": 5, "comparator": "~"})),
        (
            "Encounter",
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"code": "EMER"},
                "length": {"value": 3, "code": "h", "comparator": "about"},
            },
        ),
        (
            "Condition",
            {
                "resourceType": "Condition",
                "subject": {"reference": "Patient/amara-okafor"},
                "onsetAge": {"value": 30, "code": "a", "comparator": "approx"},
            },
        ),
    ],
)
def test_quantity_comparator_binding_is_enforced(res_type: str, resource: dict[str, Any]) -> None:
    """Quantity.comparator (and Age, Count, Distance, Duration) has a required
    binding in R4 (an Age or Duration's own invariants may fail besides)."""
    assert "code-invalid" in [i.code for i in validate_resource(resource, res_type)]


@pytest.mark.parametrize(
    ("res_type", "base", "codes"),
    [
        (
            "Observation",
            observation(),
            "registered preliminary final amended corrected cancelled entered-in-error unknown",
        ),
        (
            "DiagnosticReport",
            {"resourceType": "DiagnosticReport", "code": {"text": "Full blood count"}},
            "registered partial preliminary final amended corrected appended cancelled "
            "entered-in-error unknown",
        ),
        (
            "Encounter",
            {"resourceType": "Encounter", "class": {"code": "AMB"}},
            "planned arrived triaged in-progress onleave finished cancelled entered-in-error "
            "unknown",
        ),
        (
            "MedicationStatement",
            {
                "resourceType": "MedicationStatement",
                "subject": {"reference": "Patient/amara-okafor"},
                "medicationCodeableConcept": {"text": "Amlodipine 5mg tablets"},
            },
            "active completed entered-in-error intended stopped on-hold unknown not-taken",
        ),
    ],
)
def test_r4_status_codes_are_all_accepted(res_type: str, base: dict[str, Any], codes: str) -> None:
    """R4B re-versioned these status value sets without changing a code: every R4
    code is accepted and a made-up one is refused at the status path."""
    for code in codes.split():
        assert validate_resource({**base, "status": code}, res_type) == [], code
    issues = validate_resource({**base, "status": "draft-ish"}, res_type)
    assert where(issues) == [(f"{res_type}.status", "code-invalid")]


# -- code bindings ------------------------------------------------------------------


def test_required_bindings_are_enforced_in_any_case() -> None:
    """Patient.gender = 'bogus' is refused at Patient.gender, as are codes in
    the wrong case."""
    for bad in ("bogus", "Female"):
        issues = validate_resource(patient(gender=bad), "Patient")
        assert where(issues) == [("Patient.gender", "code-invalid")]


@pytest.mark.parametrize(
    ("res_type", "mutate"),
    [
        ("AuditEvent", lambda r: r.update(action="Z")),
        ("AuditEvent", lambda r: r.update(outcome="99")),
        ("AuditEvent", lambda r: r["agent"][0]["network"].update(type="9")),
        ("Composition", lambda r: r.update(confidentiality="TOP-SECRET")),
        (
            "MedicationRequest",
            lambda r: r["dosageInstruction"][0]["timing"]["repeat"].update(when=["BREAKFAST"]),
        ),
        ("DocumentReference", lambda r: r["content"][0]["attachment"].update(contentType="pdf")),
        ("Provenance", lambda r: r["signature"][0].update(sigFormat="signed xml")),
        ("Patient", lambda r: r.update(language="English")),
        (
            "Patient",
            lambda r: r["extension"].append(
                {"url": "https://example.org/x", "valueMoney": {"value": 5, "currency": "QUID"}}
            ),
        ),
    ],
)
def test_required_bindings_the_definitions_list_are_enforced(res_type: str, mutate: Any) -> None:
    """Required bindings whose codes R4's own value sets list (AuditEvent
    action/outcome/network type, Composition.confidentiality, Timing.repeat.when)
    are checked; those of external code systems (mime types, languages,
    currencies) are not."""
    resource = copy.deepcopy(example(res_type))
    mutate(resource)
    issues = validate_resource(resource, res_type)
    external = res_type in ("DocumentReference", "Provenance", "Patient")
    assert (issues == []) == external, issues


# -- what is refused, and where -------------------------------------------------------


def test_unknown_nested_element_is_rejected_with_its_path() -> None:
    """An unknown element inside a data type is reported at its full path."""
    resource = example("Patient")
    resource["name"][0]["nickname"] = "Ama"
    issues = validate_resource(resource, "Patient")
    assert where(issues) == [("Patient.name[0].nickname", "structure")]


@pytest.mark.parametrize(
    ("res_type", "mutate", "path"),
    [
        ("Patient", lambda r: r.update(active="yes"), "Patient.active"),
        ("Patient", lambda r: r.update(name="Amara Okafor"), "Patient.name"),
        ("Patient", lambda r: r["name"][0].update(given="Amara"), "Patient.name[0].given"),
        ("Patient", lambda r: r["telecom"][0].update(rank="1"), "Patient.telecom[0].rank"),
        ("Patient", lambda r: r.update(multipleBirthBoolean=0), "Patient.multipleBirthBoolean"),
        (
            "Observation",
            lambda r: r["component"][0]["valueQuantity"].update(value="148"),
            "Observation.component[0].valueQuantity.value",
        ),
        (
            "MedicationRequest",
            lambda r: r["dispenseRequest"].update(numberOfRepeatsAllowed=5.5),
            "MedicationRequest.dispenseRequest.numberOfRepeatsAllowed",
        ),
        ("Encounter", lambda r: r["diagnosis"][0].update(rank=0), "Encounter.diagnosis[0].rank"),
        ("Flag", lambda r: r.update(subject="Patient/amara-okafor"), "Flag.subject"),
    ],
)
def test_wrong_type_is_rejected_with_its_path(res_type: str, mutate: Any, path: str) -> None:
    """A value of the wrong JSON or FHIR type (or a single value where an array
    belongs) is refused at the element's path."""
    resource = copy.deepcopy(example(res_type))
    mutate(resource)
    issues = validate_resource(resource, res_type)
    assert [issue.path for issue in issues] == [path]
    assert issues[0].code in ("value", "structure")


@pytest.mark.parametrize(
    "birth_date", ["1986-13-01", "1986-02-30", "14/07/1986", "1986-7-14", "1986-07-14T00:00:00Z"]
)
def test_bad_date_is_rejected(birth_date: str) -> None:
    """A birthDate that is not an R4 date (YYYY, YYYY-MM or a real YYYY-MM-DD) is refused."""
    issues = validate_resource(patient(birthDate=birth_date), "Patient")
    assert where(issues) == [("Patient.birthDate", "value")]


@pytest.mark.parametrize("birth_date", ["1986", "1986-07", "1986-07-14"])
def test_partial_dates_are_accepted(birth_date: str) -> None:
    """R4 dates may be a year, a year and month, or a full date."""
    assert validate_resource(patient(birthDate=birth_date), "Patient") == []


@pytest.mark.parametrize(
    "effective", ["2024-03-12T08:25:00", "2024-03-12T25:00:00Z", "2024-03-12 08:25:00Z"]
)
def test_bad_date_time_is_rejected(effective: str) -> None:
    """A dateTime with a time but no zone, an impossible hour or a space is refused."""
    issues = validate_resource(observation(effectiveDateTime=effective), "Observation")
    assert where(issues) == [("Observation.effectiveDateTime", "value")]


def test_instant_needs_seconds_and_zone() -> None:
    """Observation.issued is an instant: a date alone is refused."""
    issues = validate_resource(observation(issued="2024-03-12"), "Observation")
    assert where(issues) == [("Observation.issued", "value")]


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        (patient(resourceType="Practitioner"), "resourceType is 'Practitioner'"),
        ({"id": "amara-okafor"}, "resourceType is None"),
        (patient(resourceType="patient"), "resourceType is 'patient'"),
    ],
)
def test_wrong_resource_type_is_rejected(resource: dict[str, Any], message: str) -> None:
    """A body whose resourceType is not the expected type gets one issue, nothing more."""
    issues = validate_resource(resource, "Patient")
    assert where(issues) == [("Patient.resourceType", "invalid")]
    assert issues[0].message.startswith(message)


def test_non_object_body_is_rejected() -> None:
    """A JSON array is not a resource."""
    assert where(validate_resource([example("Patient")], "Patient")) == [("Patient", "structure")]


@pytest.mark.parametrize(
    ("mutate", "path", "code"),
    [
        (lambda r: r["name"][0].update(family=""), "Patient.name[0].family", "value"),
        (lambda r: r["name"][0].update(family="   "), "Patient.name[0].family", "value"),
        (lambda r: r["name"][0]["given"].append(""), "Patient.name[0].given[2]", "value"),
        (lambda r: r.update(gender=None), "Patient.gender", "structure"),
        (lambda r: r["name"][0]["given"].append(None), "Patient.name[0].given[2]", "structure"),
        (lambda r: r.update(telecom=[]), "Patient.telecom", "structure"),
        (lambda r: r["address"][0].update(line=[]), "Patient.address[0].line", "structure"),
        (lambda r: r.update(maritalStatus={}), "Patient.maritalStatus", "structure"),
        (lambda r: r["contact"].append({}), "Patient.contact[1]", "structure"),
    ],
)
def test_empty_and_null_values_are_rejected(mutate: Any, path: str, code: str) -> None:
    """FHIR JSON has no nulls, empty or blank strings, empty arrays or empty objects."""
    resource = example("Patient")
    mutate(resource)
    assert where(validate_resource(resource, "Patient")) == [(path, code)]


def test_nulls_aligning_primitive_extensions_are_accepted() -> None:
    """In _given, null keeps the array aligned with given and is allowed."""
    resource = example("Patient")
    resource["name"][0]["_given"] = [
        None,
        {"extension": [{"url": "https://example.org/x", "valueString": "Ngozi"}]},
    ]
    assert validate_resource(resource, "Patient") == []


def test_missing_required_element_is_rejected() -> None:
    """Observation.code is 1..1: leaving it out is a 'required' issue at its path."""
    resource = example("Observation")
    del resource["code"]
    assert where(validate_resource(resource, "Observation")) == [("Observation.code", "required")]


@pytest.mark.parametrize("bad_id", ["amara_okafor", "a" * 65, "amara okafor"])
def test_bad_resource_id_is_rejected(bad_id: str) -> None:
    """Resource ids are 1-64 characters of letters, digits, '-' and '.'."""
    assert where(validate_resource(patient(id=bad_id), "Patient")) == [("Patient.id", "value")]


def test_choice_with_two_types_is_rejected() -> None:
    """Only one type of a choice element ([x]) may be present."""
    resource = example("Patient")
    resource["deceasedDateTime"] = "2024-03-12T10:00:00+00:00"
    assert where(validate_resource(resource, "Patient")) == [
        ("Patient.deceasedDateTime", "structure")
    ]


# -- validation.py bugs, expected to fail until fixed ---------------------------------


@pytest.mark.parametrize("entry", [{"id": "org"}, {"resourceType": "Resource", "id": "org"}])
def test_contained_entry_must_be_a_concrete_resource(entry: dict[str, Any]) -> None:
    """A contained entry with no resourceType, or an abstract one, is not a resource."""
    assert validate_resource(patient(contained=[entry]), "Patient") != []


def test_contained_unknown_type_is_reported_at_its_resource_type() -> None:
    """An unknown contained type should be reported at contained[i].resourceType."""
    resource = patient(contained=[{"resourceType": "Bogus", "id": "x"}])
    issues = validate_resource(resource, "Patient")
    # Besides, dom-3: nothing in the Patient refers to what it contains.
    assert [i.path for i in issues] == ["Patient.contained[0].resourceType", "Patient"]


@pytest.mark.parametrize("declared", [[], {}, ["Patient"], {"a": 1}, 1, True])
def test_a_contained_resource_type_that_is_not_a_string_is_an_issue(declared: Any) -> None:
    """Fuzzing found it: a contained resource whose resourceType is a JSON
    array or object raised TypeError (unhashable) in the validator, a 500
    on create, where it is a 400 naming contained[0].resourceType."""
    resource = {"resourceType": "Device", "contained": [{"resourceType": declared, "id": "c1"}]}
    issues = validate_resource(resource, "Device")
    assert ("Device.contained[0].resourceType", "structure") in where(issues)
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resource}]}
    assert validate_resource(bundle, "Bundle") != []


@pytest.mark.parametrize("element", ["fhir_comments", "resource_type"])
def test_model_only_fields_are_unknown_elements(element: str) -> None:
    """fhir_comments and resource_type are not FHIR elements."""
    value = ["a comment"] if element == "fhir_comments" else "Patient"
    issues = validate_resource(patient(**{element: value}), "Patient")
    assert where(issues) == [(f"Patient.{element}", "structure")]


@pytest.mark.parametrize(
    "underscore_given",
    [
        [],
        [{"extension": [{"url": "", "valueString": "x"}]}],
        [{"extension": [{"url": "https://example.org/x", "valueString": None}]}],
    ],
)
def test_primitive_extension_arrays_follow_the_json_rules(underscore_given: list[Any]) -> None:
    """Only a bare null may stand in _given; empty arrays, blank strings and nulls
    inside its extensions are refused like anywhere else."""
    resource = patient(name=[{"given": ["Amara"], "_given": underscore_given}])
    assert validate_resource(resource, "Patient") != []


@pytest.mark.parametrize(
    "resource",
    [
        # ext-1: an extension has a value or extensions, not both
        patient(
            extension=[
                {
                    "url": "https://example.org/x",
                    "valueString": "a",
                    "extension": [{"url": "part", "valueString": "b"}],
                }
            ]
        ),
        # txt-1, txt-2: the narrative is restricted XHTML
        patient(text={"status": "generated", "div": "not markup at all"}),
        patient(
            text={
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml"><script>x()</script></div>',
            }
        ),
        # dom-2: a contained resource contains no resources
        patient(
            contained=[
                {
                    "resourceType": "Organization",
                    "id": "org",
                    "contained": [{"resourceType": "Location", "id": "loc"}],
                }
            ]
        ),
        # uri and canonical are \S*
        patient(identifier=[{"system": "https://fhir.nhs.uk/Id/nhs number", "value": "1"}]),
        patient(meta={"profile": ["UK Core Patient"]}),
    ],
)
def test_invariants_and_uri_patterns_are_checked(resource: dict[str, Any]) -> None:
    """ext-1, dom-2 and the uri/canonical pattern are checked by shape, the
    narrative's restricted XHTML (txt-1, txt-2) by the FHIRPath invariants."""
    assert validate_resource(resource, "Patient") != []
