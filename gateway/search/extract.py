"""Index values: what each search parameter of a resource's type finds in it.

https://hl7.org/fhir/R4/search.html. Each parameter's FHIRPath expression
(https://hl7.org/fhir/R4/fhirpath.html, http://hl7.org/fhirpath/N1/) is
compiled once per resource type by a small evaluator for the subset that the
R4 search parameters of the types in scope use, and the nodes it selects are
turned into the values of ``gateway.store.values`` by the parameter's type
(https://hl7.org/fhir/R4/search.html#ptypes).

The subset: paths from the type (``Patient.name.family``; a path from another
type is dropped, so ``clinical-patient``'s 32 branches cost one on a
Patient), unions (``|``), ``X as T``, ``X is T``, ``as(T)``, ``ofType(T)``,
``where(...)`` (``where(resolve() is Patient)`` keeps the references whose
target is a Patient, read from ``Reference.reference`` or else
``Reference.type``), ``exists()``, ``empty()``, ``first()``, ``not()``,
``extension('url')``, ``=``, ``!=``, ``and``, ``or``, and string, boolean
and number literals. Anything else raises ``UnsupportedExpression`` when the
expression is compiled, as does an element the type does not have; every
expression in scope is compiled by the tests.

Element names and types come from the ``fhir.resources`` R4B models (the same
ones ``conformance.validation`` uses), which is how a choice element
(``Observation.value``) is read from ``valueQuantity``, ``valueString``...
and why each selected node knows its FHIR type.

Value rules, by parameter type:

* token: Coding is (system, code, display as text); a CodeableConcept is each
  of its codings, plus ``TokenValue(None, None, text)`` for its ``text``, so
  that ``:text`` finds either (https://hl7.org/fhir/R4/search.html#token);
  Identifier is (system, value, type.text); ContactPoint is (None, value);
  a ``code`` is (the code system its required binding names, value) where
  the parameter's data says which (``codeSystem``: ``gender`` is
  ``http://hl7.org/fhir/administrative-gender``), else (None, value), as are
  string, id, uri and the other string-like primitives; boolean is
  (None, "true"/"false").
* string: each string; HumanName's family, given, prefix, suffix and text and
  Address's line, city, district, state, postalCode, country and text, each a
  value of its own.
* date: date, dateTime, instant, Period and Timing as the half-open UTC range
  they cover (``DateRange``); a Timing by the outer limits of its events and
  ``repeat.boundsPeriod``. A date or dateTime without a time zone is taken as
  UTC. CarePlan's ``scheduledString`` and Procedure's ``performedString``,
  ``performedAge`` and ``performedRange`` are not points in time and are not
  indexed.
* reference: Reference as its ``reference`` (type and id read from
  ``Type/id`` and from absolute URLs ending in it; ``#contained`` kept as url
  only) and its ``identifier``; canonical and uri as the url only. An
  Attachment (``Consent.sourceAttachment``) is not indexed.
* quantity: Quantity and its specialisations (Age, Duration...) with the
  value as a Decimal; Money with the ISO 4217 system. Range and SampledData
  have no single quantity and are not indexed (``value-quantity`` on
  ``valueSampledData``, ``onset-age`` on ``onsetRange``).
* number: integer and decimal as Decimal. uri: the string.
* Each parameter's values come without repeats, in document order. A
  malformed date raises ``ValueError`` (validation keeps them out; extraction
  does not guess).
* special (``Location.near``) and composite parameters are left out of
  ``index_values``: ``near`` needs a geographic index, and a composite's
  values are tuples, which ``extract_composite`` gives for whoever indexes
  them.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from itertools import product
from typing import Any

from gateway.search.parameters import SearchParameter, parameters_for, spec_resource_types
from gateway.store.values import (
    DateRange,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    SearchValue,
    StringValue,
    TokenValue,
    UriValue,
)


class UnsupportedExpression(ValueError):
    """A FHIRPath expression outside the supported subset, or one that names
    an element its type does not have."""


# -- parsing (http://hl7.org/fhirpath/N1/#grammar) -----------------------------------


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Any
    type: str


@dataclass(frozen=True, slots=True)
class _Name:
    """An identifier that starts a path: an element of the context, or a type
    name (``Patient.name`` on a Patient)."""

    name: str


@dataclass(frozen=True, slots=True)
class _Member:
    source: _Node
    name: str


@dataclass(frozen=True, slots=True)
class _Call:
    source: _Node | None
    name: str
    args: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Binary:
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True, slots=True)
class _TypeOp:
    op: str
    operand: _Node
    type_name: str


_Node = _Literal | _Name | _Member | _Call | _Binary | _TypeOp

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>\d+(?:\.\d+)?)"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>!=|!~|<=|>=|[.()|=,<>\[\]+\-*/&~%$`{}]))"
)
_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r"}
_ESCAPES["t"] = "\t"


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = expression.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise UnsupportedExpression(
                f"{expression!r}: cannot read {text[position:].strip()[:20]!r}"
            )
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), token[1:-1])


class _Parser:
    """Recursive descent over the precedence levels of the subset:
    ``or`` < ``and`` < ``=`` ``!=`` < ``|`` < ``is`` ``as`` < ``.``."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokens(expression)
        self.position = 0

    def fail(self, message: str) -> UnsupportedExpression:
        return UnsupportedExpression(f"{self.expression!r}: {message}")

    def peek(self) -> str | None:
        if self.position < len(self.tokens):
            return self.tokens[self.position][1]
        return None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise self.fail("ends too soon")
        token = self.tokens[self.position]
        if expected is not None and token[1] != expected:
            raise self.fail(f"expected {expected!r}, found {token[1]!r}")
        self.position += 1
        return token

    def parse(self) -> _Node:
        node = self.or_()
        if self.position < len(self.tokens):
            raise self.fail(f"unsupported FHIRPath at {self.tokens[self.position][1]!r}")
        return node

    def or_(self) -> _Node:
        node = self.and_()
        while self.peek() == "or":
            self.take()
            node = _Binary("or", node, self.and_())
        return node

    def and_(self) -> _Node:
        node = self.equality()
        while self.peek() == "and":
            self.take()
            node = _Binary("and", node, self.equality())
        return node

    def equality(self) -> _Node:
        node = self.union()
        while self.peek() in ("=", "!="):
            op = self.take()[1]
            node = _Binary(op, node, self.union())
        return node

    def union(self) -> _Node:
        node = self.type_op()
        while self.peek() == "|":
            self.take()
            node = _Binary("|", node, self.type_op())
        return node

    def type_op(self) -> _Node:
        node = self.postfix()
        if self.peek() in ("as", "is"):
            op = self.take()[1]
            node = _TypeOp(op, node, self.type_name())
        return node

    def type_name(self) -> str:
        kind, name = self.take()
        if kind != "ident":
            raise self.fail(f"expected a type name, found {name!r}")
        if self.peek() == "." and name in ("FHIR", "System"):
            self.take()
            name = f"{name}.{self.take()[1]}"
        return name

    def postfix(self) -> _Node:
        node = self.term()
        while self.peek() == ".":
            self.take()
            kind, name = self.take()
            if kind != "ident":
                raise self.fail(f"expected a name after '.', found {name!r}")
            if self.peek() == "(":
                node = _Call(node, name, self.arguments())
            else:
                node = _Member(node, name)
        return node

    def arguments(self) -> tuple[_Node, ...]:
        self.take("(")
        args: list[_Node] = []
        while self.peek() != ")":
            args.append(self.or_())
            if self.peek() == ",":
                self.take()
        self.take(")")
        return tuple(args)

    def term(self) -> _Node:
        kind, text = self.take()
        if kind == "string":
            return _Literal(_unquote(text), "string")
        if kind == "number":
            return _Literal(Decimal(text), "decimal" if "." in text else "integer")
        if kind == "ident":
            if text in ("true", "false"):
                return _Literal(text == "true", "boolean")
            if self.peek() == "(":
                return _Call(None, text, self.arguments())
            return _Name(text)
        if text == "(":
            node = self.or_()
            self.take(")")
            return node
        raise self.fail(f"unsupported FHIRPath at {text!r}")


