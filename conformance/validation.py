"""Validation of FHIR R4 JSON resources on every write path and every mapping
output: the validator generated from the R4 (4.0.1) definitions
(``conformance.validator``), with every invariant of the base resources and
data types evaluated by the FHIRPath compiler (``conformance.fhirpath``), and
the UK Core profiles a resource claims (``conformance.profiles``); their
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
from functools import cache
from typing import Any

from conformance import fhirpath, profiles, validator
from conformance.issues import ValidationIssue

__all__ = ["ID_PATTERN", "ValidationIssue", "validate_resource", "warm_up"]

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


# Invariants that hold whenever their focus lacks the element they open with
# ("dataAbsentReason.empty() or ..."; "fullUrl.exists() implies ..."): 39 of
# R4's 100. Asking the JSON whether it is there is cheaper than evaluating.
_GUARDED = re.compile(r"^([a-z]\w*)\.(?:empty\(\) or|exists\(\) implies|exists\(\)\.not\(\) or) ")
# Two that every resource and every reference meets, with a guard of their
# own: dom-3 holds with nothing contained, ref-1 for a reference that is not
# to a contained resource ("#id").
_DOM_3 = "contained.where((('#'+id in "
_REF_1 = "reference.startsWith('#').not() or "


@cache
def _warnings_only() -> frozenset[str]:
    """The expressions of invariants that are only ever warnings: a write is
    not refused for them, so they are not evaluated on its way."""
    invariants = fhirpath.load_invariants()
    errors = {i.expression for i in invariants if i.severity == "error"}
    return frozenset(i.expression for i in invariants if i.expression not in errors)


def _always(focus: Any, resource: Any, root: Any) -> bool:
    return True


def _present(focus: dict[str, Any], name: str) -> bool:
    """Whether ``focus`` may hold ``name``: the element, its ``_name``
    extensions, or (a choice element) any of its types. Conservative: a
    longer name that merely starts alike counts."""
    for key in focus:
        bare = key[1:] if key.startswith("_") else key
        if bare == name or (bare.startswith(name) and bare[len(name) : len(name) + 1].isupper()):
            return True
    return False


def _invariant(expression: str) -> Callable[[Any, Any, Any], bool]:
    """The verdict of one invariant (``conformance.validator``'s hook):
    compiled once, held when it does not evaluate to false."""
    if expression in _warnings_only():
        return _always
    holds = fhirpath.compile(expression).predicate()
    if expression.startswith(_DOM_3):

        def contained(focus: Any, resource: Any, root: Any) -> bool:
            if type(focus) is dict and "contained" not in focus:
                return True
            return holds(focus, resource, root)

        return contained
    if expression.startswith(_REF_1):

        def reference(focus: Any, resource: Any, root: Any) -> bool:
            target = focus.get("reference") if type(focus) is dict else None
            if type(target) is str and not target.startswith("#"):
                return True
            return holds(focus, resource, root)

        return reference
    guard = _GUARDED.match(expression)
    if guard is None:
        return holds
    name = guard.group(1)

    def guarded(focus: Any, resource: Any, root: Any) -> bool:
        if type(focus) is dict and not _present(focus, name):
            return True
        return holds(focus, resource, root)

    return guarded


def warm_up() -> None:
    """Compile every type's tables and the UK Core profiles' now, so that the
    first write of each type is not the one that pays for it."""
    validator.warm_up()
    profiles.warm_up()


def validate_resource(
    resource: Any, res_type: str, *, profile: str | None = None, warnings: bool = False
) -> list[ValidationIssue]:
    """All the errors of ``resource`` as a FHIR R4 ``res_type``, and as each
    UK Core profile its ``meta.profile`` claims (``conformance.profiles``);
    empty if it is valid. ``res_type`` must be a type the caller already
    knows is in scope.

    ``profile``: a profile's canonical URL to validate against as well
    (``$validate``'s ``profile``); one the gateway does not have is an
    error. ``warnings``: the warnings too (extensible bindings not met, a
    claim of a profile the gateway does not know), which never refuse a
    write and are left out unless asked for.
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
    if profile is None and not profiles.may_claim(resource, res_type):
        issues = validator.validate(resource, res_type, invariants=_invariant)
    else:
        # The walk collects the extensions, which the profiles' checks use.
        walked: list[tuple[str, dict[str, Any]]] = []
        issues = validator.validate(resource, res_type, _invariant, walked)
        profiles.check_claims(resource, res_type, issues, profile, walked)
    if warnings:
        return issues
    return [issue for issue in issues if issue.severity == "error"]
