"""The validation walk: a resource's JSON beside its compiled tables.

Each object is walked once, property by property, in document order; the
issues are collected in the order their elements appear. Paths are FHIRPath
element paths (``Patient.name[0].given[1]``); the id and extensions of a
primitive, which JSON keeps in ``_given``, are reported at the primitive's
own path (``Patient.name[0].given[1].extension[0].url``), as FHIRPath sees them.
"""

from __future__ import annotations

import re
from typing import Any

from conformance.issues import ValidationIssue
from conformance.validator._primitives import json_name
from conformance.validator._tables import (
    COMPLEX,
    PRIMITIVE,
    PROHIBITED,
    RESOURCE,
    RESOURCE_TYPE,
    SIBLING,
    Binding,
    Constraint,
    Element,
    Invariants,
    Table,
    not_r4,
    resource_types,
    table,
)

# https://hl7.org/fhir/R4/references.html#literal: a relative or absolute
# reference to a resource of a type, with an optional version.
_LITERAL_REFERENCE = re.compile(
    r"(?:(?:https?)://(?:[^/]+/)+)?([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?",
    re.ASCII,
)


class Context:
    """What one validation carries down the walk."""

    __slots__ = (
        "compiled",
        "depth",
        "extensions",
        "invariants",
        "issues",
        "resource",
        "root",
        "too_deep",
    )

    def __init__(
        self,
        invariants: Invariants | None,
        resource: dict[str, Any],
        extensions: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.issues: list[ValidationIssue] = []
        # Where asked for: every extension walked, with its path, for the
        # profiles' checks of extensions (conformance.profiles).
        self.extensions = extensions
        self.invariants = invariants
        self.compiled: dict[str, Any] = _compiled_for(invariants) if invariants else {}
        self.resource = resource  # %resource: the one holding what is walked
        self.root = resource  # %rootResource: the one validated
        self.depth = 0  # objects walked into, from the root
        self.too_deep = False


_compiled_by_evaluator: dict[Any, dict[str, Any]] = {}


def _compiled_for(invariants: Invariants) -> dict[str, Any]:
    return _compiled_by_evaluator.setdefault(invariants, {})


def resource(value: Any, res_type: str, path: str, ctx: Context, contained: bool = False) -> None:
    """Walks a resource already known to be an object of ``res_type``."""
    saved = ctx.resource
    ctx.resource = value
    compiled = table(res_type)
    walk(value, compiled, path, ctx)
    if ctx.invariants is not None and not ctx.too_deep:
        # dom-6 (a resource should have narrative) is not for contained
        # resources, which "do not have narrative" (DomainResource.text).
        evaluated = compiled.evaluated_contained if contained else compiled.evaluated
        if evaluated:
            _invariants(evaluated, value, path, ctx)
    ctx.resource = saved


def _inner_resource(element: Element, value: Any, path: str, ctx: Context) -> None:
    """A contained resource, a Bundle entry's or a parameter's: of its own type."""
    issues = ctx.issues
    if value.__class__ is not dict:
        issues.append(
            ValidationIssue(
                path, f"must be a resource (an object), not {json_name(value)}", "structure"
            )
        )
        return
    declared = value.get("resourceType")
    if declared.__class__ is not str or declared not in resource_types():
        if declared.__class__ is str and declared in not_r4():
            issues.append(not_supported(declared, f"{path}.resourceType"))
            return
        message = (
            "a resource needs its resourceType"
            if declared is None
            else f"{declared!r} is not a FHIR R4 resource type"
        )
        issues.append(ValidationIssue(f"{path}.resourceType", message, "structure"))
        return
    contained = element.path.endswith(".contained")
    if contained:
        _contained_rules(value, path, ctx)
    resource(value, declared, path, ctx, contained)


def not_supported(res_type: str, path: str) -> ValidationIssue:
    """An R4 resource type whose definition the validator does not have."""
    return ValidationIssue(
        path,
        f"{res_type} cannot be validated: its R4 definition is not vendored ({not_r4()[res_type]})",
        "not-supported",
    )


def _contained_rules(value: dict[str, Any], path: str, ctx: Context) -> None:
    """dom-2, dom-4 and dom-5 (https://hl7.org/fhir/R4/domainresource.html#invs),
    checked by shape on the contained resource itself."""
    issues = ctx.issues
    if "contained" in value:
        issues.append(
            ValidationIssue(
                f"{path}.contained",
                "dom-2: If the resource is contained in another resource, "
                "it SHALL NOT contain nested Resources",
                "invariant",
                key="dom-2",
            )
        )
    meta = value.get("meta")
    if meta.__class__ is dict:
        for name, key, human in (
            ("versionId", "dom-4", "it SHALL NOT have a meta.versionId or a meta.lastUpdated"),
            ("lastUpdated", "dom-4", "it SHALL NOT have a meta.versionId or a meta.lastUpdated"),
            ("security", "dom-5", "it SHALL NOT have a security label"),
        ):
            if name in meta:
                issues.append(
                    ValidationIssue(
                        f"{path}.meta.{name}",
                        f"{key}: If a resource is contained in another resource, {human}",
                        "invariant",
                        key=key,
                    )
                )


# Objects nested deeper than this are refused, not walked: no FHIR resource
# needs it (a Bundle's contained extension on a component is some 15 deep),
# and a body built to be deeper would exhaust the stack of whatever walks it
# next (the walk here, the JSON writer, the index).
MAX_DEPTH = 64


def walk(obj: dict[str, Any], compiled: Table, path: str, ctx: Context) -> None:
    """Checks every property of an object against its table, then what the
    table requires of the object as a whole."""
    if ctx.depth >= MAX_DEPTH:
        if not ctx.too_deep:
            ctx.too_deep = True
            ctx.issues.append(
                ValidationIssue(
                    path,
                    f"is nested more than {MAX_DEPTH} objects deep, the most the gateway takes",
                    "too-costly",
                )
            )
        return
    ctx.depth += 1
    try:
        _walk(obj, compiled, path, ctx)
    finally:
        ctx.depth -= 1


def _walk(obj: dict[str, Any], compiled: Table, path: str, ctx: Context) -> None:
    issues = ctx.issues
    elements = compiled.elements
    chosen: dict[str, Element] | None = None
    for key, value in obj.items():
        element = elements.get(key)
        if element is None:
            issues.append(ValidationIssue(f"{path}.{key}", "unknown element", "structure"))
            continue
        kind = element.kind
        if value is None:
            issues.append(
                ValidationIssue(
                    f"{path}.{element.name}", "null is not allowed in FHIR JSON", "structure"
                )
            )
            continue
        if element.many:
            if value.__class__ is not list:
                issues.append(
                    ValidationIssue(
                        f"{path}.{element.name}",
                        f"must be an array (the element repeats), not {json_name(value)}",
                        "structure",
                    )
                )
                continue
            if not value:
                issues.append(
                    ValidationIssue(
                        f"{path}.{element.name}",
                        "empty arrays are not allowed in FHIR JSON",
                        "structure",
                    )
                )
                continue
            if element.max is not None and len(value) > element.max:
                issues.append(
                    ValidationIssue(
                        f"{path}.{element.name}",
                        f"has {len(value)} values; at most {element.max} are allowed",
                        "structure",
                    )
                )
            if kind == PRIMITIVE:
                check = element.check
                assert check is not None
                codes = element.code_binding
                for index, item in enumerate(value):
                    if item is None:
                        _null_item(obj, "_" + key, index, path, element, ctx)
                    else:
                        problem = check(item)
                        if problem is not None:
                            issues.append(
                                ValidationIssue(f"{path}.{key}[{index}]", problem, "value")
                            )
                        elif codes is not None and item not in codes:
                            _code_invalid(element, item, f"{path}.{key}[{index}]", ctx)
                        elif element.binding is not None and codes is None:
                            _code(element.binding, item, f"{path}.{key}[{index}]", ctx)
                        if ctx.invariants is not None and element.evaluated:
                            _invariants(element.evaluated, item, f"{path}.{key}[{index}]", ctx)
            elif kind == COMPLEX:
                for index, item in enumerate(value):
                    _complex(element, item, f"{path}.{key}[{index}]", ctx)
            elif kind == RESOURCE:
                for index, item in enumerate(value):
                    _inner_resource(element, item, f"{path}.{key}[{index}]", ctx)
            elif kind == SIBLING:
                _siblings(element, obj, value, path, ctx)
            else:
                _other(element, value, path, ctx)
        elif value.__class__ is list:
            issues.append(
                ValidationIssue(
                    f"{path}.{element.name}",
                    "must be a single value, not an array (it has at most one)",
                    "structure",
                )
            )
            continue
        elif kind == PRIMITIVE:
            check = element.check
            assert check is not None
            problem = check(value)
            if problem is not None:
                issues.append(ValidationIssue(f"{path}.{key}", problem, "value"))
            elif element.code_binding is not None:
                if value not in element.code_binding:
                    _code_invalid(element, value, f"{path}.{key}", ctx)
            elif element.binding is not None:
                _code(element.binding, value, f"{path}.{key}", ctx)
            if ctx.invariants is not None and element.evaluated:
                _invariants(element.evaluated, value, f"{path}.{key}", ctx)
        elif kind == COMPLEX:
            _complex(element, value, f"{path}.{key}", ctx)
        elif kind == SIBLING:
            has_value = obj.get(element.name) is not None
            _sibling(element, has_value, value, f"{path}.{element.name}", ctx)
        elif kind == RESOURCE:
            _inner_resource(element, value, f"{path}.{key}", ctx)
        else:
            _other(element, value, path, ctx)
        if element.choice is not None:
            if chosen is None:
                chosen = {element.choice: element}
            else:
                first = chosen.setdefault(element.choice, element)
                if first.type_code != element.type_code:
                    issues.append(
                        ValidationIssue(
                            f"{path}.{element.name}",
                            f"{element.choice}[x] may have one type only, "
                            f"but has {first.name} and {element.name}",
                            "structure",
                        )
                    )
    for name, keys in compiled.required:
        for key in keys:
            if key in obj:
                break
        else:
            issues.append(
                ValidationIssue(
                    f"{path}.{name}", f"{name} is required (at least 1) and missing", "required"
                )
            )
    if compiled.is_extension:
        if ctx.extensions is not None:
            ctx.extensions.append((path, obj))
        has_value = chosen is not None and "value" in chosen
        if has_value == ("extension" in obj):
            issues.append(
                ValidationIssue(
                    path,
                    "ext-1: Must have either extensions or value[x], not both",
                    "invariant",
                    key="ext-1",
                )
            )


def _other(element: Element, value: Any, path: str, ctx: Context) -> None:
    if element.kind == RESOURCE_TYPE:
        return  # checked by whoever knew which type to expect
    if element.kind == PROHIBITED:
        ctx.issues.append(
            ValidationIssue(
                f"{path}.{element.name}",
                f"is not allowed here (max 0 in {element.path})",
                "structure",
            )
        )


def _complex(element: Element, value: Any, path: str, ctx: Context) -> None:
    issues = ctx.issues
    if value.__class__ is not dict:
        if value is None:
            issues.append(ValidationIssue(path, "null is not allowed in FHIR JSON", "structure"))
        else:
            issues.append(
                ValidationIssue(
                    path,
                    f"must be a JSON object ({element.type_code}), not {json_name(value)}",
                    "value",
                )
            )
        return
    if not value:
        issues.append(
            ValidationIssue(path, "empty objects are not allowed in FHIR JSON", "structure")
        )
        return
    compiled = element.table
    assert compiled is not None
    walk(value, compiled, path, ctx)
    if len(value) == 1 and "id" in value:
        issues.append(_ele_1(path))
    if element.binding is not None:
        _coded(element.binding, value, element.type_code, path, ctx)
    if compiled.binding is not None:
        _quantity_units(compiled.binding, value, path, ctx)
    if element.targets is not None:
        _reference_target(element.targets, value, path, ctx)
    if element.fixed is not None and value != element.fixed:
        issues.append(ValidationIssue(path, f"must be exactly {element.fixed!r}", "value"))
    if element.pattern is not None and not _matches(value, element.pattern):
        issues.append(ValidationIssue(path, f"must match the pattern {element.pattern!r}", "value"))
    if ctx.invariants is not None and element.evaluated:
        _invariants(element.evaluated, value, path, ctx)


def _ele_1(path: str) -> ValidationIssue:
    return ValidationIssue(
        path,
        "ele-1: All FHIR elements must have a @value or children",
        "invariant",
        key="ele-1",
    )


def _matches(value: Any, pattern: Any) -> bool:
    """Whether ``value`` has everything ``pattern`` has (ElementDefinition.pattern[x])."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and _matches(value[k], v) for k, v in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(_matches(v, p) for v in value) for p in pattern)
    return bool(value == pattern)


def _sibling(element: Element, has_value: bool, value: Any, path: str, ctx: Context) -> None:
    """``_name``: the id and extensions of a primitive, beside its value or alone."""
    if value.__class__ is not dict:
        ctx.issues.append(
            ValidationIssue(
                path,
                f"_{element.name} must be an object (id, extension), not {json_name(value)}",
                "structure",
            )
        )
        return
    if not value:
        ctx.issues.append(
            ValidationIssue(path, "empty objects are not allowed in FHIR JSON", "structure")
        )
        return
    compiled = element.table
    assert compiled is not None
    walk(value, compiled, path, ctx)
    if not has_value and "extension" not in value:
        ctx.issues.append(_ele_1(path))


def _siblings(
    element: Element, obj: dict[str, Any], value: list[Any], path: str, ctx: Context
) -> None:
    """``_name`` of a primitive array: one entry per value, null where a value has none."""
    values = obj.get(element.name)
    if values.__class__ is not list:
        values = []
    elif len(values) != len(value):
        ctx.issues.append(
            ValidationIssue(
                f"{path}.{element.name}",
                f"_{element.name} has {len(value)} entries but {element.name} has "
                f"{len(values)}: they must align",
                "structure",
            )
        )
    for index, item in enumerate(value):
        where = f"{path}.{element.name}[{index}]"
        has_value = index < len(values) and values[index] is not None
        if item is None:
            if not has_value:
                ctx.issues.append(
                    ValidationIssue(where, "null is not allowed in FHIR JSON", "structure")
                )
        else:
            _sibling(element, has_value, item, where, ctx)


def _null_item(
    obj: dict[str, Any], sibling: str, index: int, path: str, element: Element, ctx: Context
) -> None:
    """A null in a primitive array stands for a value that has only an id or
    extensions in the ``_name`` array at the same place (json.html#primitive)."""
    extras = obj.get(sibling)
    if extras.__class__ is list and index < len(extras) and extras[index] is not None:
        return
    ctx.issues.append(
        ValidationIssue(
            f"{path}.{element.name}[{index}]",
            f"null is not allowed in FHIR JSON (except beside an extension in {sibling}[{index}])",
            "structure",
        )
    )


def _code_invalid(element: Element, value: Any, path: str, ctx: Context) -> None:
    binding = element.binding
    assert binding is not None
    ctx.issues.append(
        ValidationIssue(
            path,
            f"{value!r} is not in the required value set {binding.describe()}",
            "code-invalid",
        )
    )


def _code(binding: Binding, value: Any, path: str, ctx: Context) -> None:
    """A code, uri or string under an extensible binding (required ones are
    checked with ``Element.code_binding``)."""
    if binding.strength == "required":
        if value not in binding.codes:
            ctx.issues.append(
                ValidationIssue(
                    path,
                    f"{value!r} is not in the required value set {binding.describe()}",
                    "code-invalid",
                )
            )
    elif value not in binding.codes:
        ctx.issues.append(
            ValidationIssue(
                path,
                f"{value!r} is not in the extensible value set {binding.describe()}",
                "code-invalid",
                severity="warning",
            )
        )


def _coding_in(binding: Binding, coding: Any) -> bool | None:
    """Whether a Coding is in the value set; None if it has no code to judge."""
    if coding.__class__ is not dict:
        return None
    code = coding.get("code")
    if code is None:
        return None
    codes = binding.by_system.get(coding.get("system"))  # type: ignore[arg-type]
    return codes is not None and code in codes


def _coded(
    binding: Binding, value: dict[str, Any], type_code: str, path: str, ctx: Context
) -> None:
    """A Coding or CodeableConcept under a binding. A CodeableConcept meets a
    required binding when one of its codings is in the value set, and an
    extensible one also when it has only text
    (https://hl7.org/fhir/R4/terminologies.html#strength)."""
    if type_code == "Coding":
        judged = _coding_in(binding, value)
        found = judged is True
        has_codes = judged is not None
    else:
        codings = value.get("coding")
        found = has_codes = False
        if codings.__class__ is list:
            for coding in codings:
                judged = _coding_in(binding, coding)
                if judged is True:
                    found = True
                    break
                if judged is False:
                    has_codes = True
    if found:
        return
    if binding.strength == "required":
        ctx.issues.append(
            ValidationIssue(
                path,
                f"no coding from the required value set {binding.describe()}",
                "code-invalid",
            )
        )
    elif has_codes:
        ctx.issues.append(
            ValidationIssue(
                path,
                f"no coding from the extensible value set {binding.describe()}",
                "code-invalid",
                severity="warning",
            )
        )


def _quantity_units(binding: Binding, value: dict[str, Any], path: str, ctx: Context) -> None:
    """Age, Distance and Duration bind their unit (system and code) extensibly."""
    if "code" in value and _coding_in(binding, value) is False:
        ctx.issues.append(
            ValidationIssue(
                path,
                f"unit {value.get('code')!r} is not in the extensible value set "
                f"{binding.describe()}",
                "code-invalid",
                severity="warning",
            )
        )


def _reference_target(
    targets: frozenset[str], value: dict[str, Any], path: str, ctx: Context
) -> None:
    """A literal reference's resource type must be one the element allows."""
    reference = value.get("reference")
    if reference.__class__ is str:
        match = _LITERAL_REFERENCE.fullmatch(reference)
        if match is not None:
            target = match.group(1)
            if target in resource_types() and target not in targets:
                ctx.issues.append(
                    ValidationIssue(
                        f"{path}.reference",
                        f"refers to a {target}; this element refers to "
                        f"{' | '.join(sorted(targets))}",
                        "structure",
                    )
                )
    declared = value.get("type")
    if declared.__class__ is str and declared in resource_types() and declared not in targets:
        ctx.issues.append(
            ValidationIssue(
                f"{path}.type",
                f"{declared} is not a type this element refers to ({' | '.join(sorted(targets))})",
                "structure",
            )
        )


def _invariants(constraints: tuple[Constraint, ...], focus: Any, path: str, ctx: Context) -> None:
    evaluator = ctx.invariants
    assert evaluator is not None
    compiled = ctx.compiled
    for constraint in constraints:
        run = compiled.get(constraint.expression)
        if run is None:
            run = compiled[constraint.expression] = evaluator(constraint.expression)
        try:
            holds = run(focus, ctx.resource, ctx.root)
        except Exception as exc:  # an evaluator's failure is reported, not raised
            ctx.issues.append(
                ValidationIssue(
                    path,
                    f"{constraint.key}: could not be evaluated ({type(exc).__name__}: {exc})",
                    "processing",
                    key=constraint.key,
                )
            )
            continue
        if not holds:
            ctx.issues.append(
                ValidationIssue(
                    path,
                    f"{constraint.key}: {constraint.human}",
                    "invariant",
                    severity=constraint.severity,
                    key=constraint.key,
                )
            )
