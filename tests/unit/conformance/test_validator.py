"""The validator generated from the R4 StructureDefinitions (``conformance.validator``).

Each test names the R4 rule it holds the validator to; the rules are those of
https://hl7.org/fhir/R4/json.html, https://hl7.org/fhir/R4/datatypes.html,
https://hl7.org/fhir/R4/terminologies.html and the definitions themselves.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance.registry import RESOURCES
from conformance.validator import (
    STRUCTURAL_INVARIANTS,
    ValidationIssue,
    resource_types,
    table,
    validate,
    warm_up,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "r4"
TYPES = sorted(RESOURCES)
SNOMED = "http://snomed.info/sct"


def example(res_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{res_type}.json").read_text("utf-8"))
    return data


def errors(issues: list[ValidationIssue]) -> list[tuple[str, str]]:
    return [(i.path, i.code) for i in issues if i.severity == "error"]


def patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **elements}


def observation(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": SNOMED, "code": "75367002"}]},
        **elements,
    }


def condition(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": {"reference": "Patient/p"}, **elements}


# -- the definitions compile ------------------------------------------------------


@pytest.mark.parametrize("res_type", [*TYPES, "Bundle", "Parameters", "OperationOutcome"])
def test_every_type_in_scope_compiles(res_type: str) -> None:
    """Each type in scope has a table with its elements, ``resourceType`` and,
    for a resource, the invariants of its root."""
    compiled = table(res_type)
    assert compiled.is_resource
    assert {"resourceType", "id", "meta", "_id"} <= compiled.elements.keys()
    assert any(c.key.startswith("dom-") for c in compiled.constraints) or res_type in (
        "Bundle",
        "Parameters",
    )


def test_every_r4_type_compiles() -> None:
    """warm_up compiles every resource and data type of R4 (contained
    resources and Bundle entries may be of any type)."""
    warm_up()
    assert len(resource_types()) == 144
    for res_type in resource_types():
        assert table(res_type).elements


def test_choice_and_primitive_siblings_are_properties() -> None:
    """value[x] is a property per type, and a primitive has its ``_name``."""
    elements = table("Observation").elements
    assert {"valueQuantity", "valueString", "_valueString", "effectiveDateTime"} <= set(elements)
    assert "_valueQuantity" not in elements
    assert elements["valueQuantity"].choice == "value"
    assert "_status" in elements and elements["status"].min == 1


def test_constraints_are_exposed_for_the_invariant_evaluator() -> None:
    """Every element carries its invariants (key, severity, human text,
    expression): its own and its type's."""
    root = {c.key: c for c in table("Observation").constraints}
    assert root["obs-6"].expression == "dataAbsentReason.empty() or value.empty()"
    assert root["obs-6"].severity == "error"
    range_ = table("Observation").elements["referenceRange"]
    assert "obs-3" in {c.key for c in range_.constraints}
    period = table("Observation").elements["effectivePeriod"]
    assert "per-1" in {c.key for c in period.constraints}
    assert not {c.key for c in period.evaluated} & STRUCTURAL_INVARIANTS


# -- the examples -----------------------------------------------------------------

# Extensible bindings the examples do not meet, as R4 permits (a warning).
EXAMPLE_WARNINGS = {"Consent": [("Consent.policyRule", "code-invalid")]}


@pytest.mark.parametrize("res_type", TYPES)
def test_r4_example_validates_without_errors(res_type: str) -> None:
    """The rich R4 example of each type in scope has no error; its only
    warnings are extensible bindings it does not meet."""
    issues = validate(example(res_type), res_type)
    assert errors(issues) == []
    warnings = [(i.path, i.code) for i in issues if i.severity == "warning"]
    assert warnings == EXAMPLE_WARNINGS.get(res_type, [])


def test_bundle_entries_are_validated_as_their_own_types() -> None:
    """A Bundle of every example is valid, and a problem inside an entry is
    reported at its path within the Bundle."""
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": example(t)} for t in TYPES],
    }
    assert errors(validate(bundle, "Bundle")) == []
    bundle["entry"][0]["resource"]["criticality"] = "very"
    bundle["entry"][1]["resource"] = {"resourceType": "Nope"}
    assert errors(validate(bundle, "Bundle")) == [
        ("Bundle.entry[0].resource.criticality", "code-invalid"),
        ("Bundle.entry[1].resource.resourceType", "structure"),
    ]


