"""Structural validation of FHIR R4 JSON resources.

The wire format is FHIR R4 (4.0.1). Models come from ``fhir.resources``' R4B
package: R4B's changes from R4 (https://hl7.org/fhir/R4B/diff.html) fall on
resources outside our scope (the medication-definition family, Evidence,
Subscription topics, Citation, ...), so for the types in
``conformance.registry.RESOURCES`` an R4B model accepts exactly the R4 shape.
``tests/unit/conformance`` keeps R4 examples of every type validating to
hold us to that.

Beyond the models, FHIR JSON has rules of its own
(https://hl7.org/fhir/R4/json.html): no ``null`` values, no empty strings,
arrays or objects, and ids of at most 64 characters from ``[A-Za-z0-9.-]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import ValidationError

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class ValidationIssue:
    """One problem, with the element path in FHIRPath style (``Patient.name[0].family``)."""

    path: str
    message: str
    code: str = "invalid"  # OperationOutcome issue type: structure, required, value, invalid


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
            # Primitive extensions (_given) may hold nulls to keep arrays aligned.
            if key.startswith("_") and isinstance(item, list):
                continue
            yield from _json_rules(item, f"{path}.{key}")
    elif isinstance(value, list):
        if not value:
            yield ValidationIssue(path, "empty arrays are not allowed in FHIR JSON", "structure")
        for index, item in enumerate(value):
            yield from _json_rules(item, f"{path}[{index}]")
    elif isinstance(value, str) and not value.strip():
        yield ValidationIssue(path, "empty or blank strings are not allowed", "value")


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
            issues.append(ValidationIssue(_path(res_type, loc), message, code))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # fhir.resources raises these for shapes it cannot even start on, such
        # as a contained resource of an unknown type.
        issues.append(
            ValidationIssue(res_type, f"cannot be read as {res_type}: {exc!r}", "structure")
        )
    return issues