def parse(expression: str) -> _Node:
    """The syntax tree of ``expression``, or ``UnsupportedExpression``."""
    return _Parser(expression).parse()


# -- element types (from the fhir.resources R4B models) -------------------------------

Item = tuple[Any, str]
"""A node: its JSON value and its FHIR type (``CodeableConcept``, ``code``,
``ObservationComponent``...)."""
Items = list[Item]
_Eval = Callable[[Items], Items]

_PRIMITIVES = {
    "String": "string",
    "Code": "code",
    "Id": "id",
    "Markdown": "markdown",
    "Uri": "uri",
    "Url": "url",
    "Canonical": "canonical",
    "Oid": "oid",
    "Uuid": "uuid",
    "UuidVersion": "uuid",
    "DateTime": "dateTime",
    "Date": "date",
    "Instant": "instant",
    "Time": "time",
    "Decimal": "decimal",
    "Integer": "integer",
    "PositiveInt": "positiveInt",
    "UnsignedInt": "unsignedInt",
    "Base64Binary": "base64Binary",
    "Xhtml": "xhtml",
}
# https://hl7.org/fhir/R4/datatypes.html: the specialisations each type stands for.
_SUBTYPES = {
    "Quantity": frozenset(
        {"Quantity", "Age", "Count", "Distance", "Duration", "SimpleQuantity", "MoneyQuantity"}
    ),
    "string": frozenset({"string", "code", "id", "markdown"}),
    "uri": frozenset({"uri", "url", "canonical", "oid", "uuid"}),
    "integer": frozenset({"integer", "positiveInt", "unsignedInt"}),
    # FHIRPath's System types (http://hl7.org/fhirpath/N1/#types). R4's
    # Observation-code-value-date writes ``value.as(DateTime)``.
    "System.Boolean": frozenset({"boolean"}),
    "System.String": frozenset(
        {"string", "code", "id", "markdown", "uri", "url", "canonical", "oid", "uuid"}
    ),
    "System.Integer": frozenset({"integer", "positiveInt", "unsignedInt"}),
    "System.Decimal": frozenset({"decimal"}),
    "System.Date": frozenset({"date"}),
    "System.DateTime": frozenset({"dateTime", "instant"}),
    "System.Time": frozenset({"time"}),
}
_SYSTEM_NAMES = {"Boolean", "String", "Integer", "Decimal", "Date", "DateTime", "Time"}
_ABSTRACT_RESOURCES = frozenset({"Resource", "DomainResource"})