# -- structure ----------------------------------------------------------------------


def mutated(res_type: str, mutate: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    resource = copy.deepcopy(example(res_type))
    mutate(resource)
    return resource


@pytest.mark.parametrize(
    ("res_type", "mutate", "expected"),
    [
        # Unknown elements, at any depth, and JSON that is not FHIR's.
        ("Patient", lambda r: r.update(nhsLocalFlag=True), [("Patient.nhsLocalFlag", "structure")]),
        (
            "Patient",
            lambda r: r["name"][0].update(nickname="Ama"),
            [("Patient.name[0].nickname", "structure")],
        ),
        ("Patient", lambda r: r.update(_active=True), [("Patient.active", "structure")]),
        ("Patient", lambda r: r.update(_name={}), [("Patient._name", "structure")]),
        (
            "Patient",
            lambda r: r.update(fhir_comments=["x"]),
            [("Patient.fhir_comments", "structure")],
        ),
        # A missing required element.
        ("Observation", lambda r: r.pop("status"), [("Observation.status", "required")]),
        ("Condition", lambda r: r.pop("subject"), [("Condition.subject", "required")]),
        # Arrays exactly where an element repeats.
        ("Patient", lambda r: r.update(gender=["female"]), [("Patient.gender", "structure")]),
        ("Patient", lambda r: r.update(active=[True, False]), [("Patient.active", "structure")]),
        ("Patient", lambda r: r.update(name=r["name"][0]), [("Patient.name", "structure")]),
        (
            "Patient",
            lambda r: r["name"][0].update(given="Amara"),
            [("Patient.name[0].given", "structure")],
        ),
        # Types.
        ("Patient", lambda r: r.update(active="yes"), [("Patient.active", "value")]),
        (
            "Patient",
            lambda r: r.update(multipleBirthBoolean=0),
            [("Patient.multipleBirthBoolean", "value")],
        ),
        (
            "Patient",
            lambda r: r["telecom"][0].update(rank="1"),
            [("Patient.telecom[0].rank", "value")],
        ),
        ("Flag", lambda r: r.update(subject="Patient/amara-okafor"), [("Flag.subject", "value")]),
        (
            "Observation",
            lambda r: r["component"][0]["valueQuantity"].update(value="148"),
            [("Observation.component[0].valueQuantity.value", "value")],
        ),
        (
            "MedicationRequest",
            lambda r: r["dispenseRequest"].update(numberOfRepeatsAllowed=5.5),
            [("MedicationRequest.dispenseRequest.numberOfRepeatsAllowed", "value")],
        ),
        # Two types of one choice element.
        (
            "Observation",
            lambda r: r.update(valueString="high", valueQuantity={"value": 1}),
            [("Observation.valueQuantity", "structure")],
        ),
        (
            "Patient",
            lambda r: r.update(deceasedDateTime="2024-01-01"),
            [("Patient.deceasedDateTime", "structure")],
        ),
        # Required bindings.
        ("Patient", lambda r: r.update(gender="mail"), [("Patient.gender", "code-invalid")]),
        ("Patient", lambda r: r.update(gender="Female"), [("Patient.gender", "code-invalid")]),
        ("AuditEvent", lambda r: r.update(action="Z"), [("AuditEvent.action", "code-invalid")]),
        (
            "Composition",
            lambda r: r.update(confidentiality="TOP-SECRET"),
            [("Composition.confidentiality", "code-invalid")],
        ),
        (
            "MedicationRequest",
            lambda r: r["dosageInstruction"][0]["timing"]["repeat"].update(when=["BREAKFAST"]),
            [("MedicationRequest.dosageInstruction[0].timing.repeat.when[0]", "code-invalid")],
        ),
        # SimpleQuantity has no comparator.
        (
            "MedicationRequest",
            lambda r: r["dosageInstruction"][0]["doseAndRate"][0].update(
                doseQuantity={"value": 1, "comparator": "<"}
            ),
            [
                (
                    "MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity.comparator",
                    "structure",
                )
            ],
        ),
    ],
)
def test_problem_is_reported_at_its_path(
    res_type: str, mutate: Callable[[dict[str, Any]], Any], expected: list[tuple[str, str]]
) -> None:
    """A problem in a valid example is reported once, at its element's path."""
    assert errors(validate(mutated(res_type, mutate), res_type)) == expected


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ({"gender": None}, [("Patient.gender", "structure")]),
        ({"name": []}, [("Patient.name", "structure")]),
        ({"name": [{}]}, [("Patient.name[0]", "structure")]),
        ({"gender": ""}, [("Patient.gender", "value")]),
        ({"name": [{"family": "   "}]}, [("Patient.name[0].family", "value")]),
        ({"name": [{"family": "A\x00B"}]}, [("Patient.name[0].family", "value")]),
        ({"name": [{"given": ["Amara", None]}]}, [("Patient.name[0].given[1]", "structure")]),
    ],
)
def test_fhir_json_rules(resource: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    """No null, no empty objects, arrays or blank strings, no U+0000."""
    assert errors(validate(patient(**resource), "Patient")) == expected


def test_primitive_extensions_are_checked_as_elements() -> None:
    """``_name`` holds the id and extensions of the primitive ``name``, alone
    or beside its value; in a primitive array, null stands for a value that has
    only extensions, and the two arrays align (json.html#primitive)."""
    extension = {"url": "https://example.org/x", "valueString": "y"}
    valid = patient(
        birthDate="1986-07-14",
        _birthDate={"extension": [extension]},
        _gender={"extension": [extension]},
        name=[{"given": ["Amara", None], "_given": [None, {"extension": [extension]}]}],
    )
    assert validate(valid, "Patient") == []
    problems = patient(
        _birthDate={"extension": [{"url": "x", "valueBoolean": "true"}], "colour": "red"},
        _gender="female",
        name=[{"given": ["Amara"], "_given": [None, {"id": "a"}]}],
    )
    assert errors(validate(problems, "Patient")) == [
        ("Patient.birthDate.extension[0].valueBoolean", "value"),
        ("Patient.birthDate.colour", "structure"),
        ("Patient.gender", "structure"),
        ("Patient.name[0].given", "structure"),  # two extensions for one given name
        ("Patient.name[0].given[1]", "invariant"),  # ele-1: an id alone is not a value
    ]


# The Subscriptions Backport IG's channel type, for a channel R4's code list lacks.
CHANNEL_TYPE = {
    "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-channel-type",
    "valueCoding": {"system": "urn:london-care-gateway:CodeSystem:channel-type", "code": "pull"},
}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"type": "rest-hook"}, []),
        ({"_type": {"extension": [CHANNEL_TYPE]}}, []),
        ({"type": "rest-hook", "_type": {"extension": [CHANNEL_TYPE]}}, []),
        ({"_type": {"id": "t", "extension": [CHANNEL_TYPE]}}, []),
        ({}, [("Subscription.channel.type", "required")]),
        ({"_type": {"id": "t"}}, [("Subscription.channel.type", "invariant")]),
    ],
)
def test_a_required_primitive_is_present_with_extensions_and_no_value(
    given: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    """A primitive may carry extensions and no value (``_type`` without
    ``type``, json.html#primitive), and is then present: it meets a 1..1
    element's cardinality, as the backport's ``backport-channel-type`` needs
    of Subscription.channel.type. With neither a value nor an extension (an
    id alone) it is not (ele-1)."""

    def channel_type(resource: dict[str, Any]) -> None:
        del resource["channel"]["type"]
        resource["channel"].update(copy.deepcopy(given))

    assert errors(validate(mutated("Subscription", channel_type), "Subscription")) == expected


def test_extensions_have_a_value_or_extensions_not_both() -> None:
    """ext-1, and ele-1 on an element with nothing but an id, by shape."""
    issues = validate(
        patient(
            extension=[
                {"url": "https://example.org/a"},
                {
                    "url": "https://example.org/b",
                    "valueString": "x",
                    "extension": [{"url": "c", "valueCode": "d"}],
                },
            ],
            maritalStatus={"id": "m"},
        ),
        "Patient",
    )
    assert [(i.path, i.key) for i in issues] == [
        ("Patient.extension[0]", "ext-1"),
        ("Patient.extension[1]", "ext-1"),
        ("Patient.maritalStatus", "ele-1"),
    ]


# -- primitive formats ------------------------------------------------------------


@pytest.mark.parametrize(
    "birth_date",
    [
        "1986-13-01",
        "1986-02-30",
        "1985-02-29",
        "14/07/1986",
        "1986-7-14",
        "1986-07-14T00:00:00Z",
        "0000",
    ],
)
def test_bad_date_is_refused(birth_date: str) -> None:
    """A date is YYYY, YYYY-MM or YYYY-MM-DD of a real day."""
    assert errors(validate(patient(birthDate=birth_date), "Patient")) == [
        ("Patient.birthDate", "value")
    ]


@pytest.mark.parametrize(
    "birth_date", ["1986", "1986-07", "1986-07-14", "2000-02-29", "2024-02-29"]
)
def test_good_date_is_accepted(birth_date: str) -> None:
    assert validate(patient(birthDate=birth_date), "Patient") == []


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("2024-05-01T10:30:00Z", True),
        ("2024-05-01T10:30:00.123+01:00", True),
        ("2024-05-01", True),
        ("2024", True),
        ("2024-05-01T10:30Z", False),
        ("2024-05-01T10:30:00", False),  # a time needs its zone
        ("2024-05-01T24:00:00Z", False),
        ("2024-04-31T10:00:00Z", False),
        ("2024-05-01 10:30:00Z", False),
    ],
)
def test_date_time_format(value: str, valid: bool) -> None:
    issues = validate(observation(effectiveDateTime=value), "Observation")
    assert errors(issues) == ([] if valid else [("Observation.effectiveDateTime", "value")])


