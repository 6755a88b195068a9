"""FHIRPath for ViewDefinitions: the repository's compiler
(``conformance.fhirpath``) with the functions SQL on FHIR adds to it.

SQL on FHIR v2 asks a view runner for a subset of FHIRPath
(https://build.fhir.org/ig/FHIR/sql-on-fhir-v2/StructureDefinition-ViewDefinition.html#fhirpath-functionality)
plus ``getResourceKey()`` and ``getReferenceKey([type])``; its
experimental cases use ``lowBoundary()`` and ``highBoundary()``
(http://hl7.org/fhirpath/2025Jan/#lowboundaryprecision-integer-decimal--date--datetime--time).
``conformance.fhirpath`` compiles everything else, and has no public hook
for new functions, so this module subclasses its compiler: a new function
is a builder like the compiler's own, tried before the compiler's table.
Nothing in ``conformance`` is changed.

A ``Path`` is called with the focus item, the resource and the variables
(the view's constants and ``rowIndex``) and returns the result collection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from conformance.fhirpath import FhirPathError, FhirPathSyntaxError
from conformance.fhirpath import _compiler as compiler
from conformance.fhirpath._parser import (
    Binary,
    Call,
    Index,
    Member,
    Node,
    TypeOp,
    Unary,
    Variable,
    parse,
)
from conformance.fhirpath._values import DateTime, Time, plain

__all__ = ["FhirPathError", "Path", "compile_path", "variables_used"]

Fn = compiler.Fn


class Path:
    """A compiled FHIRPath expression of a view."""

    __slots__ = ("_fn", "text")

    def __init__(self, text: str, fn: Fn) -> None:
        self.text = text
        self._fn = fn

    def __repr__(self) -> str:
        return f"Path({self.text!r})"

    def __call__(
        self, focus: Any, resource: Any, variables: Mapping[str, Any] | None = None
    ) -> list[Any]:
        items = [focus]
        env = compiler.Env(items, focus, resource, resource, None, None, variables, None)  # type: ignore[arg-type]
        return self._fn(items, env)


def compile_path(text: str) -> tuple[Path, Node]:
    """The expression compiled, and its syntax tree (for the variables it
    uses); FhirPathSyntaxError when it is not FHIRPath this runner has."""
    tree = parse(text)
    return Path(text, _ViewCompiler(text).compile(tree)), tree


def variables_used(node: Node) -> Iterator[str]:
    """The ``%names`` an expression reads."""
    if isinstance(node, Variable):
        yield node.name
    elif isinstance(node, Member) and node.target is not None:
        yield from variables_used(node.target)
    elif isinstance(node, Call):
        if node.target is not None:
            yield from variables_used(node.target)
        for argument in node.args:
            yield from variables_used(argument)
    elif isinstance(node, Index):
        yield from variables_used(node.target)
        yield from variables_used(node.index)
    elif isinstance(node, Binary):
        yield from variables_used(node.left)
        yield from variables_used(node.right)
    elif isinstance(node, (Unary, TypeOp)):
        yield from variables_used(node.operand)


# The functions SQL on FHIR adds, as builders of (input, env) -> output.

_Builder = Callable[["_ViewCompiler", Call], Fn]
_EXTRA: dict[str, tuple[int, int, _Builder]] = {}


def _extra(name: str, least: int = 0, most: int = 0) -> Callable[[_Builder], _Builder]:
    def register(builder: _Builder) -> _Builder:
        _EXTRA[name] = (least, most, builder)
        return builder

    return register


class _ViewCompiler(compiler._Compiler):
    def _call(self, node: Call) -> Fn:
        entry = _EXTRA.get(node.name)
        if entry is None:
            return super()._call(node)
        least, most, builder = entry
        if not least <= len(node.args) <= most:
            raise FhirPathSyntaxError(f"{node.name}() takes {least} to {most} arguments", self.text)
        function = builder(self, node)
        if node.target is None:
            return function
        target = self.compile(node.target)
        return lambda items, env: function(target(items, env), env)


@_extra("getResourceKey")
def _resource_key(view_compiler: _ViewCompiler, node: Call) -> Fn:
    """The resource's id: the key a reference to it gives too."""

    def key(items: list[Any], env: compiler.Env) -> list[Any]:
        return [
            item["id"]
            for item in items
            if type(item) is dict and "resourceType" in item and "id" in item
        ]

    return key