def _type_set(spec: str) -> frozenset[str]:
    """The FHIR types that ``spec`` in ``as``/``is``/``ofType`` matches."""
    name = spec.removeprefix("FHIR.")
    if name in _SYSTEM_NAMES:
        name = f"System.{name}"
    return _SUBTYPES.get(name, frozenset({name}))


def _fhir_type(annotation: Any) -> str:
    while True:
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin in (typing.Union, types.UnionType, list) and args:
            annotation = args[0]
        elif origin is typing.Annotated:
            for meta in typing.get_args(annotation)[1:]:
                name = type(meta).__name__
                if name in _PRIMITIVES:
                    return _PRIMITIVES[name]
            annotation = args[0]
        else:
            break
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is Decimal:
        return "decimal"
    name = getattr(annotation, "__name__", "")
    if name.endswith("Type"):
        return name.removesuffix("Type")
    raise UnsupportedExpression(f"cannot tell the FHIR type of {annotation!r}")


@cache
def _elements(type_name: str) -> Mapping[str, tuple[tuple[str, str], ...]]:
    """``type_name``'s elements: FHIRPath name to its JSON keys and types
    (several for a choice element: ``value`` to ``valueQuantity``...)."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        model = get_fhir_model_class(type_name)
    except (KeyError, ValueError, AttributeError, ImportError) as exc:
        raise UnsupportedExpression(f"no FHIR model for the type {type_name!r}") from exc
    table: dict[str, list[tuple[str, str]]] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key.startswith("_") or name.endswith("__ext") or name == "fhir_comments":
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        element = str(extra.get("one_of_many") or key)
        table.setdefault(element, []).append((key, _fhir_type(info.annotation)))
    return {element: tuple(keys) for element, keys in table.items()}


def _is_primitive(type_name: str) -> bool:
    return type_name[:1].islower()


# -- compiling ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    run: _Eval
    types: frozenset[str]  # the FHIR types of what it can select; empty: nothing, ever


_NOTHING = _Compiled(lambda items: [], frozenset())
_BOOLEAN = frozenset({"boolean"})


def _identity(items: Items) -> Items:
    return items


def _truth(items: Items) -> bool | None:
    """FHIRPath's singleton evaluation of a collection as a Boolean."""
    if not items:
        return None
    if len(items) == 1 and isinstance(items[0][0], bool):
        return items[0][0]
    return True


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, bool) is not isinstance(right, bool):
        return False
    return bool(left == right)


_REFERENCE = re.compile(
    r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$"
)


def parse_reference(reference: str) -> tuple[str | None, str | None]:
    """The target type and id of a literal reference: ``Type/id``, an
    absolute URL ending in ``Type/id`` (either with ``/_history/vid``);
    ``(None, None)`` for ``#contained``, ``urn:uuid:`` and others
    (https://hl7.org/fhir/R4/references.html#literal)."""
    match = _REFERENCE.search(reference)
    if match is None:
        return None, None
    return match.group(1), match.group(2)