@pytest.mark.parametrize(
    ("elements", "path"),
    [
        ({"issued": "2024-05-01"}, "Observation.issued"),  # an instant is to the second
        ({"valueTime": "25:00:00"}, "Observation.valueTime"),
        ({"valueQuantity": {"value": float("nan")}}, "Observation.valueQuantity.value"),
        ({"valueQuantity": {"value": True}}, "Observation.valueQuantity.value"),
        ({"valueInteger": 2**31}, "Observation.valueInteger"),
        ({"valueInteger": 1.0}, "Observation.valueInteger"),
        ({"implicitRules": "http://a b"}, "Observation.implicitRules"),
        ({"language": "en  GB"}, "Observation.language"),
        ({"id": "a b"}, "Observation.id"),
        ({"id": "x" * 65}, "Observation.id"),
        ({"id": "amara_okafor"}, "Observation.id"),
        ({"extension": [{"url": "u", "valueOid": "1.2.3"}]}, "Observation.extension[0].valueOid"),
        (
            {
                "extension": [
                    {"url": "u", "valueUuid": "urn:uuid:ABCDEF00-0000-4000-8000-000000000000"}
                ]
            },
            "Observation.extension[0].valueUuid",
        ),
        (
            {"extension": [{"url": "u", "valueBase64Binary": "not base64!"}]},
            "Observation.extension[0].valueBase64Binary",
        ),
        (
            {"extension": [{"url": "u", "valuePositiveInt": 0}]},
            "Observation.extension[0].valuePositiveInt",
        ),
        (
            {"extension": [{"url": "u", "valueUnsignedInt": -1}]},
            "Observation.extension[0].valueUnsignedInt",
        ),
        (
            {"extension": [{"url": "u", "valueDecimal": "1.5"}]},
            "Observation.extension[0].valueDecimal",
        ),
    ],
)
def test_bad_primitive_is_refused(elements: dict[str, Any], path: str) -> None:
    """Each primitive's JSON type and R4 regex, and the integer ranges."""
    assert errors(validate(observation(**elements), "Observation")) == [(path, "value")]


