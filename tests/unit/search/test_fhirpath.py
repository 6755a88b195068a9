"""The FHIRPath subset the search parameters use (http://hl7.org/fhirpath/N1/):
every expression in scope compiles and runs, and anything outside the subset
fails when compiled, never by indexing nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.registry import RESOURCES
from gateway.search.extract import (
    UnsupportedExpression,
    _Binary,
    _Call,
    _Member,
    _Node,
    _TypeOp,
    compile_expression,
    extract,
    extract_composite,
    parse,
    parse_reference,
    warm_up,
)
from gateway.search.parameters import parameters_for

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "r4"
TYPES = sorted(RESOURCES)


def example(res_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{res_type}.json").read_text("utf-8"))
    return data


def _constructs(node: _Node, found: set[str]) -> None:
    if isinstance(node, _Call):
        found.add(f"{node.name}()")
        if node.source is not None:
            _constructs(node.source, found)
        for arg in node.args:
            _constructs(arg, found)
    elif isinstance(node, _Binary):
        found.add(node.op)
        _constructs(node.left, found)
        _constructs(node.right, found)
    elif isinstance(node, _TypeOp):
        found.add(node.op)
        _constructs(node.operand, found)
    elif isinstance(node, _Member):
        _constructs(node.source, found)


def test_the_constructs_used_by_the_parameters_in_scope() -> None:
    """Enumerated from the data: the functions and operators of every
    expression (components included) of every parameter in scope."""
    found: set[str] = set()
    for res_type in TYPES:
        for param in parameters_for(res_type).values():
            _constructs(parse(param.expression), found)
            for component in param.components:
                _constructs(parse(component.expression), found)
    assert found == {"|", "as", "is", "and", "!=", "=", "where()", "resolve()", "as()", "exists()"}


@pytest.mark.parametrize("res_type", TYPES)
def test_every_expression_of_the_type_runs_on_its_example(res_type: str) -> None:
    """Each parameter of the type (composites by their components, ``near``
    by its expression) compiles for the type and runs on its R4 example."""
    resource = example(res_type)
    with_values = 0
    for param in parameters_for(res_type).values():
        if param.type == "composite":
            with_values += bool(extract_composite(resource, param))
        elif param.type == "special":
            run, types = compile_expression(param.expression, res_type)
            assert types == {"LocationPosition"}
            with_values += bool(run([(resource, res_type)]))
        else:
            with_values += bool(extract(resource, param))
    # The examples are rich: at least a third of each type's parameters
    # find something (the rest are choices and elements they leave out).
    assert with_values * 3 >= len(parameters_for(res_type))


def test_warm_up_compiles_everything() -> None:
    """Compiling every parameter of every type at start raises nothing."""
    warm_up()


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("Patient.name.select(family)", "unsupported function select()"),
        ("Patient.birthDate > @2000-01-01", "cannot read"),
        ("Patient.name[0]", "unsupported FHIRPath at '['"),
        ("Patient.name.family + 'x'", "unsupported FHIRPath at '+'"),
        ("Patient.name implies Patient.gender", "unsupported FHIRPath at 'implies'"),
        ("Patient.nmae", "no element 'nmae' in Patient"),
        ("Patinet.name", "'Patinet' is neither an element nor a FHIR resource type"),
        ("Patient.gender.family", "code has no element 'family'"),
        ("(Patient.deceased as Quantity)", "Quantity can never match"),
        ("Patient.link.other.resolve()", "unsupported function resolve()"),
        ("Patient.name.where(resolve() is Patient)", "resolve() on HumanName"),
        ("Patient.name.family.", "ends too soon"),
    ],
)
def test_constructs_outside_the_subset_fail_when_compiled(expression: str, message: str) -> None:
    """A clear error at compile time, naming the expression."""
    with pytest.raises(UnsupportedExpression, match=r".*") as caught:
        compile_expression(expression, "Patient")
    assert message in str(caught.value)
    assert expression in str(caught.value)


def test_a_branch_of_another_type_selects_nothing() -> None:
    """``FamilyMemberHistory.patient`` on a Patient is dropped at compile time."""
    _, types = compile_expression("FamilyMemberHistory.patient", "Patient")
    assert types == frozenset()
    run, types = compile_expression("FamilyMemberHistory.patient | Patient.gender", "Patient")
    assert types == {"code"}
    assert run([({"resourceType": "Patient", "gender": "male"}, "Patient")]) == [("male", "code")]


def test_choice_elements_are_read_by_their_typed_names() -> None:
    """``Observation.value`` reads valueQuantity, valueString...; ``as`` and
    ``ofType`` keep one type."""
    observation = {"resourceType": "Observation", "valueString": "raised"}
    run, _ = compile_expression("Observation.value", "Observation")
    assert run([(observation, "Observation")]) == [("raised", "string")]
    run, _ = compile_expression("Observation.value.ofType(string)", "Observation")
    assert run([(observation, "Observation")]) == [("raised", "string")]
    run, _ = compile_expression("(Observation.value as Quantity)", "Observation")
    assert run([(observation, "Observation")]) == []


def test_as_quantity_takes_its_specialisations() -> None:
    """Age and Duration are Quantities (https://hl7.org/fhir/R4/datatypes.html)."""
    condition = {"resourceType": "Condition", "onsetAge": {"value": 4}}
    run, types = compile_expression("Condition.onset.as(Quantity)", "Condition")
    assert types == {"Age"}
    assert run([(condition, "Condition")]) == [({"value": 4}, "Age")]


def test_where_with_an_equality() -> None:
    """``where(system='phone')`` keeps the matching nodes, in order."""
    patient = {
        "resourceType": "Patient",
        "telecom": [
            {"system": "email", "value": "a@example.org"},
            {"system": "phone", "value": "1"},
            {"value": "2"},
            {"system": "phone", "value": "3"},
        ],
    }
    run, _ = compile_expression("Patient.telecom.where(system='phone').value", "Patient")
    assert run([(patient, "Patient")]) == [("1", "string"), ("3", "string")]
    run, _ = compile_expression("Patient.telecom.where(system!='phone').value", "Patient")
    assert run([(patient, "Patient")]) == [("a@example.org", "string")]


def test_where_resolve_is_judges_the_reference_alone() -> None:
    """``where(resolve() is Patient)`` reads the type from the reference,
    relative or absolute, or from ``Reference.type``; a contained or
    logical reference of unknown type is not kept."""
    run, _ = compile_expression("Observation.subject.where(resolve() is Patient)", "Observation")

    def kept(subject: dict[str, Any]) -> bool:
        return bool(run([({"resourceType": "Observation", "subject": subject}, "Observation")]))

    assert kept({"reference": "Patient/1"})
    assert kept({"reference": "https://fhir.example.org/r4/Patient/1/_history/2"})
    assert kept({"identifier": {"value": "9990000018"}, "type": "Patient"})
    assert not kept({"reference": "Group/1"})
    assert not kept({"reference": "#p1"})
    assert not kept({"reference": "urn:uuid:0c287d32-01e3-4d87-9953-9fcc9404eb21"})


def test_boolean_logic_of_the_deceased_expression() -> None:
    """``exists() and != false``: three-valued ``and``, equality across types."""
    run, types = compile_expression(
        "Patient.deceased.exists() and Patient.deceased != false", "Patient"
    )
    assert types == {"boolean"}

    def deceased(**elements: Any) -> Any:
        return run([({"resourceType": "Patient", **elements}, "Patient")])

    assert deceased() == [(False, "boolean")]
    assert deceased(deceasedBoolean=False) == [(False, "boolean")]
    assert deceased(deceasedBoolean=True) == [(True, "boolean")]
    assert deceased(deceasedDateTime="2024-01-02") == [(True, "boolean")]


def test_other_functions_of_the_subset() -> None:
    """first(), empty(), not(), exists(criteria), is(T) and extension(url)."""
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Okafor"}, {"family": "Eze"}],
        "extension": [
            {"url": "http://example.org/a", "valueString": "x"},
            {"url": "http://example.org/b", "valueBoolean": True},
        ],
    }
    root = [(patient, "Patient")]
    cases = {
        "Patient.name.first().family": [("Okafor", "string")],
        "Patient.name.empty()": [(False, "boolean")],
        "Patient.gender.empty().not()": [(False, "boolean")],
        "Patient.name.exists(family = 'Eze')": [(True, "boolean")],
        "Patient.name.exists(family = 'Smith')": [(False, "boolean")],
        "Patient.extension('http://example.org/b').value": [(True, "boolean")],
        "Patient.extension('http://example.org/a').value.is(string)": [(True, "boolean")],
        "Patient.name.family = 'Okafor' or Patient.active": [],
        "Patient.name.family = 'Okafor' or Patient.name.exists()": [(True, "boolean")],
    }
    for expression, expected in cases.items():
        run, _ = compile_expression(expression, "Patient")
        assert run(root) == expected, expression


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/123", ("Patient", "123")),
        ("Patient/123/_history/4", ("Patient", "123")),
        ("https://fhir.example.org/r4/Patient/a-b.c", ("Patient", "a-b.c")),
        ("#contained-1", (None, None)),
        ("urn:uuid:0c287d32-01e3-4d87-9953-9fcc9404eb21", (None, None)),
        ("patient/123", (None, None)),
    ],
)
def test_parse_reference(reference: str, expected: tuple[str | None, str | None]) -> None:
    """Literal references (https://hl7.org/fhir/R4/references.html#literal)."""
    assert parse_reference(reference) == expected
