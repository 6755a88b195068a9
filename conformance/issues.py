"""What a validator reports: one issue per problem, as an OperationOutcome
issue would carry it (https://hl7.org/fhir/R4/operationoutcome.html).

Kept apart from both validators (``conformance.r4b``, the models';
``conformance.validator``, the StructureDefinitions') so that neither needs
the other to say what it found.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ValidationIssue:
    """One problem, with the element path in FHIRPath style (``Patient.name[0].family``)."""

    path: str
    message: str
    # OperationOutcome issue type (https://hl7.org/fhir/R4/valueset-issue-type.html):
    # structure, required, value, invalid, code-invalid, invariant, too-long, ...
    code: str = "invalid"
    severity: str = "error"  # OperationOutcome issue severity: error or warning
    key: str | None = None  # the invariant's key (ele-1, obs-6), or a profile rule's
    profile: str | None = None  # the canonical URL (|version) of the profile whose rule it is