def test_strings_are_at_most_one_megabyte() -> None:
    """R4 strings SHALL NOT exceed 1 MB; the size is in UTF-8 bytes."""
    assert validate(patient(name=[{"family": "x" * 2**20}]), "Patient") == []
    for too_long in ("x" * (2**20 + 1), "\U0001f600" * (2**18 + 1)):
        assert errors(validate(patient(name=[{"family": too_long}]), "Patient")) == [
            ("Patient.name[0].family", "value")
        ]


# -- terminology ------------------------------------------------------------------

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


@pytest.mark.parametrize(
    ("clinical_status", "valid"),
    [
        ({"coding": [{"system": CLINICAL, "code": "active"}]}, True),
        (
            {
                "coding": [
                    {"system": SNOMED, "code": "55561003"},
                    {"system": CLINICAL, "code": "active"},
                ]
            },
            True,
        ),
        ({"coding": [{"system": CLINICAL, "code": "activ"}]}, False),
        ({"coding": [{"code": "active"}]}, False),  # no system: not from the value set
        ({"coding": [{"system": SNOMED, "code": "55561003"}]}, False),
        ({"text": "Active"}, False),
    ],
)
def test_codeable_concept_under_a_required_binding(
    clinical_status: dict[str, Any], valid: bool
) -> None:
    """A CodeableConcept meets a required binding when one of its codings is
    from the value set (terminologies.html#strength)."""
    issues = validate(condition(clinicalStatus=clinical_status), "Condition")
    assert errors(issues) == ([] if valid else [("Condition.clinicalStatus", "code-invalid")])


