"""The gateway's first validator: fhir.resources' R4B models with the FHIR
JSON rules around them. No write path uses it any more (``conformance.
validation`` runs the validator generated from the R4 definitions,
``conformance.validator``); it is kept as the speed benchmark's baseline
(``bench/validation.py``) and as a second opinion in the agreement tests.

The wire format is FHIR R4 (4.0.1). Models come from ``fhir.resources``' R4B
package. R4B's changes from R4 (https://hl7.org/fhir/R4B/diff.html) barely touch
the resources in scope; the few that do reach them (extension value types,
contained resource types, the Quantity comparator's codes) are handled here,
and ``docs/r4-r4b.md`` lists each with how the gateway treats it.
``tests/unit/conformance`` keeps a rich R4 example of every type validating.

Beyond the models, FHIR JSON has rules of its own
(https://hl7.org/fhir/R4/json.html): no ``null`` values, no empty strings,
arrays or objects, and ids of at most 64 characters from ``[A-Za-z0-9.-]``.
"""

from __future__ import annotations

import decimal
import re
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import ValidationError

from conformance.issues import ValidationIssue as ValidationIssue  # re-exported

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@cache
def _model(res_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(res_type)


def _path(res_type: str, loc: tuple[int | str, ...]) -> str:
    path = res_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}"
    return path


def _json_rules(value: Any, path: str) -> Iterator[ValidationIssue]:
    if value is None:
        yield ValidationIssue(path, "null is not allowed in FHIR JSON", "structure")
    elif isinstance(value, dict):
        if not value:
            yield ValidationIssue(path, "empty objects are not allowed in FHIR JSON", "structure")
        for key, item in value.items():
            if key.startswith("_") and isinstance(item, list) and item:
                # A primitive array's extensions (_given) may hold bare nulls to
                # stay aligned with the values; nothing else is exempt.
                for index, element in enumerate(item):
                    if element is not None:
                        yield from _json_rules(element, f"{path}.{key}[{index}]")
                continue
            yield from _json_rules(item, f"{path}.{key}")
    elif isinstance(value, list):
        if not value:
            yield ValidationIssue(path, "empty arrays are not allowed in FHIR JSON", "structure")
        for index, item in enumerate(value):
            yield from _json_rules(item, f"{path}[{index}]")
    elif isinstance(value, str):
        if not value.strip():
            yield ValidationIssue(path, "empty or blank strings are not allowed", "value")
        elif "\x00" in value:
            # No FHIR string holds U+0000 (XML cannot carry it; PostgreSQL
            # text cannot store it).
            yield ValidationIssue(path, "contains the character U+0000 (NUL)", "value")


# -- primitive JSON types ---------------------------------------------------------
#
# The models coerce like pydantic's lax mode ("yes" becomes true, "2" becomes 2),
# which FHIR JSON forbids: booleans are JSON booleans, integers and decimals
# JSON numbers, every other primitive a JSON string
# (https://hl7.org/fhir/R4/json.html#primitive). So the JSON is walked beside the
# model's field table first, and the kinds checked exactly.

_BOOLEAN, _INTEGER, _DECIMAL, _STRING, _RESOURCE = "boolean", "integer", "decimal", "string", "*"
_PRIMITIVE_KINDS = frozenset({_BOOLEAN, _INTEGER, _DECIMAL, _STRING})


@dataclass(frozen=True)
class _Field:
    kind: str  # one of the primitive kinds above, _RESOURCE, or a complex type name
    many: bool
    codes: frozenset[str] | None = None  # a required binding's codes, when known


