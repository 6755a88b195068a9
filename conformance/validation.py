"""Validation of FHIR R4 JSON resources on every write path and every mapping
output: the validator generated from the R4 (4.0.1) definitions
(``conformance.validator``), with every invariant of the base resources and
data types evaluated by the FHIRPath compiler (``conformance.fhirpath``); its
errors only. A warning (an extensible binding not met, a resource without
narrative) does not refuse a write.

Beyond the definitions, FHIR JSON has rules of its own
(https://hl7.org/fhir/R4/json.html), which the generated validator applies:
no ``null`` values, no empty strings, arrays or objects, and ids of at most
64 characters from ``[A-Za-z0-9.-]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from conformance import fhirpath, validator
from conformance.issues import ValidationIssue

__all__ = ["ID_PATTERN", "ValidationIssue", "validate_resource", "warm_up"]

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _invariant(expression: str) -> Callable[[Any, Any, Any], bool]:
    """The verdict of one invariant (``conformance.validator``'s hook):
    compiled once, held when it does not evaluate to false."""
    compiled = fhirpath.compile(expression)

    def holds(focus: Any, resource: Any, root: Any) -> bool:
        return compiled.holds(focus, resource, root)

    return holds


def warm_up() -> None:
    """Compile every type's tables now, so that the first write of each type
    is not the one that pays for it."""
    validator.warm_up()


def validate_resource(resource: Any, res_type: str) -> list[ValidationIssue]:
    """All the errors of ``resource`` as a FHIR R4 ``res_type``; empty if it
    is valid. ``res_type`` must be a type the caller already knows is in
    scope."""
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
    issues = validator.validate(resource, res_type, invariants=_invariant)
    return [issue for issue in issues if issue.severity == "error"]
