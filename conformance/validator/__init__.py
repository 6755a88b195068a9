"""FHIR R4 validation generated from the specification's own StructureDefinitions.

The public entry point::

    from conformance.validator import validate

    issues = validate(resource, "Patient")  # list[ValidationIssue]; [] if valid
    errors = [i for i in issues if i.severity == "error"]

``validate(resource, res_type, invariants=None)`` checks a FHIR R4 JSON
resource (a ``dict`` as parsed) against the R4 (4.0.1) core definitions
vendored in ``conformance/definitions/r4`` (see its README), compiled into
per-type tables on first use (``warm_up()`` compiles them all now):

* structure (https://hl7.org/fhir/R4/json.html): ``resourceType``; no unknown
  properties; ``_name`` beside a primitive holding only its id and
  extensions; arrays exactly where an element may repeat (max ``*`` or more
  than 1) and single values elsewhere; no ``null`` (except as the placeholder
  R4 allows in a primitive array whose ``_name`` array has an entry there),
  and no empty objects, arrays or strings;
* cardinality: every element with min 1 present, none with more values than
  its max, and each choice element (``value[x]``) of one type only;
* types: JSON objects for complex types, and for primitives the JSON type
  and the regex of their R4 definition, plus real calendar days for dates, the
  integer ranges, and at most 1 MB for a string (``_primitives``);
* terminology: codes, Codings and CodeableConcepts bound ``required`` to a
  value set whose codes the package defines must be from it (an error);
  ``extensible`` bindings give a warning when codings are given and none is
  from the value set. Value sets of external code systems (SNOMED CT, UCUM,
  BCP-47 languages, BCP-13 mime types, ISO 4217 currencies) are not checked;
* references: a literal reference (``Patient/123``, an absolute URL, with or
  without ``/_history/n``) must be to a resource type the element allows;
* contained resources, Bundle entries and ``Parameters`` resources are
  validated as their own type; a contained resource has no contained
  resources of its own (dom-2), no ``meta.versionId``, ``meta.lastUpdated``
  (dom-4) or ``meta.security`` (dom-5);
* ele-1 (no element without a value or children) and ext-1 (an extension
  has a value or extensions, not both), by shape.

Invariants: each ``Element`` of a compiled ``Table`` (``table(type_name)``)
carries its ``constraints`` (key, severity, human, FHIRPath expression),
its own and those of its type; a ``Table`` carries the type's. Pass
``invariants``, a function from a FHIRPath expression to a predicate
``(focus, resource, root) -> bool`` (``%resource``, ``%rootResource``), and each invariant outside
``STRUCTURAL_INVARIANTS`` is evaluated on every value of its element with
the resource that holds it (a contained resource, or a Bundle entry's, is
its own ``resource``; for a primitive the focus is the JSON value). Each
expression is compiled once per evaluator. Without ``invariants`` none is
evaluated.

Issues are ``conformance.issues.ValidationIssue``: a FHIRPath element path
(``Patient.name[0].given[1]``; a primitive's ``_given`` extensions are
reported at the primitive's path), a message, an OperationOutcome issue type
(``structure``, ``required``, ``value``, ``code-invalid``, ``invariant``,
``invalid``, ``not-supported``), a severity (``error`` or ``warning``) and,
for an invariant, its key.
"""

from __future__ import annotations

from typing import Any

from conformance.issues import ValidationIssue
from conformance.validator._tables import (
    STRUCTURAL_INVARIANTS,
    Binding,
    Constraint,
    Element,
    Invariants,
    Table,
    compile_all,
    not_r4,
    resource_types,
    table,
)
from conformance.validator._walk import Context, not_supported
from conformance.validator._walk import resource as _walk_resource

__all__ = [
    "STRUCTURAL_INVARIANTS",
    "Binding",
    "Constraint",
    "Element",
    "Invariants",
    "Table",
    "ValidationIssue",
    "resource_types",
    "table",
    "validate",
    "warm_up",
]


def validate(
    resource: Any,
    res_type: str,
    invariants: Invariants | None = None,
    extensions: list[tuple[str, dict[str, Any]]] | None = None,
) -> list[ValidationIssue]:
    """Every issue with ``resource`` (parsed JSON) as a FHIR R4 ``res_type``; [] if none.

    Warnings (extensible bindings, warning invariants) do not make a resource
    invalid: a resource is valid when no issue has severity ``error``.
    ``extensions``: a list to add every extension object walked to, with its
    path (``Patient.identifier[0].extension[0]``), for a profile's checks of
    extensions to use without walking the resource again.
    """
    if res_type in not_r4():
        return [not_supported(res_type, res_type)]
    if res_type not in resource_types():
        return [
            ValidationIssue(
                res_type, f"{res_type!r} is not a FHIR R4 resource type", "not-supported"
            )
        ]
    if resource.__class__ is not dict:
        return [ValidationIssue(res_type, "a resource must be a JSON object", "structure")]
    declared = resource.get("resourceType")
    if declared != res_type:
        return [
            ValidationIssue(
                f"{res_type}.resourceType",
                f"resourceType is {declared!r}, expected {res_type!r}",
                "invalid",
            )
        ]
    ctx = Context(invariants, resource, extensions)
    _walk_resource(resource, res_type, res_type, ctx)
    return ctx.issues


def warm_up() -> None:
    """Compile the tables of every type now, so no request pays for it."""
    compile_all()