# The models list a required binding's codes with the element (``enum_values``),
# except where the element's short description is cut short ("... | final |
# amended +"). Those few in scope are completed here from the R4 value sets.
_COMPLETED_BINDINGS = {
    # http://hl7.org/fhir/R4/valueset-observation-status.html
    ("Observation", "status"): "registered preliminary final amended corrected cancelled "
    "entered-in-error unknown",
    # http://hl7.org/fhir/R4/valueset-diagnostic-report-status.html
    ("DiagnosticReport", "status"): "registered partial preliminary final amended corrected "
    "appended cancelled entered-in-error unknown",
    # http://hl7.org/fhir/R4/valueset-encounter-status.html
    ("Encounter", "status"): "planned arrived triaged in-progress onleave finished cancelled "
    "entered-in-error unknown",
    ("EncounterStatusHistory", "status"): "planned arrived triaged in-progress onleave "
    "finished cancelled entered-in-error unknown",
    # http://hl7.org/fhir/R4/valueset-quantity-comparator.html: the R4B models
    # dropped the list, R4 requires it.
    **{
        (quantity, "comparator"): "< <= >= >"
        for quantity in ("Quantity", "Age", "Count", "Distance", "Duration", "MoneyQuantity")
    },
}

# Elements and resource types the R4B models accept that FHIR R4 does not have
# (https://hl7.org/fhir/R4B/diff.html); see docs/r4-r4b.md.
_NOT_IN_R4 = frozenset({("Extension", "valueCodeableReference"), ("Extension", "valueRatioRange")})
_R4B_ONLY_RESOURCES = frozenset(
    {
        "AdministrableProductDefinition",
        "Citation",
        "ClinicalUseDefinition",
        "Evidence",
        "EvidenceReport",
        "EvidenceVariable",
        "Ingredient",
        "ManufacturedItemDefinition",
        "MedicinalProductDefinition",
        "NutritionProduct",
        "PackagedProductDefinition",
        "RegulatedAuthorization",
        "SubscriptionStatus",
        "SubscriptionTopic",
    }
)
# Fields of the Python models that are not FHIR elements.
_MODEL_ONLY = frozenset({"fhir_comments", "resource_type"})


def _required_codes(type_name: str, name: str, extra: Any) -> frozenset[str] | None:
    """The codes an element must take, for the types reachable from the
    resources in scope, whose lists we have reviewed against R4 (elsewhere the
    lists are parsed from prose and can be wrong: CapabilityStatement.format)."""
    if (type_name, name) in _COMPLETED_BINDINGS:
        return frozenset(_COMPLETED_BINDINGS[(type_name, name)].split())
    if type_name not in _types_in_scope():
        return None
    listed = extra.get("enum_values") if isinstance(extra, dict) else None
    if not listed or "+" in listed or "etc." in listed:
        return None  # cut short, or an extensible binding written as a list
    return frozenset(listed)


@cache
def _types_in_scope() -> frozenset[str]:
    """The resource types in scope and every element type they contain."""
    from conformance.registry import RESOURCES

    found: set[str] = set()
    pending = list(RESOURCES)
    while pending:
        type_name = pending.pop()
        if type_name in found:
            continue
        found.add(type_name)
        try:
            model = _model(type_name)
        except (KeyError, ValueError, AttributeError, ImportError):
            continue
        for info in model.model_fields.values():
            kind = _field_kind(info.annotation).kind
            if kind not in _PRIMITIVE_KINDS and kind != _RESOURCE:
                pending.append(kind)
    return frozenset(found)


def _field_kind(annotation: Any) -> _Field:
    many = False
    while True:
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin in (typing.Union, types.UnionType) and args:
            annotation = args[0]
        elif origin in (list, typing.List):  # noqa: UP006 - the models use typing.List
            many, annotation = True, args[0]
        elif origin is typing.Annotated:
            annotation = args[0]
        else:
            break
    if annotation is bool:
        return _Field(_BOOLEAN, many)
    if annotation is int:
        return _Field(_INTEGER, many)
    if annotation is decimal.Decimal:
        return _Field(_DECIMAL, many)
    name = getattr(annotation, "__name__", "")
    if isinstance(annotation, type) and name.endswith("Type") and annotation.__module__ == "abc":
        name = name.removesuffix("Type")
        return _Field(_RESOURCE if name in ("Resource", "DomainResource") else name, many)
    return _Field(_STRING, many)


@cache
def _fields(type_name: str) -> dict[str, _Field] | None:
    try:
        model = _model(type_name)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None
    table: dict[str, _Field] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        if name.endswith("__ext") or alias.startswith("_") or name == "fhir_comments":
            continue  # primitive extensions hold Elements; checked by the model
        spec = _field_kind(info.annotation)
        codes = _required_codes(type_name, name, info.json_schema_extra)
        table[alias] = _Field(spec.kind, spec.many, codes) if codes else spec
    return table


