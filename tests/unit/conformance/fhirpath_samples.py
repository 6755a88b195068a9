"""Sample R4 resources and data-type values that break (or narrowly keep)
well-known invariants, for the FHIRPath tests: each names the invariant keys
it is meant to break, so a test can check the samples still do what they say.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

XHTML = "http://www.w3.org/1999/xhtml"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SUBJECT = {"reference": "Patient/amara-okafor"}


@dataclass(frozen=True)
class Sample:
    """A resource (or, with ``type_path``, a data-type value evaluated on its
    own) and the invariants it breaks."""

    name: str
    value: dict[str, Any]
    breaks: frozenset[str] = field(default_factory=frozenset)
    type_path: str | None = None


def _div(html: str) -> dict[str, str]:
    return {"status": "generated", "div": f'<div xmlns="{XHTML}">{html}</div>'}


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _observation(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": _coding(LOINC, "8480-6"),
        "subject": SUBJECT,
        **elements,
    }


def _condition(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": SUBJECT, **elements}


def _allergy(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "AllergyIntolerance", "patient": SUBJECT, **elements}


def _bundle(kind: str, entries: list[dict[str, Any]], **elements: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": entries, **elements}


def _timing(**repeat: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": SUBJECT,
        "medicationCodeableConcept": {"text": "amlodipine"},
        "dosageInstruction": [{"timing": {"repeat": repeat}}],
    }


def _q(value: Any, code: str, system: str = UCUM) -> dict[str, Any]:
    return {"value": value, "unit": code, "system": system, "code": code}


_ENTERED_IN_ERROR = _coding(ALLERGY_VERIFICATION, "entered-in-error")
_PROBLEM_LIST = _coding(
    "http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item"
)
_CONTAINED_PATIENT = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Okafor"}]}

SAMPLES: tuple[Sample, ...] = (
    # AllergyIntolerance
    Sample("allergy with no statuses", _allergy(), frozenset({"ait-1"})),
    Sample("allergy entered in error", _allergy(verificationStatus=_ENTERED_IN_ERROR)),
    Sample(
        "allergy entered in error with a clinical status",
        _allergy(
            verificationStatus=_ENTERED_IN_ERROR,
            clinicalStatus=_coding(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active"
            ),
        ),
        frozenset({"ait-2"}),
    ),
    # Observation
    Sample(
        "observation with a value and a data absent reason",
        _observation(
            valueQuantity=_q(120, "mm[Hg]"),
            dataAbsentReason=_coding(
                "http://terminology.hl7.org/CodeSystem/data-absent-reason", "unknown"
            ),
        ),
        frozenset({"obs-6"}),
    ),
    Sample(
        "observation whose component repeats its code, with a value",
        _observation(
            valueQuantity=_q(120, "mm[Hg]"),
            component=[{"code": _coding(LOINC, "8480-6"), "valueQuantity": _q(120, "mm[Hg]")}],
        ),
        frozenset({"obs-7"}),
    ),
    Sample(
        "observation whose component repeats its code, with no value",
        _observation(
            component=[{"code": _coding(LOINC, "8480-6"), "valueQuantity": _q(120, "mm[Hg]")}]
        ),
    ),
    Sample(
        "observation with an empty reference range",
        _observation(referenceRange=[{"text": "normal", "appliesTo": []}, {"age": {}}]),
        frozenset({"obs-3", "ele-1"}),
    ),
    Sample(
        "observation with a range whose high is below its low",
        _observation(valueRange={"low": _q(10, "mg"), "high": _q(5, "mg")}),
        frozenset({"rng-2"}),
    ),
    Sample(
        "observation with ranges in grams and milligrams, and in grams and millilitres",
        _observation(
            component=[
                {"code": {"text": "a"}, "valueRange": {"low": _q(1, "g"), "high": _q(500, "mg")}},
                {"code": {"text": "b"}, "valueRange": {"low": _q(1, "g"), "high": _q(1500, "mg")}},
                {"code": {"text": "c"}, "valueRange": {"low": _q(1, "g"), "high": _q(5, "mL")}},
            ],
        ),
        frozenset({"rng-2"}),
    ),
    Sample(
        "observation with a quantity code but no system",
        _observation(valueQuantity={"value": 5, "code": "mg"}),
        frozenset({"qty-3"}),
    ),
    Sample(
        "observation with an integer-valued decimal and a string with extensions",
        _observation(
            valueQuantity={"value": 1.0, "unit": "mg", "system": UCUM, "code": "mg"},
            note=[
                {
                    "text": "x",
                    "_text": {"extension": [{"url": "http://e.org/a", "valueString": "y"}]},
                }
            ],
        ),
    ),
    # Period and dates
    Sample(
        "encounter ending before it starts",
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "period": {"start": "2024-03-12T10:00:00Z", "end": "2024-03-12T09:00:00Z"},
        },
        frozenset({"per-1"}),
    ),
    Sample(
        "encounter periods at mixed precision",
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "period": {"start": "2020", "end": "2020-06"},
            "statusHistory": [
                {"status": "planned", "period": {"start": "2020-01-01", "end": "2021"}},
                {"status": "arrived", "period": {"start": "2021-07", "end": "2020"}},
                {
                    "status": "finished",
                    "period": {"start": "2024-03-12T10:00:00+01:00", "end": "2024-03-12T09:30:00Z"},
                },
            ],
        },
        frozenset({"per-1"}),
    ),
    Sample(
        "task modified before it was authored",
        {
            "resourceType": "Task",
            "status": "ready",
            "intent": "order",
            "authoredOn": "2024-03-12T10:00:00Z",
            "lastModified": "2024-03-11T10:00:00Z",
        },
        frozenset({"inv-1"}),
    ),
    # References and contained resources
    Sample(
        "local reference to nothing contained",
        {"resourceType": "Condition", "subject": {"reference": "#nobody"}},
        frozenset({"ref-1"}),
    ),
    Sample(
        "references by identifier and display only",
        {
            "resourceType": "Condition",
            "subject": {
                "identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}
            },
            "recorder": {"display": "Dr Khan"},
        },
    ),
    Sample(
        "contained resource referred to",
        {
            "resourceType": "Condition",
            "contained": [_CONTAINED_PATIENT],
            "subject": {"reference": "#p1"},
        },
    ),
    Sample(
        "contained resource that nothing refers to",
        {"resourceType": "Condition", "contained": [_CONTAINED_PATIENT], "subject": SUBJECT},
        frozenset({"dom-3"}),
    ),
    Sample(
        "contained resource that contains another",
        {
            "resourceType": "Condition",
            "contained": [
                {**_CONTAINED_PATIENT, "contained": [{"resourceType": "Organization", "id": "o"}]}
            ],
            "subject": {"reference": "#p1"},
        },
        frozenset({"dom-2", "dom-3", "org-1"}),
    ),
    Sample(
        "contained resource with a version and a security label",
        {
            "resourceType": "Condition",
            "contained": [
                {
                    **_CONTAINED_PATIENT,
                    "meta": {
                        "versionId": "2",
                        "security": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                "code": "R",
                            }
                        ],
                    },
                }
            ],
            "subject": {"reference": "#p1"},
        },
        frozenset({"dom-4", "dom-5"}),
    ),
    Sample(
        "contained resource that refers back to its container",
        {
            "resourceType": "Condition",
            "id": "c1",
            "contained": [
                {
                    "resourceType": "Provenance",
                    "id": "prov",
                    "target": [{"reference": "#"}],
                    "recorded": "2024-01-01T00:00:00Z",
                    "agent": [{"who": {"display": "x"}}],
                }
            ],
            "subject": SUBJECT,
        },
    ),
    Sample(
        "care team member on behalf of an organisation, member a contained patient",
        {
            "resourceType": "CareTeam",
            "contained": [_CONTAINED_PATIENT],
            "participant": [
                {"member": {"reference": "#p1"}, "onBehalfOf": {"reference": "Organization/o"}},
                {
                    "member": {"reference": "Practitioner/x"},
                    "onBehalfOf": {"reference": "Organization/o"},
                },
            ],
        },
        frozenset({"ctm-1"}),
    ),
    Sample(
        "descriptive group with members",
        {
            "resourceType": "Group",
            "type": "person",
            "actual": False,
            "member": [{"entity": {"reference": "Patient/p1"}}],
        },
        frozenset({"grp-1"}),
    ),
    Sample(
        "descriptive group with no members",
        {"resourceType": "Group", "type": "person", "actual": False},
    ),
    # Elements, extensions, narrative
    Sample(
        "elements with no value and no children",
        {
            "resourceType": "Patient",
            "name": [{"id": "n1"}, {}],
            "_birthDate": {"id": "b1"},
            "maritalStatus": {"coding": [{}]},
        },
        frozenset({"ele-1"}),
    ),
    Sample(
        "primitive with extensions and no value",
        {
            "resourceType": "Patient",
            "_birthDate": {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                        "valueCode": "unknown",
                    }
                ]
            },
            "name": [
                {
                    "given": ["Amara", None],
                    "_given": [
                        None,
                        {"extension": [{"url": "http://e.org/a", "valueString": "x"}]},
                    ],
                }
            ],
        },
    ),
    Sample(
        "extensions with both a value and extensions, and with neither",
        {
            "resourceType": "Patient",
            "extension": [
                {
                    "url": "http://e.org/both",
                    "valueString": "x",
                    "extension": [{"url": "a", "valueString": "y"}],
                },
                {"url": "http://e.org/neither"},
            ],
        },
        frozenset({"ext-1"}),
    ),
    Sample(
        "narrative with a script",
        {"resourceType": "Patient", "text": _div("<script>alert(1)</script>Amara")},
        frozenset({"txt-1", "txt-2"}),
    ),
    Sample(
        "narrative with only whitespace",
        {"resourceType": "Patient", "text": _div("  <p> </p> ")},
        frozenset({"txt-1", "txt-2"}),
    ),
    Sample(
        "narrative with tables, images and entities",
        {
            "resourceType": "Patient",
            "text": _div(
                '<table class="x"><tr><td colspan="2">Amara&nbsp;Okafor &amp; co</td></tr></table>'
                '<img src="#photo" alt="photo"/><a href="https://example.org">more</a>'
            ),
        },
    ),
    Sample(
        "patient with no narrative",
        {"resourceType": "Patient", "active": True},
        frozenset({"dom-6"}),
    ),
    Sample(
        "patient contact with nothing to reach them by",
        {"resourceType": "Patient", "contact": [{"relationship": [{"text": "neighbour"}]}]},
        frozenset({"pat-1"}),
    ),
    # Condition
    Sample(
        "problem-list condition with no clinical status",
        _condition(category=[_PROBLEM_LIST], code={"text": "asthma"}),
        frozenset({"con-3"}),
    ),
    Sample(
        "active condition that has abated",
        _condition(
            clinicalStatus=_coding(CONDITION_CLINICAL, "active"),
            abatementDateTime="2024-01-01",
        ),
        frozenset({"con-4"}),
    ),
    Sample(
        "condition entered in error with a clinical status",
        _condition(
            clinicalStatus=_coding(CONDITION_CLINICAL, "active"),
            verificationStatus=_coding(CONDITION_VERIFICATION, "entered-in-error"),
        ),
        frozenset({"con-5"}),
    ),
    Sample(
        "condition stage and evidence with nothing in them",
        _condition(
            clinicalStatus=_coding(CONDITION_CLINICAL, "active"),
            stage=[{"type": {"text": "x"}}],
            evidence=[{"extension": [{"url": "http://e.org/a", "valueString": "x"}]}],
            onsetAge={"value": -3, "unit": "a", "system": "http://example.org/units", "code": "a"},
        ),
        frozenset({"con-1", "con-2", "age-1"}),
    ),
    # Organisation, contact points, attachments
    Sample(
        "organisation with no identifier or name, a home address and phone",
        {
            "resourceType": "Organization",
            "address": [{"use": "home", "city": "London"}],
            "telecom": [
                {"use": "home", "system": "phone", "value": "020"},
                {"value": "020 7946 0000"},
            ],
        },
        frozenset({"org-1", "org-2", "org-3", "cpt-2"}),
    ),
    Sample(
        "document with data but no content type",
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "content": [{"attachment": {"data": "aGVsbG8="}}],
        },
        frozenset({"att-1"}),
    ),
    # List
    Sample(
        "list with entries and an empty reason, deleted and dated in a snapshot",
        {
            "resourceType": "List",
            "status": "current",
            "mode": "snapshot",
            "emptyReason": {"text": "none"},
            "entry": [{"item": SUBJECT, "deleted": True, "date": "2024-01-01"}],
        },
        frozenset({"lst-1", "lst-2", "lst-3"}),
    ),
    # Bundles
    Sample(
        "collection with a total and search entries",
        _bundle(
            "collection",
            [
                {
                    "fullUrl": "urn:uuid:1",
                    "resource": {"resourceType": "Patient"},
                    "search": {"mode": "match"},
                }
            ],
            total=1,
        ),
        frozenset({"bdl-1", "bdl-2"}),
    ),
    Sample(
        "transaction entry with no request, batch-response with no response",
        _bundle(
            "transaction", [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}}]
        ),
        frozenset({"bdl-3"}),
    ),
    Sample(
        "batch response with no responses",
        _bundle("batch-response", [{"resource": {"resourceType": "Patient"}}]),
        frozenset({"bdl-4"}),
    ),
    Sample(
        "document without a composition first, an identifier or a timestamp",
        _bundle("document", [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}}]),
        frozenset({"bdl-9", "bdl-10", "bdl-11"}),
    ),
    Sample(
        "message without a message header first",
        _bundle("message", [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}}]),
        frozenset({"bdl-12"}),
    ),
    Sample(
        "collection with a repeated full URL, a versioned one, and an empty entry",
        _bundle(
            "collection",
            [
                {
                    "fullUrl": "https://x.org/Patient/1",
                    "resource": {"resourceType": "Patient", "id": "1"},
                },
                {
                    "fullUrl": "https://x.org/Patient/1",
                    "resource": {"resourceType": "Patient", "id": "1"},
                },
                {
                    "fullUrl": "https://x.org/Patient/2/_history/1",
                    "resource": {"resourceType": "Patient", "id": "2"},
                },
                {"link": [{"relation": "self", "url": "https://x.org"}]},
            ],
        ),
        frozenset({"bdl-5", "bdl-7", "bdl-8"}),
    ),
    # Timing
    Sample(
        "timing with units missing and a negative duration",
        _timing(duration=-1, period=1, periodMax=2),
        frozenset({"tim-1", "tim-2", "tim-4"}),
    ),
    Sample(
        "timing with maxima alone, an offset from a meal, a time of day and a when",
        _timing(
            durationMax=2,
            periodMax=2,
            countMax=3,
            offset=30,
            when=["C"],
            timeOfDay=["08:00:00"],
            period=-1,
            periodUnit="d",
        ),
        frozenset({"tim-5", "tim-7", "tim-8", "tim-9", "tim-10"}),
    ),
    Sample("timing with a period maximum alone", _timing(periodMax=2), frozenset({"tim-6"})),
    Sample(
        "timing with an offset after waking",
        _timing(offset=30, when=["WAKE"], duration=5.5, durationUnit="min"),
    ),
    # Others in scope
    Sample(
        "administration dosage with no dose or rate",
        {
            "resourceType": "MedicationAdministration",
            "status": "completed",
            "medicationCodeableConcept": {"text": "x"},
            "subject": SUBJECT,
            "effectiveDateTime": "2024-01-01",
            "dosage": {"text": "one tablet"},
        },
        frozenset({"mad-1"}),
    ),
    Sample(
        "ratio with a numerator alone and a count with a decimal",
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "subject": SUBJECT,
            "medicationCodeableConcept": {"text": "x"},
            "dosageInstruction": [
                {"doseAndRate": [{"rateRatio": {"numerator": _q(1, "mg")}}]},
                {"maxDosePerPeriod": {"numerator": _q(1, "mg"), "denominator": _q(1, "d")}},
            ],
        },
        frozenset({"rat-1"}),
    ),
    Sample(
        "consent with no policy",
        {
            "resourceType": "Consent",
            "status": "active",
            "scope": _coding(
                "http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"
            ),
            "category": [{"text": "x"}],
        },
        frozenset({"ppc-1"}),
    ),
    Sample(
        "parameters with a value and a resource, and with neither",
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "a", "valueString": "x", "resource": {"resourceType": "Patient"}},
                {"name": "b"},
                {"name": "c", "part": [{"name": "d", "valueInteger": 1}]},
            ],
        },
        frozenset({"inv-1"}),
    ),
    Sample(
        "immunisation education with nothing in it",
        {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": {"text": "flu"},
            "patient": SUBJECT,
            "occurrenceDateTime": "2023-10-14",
            "education": [{"presentationDate": "2023-10-14"}],
        },
        frozenset({"imm-1"}),
    ),
    Sample(
        "audit entity with a name and a query",
        {
            "resourceType": "AuditEvent",
            "type": {"code": "rest"},
            "recorded": "2024-01-01T00:00:00Z",
            "agent": [{"requestor": True}],
            "source": {"observer": {"display": "gateway"}},
            "entity": [{"name": "x", "query": "eA=="}],
        },
        frozenset({"sev-1"}),
    ),
    Sample(
        "service request with order details and no code",
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "subject": SUBJECT,
            "orderDetail": [{"text": "fasting"}],
        },
        frozenset({"prr-1"}),
    ),
    Sample(
        "composition sections with nothing, and with entries and an empty reason",
        {
            "resourceType": "Composition",
            "status": "final",
            "type": {"text": "x"},
            "date": "2024-01-01",
            "author": [{"display": "x"}],
            "title": "x",
            "section": [
                {"title": "a"},
                {"title": "b", "emptyReason": {"text": "none"}, "entry": [SUBJECT]},
            ],
        },
        frozenset({"cmp-1", "cmp-2"}),
    ),
    Sample(
        "care plan activity with a detail and a reference",
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "subject": SUBJECT,
            "activity": [
                {"reference": {"reference": "ServiceRequest/x"}, "detail": {"status": "scheduled"}}
            ],
        },
        frozenset({"cpl-3"}),
    ),
    # Data types on their own (not reached from the resources in scope).
    Sample(
        "distance in miles",
        {"value": 3, "system": "http://x.org", "code": "mi"},
        frozenset({"dis-1"}),
        "Distance",
    ),
    Sample(
        "count with a decimal",
        {"value": 1.5, "system": UCUM, "code": "1"},
        frozenset({"cnt-3"}),
        "Count",
    ),
    Sample("count of one", {"value": 1, "system": UCUM, "code": "1"}, type_path="Count"),
    Sample(
        "duration with a code and no system",
        {"value": 1, "code": "d"},
        frozenset({"qty-3"}),
        "Duration",
    ),
    Sample(
        "duration not in UCUM",
        {"value": 1, "system": "http://x.org", "code": "d"},
        frozenset({"drt-1"}),
        "Duration",
    ),
    Sample(
        "money quantity in UCUM",
        {"value": 1, "system": UCUM, "code": "GBP"},
        frozenset({"mqty-1"}),
        "MoneyQuantity",
    ),
    Sample(
        "simple quantity with a comparator",
        {"value": 1, "comparator": "<"},
        frozenset({"sqty-1"}),
        "SimpleQuantity",
    ),
    Sample(
        "expression with neither", {"language": "text/fhirpath"}, frozenset({"exp-1"}), "Expression"
    ),
    Sample(
        "trigger definitions broken",
        {
            "type": "periodic",
            "data": [{"type": "Patient"}],
            "timingDate": "2024-01-01",
            "condition": {"language": "text/fhirpath", "expression": "true"},
        },
        frozenset({"trd-1"}),
        "TriggerDefinition",
    ),
    Sample(
        "named event without a name",
        {"type": "named-event", "condition": {"language": "text/fhirpath", "expression": "true"}},
        frozenset({"trd-2", "trd-3"}),
        "TriggerDefinition",
    ),
    Sample(
        "data requirement filters with a path and a search parameter",
        {
            "type": "Patient",
            "codeFilter": [{"path": "code", "searchParam": "code"}],
            "dateFilter": [{}],
        },
        frozenset({"drq-1", "drq-2", "ele-1"}),
        "DataRequirement",
    ),
    Sample(
        "element definition broken many ways",
        {
            "path": "Patient.name",
            "sliceName": "bad slice!",
            "min": 2,
            "max": "1",
            "type": [
                {"code": "string"},
                {"code": "string", "aggregation": ["contained"], "targetProfile": ["http://x.org"]},
            ],
            "constraint": [
                {"key": "a", "severity": "error", "human": "x"},
                {"key": "a", "severity": "error", "human": "y"},
            ],
            "defaultValueString": "x",
            "meaningWhenMissing": "y",
            "fixedString": "x",
            "patternString": "x",
            "isModifier": True,
            "binding": {"strength": "required", "valueSet": "ftp://x"},
            "slicing": {"rules": "open"},
            "sliceIsConstraining": True,
        },
        frozenset(
            {
                "eld-1",
                "eld-2",
                "eld-4",
                "eld-6",
                "eld-7",
                "eld-8",
                "eld-12",
                "eld-13",
                "eld-14",
                "eld-15",
                "eld-16",
                "eld-17",
                "eld-18",
                "eld-21",
            }
        ),
        "ElementDefinition",
    ),
    Sample(
        "element definition with a content reference, bad paths",
        {
            "path": "patient..x y",
            "contentReference": "#Patient.name",
            "type": [{"code": "CodeableConcept"}],
            "binding": {"strength": "required"},
            "max": "-1",
        },
        # eld-20's pattern is unanchored, so "patient..x y" passes it.
        frozenset({"eld-3", "eld-5"}),
        "ElementDefinition",
    ),
    # eld-11 is meant to fail this, but its select() keeps a false: it never fails.
    Sample(
        "element definition with a binding on a boolean",
        {
            "path": "Patient.active",
            "type": [{"code": "boolean"}],
            "binding": {"strength": "required"},
        },
        frozenset(),
        "ElementDefinition",
    ),
)


def _resources(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        return [data] if "resourceType" in data else []
    if isinstance(data, list):
        return [r for item in data for r in _resources(item)]
    return []


def fixture_resources() -> list[tuple[str, dict[str, Any]]]:
    """Every R4 resource among the repository's test fixtures: the R4 examples
    and the mappings' expected outputs (their inputs are not R4)."""
    found = []
    paths = sorted(FIXTURES.glob("r4/*.json")) + sorted(FIXTURES.rglob("*.expected.json"))
    for path in paths:
        resources = _resources(json.loads(path.read_text("utf-8")))
        for position, resource in enumerate(resources):
            name = str(path.relative_to(FIXTURES))
            found.append((name if len(resources) == 1 else f"{name}[{position}]", resource))
    return found