def _reference_type(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    reference = value.get("reference")
    if isinstance(reference, str):
        target, _ = parse_reference(reference)
        if target is not None:
            return target
    declared = value.get("type")
    return declared if isinstance(declared, str) else None


class _Compiler:
    """Turns a syntax tree into a function over nodes, checking each step
    against the element types it can meet."""

    def __init__(self, expression: str) -> None:
        self.expression = expression

    def fail(self, message: str) -> UnsupportedExpression:
        return UnsupportedExpression(f"{self.expression!r}: {message}")

    def compile(self, node: _Node, context: frozenset[str]) -> _Compiled:
        if isinstance(node, _Literal):
            literal: Items = [(node.value, node.type)]
            return _Compiled(lambda items: literal, frozenset({node.type}))
        if isinstance(node, _Name):
            if node.name[:1].isupper():
                return self.type_filter(node.name, context)
            return self.member(_Compiled(_identity, context), node.name)
        if isinstance(node, _Member):
            return self.member(self.compile(node.source, context), node.name)
        if isinstance(node, _Call):
            source = (
                _Compiled(_identity, context)
                if node.source is None
                else self.compile(node.source, context)
            )
            return self.call(source, node)
        if isinstance(node, _TypeOp):
            source = self.compile(node.operand, context)
            if node.op == "as":
                return self.narrow(source, node.type_name)
            return self.is_type(source, node.type_name)
        return self.binary(node, context)

    def type_filter(self, name: str, context: frozenset[str]) -> _Compiled:
        """A path's leading type name: the context when it is of that type,
        else nothing (the branch of another resource type)."""
        if name in _ABSTRACT_RESOURCES:
            return _Compiled(_identity, context)
        if name in context:
            if context == {name}:
                return _Compiled(_identity, context)
            return _Compiled(lambda items: [i for i in items if i[1] == name], frozenset({name}))
        if name not in spec_resource_types():
            raise self.fail(f"{name!r} is neither an element nor a FHIR resource type")
        return _NOTHING

    def member(self, source: _Compiled, name: str) -> _Compiled:
        if not source.types:
            return _NOTHING
        table: dict[str, tuple[tuple[str, str], ...]] = {}
        for type_name in source.types:
            if _is_primitive(type_name):
                raise self.fail(f"{type_name} has no element {name!r}")
            keys = _elements(type_name).get(name)
            if keys:
                table[type_name] = keys
        if not table:
            raise self.fail(f"no element {name!r} in {' or '.join(sorted(source.types))}")
        out_types = frozenset(t for keys in table.values() for _, t in keys)
        run_source = source.run
        if len(table) == 1 and len(source.types) == 1:
            ((_, only),) = table.items()
            if len(only) == 1:
                ((key, child),) = only

                def one(items: Items) -> Items:
                    out: Items = []
                    for value, _ in run_source(items):
                        found = value.get(key) if type(value) is dict else None
                        if found is None:
                            continue
                        if type(found) is list:
                            out.extend((v, child) for v in found if v is not None)
                        else:
                            out.append((found, child))
                    return out

                return _Compiled(one, out_types)

        def many(items: Items) -> Items:
            out: Items = []
            for value, type_name in run_source(items):
                if type(value) is not dict:
                    continue
                for key, child in table.get(type_name, ()):
                    found = value.get(key)
                    if found is None:
                        continue
                    if type(found) is list:
                        out.extend((v, child) for v in found if v is not None)
                    else:
                        out.append((found, child))
            return out

        return _Compiled(many, out_types)

    def narrow(self, source: _Compiled, spec: str) -> _Compiled:
        wanted = _type_set(spec)
        kept = source.types & wanted
        if not source.types:
            return _NOTHING
        if not kept:
            raise self.fail(f"{spec} can never match {' or '.join(sorted(source.types))}")
        run = source.run
        return _Compiled(lambda items: [i for i in run(items) if i[1] in wanted], kept)

    def is_type(self, source: _Compiled, spec: str) -> _Compiled:
        wanted = _type_set(spec)
        run = source.run

        def test(items: Items) -> Items:
            found = run(items)
            if len(found) != 1:
                return []
            return [(found[0][1] in wanted, "boolean")]

        return _Compiled(test, _BOOLEAN)

    def call(self, source: _Compiled, node: _Call) -> _Compiled:
        name, args = node.name, node.args
        run = source.run
        if name == "where" and len(args) == 1:
            return self.where(source, args[0])
        if name in ("as", "ofType") and len(args) == 1 and isinstance(args[0], _Name):
            return self.narrow(source, args[0].name)
        if name == "is" and len(args) == 1 and isinstance(args[0], _Name):
            return self.is_type(source, args[0].name)
        if name == "exists" and len(args) <= 1:
            if args:
                run = self.where(source, args[0]).run
            return _Compiled(lambda items: [(bool(run(items)), "boolean")], _BOOLEAN)
        if name == "empty" and not args:
            return _Compiled(lambda items: [(not run(items), "boolean")], _BOOLEAN)
        if name == "first" and not args:
            return _Compiled(lambda items: run(items)[:1], source.types)
        if name == "not" and not args:

            def negate(items: Items) -> Items:
                truth = _truth(run(items))
                return [] if truth is None else [(not truth, "boolean")]

            return _Compiled(negate, _BOOLEAN)
        if name == "extension" and len(args) == 1 and isinstance(args[0], _Literal):
            url = args[0].value
            extensions = self.member(source, "extension")
            run_ext = extensions.run
            return _Compiled(
                lambda items: [i for i in run_ext(items) if i[0].get("url") == url],
                extensions.types,
            )
        raise self.fail(f"unsupported function {name}() with {len(args)} argument(s)")

    def where(self, source: _Compiled, criterion: _Node) -> _Compiled:
        run = source.run
        if (
            isinstance(criterion, _TypeOp)
            and criterion.op == "is"
            and isinstance(criterion.operand, _Call)
            and criterion.operand.name == "resolve"
            and criterion.operand.source is None
            and not criterion.operand.args
        ):
            # resolve() is T: judged from the reference itself, never by a read.
            if not source.types <= {"Reference"}:
                raise self.fail(f"resolve() on {' or '.join(sorted(source.types))}")
            target = criterion.type_name.removeprefix("FHIR.")
            return _Compiled(
                lambda items: [i for i in run(items) if _reference_type(i[0]) == target],
                source.types,
            )
        fast = self.equals_literal(source, criterion)
        if fast is not None:
            return fast
        test = self.compile(criterion, source.types).run
        return _Compiled(
            lambda items: [i for i in run(items) if _truth(test([i])) is True], source.types
        )

    def equals_literal(self, source: _Compiled, criterion: _Node) -> _Compiled | None:
        """``where(system = 'phone')`` as one look-up per node, for a plain
        element that has the same key in every type the nodes may have."""
        if not (
            isinstance(criterion, _Binary)
            and criterion.op == "="
            and isinstance(criterion.left, _Name)
            and criterion.left.name[:1].islower()
            and isinstance(criterion.right, _Literal)
            and criterion.right.type == "string"
            and source.types
            and not any(_is_primitive(t) for t in source.types)
        ):
            return None
        keys = {_elements(t).get(criterion.left.name) for t in source.types}
        if len(keys) != 1:
            return None
        (found,) = keys
        if found is None or len(found) != 1:
            return None
        key, wanted = found[0][0], criterion.right.value
        run = source.run

        def matches(value: Any) -> bool:
            field = value.get(key)
            return bool(field == wanted or (type(field) is list and field == [wanted]))

        return _Compiled(lambda items: [i for i in run(items) if matches(i[0])], source.types)

    def binary(self, node: _Binary, context: frozenset[str]) -> _Compiled:
        left = self.compile(node.left, context)
        right = self.compile(node.right, context)
        run_left, run_right = left.run, right.run
        if node.op == "|":
            if not left.types:
                return right
            if not right.types:
                return left
            return _Compiled(
                lambda items: run_left(items) + run_right(items), left.types | right.types
            )
        if node.op in ("=", "!="):
            negate = node.op == "!="

            def equal(items: Items) -> Items:
                a, b = run_left(items), run_right(items)
                if not a or not b:
                    return []
                same = len(a) == len(b) and all(
                    _same(x[0], y[0]) for x, y in zip(a, b, strict=True)
                )
                return [(same is not negate, "boolean")]

            return _Compiled(equal, _BOOLEAN)
        if node.op == "and":

            def both(items: Items) -> Items:
                a, b = _truth(run_left(items)), _truth(run_right(items))
                if a is False or b is False:
                    return [(False, "boolean")]
                if a is None or b is None:
                    return []
                return [(True, "boolean")]

            return _Compiled(both, _BOOLEAN)
        if node.op == "or":

            def either(items: Items) -> Items:
                a, b = _truth(run_left(items)), _truth(run_right(items))
                if a is True or b is True:
                    return [(True, "boolean")]
                if a is None or b is None:
                    return []
                return [(False, "boolean")]

            return _Compiled(either, _BOOLEAN)
        raise self.fail(f"unsupported operator {node.op!r}")


def compile_expression(expression: str, context: str) -> tuple[_Eval, frozenset[str]]:
    """``expression`` compiled for nodes of the type ``context``: the function
    from a collection to what it selects, and the FHIR types it can select
    (empty when no branch of it applies to ``context``)."""
    compiled = _Compiler(expression).compile(parse(expression), frozenset({context}))
    return compiled.run, compiled.types


# -- values -----------------------------------------------------------------------

LOW_OPEN = "0001-01-01T00:00:00.000000Z"
HIGH_OPEN = "9999-12-31T23:59:59.999999Z"
_DATE_TIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_MIDNIGHT = "T00:00:00.000000Z"
_ONE_DAY = timedelta(days=1)
_MINUTE, _SECOND, _MICROSECOND = (
    timedelta(minutes=1),
    timedelta(seconds=1),
    timedelta(microseconds=1),
)


@cache
def _offset(zone: str) -> timedelta:
    """What to subtract from a local time in ``zone`` (``+01:00``) for UTC."""
    offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return -offset if zone[0] == "-" else offset


def _stamp(moment: datetime) -> str:
    """A naive UTC datetime in ``gateway.fhirjson.instant``'s fixed-width form
    (``isoformat`` pads years below 1000, where ``strftime`` does not)."""
    return moment.isoformat(timespec="microseconds") + "Z"


def _day_range(low: date, high: date | None) -> DateRange:
    return DateRange(
        low.isoformat() + _MIDNIGHT, high.isoformat() + _MIDNIGHT if high else HIGH_OPEN
    )


def _next_month(year: int, month: int) -> date | None:
    if month == 12:
        return date(year + 1, 1, 1) if year < 9999 else None
    return date(year, month + 1, 1)


def date_range(text: str) -> DateRange:
    """The instants a date, dateTime or instant covers, by its precision
    (https://hl7.org/fhir/R4/search.html#date): ``1950`` the year, ``1950-01-01``
    the day, a time to the second that second, with a fraction that microsecond.
    Without a time zone it is read as UTC."""
    match = _DATE_TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a FHIR date, dateTime or instant")
    year_text, month, day, hour, minute, second, fraction, zone = match.groups()
    year = int(year_text)
    try:
        if hour is None:
            if month is None:
                return _day_range(date(year, 1, 1), date(year + 1, 1, 1) if year < 9999 else None)
            if day is None:
                return _day_range(date(year, int(month), 1), _next_month(year, int(month)))
            low_day = date(year, int(month), int(day))
            return _day_range(low_day, low_day + _ONE_DAY if low_day < date.max else None)
        local = datetime(
            year,
            int(month),
            int(day),
            int(hour),
            int(minute),
            min(int(second or 0), 59),  # a leap second (:60) counts as :59
            int(fraction[:6].ljust(6, "0")) if fraction else 0,
        )
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a FHIR date, dateTime or instant") from exc
    step = _MINUTE if second is None else _MICROSECOND if fraction else _SECOND
    offset = _offset(zone) if zone and zone != "Z" else None
    try:
        low = _stamp(local - offset if offset else local)
    except OverflowError:  # before year 1 or after 9999 in UTC: the open end
        low = LOW_OPEN if local.year == 1 else HIGH_OPEN
    try:
        high = _stamp(local + step - offset if offset else local + step)
    except OverflowError:
        high = HIGH_OPEN if local.year > 1 else LOW_OPEN
    return DateRange(low, high)


_Convert = Callable[[Any], list[SearchValue]]
# Each converter turns one selected node into its values (a list: this runs
# for every node of every write, and lists are cheaper than generators).


def _period(value: Any) -> list[SearchValue]:
    start, end = value.get("start"), value.get("end")
    if start is None and end is None:
        return []
    low = date_range(start).low if start is not None else LOW_OPEN
    high = date_range(end).high if end is not None else HIGH_OPEN
    return [DateRange(low, high)]


def _timing(value: Any) -> list[SearchValue]:
    """A Timing by its outer limits (https://hl7.org/fhir/R4/search.html#date)."""
    ranges: list[SearchValue] = [
        date_range(event) for event in value.get("event", ()) if event is not None
    ]
    bounds = value.get("repeat", {}).get("boundsPeriod")
    if isinstance(bounds, dict):
        ranges += _period(bounds)
    dates = [r for r in ranges if isinstance(r, DateRange)]
    if not dates:
        return []
    return [DateRange(min(r.low for r in dates), max(r.high for r in dates))]


def _date(value: Any) -> list[SearchValue]:
    return [date_range(value)]


def _text(value: Any) -> str | None:
    return value if type(value) is str else None


def _coding(value: Any) -> list[SearchValue]:
    system, code = _text(value.get("system")), _text(value.get("code"))
    display = _text(value.get("display"))
    if system or code or display:
        return [TokenValue(system, code, display)]
    return []


def _codeable_concept(value: Any) -> list[SearchValue]:
    found: list[SearchValue] = []
    for coding in value.get("coding", ()):
        if type(coding) is dict:
            found += _coding(coding)
    text = _text(value.get("text"))
    if text:
        found.append(TokenValue(None, None, text))
    return found


def _identifier_token(value: Any) -> TokenValue | None:
    system, code = _text(value.get("system")), _text(value.get("value"))
    if not system and not code:
        return None
    kind = value.get("type")
    return TokenValue(system, code, _text(kind.get("text")) if type(kind) is dict else None)


def _identifier(value: Any) -> list[SearchValue]:
    token = _identifier_token(value)
    return [] if token is None else [token]


def _contact_point(value: Any) -> list[SearchValue]:
    text = _text(value.get("value"))
    return [TokenValue(None, text)] if text else []


def _primitive_token(value: Any) -> list[SearchValue]:
    if type(value) is str:
        return [TokenValue(None, value)]
    if type(value) is bool:
        return [TokenValue(None, "true" if value else "false")]
    return []


def _bound_code(system: str) -> _Convert:
    """A ``code`` element's token, with the system its binding names."""

    def convert(value: Any) -> list[SearchValue]:
        return [TokenValue(system, value)] if type(value) is str else []

    return convert


def _string(value: Any) -> list[SearchValue]:
    return [StringValue(value)] if type(value) is str else []


def _parts(*names: str) -> _Convert:
    def parts(value: Any) -> list[SearchValue]:
        found: list[SearchValue] = []
        for name in names:
            part = value.get(name)
            if type(part) is str:
                found.append(StringValue(part))
            elif type(part) is list:
                found += [StringValue(text) for text in part if type(text) is str]
        return found

    return parts


def _reference(value: Any) -> list[SearchValue]:
    identifier = value.get("identifier")
    token = _identifier_token(identifier) if type(identifier) is dict else None
    reference = value.get("reference")
    if type(reference) is str:
        target, target_id = parse_reference(reference)
        return [ReferenceValue(reference, target, target_id, token)]
    return [] if token is None else [ReferenceValue(None, identifier=token)]


def _canonical(value: Any) -> list[SearchValue]:
    return [ReferenceValue(value)] if type(value) is str else []


def _uri(value: Any) -> list[SearchValue]:
    return [UriValue(value)] if type(value) is str else []


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return None


def _quantity(value: Any) -> list[SearchValue]:
    number = _decimal(value.get("value"))
    if number is None:
        return []
    return [
        QuantityValue(
            number, _text(value.get("system")), _text(value.get("code")), _text(value.get("unit"))
        )
    ]


def _money(value: Any) -> list[SearchValue]:
    number = _decimal(value.get("value"))
    if number is None:
        return []
    currency = _text(value.get("currency"))
    return [QuantityValue(number, "urn:iso:std:iso:4217", currency, currency)]


def _number(value: Any) -> list[SearchValue]:
    number = _decimal(value)
    return [] if number is None else [NumberValue(number)]


_STRING_LIKE = ("string", "code", "id", "markdown", "uri", "url", "canonical", "oid", "uuid")
_QUANTITIES = ("Quantity", "Age", "Count", "Distance", "Duration", "SimpleQuantity")
_CONVERTERS: dict[str, dict[str, _Convert]] = {
    "token": {
        "Coding": _coding,
        "CodeableConcept": _codeable_concept,
        "Identifier": _identifier,
        "ContactPoint": _contact_point,
        "boolean": _primitive_token,
        **dict.fromkeys(_STRING_LIKE, _primitive_token),
    },
    "string": {
        "string": _string,
        "markdown": _string,
        "HumanName": _parts("family", "given", "prefix", "suffix", "text"),
        "Address": _parts("line", "city", "district", "state", "postalCode", "country", "text"),
    },
    "date": {
        "date": _date,
        "dateTime": _date,
        "instant": _date,
        "Period": _period,
        "Timing": _timing,
    },
    "reference": {"Reference": _reference, "canonical": _canonical, "uri": _canonical},
    "quantity": {**dict.fromkeys(_QUANTITIES, _quantity), "Money": _money},
    "number": dict.fromkeys(("integer", "decimal", "positiveInt", "unsignedInt"), _number),
    "uri": dict.fromkeys(("uri", "url", "canonical", "oid", "uuid"), _uri),
}
# Types an expression can select that a parameter of that type deliberately
# does not index (see the module docstring).
NOT_INDEXED: dict[str, frozenset[str]] = {
    # CarePlan.activity.detail.scheduledString; Procedure.performed as
    # string, Age or Range (clinical-date): none of them is a point in time.
    "date": frozenset({"string", "Age", "Range"}),
    "quantity": frozenset({"Range", "SampledData"}),
    "reference": frozenset({"Attachment"}),  # Consent.sourceAttachment
}


# -- parameters ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Extractor:
    run: _Eval
    converters: Mapping[str, _Convert]


def _converters(param_type: str, selected: frozenset[str], where: str) -> Mapping[str, _Convert]:
    table = _CONVERTERS.get(param_type, {})
    skipped = NOT_INDEXED.get(param_type, frozenset())
    unknown = selected - table.keys() - skipped
    if unknown:
        raise UnsupportedExpression(
            f"{where}: a {param_type} parameter cannot index {', '.join(sorted(unknown))}"
        )
    return {t: table[t] for t in selected if t in table}


@cache
def _extractor(res_type: str, param: SearchParameter) -> _Extractor:
    where = f"{param.url} on {res_type}"
    if param.type in ("composite", "special"):
        raise ValueError(f"{where}: {param.type} parameters have no single values")
    run, selected = compile_expression(param.expression, res_type)
    if not selected:
        raise UnsupportedExpression(f"{where}: no branch of {param.expression!r} applies")
    converters = _converters(param.type, selected, where)
    system = param.code_system(res_type) if param.type == "token" else None
    if system is not None and "code" in converters:
        converters = {**converters, "code": _bound_code(system)}
    return _Extractor(run, converters)


def _values(extractor: _Extractor, items: Items) -> list[SearchValue]:
    converters = extractor.converters
    found: list[SearchValue] = []
    for value, type_name in extractor.run(items):
        convert = converters.get(type_name)
        if convert is not None:
            found += convert(value)
    return list(dict.fromkeys(found)) if len(found) > 1 else found


def extract(resource: dict[str, Any], param: SearchParameter) -> list[SearchValue]:
    """The values ``param`` (one of the resource type's) finds in
    ``resource``, without repeats, in document order. Composite and special
    parameters raise ``ValueError`` (see ``extract_composite``)."""
    res_type = resource["resourceType"]
    return _values(_extractor(res_type, param), [(resource, res_type)])


@dataclass(frozen=True, slots=True)
class _CompositeExtractor:
    run: _Eval
    components: tuple[tuple[Mapping[str, _Eval], Mapping[str, _Convert]], ...]


@cache
def _composite_extractor(res_type: str, param: SearchParameter) -> _CompositeExtractor:
    where = f"{param.url} on {res_type}"
    if param.type != "composite":
        raise ValueError(f"{where}: not a composite parameter")
    run, selected = compile_expression(param.expression, res_type)
    if not selected:
        raise UnsupportedExpression(f"{where}: no branch of {param.expression!r} applies")
    components = []
    for component in param.components:
        runs: dict[str, _Eval] = {}
        found: set[str] = set()
        for context in selected:
            component_run, types_found = compile_expression(component.expression, context)
            runs[context] = component_run
            found |= types_found
        converters = _converters(component.type, frozenset(found), f"{where} ({component.code})")
        components.append((runs, converters))
    return _CompositeExtractor(run, tuple(components))


def extract_composite(
    resource: dict[str, Any], param: SearchParameter
) -> list[tuple[SearchValue, ...]]:
    """A composite parameter's values (https://hl7.org/fhir/R4/search.html#composite):
    for each node its expression selects, every combination of its
    components' values, one per component in order."""
    res_type = resource["resourceType"]
    extractor = _composite_extractor(res_type, param)
    found: dict[tuple[SearchValue, ...], None] = {}
    for item in extractor.run([(resource, res_type)]):
        parts: list[list[SearchValue]] = []
        for runs, converters in extractor.components:
            values: dict[SearchValue, None] = {}
            for value, type_name in runs[item[1]]([item]):
                convert = converters.get(type_name)
                if convert is not None:
                    values.update(dict.fromkeys(convert(value)))
            parts.append(list(values))
        found.update(dict.fromkeys(product(*parts)))
    return list(found)


@cache
def _index_plan(res_type: str) -> tuple[tuple[str, _Extractor], ...]:
    return tuple(
        (code, _extractor(res_type, param))
        for code, param in parameters_for(res_type).items()
        if param.type not in ("composite", "special")
    )


def index_values(resource: dict[str, Any]) -> dict[str, list[SearchValue]]:
    """Every value of every search parameter of the resource's type, by code;
    parameters without a value are left out. Composite and special
    parameters are not included (see the module docstring)."""
    res_type = resource["resourceType"]
    root: Items = [(resource, res_type)]
    values: dict[str, list[SearchValue]] = {}
    for code, extractor in _index_plan(res_type):
        found = _values(extractor, root)
        if found:
            values[code] = found
    return values


def warm_up() -> None:
    """Compile every parameter of every type in scope now (and fail now if
    any expression is outside the supported subset)."""
    from gateway.search.parameters import resource_types

    for res_type in resource_types():
        _index_plan(res_type)
        for param in parameters_for(res_type).values():
            if param.type == "composite":
                _composite_extractor(res_type, param)