_PRIMITIVE_CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    _BOOLEAN: ("a JSON boolean", lambda v: isinstance(v, bool)),
    _INTEGER: ("a JSON integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    _DECIMAL: (
        "a JSON number",
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    ),
    _STRING: ("a JSON string", lambda v: isinstance(v, str)),
}


def _resource_type_problem(declared: Any) -> str | None:
    """Why ``declared`` cannot be the resourceType of a contained resource."""
    if not isinstance(declared, str):
        return "a contained resource needs its resourceType"
    if declared in ("Resource", "DomainResource"):
        return f"{declared} is abstract; name the resource's own type"
    if declared in _R4B_ONLY_RESOURCES or _fields(declared) is None:
        return f"{declared!r} is not a FHIR R4 resource type this server can read"
    return None


def _json_types(value: Any, type_name: str, path: str) -> Iterator[ValidationIssue]:
    if not isinstance(value, dict):
        return  # the model reports a non-object where an object belongs
    if type_name == _RESOURCE:
        inner = value.get("resourceType")
        problem = _resource_type_problem(inner)
        if problem:
            yield ValidationIssue(f"{path}.resourceType", problem, "structure")
            return
        type_name = str(inner)
    table = _fields(type_name)
    if table is None:
        return
    for key, item in value.items():
        if key in _MODEL_ONLY or (type_name, key) in _NOT_IN_R4:
            yield ValidationIssue(f"{path}.{key}", "unknown element", "structure")
            continue
        spec = table.get(key)
        if spec is None:
            continue  # unknown elements are the model's to report
        items = list(enumerate(item)) if spec.many and isinstance(item, list) else [(None, item)]
        for index, element in items:
            where = f"{path}.{key}" + (f"[{index}]" if index is not None else "")
            check = _PRIMITIVE_CHECKS.get(spec.kind)
            if check is None:
                yield from _json_types(element, spec.kind, where)
            elif not check[1](element):
                yield ValidationIssue(
                    where, f"must be {check[0]}, not {type(element).__name__}", "value"
                )
            elif spec.codes is not None and element not in spec.codes:
                yield ValidationIssue(
                    where,
                    f"{element!r} is not in the required value set "
                    f"({' | '.join(sorted(spec.codes))})",
                    "code-invalid",
                )


def warm_up() -> None:
    """Load the models and field tables of every type in scope now, so that
    the first write of each type is not the one that pays for it."""
    for type_name in _types_in_scope():
        _fields(type_name)


def validate_resource(resource: Any, res_type: str) -> list[ValidationIssue]:
    """All the problems with ``resource`` as a FHIR R4 ``res_type``; empty if valid.

    ``res_type`` must be a type the caller already knows is in scope.
    """
    if not isinstance(resource, dict):
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
    issues = list(_json_rules(resource, res_type))
    res_id = resource.get("id")
    if res_id is not None and (not isinstance(res_id, str) or not ID_PATTERN.match(res_id)):
        issues.append(
            ValidationIssue(
                f"{res_type}.id",
                "id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
                "value",
            )
        )
    if issues:
        return issues
    issues = list(_json_types(resource, res_type, res_type))
    reported = {issue.path for issue in issues}
    try:
        _model(res_type).model_validate(resource)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error.get("loc", ()))
            kind = error.get("type", "")
            code = {
                "missing": "required",
                "extra_forbidden": "structure",
            }.get(kind, "value")
            message = error.get("msg", "invalid value")
            if kind == "extra_forbidden":
                message = "unknown element"
            path = _path(res_type, loc)
            if not any(path == p or path.startswith((p + ".", p + "[")) for p in reported):
                issues.append(ValidationIssue(path, message, code))
    except (ValueError, TypeError, KeyError, AttributeError):
        # fhir.resources raises these for shapes it cannot even start on (a
        # contained resource of an unknown type), which the walk above reports
        # at their element; anything else still fails, without internals.
        if not issues:
            issues.append(
                ValidationIssue(res_type, f"cannot be read as a FHIR R4 {res_type}", "structure")
            )
    return issues