@pytest.mark.parametrize(
    ("marital_status", "warned"),
    [
        (
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                        "code": "M",
                    }
                ]
            },
            False,
        ),
        ({"coding": [{"system": SNOMED, "code": "87915002"}]}, True),
        ({"text": "Married"}, False),
    ],
)
def test_extensible_binding_is_a_warning(marital_status: dict[str, Any], warned: bool) -> None:
    """Codings none of which is from an extensible value set give a warning,
    not an error; text alone is allowed."""
    issues = validate(patient(maritalStatus=marital_status), "Patient")
    assert errors(issues) == []
    assert [(i.path, i.code, i.severity) for i in issues] == (
        [("Patient.maritalStatus", "code-invalid", "warning")] if warned else []
    )


@pytest.mark.parametrize(
    ("res_type", "mutate"),
    [
        ("DocumentReference", lambda r: r["content"][0]["attachment"].update(contentType="pdf")),
        ("Patient", lambda r: r.update(language="English")),
        (
            "Patient",
            lambda r: r["extension"].append(
                {"url": "https://example.org/x", "valueMoney": {"value": 5, "currency": "QUID"}}
            ),
        ),
    ],
)
def test_value_sets_of_external_code_systems_are_not_checked(
    res_type: str, mutate: Callable[[dict[str, Any]], Any]
) -> None:
    """Mime types (BCP-13), currencies (ISO 4217) are required bindings whose
    codes R4 does not list, and languages are only preferred: not checked."""
    assert errors(validate(mutated(res_type, mutate), res_type)) == []


# -- references and contained resources ---------------------------------------------


@pytest.mark.parametrize(
    ("reference", "valid"),
    [
        ("Patient/amara-okafor", True),
        ("https://fhir.example.org/fhir/Patient/amara-okafor/_history/2", True),
        ("urn:uuid:0b5c2a42-0000-4000-8000-000000000001", True),
        ("#device", True),
        ("Encounter/ae-attendance", False),
        ("https://fhir.example.org/fhir/Practitioner/p1", False),
    ],
)
def test_reference_targets(reference: str, valid: bool) -> None:
    """A literal reference names a type the element allows: Observation.subject
    is Patient | Group | Device | Location in R4."""
    issues = validate(observation(subject={"reference": reference}), "Observation")
    assert errors(issues) == ([] if valid else [("Observation.subject.reference", "structure")])


def test_contained_resources_are_validated_as_their_type() -> None:
    """A contained resource is checked against its own definition, may not
    contain others (dom-2) nor carry a version, update time (dom-4) or
    security label (dom-5)."""
    resource = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/amara-okafor"},
        "medicationReference": {"reference": "#med"},
        "contained": [
            {
                "resourceType": "Medication",
                "id": "med",
                "form": "tablet",
                "meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"},
                "contained": [{"resourceType": "Organization", "id": "maker"}],
            },
            {"id": "no-type"},
        ],
    }
    issues = validate(resource, "MedicationRequest")
    assert [(i.path, i.code, i.key) for i in issues] == [
        ("MedicationRequest.contained[0].contained", "invariant", "dom-2"),
        ("MedicationRequest.contained[0].meta.versionId", "invariant", "dom-4"),
        ("MedicationRequest.contained[0].meta.lastUpdated", "invariant", "dom-4"),
        ("MedicationRequest.contained[0].form", "value", None),
        ("MedicationRequest.contained[1].resourceType", "structure", None),
    ]


