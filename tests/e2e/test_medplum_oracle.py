"""Medplum's validator as an independent oracle for the gateway's (issue 26).

Every resource of the tests' R4 examples (``tests/fixtures/r4``), of the
mappings' golden outputs (``tests/fixtures/*/*.expected.json``), of a small
demo (each live resource in its store, and the Red Bag and summary documents
built for each of its people) and a set of challenges (small resources that
each break, or test the edge of, one rule) is judged twice: by the gateway
(``conformance.validation.validate_resource``) and by Medplum's
``validateResource`` (npm ``@medplum/core``, one node process for all of
them: ``tests/support/medplum_oracle.py``). The two call each resource valid
or invalid alike, except the challenges in ``KNOWN_DIFFERENCES``, each with
its cause and why; a listed difference that goes away fails too, so that the
list and docs/validation-oracle.md (the figures, and every difference
explained) stay true.

Skipped, with the reason, where node or npm is missing or the pinned
packages cannot be installed (no network), on CI as elsewhere: the oracle is
a second opinion, and this test fails only when the two disagree.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from conformance.validation import ValidationIssue, validate_resource
from gateway import fhirjson
from gateway.demo.launch import prepare
from gateway.documents.sections import KINDS
from gateway.operations.documents import document
from gateway.store import StoredVersion, open_store
from tests.support import medplum_oracle

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "validation-oracle.txt"
# The demo of tests/e2e/test_demo_documents.py, made again in a directory of this test's own.
PEOPLE, SEED, TODAY = 240, 11, date(2026, 12, 7)
BASE = "http://gateway.test/fhir"
CHALLENGE = "challenge"

# The causes of a difference (docs/validation-oracle.md explains each).
NOT_CHECKED = "an R4 rule Medplum's validator does not check"
LENIENT = "a Medplum leniency or bug"
MEDPLUM_R4 = "Medplum's edits of R4"
STRICTER = "Medplum stricter than R4"


# The resources the challenges are made of.
SUBJECT = {"reference": "Patient/amara-okafor"}
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
EXTENSION = {"url": "https://example.org/fhir/StructureDefinition/x", "valueString": "y"}


def _patient(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **elements}


def _observation(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "Pulse"}, **elements}


def _condition(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "subject": SUBJECT, **elements}


def _allergy(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "AllergyIntolerance", "patient": SUBJECT, **elements}


def _prescription(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": SUBJECT,
        "medicationCodeableConcept": {"text": "Amlodipine 5mg tablets"},
        **elements,
    }


def _attachment(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": {"contentType": "text/plain", **elements}}],
    }


def _contained(resource: dict[str, Any]) -> dict[str, Any]:
    """A Patient containing ``resource``, and referring to it."""
    return _patient(
        contained=[resource],
        extension=[
            {
                "url": "https://example.org/fhir/StructureDefinition/x",
                "valueReference": {"reference": f"#{resource.get('id')}"},
            }
        ],
    )


def _organisation(**elements: Any) -> dict[str, Any]:
    return {"resourceType": "Organization", "id": "o", "name": "Whittington Health", **elements}


def _composition(**elements: Any) -> dict[str, Any]:
    return {
        "resourceType": "Composition",
        "status": "final",
        "type": {"text": "Summary"},
        "date": "2024-03-12",
        "author": [{"display": "Dr Adaeze Okoye"}],
        "title": "Summary",
        **elements,
    }


def _bundle(kind: str, *entries: dict[str, Any], **elements: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries), **elements}


# Each a small resource that breaks, or tests the edge of, one rule.
CHALLENGES: dict[str, dict[str, Any]] = {
    # FHIR JSON (https://hl7.org/fhir/R4/json.html) and structure.
    "an unknown element": _patient(nickname="Amy"),
    "an array for a single value": _patient(gender=["female"]),
    "a single value for an array": _patient(name={"family": "Okafor"}),
    "a null": _patient(birthDate=None),
    "a null in a primitive array, without extensions": _patient(name=[{"given": ["Amara", None]}]),
    "a null in a primitive array, beside its extensions": _patient(
        name=[{"given": ["Amara", None], "_given": [None, {"extension": [EXTENSION]}]}]
    ),
    "an empty string": _patient(gender=""),
    "an empty object": _patient(maritalStatus={}),
    "an empty object inside another": _patient(identifier=[{"value": "1", "period": {}}]),
    "an empty array": _patient(name=[]),
    "a blank string": _patient(name=[{"family": "   "}]),
    "a string with spaces around it": _patient(name=[{"family": "  Okafor  "}]),
    "a resourceType inside a data type": _patient(
        name=[{"resourceType": "HumanName", "family": "Okafor"}]
    ),
    "a primitive's extensions": _patient(
        birthDate="1986-07-14", _birthDate={"extension": [EXTENSION]}
    ),
    "an unknown element beside a primitive": _patient(birthDate="1986-07-14", _birthDate={"x": 1}),
    "two types of one choice element": _observation(valueString="72", valueInteger=72),
    "a choice element of a type it does not allow": _observation(valueMeta={"versionId": "1"}),
    "a missing required element": {"resourceType": "Observation", "code": {"text": "Pulse"}},
    "an extension without url": _patient(extension=[{"valueString": "y"}]),
    "a modifier extension without url": _patient(modifierExtension=[{"valueBoolean": True}]),
    "an extension with a value and extensions (ext-1)": _patient(
        extension=[{**EXTENSION, "extension": [{"url": "a", "valueString": "b"}]}]
    ),
    "a valueMeta extension (R4, not R4B)": _patient(
        extension=[{"url": "https://example.org/x", "valueMeta": {"versionId": "2"}}]
    ),
    # Primitive types (https://hl7.org/fhir/R4/datatypes.html#primitive).
    "a boolean as a string": _patient(active="true"),
    "a decimal as a string": _observation(valueQuantity={"value": "72"}),
    "an integer written 1.0": _observation(valueInteger=1.0),
    "an integer out of range": _observation(valueInteger=2147483648),
    "a positiveInt of 0": _prescription(
        dosageInstruction=[{"timing": {"repeat": {"frequency": 0}}}]
    ),
    "an unsignedInt of -1": _attachment(size=-1),
    "a date that is no day": _patient(birthDate="2023-02-29"),
    "the year 0000": _patient(birthDate="0000"),
    "a dateTime without seconds": _observation(effectiveDateTime="2024-03-12T08:25"),
    "a dateTime without a time zone": _observation(effectiveDateTime="2024-03-12T08:25:00"),
    "a dateTime with a leap second": _observation(effectiveDateTime="2016-12-31T23:59:60Z"),
    "a dateTime at +14:30": _observation(effectiveDateTime="2024-03-12T08:25:00+14:30"),
    "an instant without a time zone": _observation(issued="2024-03-12T08:25:00"),
    "an instant to ten decimal places": _observation(issued="2024-03-12T08:26:13.1234567890Z"),
    "a time out of range": _observation(valueTime="25:00:00"),
    "a time to ten decimal places": _observation(valueTime="08:26:13.1234567890"),
    "an id with an underscore": _patient(id="amara_okafor"),
    "an id of 65 characters": _patient(id="a" * 65),
    "a meta.versionId with an underscore": _patient(meta={"versionId": "1_2"}),
    "an element id with a space": _patient(name=[{"id": "a b", "family": "Okafor"}]),
    "a uri with a space": _patient(identifier=[{"system": "http://a b", "value": "1"}]),
    "a code with a leading space": _patient(gender=" female"),
    "a code with a tab": _observation(
        valueQuantity={"value": 120, "system": "http://unitsofmeasure.org", "code": "mm\tHg"}
    ),
    "a string with a control character": _patient(name=[{"family": "Oka\u0001for"}]),
    "a string with U+0000": _patient(name=[{"family": "Oka\u0000for"}]),
    "base64 that is not": _attachment(data="not base64!"),
    "base64 with a slash": _attachment(data="ab/c"),
    "base64 with a space": _attachment(data="aGVs bG8="),
    # Required bindings.
    "a code outside its required value set": _patient(gender="bogus"),
    "a CodeableConcept outside its required value set": _condition(
        clinicalStatus={"coding": [{"system": CLINICAL, "code": "bogus"}]}
    ),
    "a Quantity comparator outside its value set": _observation(
        valueQuantity={"value": 72, "comparator": "~"}
    ),
    "a narrative status outside its value set": _patient(
        text={"status": "bogus", "div": f"<div {XHTML}>Amara Okafor</div>"}
    ),
    # References and contained resources.
    "a reference to a type the element does not allow": _observation(
        subject={"reference": "Encounter/e1"}
    ),
    "an absolute reference to a type the element does not allow": _observation(
        subject={"reference": "https://example.org/fhir/Encounter/e1"}
    ),
    "a reference by urn:uuid": _observation(
        subject={"reference": "urn:uuid:6b7a3ae5-3b1e-4bb8-9c9e-fb5e6f3b0d21"}
    ),
    "a conditional reference": _observation(
        subject={"reference": "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009"}
    ),
    "a reference with only a display": _observation(subject={"display": "Amara Okafor"}),
    "a reference to a contained resource that is not there (ref-1)": _observation(
        subject={"reference": "#nobody"}
    ),
    "a contained resource without resourceType": _contained({"id": "o"}),
    "a contained resource of an R4 type R4B removed": _contained(
        {"resourceType": "MedicinalProduct", "id": "m", "name": [{"productName": "x"}]}
    ),
    "a contained resource of an R4B type": _contained(
        {"resourceType": "Ingredient", "id": "i", "status": "active", "role": {"text": "x"}}
        | {"substance": {"code": {"concept": {"text": "x"}}}}
    ),
    "a contained resource of a Medplum type": _contained(
        {"resourceType": "Bot", "id": "b", "name": "x"}
    ),
    "a contained resource with a versionId (dom-4)": _contained(
        _organisation(meta={"versionId": "1"})
    ),
    "a contained resource with a security label (dom-5)": _contained(
        _organisation(meta={"security": [{"system": "http://example.org/s", "code": "R"}]})
    ),
    "a contained resource with a narrative (dom-6, a warning)": _contained(
        _organisation(text={"status": "generated", "div": f"<div {XHTML}>x</div>"})
    ),
    "a contained resource within a contained resource (dom-2)": _contained(
        _organisation(contained=[_organisation(id="p")])
    ),
    "a contained resource nothing refers to (dom-3)": _patient(contained=[_organisation()]),
    # Medplum's own elements of Meta.
    "Medplum's Meta.project": _patient(meta={"project": "0b4e0a3a-7a02-4a5c-b8b6-1c2f0f7f1a11"}),
    "Medplum's Meta.author": _patient(meta={"author": {"reference": "Practitioner/p1"}}),
    "Medplum's Meta.compartment": _patient(meta={"compartment": [{"reference": "Patient/p1"}]}),
    # Invariants of the resources.
    "an allergy with neither status (ait-1)": _allergy(),
    "an allergy entered in error with a clinical status (ait-2)": _allergy(
        clinicalStatus={"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
        verificationStatus={
            "coding": [{"system": ALLERGY_VERIFICATION, "code": "entered-in-error"}]
        },
    ),
    "an observation with a value and a data absent reason (obs-6)": _observation(
        valueString="x", dataAbsentReason={"text": "unknown"}
    ),
    "an observation with a value and a component of its code (obs-7)": _observation(
        code={"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        valueQuantity={"value": 72},
        component=[
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "valueQuantity": {"value": 72},
            }
        ],
    ),
    "a reference range with no low, high or text (obs-3)": _observation(
        referenceRange=[{"type": {"text": "normal"}}]
    ),
    "a condition abated while active (con-4)": _condition(
        clinicalStatus={"coding": [{"system": CLINICAL, "code": "active"}]},
        abatementDateTime="2024-01-01",
    ),
    "a condition with neither status (con-3, a warning)": _condition(),
    "an organisation with neither name nor identifier (org-1)": {
        "resourceType": "Organization",
        "active": True,
    },
    "a patient contact with no details (pat-1)": _patient(contact=[{"gender": "female"}]),
    "a list with entries and an empty reason (lst-1)": {
        "resourceType": "List",
        "status": "current",
        "mode": "working",
        "emptyReason": {"text": "none"},
        "entry": [{"item": {"reference": "Condition/c1"}}],
    },
    "a composition section with no text, entries or sections (cmp-1)": _composition(
        section=[{"title": "Allergies"}]
    ),
    "a consent with no policy (ppc-1)": {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"text": "Privacy"}],
    },
    "a document with no identifier (bdl-9)": _bundle(
        "document",
        {"fullUrl": "urn:uuid:6b7a3ae5-3b1e-4bb8-9c9e-fb5e6f3b0d21", "resource": _composition()},
        timestamp="2024-03-12T08:25:00Z",
    ),
    "a bundle with a fullUrl twice (bdl-7)": _bundle(
        "collection",
        {"fullUrl": "https://example.org/fhir/Patient/a", "resource": _patient(id="a")},
        {"fullUrl": "https://example.org/fhir/Patient/a", "resource": _patient(id="a")},
    ),
    "a bundle entry that is not valid": _bundle(
        "collection",
        {"fullUrl": "https://example.org/fhir/Patient/a", "resource": _patient(gender=["female"])},
    ),
    "a batch-response outcome that is a Patient": _bundle(
        "batch-response",
        {"response": {"status": "200", "outcome": _patient(id="b")}},
    ),
    "a timing with a duration and no unit (tim-1)": _prescription(
        dosageInstruction=[{"timing": {"repeat": {"duration": 2}}}]
    ),
    # Invariants of the data types.
    "a period that ends before it starts (per-1)": _observation(
        effectivePeriod={"start": "2024-03-12", "end": "2024-03-11"}
    ),
    "a period of a day ending in its year (per-1)": _observation(
        effectivePeriod={"start": "2024-03-12", "end": "2024"}
    ),
    "a quantity with a code and no system (qty-3)": _observation(
        valueQuantity={"value": 72, "code": "/min"}
    ),
    "a simple quantity with a comparator (sqty-1)": _prescription(
        dispenseRequest={"quantity": {"value": 28, "comparator": "<"}}
    ),
    "an age with no code (age-1)": _condition(onsetAge={"value": 5, "unit": "years"}),
    "a contact point with a value and no system (cpt-2)": _patient(
        telecom=[{"value": "020 7946 0000"}]
    ),
    "an attachment with data and no content type (att-1)": {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": {"data": "aGVsbG8="}}],
    },
    "a narrative with a script (txt-1)": _patient(
        text={"status": "generated", "div": f"<div {XHTML}><script>alert(1)</script>x</div>"}
    ),
    "a narrative not in a div (txt-1)": _patient(
        text={"status": "generated", "div": f"<p {XHTML}>Amara Okafor</p>"}
    ),
    "a narrative with no content (txt-2)": _patient(
        text={"status": "generated", "div": f"<div {XHTML}>   </div>"}
    ),
}


@dataclass(frozen=True)
class Difference:
    """Why the two validators judge a challenge differently: the cause, which
    of them calls it valid, and the explanation."""

    cause: str
    gateway_valid: bool
    why: str


_DATA_TYPE_INVARIANTS = (
    "Medplum evaluates the invariants of a data type (per-1, qty-3, sqty-1, age-1, cpt-2, "
    "att-1, ref-1, ...) only when the data type is the thing validated, never on a value "
    "inside a resource; the gateway evaluates them wherever the type is used"
)
_BINDINGS = (
    "Medplum's validateResource checks no terminology binding: it only collects the codes of "
    "required bindings for its server to look up; the gateway checks every required binding "
    "whose codes R4 defines"
)
_HTML_CHECKS = (
    "Medplum's FHIRPath htmlChecks() always answers true, so txt-1 and txt-2 never fail; the "
    "gateway parses the XHTML and applies R4's narrative rules"
)
_TARGETS = (
    "Medplum reports a reference to a type the element does not allow as a warning only (its "
    "code: 'should be an error ... to avoid breaking existing code')"
)
_MEDPLUM_META = (
    "Medplum's copy of R4 adds project, author, account, accounts, compartment, onBehalfOf "
    "and deleted to Meta; R4's Meta has none of them (conformance/definitions/r4/README.md)"
)
_EMPTY = (
    "R4 JSON has no empty arrays, objects or strings (json.html: a property is absent or has "
    "a value; ele-1: every element has a value or children); Medplum skips ele-1 and lets "
    "empty values through"
)
_NINE_DIGITS = (
    "R4's regex allows any number of decimal places of a second; Medplum's allows at most 9"
)

KNOWN_DIFFERENCES: dict[str, Difference] = {
    "an empty string": Difference(NOT_CHECKED, False, _EMPTY),
    "an empty object": Difference(NOT_CHECKED, False, _EMPTY),
    "an empty object inside another": Difference(NOT_CHECKED, False, _EMPTY),
    "an empty array": Difference(NOT_CHECKED, False, _EMPTY),
    "a resourceType inside a data type": Difference(
        LENIENT,
        False,
        "Medplum never reports a property named resourceType as unknown, wherever it is",
    ),
    "two types of one choice element": Difference(
        LENIENT,
        False,
        "R4 JSON allows one type of a choice element; Medplum reports a second as a warning "
        "only (its code: 'should be an error')",
    ),
    "an integer written 1.0": Difference(
        LENIENT,
        False,
        "R4's integer has no fraction in its JSON form; Medplum reads JSON into JavaScript "
        "numbers, where 1.0 and 1 are the same",
    ),
    "a dateTime without a time zone": Difference(
        LENIENT,
        False,
        "R4's dateTime regex requires a time zone when there is a time ('If hours and minutes "
        "are specified, a time zone SHALL be populated'); Medplum's regex makes it optional",
    ),
    "an instant to ten decimal places": Difference(STRICTER, True, _NINE_DIGITS),
    "a time to ten decimal places": Difference(STRICTER, True, _NINE_DIGITS),
    "base64 with a space": Difference(
        STRICTER,
        True,
        "R4's base64Binary regex allows whitespace between groups of four characters; "
        "Medplum's check allows none",
    ),
    "an id with an underscore": Difference(
        NOT_CHECKED,
        False,
        "R4's StructureDefinition types Resource.id as a System.String with no pattern (the "
        "specification's text makes it an id); Medplum follows the definition, the gateway "
        "the text (conformance/validation.py: ids of at most 64 characters from [A-Za-z0-9.-])",
    ),
    "an id of 65 characters": Difference(
        NOT_CHECKED,
        False,
        "As for an id with an underscore: Medplum does not hold Resource.id to the id type",
    ),
    "a code outside its required value set": Difference(NOT_CHECKED, False, _BINDINGS),
    "a CodeableConcept outside its required value set": Difference(NOT_CHECKED, False, _BINDINGS),
    "a Quantity comparator outside its value set": Difference(NOT_CHECKED, False, _BINDINGS),
    "a narrative status outside its value set": Difference(NOT_CHECKED, False, _BINDINGS),
    "a reference to a type the element does not allow": Difference(LENIENT, False, _TARGETS),
    "an absolute reference to a type the element does not allow": Difference(
        LENIENT,
        False,
        _TARGETS + "; from an absolute URL it takes the scheme ('https:') for the type",
    ),
    "a reference to a contained resource that is not there (ref-1)": Difference(
        NOT_CHECKED, False, _DATA_TYPE_INVARIANTS
    ),
    "a contained resource without resourceType": Difference(
        LENIENT,
        False,
        "R4 JSON gives every resource its resourceType; Medplum validates a contained resource "
        "without one as the abstract Resource, so one with only id, meta, implicitRules or "
        "language passes",
    ),
    "a contained resource nothing refers to (dom-3)": Difference(
        NOT_CHECKED,
        False,
        "Medplum skips dom-3 by name (it needs descendants(), which Medplum does not implement)",
    ),
    "Medplum's Meta.project": Difference(MEDPLUM_R4, False, _MEDPLUM_META),
    "Medplum's Meta.author": Difference(MEDPLUM_R4, False, _MEDPLUM_META),
    "Medplum's Meta.compartment": Difference(MEDPLUM_R4, False, _MEDPLUM_META),
    "a batch-response outcome that is a Patient": Difference(
        MEDPLUM_R4,
        True,
        "R4's Bundle.entry.response.outcome is any Resource; Medplum's copy of R4 narrows it to "
        "OperationOutcome",
    ),
    "an observation with a value and a component of its code (obs-7)": Difference(
        LENIENT,
        False,
        "Medplum's FHIRPath intersect() compares values by JavaScript identity, so two equal "
        "Codings from different parts of the resource never intersect and obs-7 always holds",
    ),
    "an organisation with neither name nor identifier (org-1)": Difference(
        NOT_CHECKED, False, "Medplum skips org-1 by name ('back compat')"
    ),
    "a period that ends before it starts (per-1)": Difference(
        NOT_CHECKED, False, _DATA_TYPE_INVARIANTS
    ),
    "a quantity with a code and no system (qty-3)": Difference(
        NOT_CHECKED, False, _DATA_TYPE_INVARIANTS
    ),
    "a simple quantity with a comparator (sqty-1)": Difference(
        NOT_CHECKED,
        False,
        _DATA_TYPE_INVARIANTS + "; nor does it apply the SimpleQuantity profile (comparator 0..0)",
    ),
    "an age with no code (age-1)": Difference(NOT_CHECKED, False, _DATA_TYPE_INVARIANTS),
    "a contact point with a value and no system (cpt-2)": Difference(
        NOT_CHECKED, False, _DATA_TYPE_INVARIANTS
    ),
    "an attachment with data and no content type (att-1)": Difference(
        NOT_CHECKED, False, _DATA_TYPE_INVARIANTS
    ),
    "a narrative with a script (txt-1)": Difference(NOT_CHECKED, False, _HTML_CHECKS),
    "a narrative not in a div (txt-1)": Difference(NOT_CHECKED, False, _HTML_CHECKS),
    "a narrative with no content (txt-2)": Difference(NOT_CHECKED, False, _HTML_CHECKS),
}

# Resources of the examples, golden outputs and demo on which the two differ,
# by label, with why. None today.
KNOWN_RESOURCE_DIFFERENCES: dict[str, Difference] = {}


@dataclass(frozen=True)
class Judged:
    source: str  # a fixture file, "demo", "demo document" or "challenge"
    label: str
    resource: dict[str, Any]
    gateway: list[ValidationIssue]
    medplum: medplum_oracle.Verdict

    @property
    def gateway_valid(self) -> bool:
        return not self.gateway

    @property
    def agree(self) -> bool:
        return self.medplum.valid is self.gateway_valid

    def describe(self) -> str:
        ours = [f"{i.path}: {i.message}" for i in self.gateway[:3]] or ["valid"]
        theirs = [f"{i.expression}: {i.text}" for i in self.medplum.errors[:3]] or [
            self.medplum.crash[:300] or "valid"
        ]
        return f"{self.label}\n  gateway: {'; '.join(ours)}\n  medplum: {'; '.join(theirs)}"


def _resources(value: Any) -> Iterator[dict[str, Any]]:
    """Every resource in a fixture, however it nests them (a contained
    resource is its container's, a Bundle's entries the Bundle's)."""
    if isinstance(value, dict):
        if "resourceType" in value:
            yield value
        else:
            for item in value.values():
                yield from _resources(item)
    elif isinstance(value, list):
        for item in value:
            yield from _resources(item)


def _fixtures() -> Iterator[tuple[str, str, dict[str, Any]]]:
    files = sorted(FIXTURES.glob("r4/*.json")) + sorted(FIXTURES.glob("*/*.expected.json"))
    for path in files:
        source = f"{path.parent.name}/{path.name}"
        for number, resource in enumerate(_resources(json.loads(path.read_text("utf-8")))):
            label = f"{source}#{number} {resource['resourceType']}/{resource.get('id')}"
            yield source, label, resource


def _demo(directory: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every live resource of a small demo, and each person's documents."""
    url = f"sqlite:///{directory}/gateway.db"
    store = open_store(url)
    try:
        store.migrate()
        prepare(store, url, directory / "sources", PEOPLE, SEED, TODAY, say=lambda line: None)
        keys = [
            (str(res_type), str(res_id))
            for res_type, res_id in store.select(
                "SELECT res_type, res_id FROM resource_current WHERE deleted = 0 "
                "ORDER BY res_type, res_id",
                [],
            )
        ]
        found = store.read_many(keys)
        patients: list[StoredVersion] = []
        for key in keys:
            version = found[key]
            assert version.content is not None
            yield "demo", f"demo {key[0]}/{key[1]}", fhirjson.loads(version.content)
            if key[0] == "Patient":
                patients.append(version)
        for patient in patients:
            for kind in ("red-bag", "summary"):
                built = document(
                    store,
                    KINDS[kind],
                    patient,
                    visible=lambda version: True,
                    readable=lambda res_type: True,
                    base_url=BASE,
                )
                yield "demo document", f"demo {kind} of Patient/{patient.res_id}", built.bundle
    finally:
        store.close()


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Judged]:
    """Every resource, judged by both validators, by label."""
    try:
        medplum_oracle.node_command()
        medplum_oracle.install()
    except medplum_oracle.Unavailable as why:
        pytest.skip(f"Medplum's validator is not available: {why}")
    gathered = [
        *_fixtures(),
        *_demo(tmp_path_factory.mktemp("demo")),
        *((CHALLENGE, name, resource) for name, resource in CHALLENGES.items()),
    ]
    verdicts = medplum_oracle.validate([resource for _, _, resource in gathered])
    return {
        label: Judged(
            source, label, resource, validate_resource(resource, resource["resourceType"]), verdict
        )
        for (source, label, resource), verdict in zip(gathered, verdicts, strict=True)
    }


def test_the_examples_golden_outputs_and_demo_are_judged_alike(judged: dict[str, Judged]) -> None:
    """Every resource the gateway's tests and demo hold is valid in both
    validators or invalid in both (none is listed as differing)."""
    compared = [j for j in judged.values() if j.source != CHALLENGE]
    sources = Counter(j.source.split("/")[0] for j in compared)
    assert sources["r4"] >= 30 and sources["demo"] > PEOPLE and sources["demo document"] > PEOPLE
    differing = [j for j in compared if not j.agree]
    unexplained = [j.describe() for j in differing if j.label not in KNOWN_RESOURCE_DIFFERENCES]
    assert not unexplained, "\n".join(unexplained)
    gone = set(KNOWN_RESOURCE_DIFFERENCES) - {j.label for j in differing}
    assert not gone, f"listed as differing, but judged alike now: {sorted(gone)}"


@pytest.mark.parametrize("name", list(CHALLENGES))
def test_each_challenge_is_judged_alike_or_differs_as_listed(
    judged: dict[str, Judged], name: str
) -> None:
    """Both validators call the challenge valid, or both invalid; or it is
    listed with the cause, and the gateway's verdict is the listed one."""
    found = judged[name]
    known = KNOWN_DIFFERENCES.get(name)
    if known is None:
        assert found.agree, found.describe()
    else:
        assert found.medplum.valid is not None, found.describe()
        assert not found.agree, f"listed as differing, but judged alike now: {found.describe()}"
        assert found.gateway_valid is known.gateway_valid, found.describe()


def test_the_figures(judged: dict[str, Judged]) -> None:
    """The agreement figures of docs/validation-oracle.md, written to
    test-artifacts/validation-oracle.txt."""
    groups: dict[str, Callable[[Judged], bool]] = {
        "R4 examples": lambda j: j.source.startswith("r4/"),
        "mapping golden outputs": lambda j: j.source.endswith(".expected.json"),
        "demo resources": lambda j: j.source == "demo",
        "demo documents": lambda j: j.source == "demo document",
        "challenges": lambda j: j.source == CHALLENGE,
    }
    lines = []
    for name, belongs in groups.items():
        group = [j for j in judged.values() if belongs(j)]
        agreeing = sum(j.agree for j in group)
        valid = sum(j.gateway_valid and j.agree for j in group)
        lines.append(
            f"{name}: {len(group)} compared, {agreeing} agreeing ({valid} valid in both, "
            f"{agreeing - valid} invalid in both), {len(group) - agreeing} differing"
        )
    listed = {**KNOWN_DIFFERENCES, **KNOWN_RESOURCE_DIFFERENCES}
    causes = Counter(
        listed[j.label].cause if j.label in listed else "not listed"
        for j in judged.values()
        if not j.agree
    )
    agreeing = sum(j.agree for j in judged.values())
    lines.append(
        f"all: {len(judged)} compared, {agreeing} agreeing, {len(judged) - agreeing} differing"
        " by cause:"
    )
    lines += [f"  {count} {cause}" for cause, count in causes.most_common()]
    warned = Counter(
        f"{issue.expression.split('.')[0]}: {issue.text.split(':')[0]}"
        for j in judged.values()
        if j.agree
        for issue in j.medplum.issues
        if issue.severity == "warning"
    )
    lines += [f"Medplum warnings on resources judged alike: {sum(warned.values())}"]
    lines += [f"  {count} {text}" for text, count in warned.most_common()]
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert len(judged) > 5000
