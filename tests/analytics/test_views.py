"""The ViewDefinition runner on small handwritten resources: what the
specification's own cases leave out, and the choices this runner makes."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.analytics.views import (
    ViewDefinitionError,
    ViewEvaluationError,
    compile_view,
    run_view,
)

PATIENT = {
    "resourceType": "Patient",
    "id": "a1b2",
    "birthDate": "1950-03",
    "name": [{"family": "F", "given": ["A", "B"]}],
    "generalPractitioner": [
        {"reference": "Organization/org1"},
        {"reference": "https://other.example/fhir/Practitioner/pr9/_history/2"},
        {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "X1"}},
    ],
}


def _view(*columns: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resource": "Patient", "select": [{"column": list(columns)}], **extra}


def _column(name: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "path": path, **extra}


def test_reference_keys_of_relative_absolute_and_versioned_references() -> None:
    """getReferenceKey reads relative and absolute literal references, with
    or without a version, by type; a reference by identifier has no key."""
    view = compile_view(
        _view(
            _column("orgs", "generalPractitioner.getReferenceKey(Organization)", collection=True),
            _column("all", "generalPractitioner.getReferenceKey()", collection=True),
            _column("key", "getResourceKey()"),
        )
    )
    assert run_view(view, [PATIENT]) == [{"orgs": ["org1"], "all": ["org1", "pr9"], "key": "a1b2"}]


def test_a_column_with_several_values_is_refused_unless_a_collection() -> None:
    """Several values in a column that is not a collection: an error naming
    the column and the resource, not a silently chosen value."""
    view = compile_view(_view(_column("given", "name.given")))
    with pytest.raises(ViewEvaluationError, match=r"given.*Patient/a1b2"):
        run_view(view, [PATIENT])


def test_sql_types_follow_the_declared_fhir_type_and_the_ansi_tag() -> None:
    """The specification's default mapping; ``ansi/type`` overrides it; a
    collection is a list of its type; no type is text."""
    view = compile_view(
        _view(
            _column("a", "birthDate", type="date"),
            _column("b", "birthDate", type="date", tag=[{"name": "ansi/type", "value": "DATE"}]),
            _column("c", "name.given", type="string", collection=True),
            _column("d", "name.exists()", type="boolean"),
            _column("e", "id"),
            _column("f", "name.count()", type="integer"),
        )
    )
    assert [c.sql_type for c in view.columns] == [
        "VARCHAR",
        "DATE",
        "VARCHAR[]",
        "BOOLEAN",
        "VARCHAR",
        "INTEGER",
    ]


def test_an_ansi_type_tag_is_checked_before_it_is_written_into_sql() -> None:
    """The tag's value is one of a closed list of types."""
    with pytest.raises(ViewDefinitionError, match="ANSI"):
        compile_view(
            _view(_column("a", "id", tag=[{"name": "ansi/type", "value": "INT); DROP TABLE x"}]))
        )


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (_view(_column("a", "id"), _column("a", "gender")), "defined twice"),
        (_view(_column("a b", "id")), "not a valid column name"),
        (_view(_column("a", "name.where(")), "not FHIRPath"),
        (_view(_column("a", "%missing")), "%missing"),
        (_view(_column("a", "id"), constant=[{"name": "x", "valueString": "1", "valueCode": "1"}]),
         "exactly one"),
        ({"resource": "Patient", "select": [{"forEach": "name", "repeat": ["name"]}]},
         "only one of"),
        ({"resource": "patient", "select": [{"column": [_column("a", "id")]}]}, "resource"),
        ({"resource": "Patient", "select": []}, "select"),
    ],
)  # fmt: skip
def test_malformed_views_are_refused_when_compiled(
    definition: dict[str, Any], message: str
) -> None:
    """A view that cannot run is refused before any resource is read."""
    with pytest.raises(ViewDefinitionError, match=message):
        compile_view(definition)


def test_a_where_that_is_not_boolean_is_an_error() -> None:
    """``where`` must give a Boolean (or nothing, which leaves the resource out)."""
    view = compile_view(_view(_column("id", "id"), where=[{"path": "birthDate"}]))
    with pytest.raises(ViewEvaluationError, match="not a Boolean"):
        run_view(view, [PATIENT])
    empty = compile_view(_view(_column("id", "id"), where=[{"path": "active"}]))
    assert run_view(empty, [PATIENT]) == []


def test_constants_of_every_kind_and_the_row_index() -> None:
    """Constants are FHIRPath values; %rowIndex counts within a forEach."""
    view = compile_view(
        {
            "resource": "Patient",
            "constant": [{"name": "fam", "valueString": "F"}, {"name": "n", "valueInteger": 2}],
            "select": [
                {
                    "forEach": "name.where(family = %fam).given",
                    "column": [
                        _column("given", "$this"),
                        _column("position", "%rowIndex", type="integer"),
                        _column("two", "%n + %rowIndex", type="integer"),
                    ],
                }
            ],
        }
    )
    assert run_view(view, [PATIENT]) == [
        {"given": "A", "position": 0, "two": 2},
        {"given": "B", "position": 1, "two": 3},
    ]


def test_boundaries_of_a_birth_month() -> None:
    """lowBoundary and highBoundary of a partial date, as a date; of a
    date-only dateTime, as a dateTime."""
    view = compile_view(
        _view(
            _column("low", "birthDate.lowBoundary()"),
            _column("high", "birthDate.highBoundary()"),
            _column("leap", "@2024-02.highBoundary()"),
        )
    )
    assert run_view(view, [PATIENT]) == [
        {"low": "1950-03-01", "high": "1950-03-31", "leap": "2024-02-29"}
    ]


def test_resources_of_other_types_give_no_rows() -> None:
    """A view reads only its own resource type."""
    view = compile_view(_view(_column("id", "id")))
    assert run_view(view, [{"resourceType": "Encounter", "id": "e1"}, PATIENT]) == [{"id": "a1b2"}]