def test_r4_types_are_r4_not_r4b() -> None:
    """Extension.value[x] has R4's Meta and not R4B's CodeableReference, and
    a contained resource may be of a type R4B removed (MedicinalProduct) but
    not of one R4B added (Ingredient)."""
    medicinal_product = {
        "resourceType": "MedicinalProduct",
        "id": "mp",
        "name": [{"productName": "Amlodipine 5mg tablets"}],
    }
    assert (
        validate(patient(extension=[{"url": "u", "valueMeta": {"versionId": "2"}}]), "Patient")
        == []
    )
    assert errors(
        validate(patient(extension=[{"url": "u", "valueCodeableReference": {}}]), "Patient")
    ) == [
        ("Patient.extension[0].valueCodeableReference", "structure"),
        ("Patient.extension[0]", "invariant"),
    ]
    assert validate(patient(contained=[medicinal_product]), "Patient") == []
    assert errors(
        validate(patient(contained=[{"resourceType": "Ingredient", "id": "i"}]), "Patient")
    ) == [("Patient.contained[0].resourceType", "structure")]


# -- the resource itself ----------------------------------------------------------


def test_resource_type_must_be_the_one_expected() -> None:
    """One issue, and nothing else is checked, when resourceType is wrong."""
    assert errors(validate(example("Patient"), "Practitioner")) == [
        ("Practitioner.resourceType", "invalid")
    ]
    assert errors(validate({"gender": "x"}, "Patient")) == [("Patient.resourceType", "invalid")]
    assert errors(validate([], "Patient")) == [("Patient", "structure")]
    assert errors(validate({"resourceType": "Nope"}, "Nope")) == [("Nope", "not-supported")]
    assert errors(validate({"resourceType": "ResearchStudy"}, "ResearchStudy")) == [
        ("ResearchStudy", "not-supported")
    ]


# -- the invariants hook ------------------------------------------------------------


class Evaluator:
    """A stand-in for the FHIRPath compiler: fails the expressions it is told to."""

    def __init__(self, failing: dict[str, bool], raising: frozenset[str] = frozenset()) -> None:
        self.failing = failing
        self.raising = raising
        self.compiled: list[str] = []
        self.calls: list[tuple[str, Any, Any]] = []

    def __call__(self, expression: str) -> Callable[[Any, Any], bool]:
        self.compiled.append(expression)

        def run(focus: Any, resource: Any, root: Any) -> bool:
            self.calls.append((expression, focus, resource))
            if expression in self.raising:
                raise ValueError("unsupported")
            return not self.failing.get(expression, False)

        return run


def test_invariants_are_evaluated_when_an_evaluator_is_given() -> None:
    """Each invariant outside STRUCTURAL_INVARIANTS is evaluated on each value
    of its element with the resource that holds it, compiled once per
    expression; a failure is an issue with the invariant's key, human text
    and severity."""
    obs_6 = next(c for c in table("Observation").constraints if c.key == "obs-6")
    per_1 = next(c for c in table("Period").constraints if c.key == "per-1")
    evaluator = Evaluator({obs_6.expression: True, per_1.expression: True})
    resource = observation(
        dataAbsentReason={"text": "lost"},
        valueString="x",
        effectivePeriod={"start": "2024-02-01", "end": "2024-01-01"},
    )
    issues = validate(resource, "Observation", invariants=evaluator)
    assert [(i.path, i.code, i.key, i.severity) for i in issues] == [
        ("Observation.effectivePeriod", "invariant", "per-1", "error"),
        ("Observation", "invariant", "obs-6", "error"),
    ]
    assert issues[1].message == f"obs-6: {obs_6.human}"
    assert len(evaluator.compiled) == len(set(evaluator.compiled))
    structural = {
        c.expression
        for t in ("Observation", "Period", "CodeableConcept", "Extension")
        for c in table(t).constraints
        if c.key in STRUCTURAL_INVARIANTS
    }
    assert structural and not structural & set(evaluator.compiled)
    period_calls = [(f, r) for e, f, r in evaluator.calls if e == per_1.expression]
    assert period_calls == [(resource["effectivePeriod"], resource)]
    validate(resource, "Observation", invariants=evaluator)
    assert len(evaluator.compiled) == len(set(evaluator.compiled))  # compiled once