# A literal reference, relative (Patient/123) or absolute (.../Patient/123),
# possibly to a version (/_history/2): its type and id.
_REFERENCE = re.compile(
    r"(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)


@_extra("getReferenceKey", 0, 1)
def _reference_key(view_compiler: _ViewCompiler, node: Call) -> Fn:
    """The key of the resource a Reference's literal reference names, if it
    is of the type asked for; else nothing (a reference by identifier alone,
    a contained ``#id`` or a URN resolves to no key)."""
    wanted = compiler._type_argument(node.args, "getReferenceKey") if node.args else None
    if wanted is not None:
        wanted = wanted.rpartition(".")[2]

    def key(items: list[Any], env: compiler.Env) -> list[Any]:
        out = []
        for item in items:
            reference = plain(item.get("reference")) if type(item) is dict else None
            if type(reference) is not str:
                continue
            match = _REFERENCE.fullmatch(reference)
            if match is not None and (wanted is None or match.group(1) == wanted):
                out.append(match.group(2))
        return out

    return key


def _declared_type(node: Call) -> str | None:
    """The type an expression's input is declared to be by ``ofType(T)`` or
    ``as T`` just before the boundary function: plain JSON does not say
    whether ``"2010-10-10"`` is a date or a dateTime, so without it a
    date-only string is taken to be a date."""
    target = node.target
    if isinstance(target, Call) and target.name in ("ofType", "as") and target.args:
        return compiler._type_argument(target.args, target.name).rpartition(".")[2]
    if isinstance(target, TypeOp) and target.op == "as":
        return target.type_name.rpartition(".")[2]
    return None


def _boundary(high: bool) -> _Builder:
    def build(view_compiler: _ViewCompiler, node: Call) -> Fn:
        precision = compiler._argument(view_compiler, node.args[0]) if node.args else None
        declared = _declared_type(node)

        def boundary(items: list[Any], env: compiler.Env) -> list[Any]:
            item = plain(compiler._single(items, node.name))
            if item is None:
                return compiler.EMPTY
            digits = None
            if precision is not None:
                digits = plain(compiler._single(precision(items, env), node.name))
            found = _bound(item, high, declared, digits)
            return compiler.EMPTY if found is None else [found]

        return boundary

    return build


_extra("lowBoundary", 0, 1)(_boundary(high=False))
_extra("highBoundary", 0, 1)(_boundary(high=True))

_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _month_days(year: int, month: int) -> int:
    if month == 2 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        return 28
    return _DAYS[month - 1]


def _bound(item: Any, high: bool, declared: str | None, digits: Any) -> Any:
    """The least or greatest value ``item`` could stand for at its precision."""
    if type(item) is bool:
        return None
    if isinstance(item, (int, float, Decimal)):
        return _decimal_bound(Decimal(str(item)), high, digits)
    if type(item) is Time or (type(item) is str and Time.parse(item) is not None):
        return _time_bound(str(item), high)
    if isinstance(item, (DateTime, str)):
        moment = item if isinstance(item, DateTime) else DateTime.parse(item)
        if moment is None:
            return None
        as_datetime = moment.has_time or declared in ("dateTime", "instant", "DateTime")
        return _datetime_bound(moment, high, as_datetime)
    return None


def _decimal_bound(value: Decimal, high: bool, digits: Any) -> Decimal | None:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    places = -exponent if exponent < 0 else 0
    half = Decimal(5).scaleb(-(places + 1))
    result = value + half if high else value - half
    target = 8 if digits is None else int(digits)
    if target < 0 or target > 28:
        return None
    if digits is None:
        return result.normalize() if result != 0 else Decimal(0)
    return result.quantize(Decimal(1).scaleb(-target))


def _time_bound(text: str, high: bool) -> str:
    parts = text.split(":")
    filled = parts + (["59"] if high else ["00"]) * (3 - len(parts))
    seconds = filled[2]
    if "." not in seconds:
        seconds += ".999" if high else ".000"
    return f"{filled[0]}:{filled[1]}:{seconds}"


def _datetime_bound(moment: DateTime, high: bool, as_datetime: bool) -> str:
    parts = list(moment.parts)
    year = parts[0]
    month = parts[1] if len(parts) > 1 else (12 if high else 1)
    day = parts[2] if len(parts) > 2 else (_month_days(year, month) if high else 1)
    date = f"{year:04d}-{month:02d}-{day:02d}"
    if not as_datetime:
        return date
    hour = parts[3] if len(parts) > 3 else (23 if high else 0)
    minute = parts[4] if len(parts) > 4 else (59 if high else 0)
    if len(parts) > 5:
        second = f"{parts[5]:06.3f}" if "." in str(parts[5]) else f"{int(parts[5]):02d}.000"
    else:
        second = "59.999" if high else "00.000"
    if moment.offset is None:
        # Without a zone the moment could be in any: the earliest reading
        # is at +14:00, the latest at -12:00.
        zone = "-12:00" if high else "+14:00"
    elif moment.offset == 0:
        zone = "Z" if moment.text.endswith("Z") else "+00:00"
    else:
        sign = "+" if moment.offset > 0 else "-"
        zone = f"{sign}{abs(moment.offset) // 60:02d}:{abs(moment.offset) % 60:02d}"
    return f"{date}T{hour:02d}:{minute:02d}:{second}{zone}"
