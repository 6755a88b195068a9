"""FHIRPath for FHIR R4 invariants, compiled to Python closures over FHIR JSON.

    from conformance import fhirpath

    per_1 = fhirpath.compile("start.hasValue().not() or end.hasValue().not() or (start <= end)")
    per_1({"start": "2021", "end": "2020-06"}, patient)      # [False]
    fhirpath.holds(per_1, {"start": "2021"}, patient)        # True

``compile`` parses once and returns an ``Expression``: calling it with a focus
(the element the invariant sits on, as ``json`` parsed it), the resource that
holds it (``%resource``) and, for a contained resource, its container
(``%rootResource``) returns the result collection as a list.

``holds`` gives an invariant's verdict: it holds unless the expression
evaluates to ``false``. An empty result holds: R4 does not say how an empty
result is judged, and its expressions return empty on valid data where
FHIRPath's rules leave a comparison undecided (ref-1 on a Reference with no
``reference``; per-1 on ``2020`` to ``2020-06``, which R5 rewrote with
``lowBoundary()``). The reference validators reach "valid" on those by other
means (HL7's R4-era ``startsWith()`` returned false on an empty input,
Medplum's ``not()`` of empty is true, Firely rewrites the expressions), so
empty-holds is what reproduces their verdicts with FHIRPath's own semantics.
An evaluation error (FHIRPath's singleton rules broken, say) is raised as
``FhirPathEvaluationError``, for the caller to report as a failure.

``README.md`` beside this file says what is supported and where the invariant
fixture comes from.

http://hl7.org/fhirpath/N1/, https://hl7.org/fhir/R4/fhirpath.html
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from conformance.fhirpath._compiler import (
    FUNCTION_NAMES,
    Env,
    Fn,
    Resolver,
    Tracer,
    Truth,
    ValueSets,
    compile_tree,
)
from conformance.fhirpath._errors import (
    FhirPathError,
    FhirPathEvaluationError,
    FhirPathSyntaxError,
)
from conformance.fhirpath._parser import parse
from conformance.fhirpath._values import Primitive
from conformance.fhirpath._xhtml import narrative_problem
from conformance.fhirpath.invariants import Invariant, load_invariants
from conformance.fhirpath.resolvers import bundle_resolver, typed_stub_resolver

__all__ = [
    "FUNCTION_NAMES",
    "Expression",
    "FhirPathError",
    "FhirPathEvaluationError",
    "FhirPathSyntaxError",
    "Invariant",
    "Primitive",
    "Resolver",
    "Tracer",
    "ValueSets",
    "bundle_resolver",
    "compile",
    "holds",
    "load_invariants",
    "narrative_problem",
    "typed_stub_resolver",
]


class Expression:
    """A compiled FHIRPath expression; call it to evaluate."""

    __slots__ = ("_fn", "_truth", "text")

    def __init__(self, text: str, fn: Fn, truth: Truth) -> None:
        self.text = text
        self._fn = fn
        self._truth = truth

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def holds(
        self,
        focus: Any,
        resource: Any = None,
        root_resource: Any = None,
        *,
        resolver: Resolver | None = None,
        value_sets: ValueSets | None = None,
    ) -> bool:
        """The invariant's verdict: False only when it evaluates to ``false``."""
        items, env = _environment(
            focus, resource, root_resource, resolver=resolver, value_sets=value_sets
        )
        return self._truth(items, env) is not False

    def predicate(self) -> Callable[[Any, Any, Any], bool]:
        """``holds`` as a plain function of (focus, %resource, %rootResource),
        for a validator that evaluates it on every value: no keyword
        arguments, no resolver or value sets, nothing looked up per call."""
        truth = self._truth

        def holds(focus: Any, resource: Any, root: Any) -> bool:
            items = focus if type(focus) is list else ([] if focus is None else [focus])
            env = Env(items, focus, resource, root, None, None, None, None)
            return truth(items, env) is not False

        return holds

    def run(
        self,
        focus: Any,
        resource: Any = None,
        root_resource: Any = None,
        *,
        context: Any = None,
        resolver: Resolver | None = None,
        tracer: Tracer | None = None,
        variables: dict[str, Any] | None = None,
        value_sets: ValueSets | None = None,
    ) -> list[Any]:
        """The result collection, shared with the compiled code: do not change it."""
        items, env = _environment(
            focus,
            resource,
            root_resource,
            context=context,
            resolver=resolver,
            tracer=tracer,
            variables=variables,
            value_sets=value_sets,
        )
        return self._fn(items, env)

    def __call__(
        self,
        focus: Any,
        resource: Any = None,
        root_resource: Any = None,
        *,
        context: Any = None,
        resolver: Resolver | None = None,
        tracer: Tracer | None = None,
        variables: dict[str, Any] | None = None,
        value_sets: ValueSets | None = None,
    ) -> list[Any]:
        """Evaluate on ``focus`` (one JSON value, or a list as a collection),
        with ``%resource`` the resource holding it (by default the focus itself
        when it is a resource) and ``%rootResource`` its container (by default
        ``%resource``). ``resolver`` finds what a literal reference other than
        ``#id`` points at for ``resolve()`` (without one those resolve to
        nothing); ``tracer`` receives ``trace()``; ``variables`` adds
        ``%name``s; ``value_sets`` answers ``memberOf()``."""
        return list(
            self.run(
                focus,
                resource,
                root_resource,
                context=context,
                resolver=resolver,
                tracer=tracer,
                variables=variables,
                value_sets=value_sets,
            )
        )


def _environment(
    focus: Any,
    resource: Any,
    root_resource: Any,
    *,
    context: Any = None,
    resolver: Resolver | None = None,
    tracer: Tracer | None = None,
    variables: dict[str, Any] | None = None,
    value_sets: ValueSets | None = None,
) -> tuple[list[Any], Env]:
    """The input collection and the environment of an evaluation on
    ``focus``: ``%resource`` the focus itself when it is a resource and none
    is given, ``%rootResource`` ``%resource`` when none is given."""
    items = focus if type(focus) is list else ([] if focus is None else [focus])
    if resource is None and type(focus) is dict and "resourceType" in focus:
        resource = focus
    env = Env(
        items,
        focus if context is None else context,
        resource,
        resource if root_resource is None else root_resource,
        resolver,
        tracer,
        variables,
        value_sets,
    )
    return items, env


@lru_cache(maxsize=2048)
def compile(expression: str) -> Expression:
    """Parse and compile once; FhirPathSyntaxError if the text is not
    FHIRPath or uses a function this compiler does not have."""
    return Expression(expression, *compile_tree(parse(expression), expression))


def holds(
    expression: Expression | str,
    focus: Any,
    resource: Any = None,
    root_resource: Any = None,
    *,
    resolver: Resolver | None = None,
    value_sets: ValueSets | None = None,
) -> bool:
    """An invariant's verdict: False only when it evaluates to ``false``
    (empty holds; see the module's docstring for why)."""
    compiled = expression if isinstance(expression, Expression) else compile(expression)
    return compiled.holds(focus, resource, root_resource, resolver=resolver, value_sets=value_sets)