def test_contained_resource_is_its_invariants_resource() -> None:
    """%resource for a contained resource's elements is the contained resource,
    and dom-6 (narrative) is not asked of it: contained resources have none."""
    dom_6 = next(c for c in table("Patient").constraints if c.key == "dom-6")
    evaluator = Evaluator({dom_6.expression: True})
    contained = {"resourceType": "Organization", "id": "o", "name": "A"}
    issues = validate(patient(contained=[contained]), "Patient", invariants=evaluator)
    org_calls = [r for e, f, r in evaluator.calls if f is contained]
    assert org_calls and all(r is contained for r in org_calls)
    assert [(i.path, i.key, i.severity) for i in issues] == [("Patient", "dom-6", "warning")]


def test_warning_invariant_and_failing_evaluator() -> None:
    """A warning invariant gives a warning; an evaluator that raises gives a
    processing error instead of failing the validation."""
    dom_6 = next(c for c in table("Patient").constraints if c.key == "dom-6")
    per_1 = next(c for c in table("Period").constraints if c.key == "per-1")
    evaluator = Evaluator({dom_6.expression: True}, raising=frozenset({per_1.expression}))
    issues = validate(
        patient(address=[{"period": {"start": "2020"}}]), "Patient", invariants=evaluator
    )
    assert [(i.path, i.code, i.key, i.severity) for i in issues] == [
        ("Patient.address[0].period", "processing", "per-1", "error"),
        ("Patient", "invariant", "dom-6", "warning"),
    ]


def test_no_invariants_without_an_evaluator() -> None:
    """Without an evaluator only the structural invariants are checked."""
    resource = observation(dataAbsentReason={"text": "lost"}, valueString="x")
    assert validate(resource, "Observation") == []


def test_first_use_from_many_threads_sees_only_whole_tables() -> None:
    """Tables compiled on first use by concurrent requests are published only
    when complete, so no thread reads a half-filled one."""
    from concurrent.futures import ThreadPoolExecutor

    from conformance.validator import _tables

    resources = [example(t) for t in TYPES]
    with _tables._lock:
        _tables._tables.clear()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda r: errors(validate(r, r["resourceType"])), resources * 4))
    assert results == [[]] * len(results)


def test_a_resource_nested_too_deep_is_refused_not_walked() -> None:
    """A body built to nest deeper than any resource needs is one issue at the
    depth it went too far, whatever its depth, and no RecursionError."""
    from conformance.validation import validate_resource
    from conformance.validator._walk import MAX_DEPTH

    for depth in (MAX_DEPTH + 1, 150, 400):
        resource: dict[str, Any] = {"resourceType": "Patient", "extension": []}
        current = resource
        for _ in range(depth):
            inner: dict[str, Any] = {"url": "http://example.org/x", "extension": []}
            current["extension"].append(inner)
            current = inner
        current["valueString"] = "x"
        del current["extension"]
        issues = validate_resource(resource, "Patient")
        assert [issue.code for issue in issues] == ["too-costly"], depth
        assert f"more than {MAX_DEPTH} objects deep" in issues[0].message
    shallow = {"resourceType": "Patient", "extension": [{"url": "http://x", "valueString": "a"}]}
    assert validate_resource(shallow, "Patient") == []


def test_control_characters_and_whitespace_inside_a_code_are_refused() -> None:
    """R4 asks that strings hold no character below U+0020 but tab, return
    and line feed (XML cannot carry one), and defines a code as having no
    whitespace but single spaces, which its 4.0.1 regex does not enforce."""
    from conformance.validation import validate_resource

    control = validate_resource(
        {"resourceType": "Patient", "name": [{"family": "Oka\u0001for"}]}, "Patient"
    )
    assert [(i.path, i.message) for i in control] == [
        ("Patient.name[0].family", "contains the control character U+0001")
    ]
    tab = validate_resource({"resourceType": "Patient", "gender": "ma\tle"}, "Patient")
    assert [i.path for i in tab] == ["Patient.gender"]
    kept = {"resourceType": "Patient", "name": [{"text": "Ada\tOkafor\r\nof Archway"}]}
    assert validate_resource(kept, "Patient") == []
