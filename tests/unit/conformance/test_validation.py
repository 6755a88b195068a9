"""What the write paths run (``conformance.validation.validate_resource``):
the generated validator with every invariant, and the shortcuts it takes to
be fast giving exactly the verdicts the invariants themselves give."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance import fhirpath, validator
from conformance.validation import validate_resource
from tests.unit.conformance.fhirpath_samples import SAMPLES
from tests.unit.conformance.test_validator_agreement import FILES, resources

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _plain(expression: str) -> Any:
    return fhirpath.compile(expression).predicate()


def _errors_without_shortcuts(resource: dict[str, Any]) -> list[Any]:
    issues = validator.validate(resource, resource["resourceType"], invariants=_plain)
    return [issue for issue in issues if issue.severity == "error"]


def _cases() -> list[tuple[str, dict[str, Any]]]:
    found = [
        (f"{path.parent.name}/{path.name}#{index}", resource)
        for path in FILES
        for index, resource in enumerate(resources(json.loads(path.read_text("utf-8"))))
    ]
    found += [(sample.name, sample.value) for sample in SAMPLES if sample.type_path is None]
    return found


@pytest.mark.parametrize(("name", "resource"), _cases(), ids=[name for name, _ in _cases()])
def test_the_shortcuts_give_the_invariants_own_verdicts(name: str, resource: Any) -> None:
    """Guards (an invariant that holds when its element is absent, dom-3
    with nothing contained, ref-1 for a reference not to a contained
    resource) and skipped warnings change no error reported."""
    assert validate_resource(resource, resource["resourceType"]) == _errors_without_shortcuts(
        resource
    )


def test_an_invariant_is_enforced_on_the_write_path() -> None:
    """ait-1: an AllergyIntolerance with neither clinical nor verification
    status, which the gateway once accepted and served in a summary."""
    allergy = {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": "Patient/p1"},
        "code": {"text": "Penicillin"},
    }
    issues = validate_resource(allergy, "AllergyIntolerance")
    assert [(i.path, i.key, i.code) for i in issues] == [
        ("AllergyIntolerance", "ait-1", "invariant")
    ]
    assert issues[0].message.startswith("ait-1: AllergyIntolerance.clinicalStatus SHALL be present")
    active = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "code": "active",
            }
        ]
    }
    assert validate_resource({**allergy, "clinicalStatus": active}, "AllergyIntolerance") == []
