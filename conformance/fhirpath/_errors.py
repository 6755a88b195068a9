"""The errors of the FHIRPath compiler: one base, a syntax error raised by
``compile`` and an evaluation error raised while an expression runs."""

from __future__ import annotations


class FhirPathError(Exception):
    """Anything that goes wrong with a FHIRPath expression."""


class FhirPathSyntaxError(FhirPathError):
    """The text is not FHIRPath, or names a function this compiler does not have."""

    def __init__(self, message: str, expression: str | None = None) -> None:
        super().__init__(message if expression is None else f"{message}: {expression}")
        self.expression = expression


class FhirPathEvaluationError(FhirPathError):
    """The expression is well formed but cannot be evaluated on this input
    (FHIRPath's singleton rules, a type it cannot tell, a missing lookup)."""
