"""FHIRPath syntax trees to Python closures over FHIR JSON.

Every node becomes a function ``(input collection, environment) -> collection``
built once; evaluating an expression is then a handful of plain calls with no
tree walking. Collections are Python lists and are never changed once
returned, so the constants ``[True]``, ``[False]`` and ``[]`` are shared.

http://hl7.org/fhirpath/N1/ (the language), https://hl7.org/fhir/R4/fhirpath.html
(FHIR's additions: %resource, %rootResource, %ucum, resolve(), extension(),
hasValue(), htmlChecks(), memberOf()).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any

from conformance.fhirpath import _model
from conformance.fhirpath._errors import FhirPathEvaluationError, FhirPathSyntaxError
from conformance.fhirpath._parser import (
    Binary,
    Call,
    Index,
    Literal,
    Member,
    Node,
    Special,
    TypeOp,
    Unary,
    Variable,
)
from conformance.fhirpath._values import (
    UCUM,
    DateTime,
    Primitive,
    Quantity,
    Time,
    compare,
    equal,
    equivalent,
    key,
    now,
    plain,
    quantity_of,
    to_boolean,
    to_decimal,
    to_decimal_value,
    to_integer,
    to_string,
    today,
)
from conformance.fhirpath._xhtml import html_checks

Resolver = Callable[[str], Any]
"""Finds the resource a literal reference (other than ``#id``) points at, or None."""
Tracer = Callable[[str, list[Any]], None]
ValueSets = Callable[[Any, str], bool | None]
"""Says whether a code, Coding or CodeableConcept is in the value set with this
URL (None: cannot tell)."""


class Env:
    """What an evaluation carries besides its input: FHIR's environment
    variables, the iteration variables and the caller's hooks."""

    __slots__ = (
        "context",
        "index",
        "resolver",
        "resource",
        "root",
        "this",
        "total",
        "tracer",
        "value_sets",
        "variables",
    )

    def __init__(
        self,
        focus: list[Any],
        context: Any,
        resource: Any,
        root: Any,
        resolver: Resolver | None,
        tracer: Tracer | None,
        variables: dict[str, Any] | None,
        value_sets: ValueSets | None,
    ) -> None:
        self.this = focus
        self.index = 0
        self.total: list[Any] = []
        self.context = context
        self.resource = resource
        self.root = root
        self.resolver = resolver
        self.tracer = tracer
        self.variables = variables
        self.value_sets = value_sets


Fn = Callable[[list[Any], Env], list[Any]]
Truth = Callable[[list[Any], Env], bool | None]

TRUE: list[Any] = [True]
FALSE: list[Any] = [False]
EMPTY: list[Any] = []


def _boolean(value: bool | None) -> list[Any]:
    return EMPTY if value is None else (TRUE if value else FALSE)


def truth(collection: list[Any]) -> bool | None:
    """FHIRPath's singleton evaluation of a collection as a Boolean: empty is
    unknown (None), one Boolean is itself, one other item is true."""
    if not collection:
        return None
    if len(collection) == 1:
        value = collection[0]
        if value is True or value is False:
            return bool(value)
        if type(value) is Primitive and type(value.value) is bool:
            return bool(value.value)
        return True
    raise FhirPathEvaluationError(f"expected one Boolean, found {len(collection)} items")


def _single(collection: list[Any], what: str) -> Any:
    if len(collection) > 1:
        raise FhirPathEvaluationError(f"{what} expects one item, found {len(collection)}")
    return collection[0] if collection else None


def _string_input(collection: list[Any], function: str) -> str | None:
    item = _single(collection, function)
    if item is None:
        return None
    value = plain(item)
    if type(value) is not str:
        if value is None:
            return None
        raise FhirPathEvaluationError(f"{function}() expects a string, found {value!r}")
    return value


# Navigation over FHIR JSON.


def _add_values(out: list[Any], value: Any, element: Any) -> None:
    """Append one JSON property (value and its ``_name`` sibling) as items."""
    if type(value) is list:
        if element is None:
            if None in value:
                out.extend(v for v in value if v is not None)
            else:
                out.extend(value)
            return
        elements = element if type(element) is list else []
        for position, item in enumerate(value):
            extra = elements[position] if position < len(elements) else None
            if extra is not None:
                out.append(Primitive(item, extra))
            elif item is not None:
                out.append(item)
        return
    if value is None:
        if type(element) is dict:
            out.append(Primitive(None, element))
        elif type(element) is list:
            out.extend(Primitive(None, e) for e in element if e is not None)
        return
    if element is not None and type(value) is not dict:
        out.append(Primitive(value, element))
    else:
        out.append(value)


def _member(name: str) -> Callable[[list[Any]], list[Any]]:
    """``name`` on every item. A choice element's name (``value``) also finds
    its typed properties (``valueQuantity``), told apart from other elements by
    R4's list of type names."""
    extension_name = "_" + name
    choice = name in _model.CHOICE_ELEMENTS
    size = len(name)
    suffixes = _model.TYPE_SUFFIXES

    def navigate(items: list[Any]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if type(item) is dict:
                value = item.get(name)
                if value is not None and type(value) is not list and type(value) is not dict:
                    element = item.get(extension_name)
                    out.append(value if element is None else Primitive(value, element))
                elif value is not None:
                    _add_values(out, value, item.get(extension_name))
                elif extension_name in item:
                    _add_values(out, None, item[extension_name])
                elif choice:
                    for prop in item:
                        if prop.startswith(name) and prop[size:] in suffixes:
                            _add_values(out, item[prop], item.get("_" + prop))
                        elif (
                            prop.startswith(extension_name)
                            and prop[size + 1 :] in suffixes
                            and prop[1:] not in item
                        ):
                            _add_values(out, None, item[prop])
            elif type(item) is Primitive and (name == "extension" or name == "id"):
                _add_values(out, item.element.get(name), None)
        return out

    return navigate


def _children_of(item: Any, out: list[Any]) -> None:
    if type(item) is dict:
        for prop, value in item.items():
            if prop == "resourceType":
                continue
            if prop[0] == "_":
                if prop[1:] not in item:
                    _add_values(out, None, value)
                continue
            _add_values(out, value, item.get("_" + prop))
    elif type(item) is Primitive:
        for prop in ("id", "extension"):
            if prop in item.element:
                _add_values(out, item.element[prop], None)


def _count_children(item: Any) -> int:
    if type(item) is dict:
        count = 0
        for prop, value in item.items():
            if prop[0] == "_":
                if prop[1:] not in item:
                    count += len(value) if type(value) is list else 1
            elif type(value) is list:
                count += len(value)
            elif prop != "resourceType":
                count += 1
        return count
    if type(item) is Primitive:
        extensions = item.element.get("extension")
        return (1 if "id" in item.element else 0) + (len(extensions) if extensions else 0)
    return 0


def _children(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        _children_of(item, out)
    return out


def _descendants(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    level = _children(items)
    while level:
        out.extend(level)
        level = _children(level)
    return out


# Types.

_STRING_TYPES = frozenset(
    [
        "string",
        "uri",
        "url",
        "canonical",
        "code",
        "id",
        "markdown",
        "oid",
        "uuid",
        "base64Binary",
        "xhtml",
    ]
)
_INTEGER_TYPES = frozenset({"integer", "positiveInt", "unsignedInt", "decimal"})
_NOT_DOMAIN = frozenset({"Bundle", "Parameters", "Binary"})


def _split_type(type_name: str) -> tuple[str | None, str]:
    namespace, _, name = type_name.rpartition(".")
    return (namespace or None), name


def type_matches(item: Any, type_name: str) -> bool:
    """Whether an item is of a type. Resources are told by ``resourceType``;
    JSON primitives by their JSON type, a string matching every string-based
    FHIR type (a date type only if it reads as one), since plain JSON does not
    say which element it came from. The type of a JSON object that is not a
    resource cannot be told: choice elements (``value.ofType(Quantity)``) are
    resolved by name at compile time instead."""
    namespace, name = _split_type(type_name)
    if type(item) is Primitive:
        item = item.value
        if item is None:
            return False
    kind = type(item)
    if kind is dict:
        resource_type = item.get("resourceType")
        if namespace == "System":
            return False
        if resource_type is not None:
            return (
                name == resource_type
                or name == "Resource"
                or (name == "DomainResource" and resource_type not in _NOT_DOMAIN)
            )
        if name[:1].islower() or name in _SYSTEM_TYPES:
            return False
        raise FhirPathEvaluationError(
            f"cannot tell whether a JSON object is a {type_name}: only resources and "
            "choice elements carry their type"
        )
    system = namespace == "System" or (namespace is None and name in _SYSTEM_TYPES)
    if kind is bool:
        return name == ("Boolean" if system else "boolean")
    if kind is int:
        return name == "Integer" if system else name in _INTEGER_TYPES
    if kind is float or kind is Decimal:
        return name == ("Decimal" if system else "decimal")
    if kind is str:
        if system:
            return name == "String"
        if name in _STRING_TYPES:
            return True
        if name in ("date", "dateTime", "instant"):
            parsed = DateTime.parse(item)
            if parsed is None:
                return False
            if name == "date":
                return not parsed.has_time
            return name == "dateTime" or (len(parsed.parts) == 6 and parsed.offset is not None)
        if name == "time":
            return Time.parse(item) is not None
        return False
    if kind is DateTime:
        return name == ("DateTime" if item.has_time else "Date")
    if kind is Time:
        return name == "Time"
    if kind is Quantity:
        return name == "Quantity"
    return False


_SYSTEM_TYPES = frozenset({"Boolean", "String", "Integer", "Decimal", "Date", "DateTime", "Time"})


def _choice_property(node: Node | None, type_name: str) -> Member | None:
    """``value`` as ``valueQuantity`` when the type of a choice element is asked for."""
    if not isinstance(node, Member) or node.name not in _model.CHOICE_ELEMENTS:
        return None
    namespace, name = _split_type(type_name)
    if namespace == "System" or name not in _model.TYPE_NAMES:
        return None
    return Member(node.target, node.name + name[0].upper() + name[1:])


# Functions. Each builder takes the compiled arguments (or, for iterating
# functions, the argument trees) and returns the function of its input.

Builder = Callable[["_Compiler", tuple[Node, ...]], Fn]
_FUNCTIONS: dict[str, tuple[int, int, Builder]] = {}


def _function(name: str, least: int = 0, most: int = 0) -> Callable[[Builder], Builder]:
    def register(builder: Builder) -> Builder:
        _FUNCTIONS[name] = (least, most, builder)
        return builder

    return register


def _simple(name: str, body: Callable[[list[Any]], list[Any]]) -> None:
    _function(name)(lambda compiler, args: lambda items, env: body(items))


def _argument(compiler: _Compiler, node: Node) -> Fn:
    """A non-iterating function's argument: evaluated against ``$this``."""
    compiled = compiler.compile(node)
    return lambda items, env: compiled(env.this, env)


def _iterate(
    compiler: _Compiler, node: Node
) -> Callable[[list[Any], Env], list[tuple[Any, list[Any]]]]:
    compiled = compiler.compile(node)

    def each(items: list[Any], env: Env) -> list[tuple[Any, list[Any]]]:
        saved_this, saved_index = env.this, env.index
        results = []
        for position, item in enumerate(items):
            one = [item]
            env.this = one
            env.index = position
            results.append((item, compiled(one, env)))
        env.this, env.index = saved_this, saved_index
        return results

    return each


# Existence.

_simple("empty", lambda items: FALSE if items else TRUE)
_simple("count", lambda items: [len(items)])


def _has_value(items: list[Any]) -> bool:
    """One item, a primitive with a value (http://hl7.org/fhir/R4/fhirpath.html#functions)."""
    if len(items) != 1:
        return False
    kind = type(items[0])
    return kind is not dict and (kind is not Primitive or items[0].value is not None)


_simple("hasValue", lambda items: TRUE if _has_value(items) else FALSE)
_simple("not", lambda items: _boolean(None if (v := truth(items)) is None else not v))
_simple("allTrue", lambda items: _boolean(all(plain(i) is True for i in items)))
_simple("anyTrue", lambda items: _boolean(any(plain(i) is True for i in items)))
_simple("allFalse", lambda items: _boolean(all(plain(i) is False for i in items)))
_simple("anyFalse", lambda items: _boolean(any(plain(i) is False for i in items)))


def _distinct(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


_simple("distinct", _distinct)
_simple("isDistinct", lambda items: _boolean(len({key(i) for i in items}) == len(items)))


def _filter(compiler: _Compiler, node: Node) -> Callable[[list[Any], Env], list[Any]]:
    """The items for which a criterion is true, each evaluated with ``$this``
    and ``$index`` set to it."""
    criterion = compiler.truth_of(node)

    def keep(items: list[Any], env: Env) -> list[Any]:
        saved_this, saved_index = env.this, env.index
        kept = []
        for position, item in enumerate(items):
            one = [item]
            env.this = one
            env.index = position
            if criterion(one, env) is True:
                kept.append(item)
        env.this, env.index = saved_this, saved_index
        return kept

    return keep


@_function("exists", 0, 1)
def _exists(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    if not args:
        return lambda items, env: TRUE if items else FALSE
    keep = _filter(compiler, args[0])
    return lambda items, env: TRUE if keep(items, env) else FALSE


@_function("all", 1, 1)
def _all(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    keep = _filter(compiler, args[0])
    return lambda items, env: _boolean(len(keep(items, env)) == len(items))


def _subset(items: list[Any], other: list[Any]) -> bool:
    keys = {key(i) for i in other}
    return all(key(i) in keys for i in items)


@_function("subsetOf", 1, 1)
def _subset_of(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    other = _argument(compiler, args[0])
    return lambda items, env: _boolean(_subset(items, other(items, env)))


@_function("supersetOf", 1, 1)
def _superset_of(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    other = _argument(compiler, args[0])
    return lambda items, env: _boolean(_subset(other(items, env), items))


# Filtering and projection.


@_function("where", 1, 1)
def _where(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    return _filter(compiler, args[0])


@_function("select", 1, 1)
def _select(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    each = _iterate(compiler, args[0])

    def select(items: list[Any], env: Env) -> list[Any]:
        out: list[Any] = []
        for _, result in each(items, env):
            out.extend(result)
        return out

    return select


@_function("repeat", 1, 1)
def _repeat(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    each = _iterate(compiler, args[0])

    def repeat(items: list[Any], env: Env) -> list[Any]:
        out: list[Any] = []
        seen: set[Any] = set()
        level = items
        while level:
            following: list[Any] = []
            for _, result in each(level, env):
                for item in result:
                    k = key(item)
                    if k not in seen:
                        seen.add(k)
                        out.append(item)
                        following.append(item)
            level = following
        return out

    return repeat


def _type_argument(args: tuple[Node, ...], function: str) -> str:
    node = args[0]
    if isinstance(node, Member) and node.target is None:
        return node.name
    if isinstance(node, Member) and isinstance(node.target, Member) and node.target.target is None:
        return f"{node.target.name}.{node.name}"
    raise FhirPathSyntaxError(f"{function}() expects a type name")


@_function("ofType", 1, 1)
def _of_type(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    type_name = _type_argument(args, "ofType")
    return lambda items, env: [i for i in items if type_matches(i, type_name)]


@_function("as", 1, 1)
def _as_function(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    # The function form filters, as the HL7 validator does and as dom-3 needs
    # (``descendants().as(canonical)`` over many items).
    return _of_type(compiler, args)


@_function("is", 1, 1)
def _is_function(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    type_name = _type_argument(args, "is")

    def is_(items: list[Any], env: Env) -> list[Any]:
        item = _single(items, "is()")
        return EMPTY if item is None else _boolean(type_matches(item, type_name))

    return is_


# Subsetting and combining.

_simple("first", lambda items: items[:1])
_simple("last", lambda items: items[-1:])
_simple("tail", lambda items: items[1:])
_simple("single", lambda items: items if len(items) < 2 else _single(items, "single()"))


def _integer_argument(compiler: _Compiler, node: Node, function: str) -> Fn:
    argument = _argument(compiler, node)

    def integer(items: list[Any], env: Env) -> list[Any]:
        value = _single(argument(items, env), function)
        if value is not None and type(plain(value)) is not int:
            raise FhirPathEvaluationError(f"{function}() expects an integer")
        return [] if value is None else [plain(value)]

    return integer


@_function("skip", 1, 1)
def _skip(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    count = _integer_argument(compiler, args[0], "skip")
    return lambda items, env: items[max(c[0], 0) :] if (c := count(items, env)) else EMPTY


@_function("take", 1, 1)
def _take(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    count = _integer_argument(compiler, args[0], "take")
    return lambda items, env: items[: max(c[0], 0)] if (c := count(items, env)) else EMPTY


@_function("intersect", 1, 1)
def _intersect(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    other = _argument(compiler, args[0])

    def intersect(items: list[Any], env: Env) -> list[Any]:
        if not items:
            return EMPTY
        keys = {key(i) for i in other(items, env)}
        return _distinct([i for i in items if key(i) in keys])

    return intersect


@_function("exclude", 1, 1)
def _exclude(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    other = _argument(compiler, args[0])

    def exclude(items: list[Any], env: Env) -> list[Any]:
        keys = {key(i) for i in other(items, env)}
        return [i for i in items if key(i) not in keys]

    return exclude


@_function("union", 1, 1)
def _union_function(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    other = _argument(compiler, args[0])
    return lambda items, env: _distinct(items + other(items, env))


@_function("combine", 1, 1)
def _combine(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    other = _argument(compiler, args[0])
    return lambda items, env: items + other(items, env)


# Conversions.


def _converter(function: str, convert: Callable[[Any], Any]) -> None:
    def run(items: list[Any]) -> list[Any]:
        item = _single(items, function)
        if item is None:
            return EMPTY
        value = convert(item)
        return EMPTY if value is None else [value]

    _simple(function, run)
    _simple(
        "convertsTo" + function[2:],
        lambda items: EMPTY if not items else _boolean(bool(run(items))),
    )


def _to_date(item: Any) -> DateTime | None:
    value = plain(item)
    parsed = value if type(value) is DateTime else DateTime.parse(str(value))
    if parsed is None:
        return None
    if parsed.has_time:
        text = parsed.text.split("T")[0]
        return DateTime.parse(text)
    return parsed


def _to_datetime(item: Any) -> DateTime | None:
    value = plain(item)
    return value if type(value) is DateTime else DateTime.parse(str(value))


def _to_time(item: Any) -> Time | None:
    value = plain(item)
    return value if type(value) is Time else Time.parse(str(value))


def _to_quantity(item: Any) -> Quantity | None:
    value = plain(item)
    if type(value) in (int, float, Decimal) and type(value) is not bool:
        return Quantity(to_decimal(value), "1")
    if type(value) is str:
        match = re.fullmatch(r"\s*([+-]?\d+(?:\.\d+)?)\s*(?:'([^']+)'|(\w+))?\s*", value)
        if match:
            return Quantity(Decimal(match.group(1)), match.group(2) or match.group(3) or "1")
        return None
    return quantity_of(value)


_converter("toString", to_string)
_converter("toInteger", to_integer)
_converter("toDecimal", to_decimal_value)
_converter("toBoolean", to_boolean)
_converter("toDate", _to_date)
_converter("toDateTime", _to_datetime)
_converter("toTime", _to_time)
_converter("toQuantity", _to_quantity)


@_function("iif", 2, 3)
def _iif(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    criterion = compiler.truth_of(args[0])
    then = compiler.compile(args[1])
    otherwise = compiler.compile(args[2]) if len(args) > 2 else None

    def iif(items: list[Any], env: Env) -> list[Any]:
        if len(items) > 1:
            raise FhirPathEvaluationError("iif() expects at most one input item")
        saved = env.this
        env.this = items
        if criterion(items, env) is True:
            result = then(items, env)
        else:
            result = otherwise(items, env) if otherwise is not None else EMPTY
        env.this = saved
        return result

    return iif


# Strings.


def _string_function(
    name: str, arity: int, body: Callable[..., Any], *, regex: bool = False
) -> None:
    @_function(name, arity, arity)
    def build(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
        arguments = [_argument(compiler, a) for a in args]

        def run(items: list[Any], env: Env) -> list[Any]:
            value = _string_input(items, name)
            if value is None:
                return EMPTY
            values = []
            for argument in arguments:
                result = _single(argument(items, env), name)
                if result is None:
                    return EMPTY
                values.append(plain(result))
            out = body(value, *values)
            if out is None:
                return EMPTY
            return [out]

        return run


_string_function("startsWith", 1, lambda s, prefix: s.startswith(prefix))
_string_function("endsWith", 1, lambda s, suffix: s.endswith(suffix))
_string_function("contains", 1, lambda s, part: part in s)
_string_function("indexOf", 1, lambda s, part: s.find(part))
_string_function("upper", 0, lambda s: s.upper())
_string_function("lower", 0, lambda s: s.lower())
_string_function("length", 0, len)
_string_function("trim", 0, lambda s: s.strip())
_string_function("replace", 2, lambda s, old, new: s.replace(old, new))


@_function("substring", 1, 2)
def _substring(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    arguments = [_argument(compiler, a) for a in args]

    def substring(items: list[Any], env: Env) -> list[Any]:
        value = _string_input(items, "substring")
        if value is None:
            return EMPTY
        start = _single(arguments[0](items, env), "substring")
        if start is None or not 0 <= plain(start) < len(value):
            return EMPTY
        start = plain(start)
        if len(arguments) == 1:
            return [value[start:]]
        length = _single(arguments[1](items, env), "substring")
        if length is None:
            return [value[start:]]
        return [value[start : start + max(plain(length), 0)]]

    return substring


_REGEX_FLAGS = re.DOTALL


def _regex_function(
    compiler: _Compiler, args: tuple[Node, ...], name: str, body: Callable[..., Any]
) -> Fn:
    pattern_node = args[0]
    fixed = (
        re.compile(pattern_node.value, _REGEX_FLAGS)
        if isinstance(pattern_node, Literal) and type(pattern_node.value) is str
        else None
    )
    arguments = [_argument(compiler, a) for a in args]

    def run(items: list[Any], env: Env) -> list[Any]:
        value = _string_input(items, name)
        if value is None:
            return EMPTY
        values = []
        for argument in arguments:
            result = _single(argument(items, env), name)
            if result is None:
                return EMPTY
            values.append(plain(result))
        pattern = fixed or re.compile(values[0], _REGEX_FLAGS)
        return [body(pattern, value, *values[1:])]

    return run


@_function("matches", 1, 1)
def _matches(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    # FHIRPath's matches() is true when the pattern matches part of the string
    # (anchor it with ^...$ for the whole); eld-19 and eld-20 are unanchored.
    return _regex_function(compiler, args, "matches", lambda p, s: p.search(s) is not None)


@_function("replaceMatches", 2, 2)
def _replace_matches(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    return _regex_function(
        compiler,
        args,
        "replaceMatches",
        lambda p, s, new: p.sub(re.sub(r"\$(\d+)", r"\\\1", new), s),
    )


_simple("toChars", lambda items: list(v) if (v := _string_input(items, "toChars")) else EMPTY)


@_function("split", 1, 1)
def _split(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    separator = _argument(compiler, args[0])

    def split(items: list[Any], env: Env) -> list[Any]:
        value = _string_input(items, "split")
        sep = _single(separator(items, env), "split")
        if value is None or sep is None:
            return EMPTY
        return list(value.split(plain(sep)))

    return split


@_function("join", 0, 1)
def _join(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    separator = _argument(compiler, args[0]) if args else None

    def join(items: list[Any], env: Env) -> list[Any]:
        sep = _single(separator(items, env), "join") if separator else ""
        return [str(plain(sep) or "").join(str(plain(i)) for i in items)]

    return join


# Mathematics.


def _math(name: str, body: Callable[[Any], Any]) -> None:
    def run(items: list[Any]) -> list[Any]:
        value = plain(_single(items, name))
        if value is None:
            return EMPTY
        if type(value) not in (int, float, Decimal) or type(value) is bool:
            raise FhirPathEvaluationError(f"{name}() expects a number")
        try:
            result = body(to_decimal(value) if type(value) is float else value)
        except (ValueError, InvalidOperation, DivisionByZero):
            return EMPTY
        return EMPTY if result is None else [result]

    _simple(name, run)


_math("abs", abs)
_math("ceiling", lambda v: math.ceil(v))
_math("floor", lambda v: math.floor(v))
_math("truncate", lambda v: math.trunc(v))
_math("sqrt", lambda v: Decimal(v).sqrt() if v >= 0 else None)
_math("exp", lambda v: Decimal(v).exp())
_math("ln", lambda v: Decimal(v).ln() if v > 0 else None)


@_function("round", 0, 1)
def _round(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    precision = _argument(compiler, args[0]) if args else None

    def round_(items: list[Any], env: Env) -> list[Any]:
        value = plain(_single(items, "round"))
        if value is None:
            return EMPTY
        places = plain(_single(precision(items, env), "round")) if precision else 0
        return [to_decimal(value).quantize(Decimal(1).scaleb(-(places or 0)))]

    return round_


# Tree navigation, FHIR's functions and utilities.

_simple("children", _children)
_simple("descendants", _descendants)
_simple("today", lambda items: [today()])
_simple("now", lambda items: [now()])
_simple("timeOfDay", lambda items: [Time.parse(now().text.split("T")[1][:12])])
_simple(
    "htmlChecks",
    lambda items: _boolean(
        len(items) == 1 and type(plain(items[0])) is str and html_checks(plain(items[0]))
    ),
)


@_function("trace", 1, 2)
def _trace(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    name = _argument(compiler, args[0])
    projection = compiler.compile(args[1]) if len(args) > 1 else None

    def trace(items: list[Any], env: Env) -> list[Any]:
        if env.tracer is not None:
            label = plain(_single(name(items, env), "trace") or "")
            env.tracer(str(label), projection(items, env) if projection else items)
        return items

    return trace


@_function("extension", 1, 1)
def _extension(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    url_argument = _argument(compiler, args[0])
    extensions = _member("extension")

    def extension(items: list[Any], env: Env) -> list[Any]:
        url = plain(_single(url_argument(items, env), "extension"))
        if url is None:
            return EMPTY
        return [e for e in extensions(items) if type(e) is dict and e.get("url") == url]

    return extension


def _resolve_one(item: Any, env: Env) -> Any:
    value = plain(item)
    reference = value.get("reference") if type(value) is dict else value
    reference = plain(reference)
    if type(reference) is not str or not reference:
        return None
    if reference.startswith("#"):
        root = env.root
        if type(root) is not dict:
            return None
        if reference == "#":
            return root
        wanted = reference[1:]
        for contained in root.get("contained", ()):
            if type(contained) is dict and contained.get("id") == wanted:
                return contained
        return None
    return env.resolver(reference) if env.resolver is not None else None


def _resolve(items: list[Any], env: Env) -> list[Any]:
    out = []
    for item in items:
        found = _resolve_one(item, env)
        if found is not None:
            out.append(found)
    return out


_function("resolve")(lambda compiler, args: _resolve)


@_function("memberOf", 1, 1)
def _member_of(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    url_argument = _argument(compiler, args[0])

    def member_of(items: list[Any], env: Env) -> list[Any]:
        item = _single(items, "memberOf")
        url = plain(_single(url_argument(items, env), "memberOf"))
        if item is None or url is None:
            return EMPTY
        if env.value_sets is None:
            raise FhirPathEvaluationError("memberOf() needs a value set lookup")
        return _boolean(env.value_sets(plain(item), url))

    return member_of


@_function("aggregate", 1, 2)
def _aggregate(compiler: _Compiler, args: tuple[Node, ...]) -> Fn:
    aggregator = compiler.compile(args[0])
    initial = _argument(compiler, args[1]) if len(args) > 1 else None

    def aggregate(items: list[Any], env: Env) -> list[Any]:
        saved = env.this, env.index, env.total
        env.total = initial(items, env) if initial else []
        for position, item in enumerate(items):
            env.this = [item]
            env.index = position
            env.total = aggregator([item], env)
        result = env.total
        env.this, env.index, env.total = saved
        return result

    return aggregate


# Operators.


def _equality(left: list[Any], right: list[Any]) -> bool | None:
    if not left or not right:
        return None
    if len(left) == 1 and len(right) == 1:
        a, b = left[0], right[0]
        if type(a) is str and type(b) is str:
            return a == b
        return equal(a, b)
    if len(left) != len(right):
        return False
    unknown = False
    for a, b in zip(left, right, strict=True):
        result = equal(a, b)
        if result is False:
            return False
        unknown = unknown or result is None
    return None if unknown else True


def _inequality(left: list[Any], right: list[Any]) -> bool | None:
    result = _equality(left, right)
    return None if result is None else not result


def _equivalence(left: list[Any], right: list[Any]) -> bool:
    if not left or not right:
        return not left and not right
    if len(left) == 1 and len(right) == 1:
        return equivalent(left[0], right[0])
    return len(left) == len(right) and all(any(equivalent(a, b) for b in right) for a in left)


def _comparison(
    test: Callable[[int], bool], direct: Callable[[Any, Any], bool]
) -> Callable[[list[Any], list[Any]], bool | None]:
    def run(left: list[Any], right: list[Any]) -> bool | None:
        if not left or not right:
            return None
        if len(left) > 1 or len(right) > 1:
            raise FhirPathEvaluationError("comparison expects one item on each side")
        a, b = left[0], right[0]
        if type(a) is int and type(b) is int:
            return direct(a, b)
        order = compare(a, b)
        return None if order is None else test(order)

    return run


def _membership(item: list[Any], collection: list[Any]) -> bool | None:
    if not item:
        return None
    if len(item) > 1:
        raise FhirPathEvaluationError("'in' and 'contains' test one item")
    wanted = item[0]
    return any(equal(wanted, other) is True for other in collection)


def _add(a: Any, b: Any) -> Any:
    if type(a) is str and type(b) is str:
        return a + b
    return _arithmetic("+", a, b)


def _numeric(value: Any) -> bool:
    return type(value) in (int, float, Decimal)


def _arithmetic(op: str, a: Any, b: Any) -> Any:
    if _numeric(a) and _numeric(b):
        if type(a) is float or type(b) is float:
            a, b = to_decimal(a), to_decimal(b)
        try:
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                return None if b == 0 else Decimal(a) / Decimal(b)
            if op == "div":
                return None if b == 0 else int(Decimal(a) / Decimal(b))
            if op == "mod":
                return None if b == 0 else a - b * int(Decimal(a) / Decimal(b))
        except (InvalidOperation, DivisionByZero):
            return None
    qa, qb = quantity_of(a), quantity_of(b)
    if qa is not None and qb is not None and op in "+-" and qa.unit == qb.unit:
        return Quantity(qa.value + qb.value if op == "+" else qa.value - qb.value, qa.unit)
    if type(a) is DateTime and qb is not None and op in "+-":
        return _shift(a, qb, 1 if op == "+" else -1)
    raise FhirPathEvaluationError(f"cannot apply {op} to {a!r} and {b!r}")


_SHIFT_UNITS = {
    "a": 0,
    "year": 0,
    "years": 0,
    "mo": 1,
    "month": 1,
    "months": 1,
    "wk": 7,
    "week": 7,
    "weeks": 7,
    "d": 1,
    "day": 1,
    "days": 1,
}


def _shift(moment: DateTime, amount: Quantity, sign: int) -> DateTime | None:
    """A date or date-time moved by a calendar duration (years, months, weeks,
    days), the precision kept (http://hl7.org/fhirpath/N1/#date-time-arithmetic)."""
    unit = amount.unit
    steps = int(amount.value) * sign
    parts = list(moment.parts)
    if unit in ("a", "year", "years"):
        parts[0] += steps
    elif unit in ("mo", "month", "months"):
        if len(parts) < 2:
            parts[0] += int(steps / 12)
        else:
            months = parts[0] * 12 + (parts[1] - 1) + steps
            parts[0], parts[1] = divmod(months, 12)
            parts[1] += 1
    elif unit in _SHIFT_UNITS and len(parts) >= 3:
        from datetime import date, timedelta

        days = steps * _SHIFT_UNITS[unit]
        moved = date(parts[0], parts[1], parts[2]) + timedelta(days=days)
        parts[:3] = [moved.year, moved.month, moved.day]
    else:
        raise FhirPathEvaluationError(f"cannot add {amount!r} to {moment!r}")
    if len(parts) >= 3:
        import calendar

        parts[2] = min(parts[2], calendar.monthrange(parts[0], parts[1])[1])
    text = f"{parts[0]:04d}"
    if len(parts) > 1:
        text += f"-{parts[1]:02d}"
    if len(parts) > 2:
        text += f"-{parts[2]:02d}"
    if moment.has_time:
        text += "T" + moment.text.split("T", 1)[1]
    return DateTime.parse(text)


# The compiler.


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text

    def compile(self, node: Node) -> Fn:
        method = getattr(self, "_" + type(node).__name__.lower())
        result: Fn = method(node)
        return result

    def truth_of(self, node: Node) -> Truth:
        """The node as a Boolean (True, False, None for empty), built without
        the intermediate collections where the node is logic, a comparison
        or an existence test."""
        if isinstance(node, Binary):
            op = node.op
            if op in _LOGIC:
                return _LOGIC[op](self.truth_of(node.left), self.truth_of(node.right))
            pair = _PAIRWISE.get(op)
            if pair is not None:
                left, right = self.compile(node.left), self.compile(node.right)
                return lambda items, env: pair(left(items, env), right(items, env))
        if isinstance(node, Call) and not node.args:
            target = self.compile(node.target) if node.target is not None else None
            if node.name == "exists" and target is not None:
                return lambda items, env: bool(target(items, env))
            if node.name == "exists":
                return lambda items, env: bool(items)
            if node.name == "empty" and target is not None:
                return lambda items, env: not target(items, env)
            if node.name == "empty":
                return lambda items, env: not items
            if node.name == "hasValue" and target is None:
                return lambda items, env: _has_value(items)
            if node.name == "not":
                inner = self.truth_of(node.target) if node.target is not None else None

                def not_(items: list[Any], env: Env) -> bool | None:
                    value = inner(items, env) if inner is not None else truth(items)
                    return None if value is None else not value

                return not_
        compiled = self.compile(node)
        return lambda items, env: truth(compiled(items, env))

    def _literal(self, node: Literal) -> Fn:
        if node.kind == "empty":
            return lambda items, env: EMPTY
        value: Any = node.value
        if node.kind == "date":
            value = DateTime.parse(node.value)
            if value is None:
                raise FhirPathSyntaxError(f"invalid date literal @{node.value}", self.text)
        elif node.kind == "time":
            value = Time.parse(node.value)
            if value is None:
                raise FhirPathSyntaxError(f"invalid time literal @T{node.value}", self.text)
        elif node.kind == "quantity":
            number, unit = node.value
            value = Quantity(Decimal(number), unit)
        constant = [value]
        return lambda items, env: constant

    def _member(self, node: Member) -> Fn:
        navigate = _member(node.name)
        if node.target is None:
            if node.name[:1].isupper():
                type_name = node.name

                def start(items: list[Any], env: Env) -> list[Any]:
                    typed = [
                        i for i in items if type(i) is dict and i.get("resourceType") == type_name
                    ]
                    return typed if typed else navigate(items)

                return start
            return lambda items, env: navigate(items)
        target = self.compile(node.target)
        return lambda items, env: navigate(target(items, env))

    def _call(self, node: Call) -> Fn:
        if node.name in ("ofType", "as") and len(node.args) == 1:
            typed = _choice_property(node.target, _type_argument(node.args, node.name))
            if typed is not None:
                return self.compile(typed)
        if (
            node.name == "count"
            and isinstance(node.target, Call)
            and node.target.name == "children"
            and not node.target.args
        ):
            return self._count_children(node.target.target)
        entry = _FUNCTIONS.get(node.name)
        if entry is None:
            raise FhirPathSyntaxError(f"unknown function {node.name}()", self.text)
        least, most, builder = entry
        if not least <= len(node.args) <= most:
            raise FhirPathSyntaxError(f"{node.name}() takes {least} to {most} arguments", self.text)
        function = builder(self, node.args)
        if node.target is None:
            return function
        target = self.compile(node.target)
        return lambda items, env: function(target(items, env), env)

    def _count_children(self, target_node: Node | None) -> Fn:
        target = self.compile(target_node) if target_node is not None else None

        def count(items: list[Any], env: Env) -> list[Any]:
            source = target(items, env) if target else items
            if len(source) == 1:
                return [_count_children(source[0])]
            return [sum(_count_children(i) for i in source)]

        return count

    def _index(self, node: Index) -> Fn:
        target = self.compile(node.target)
        index = self.compile(node.index)

        def at(items: list[Any], env: Env) -> list[Any]:
            collection = target(items, env)
            position = _single(index(items, env), "indexer")
            if position is None:
                return EMPTY
            position = plain(position)
            return [collection[position]] if 0 <= position < len(collection) else EMPTY

        return at

    def _variable(self, node: Variable) -> Fn:
        name = node.name
        if name == "resource":
            return lambda items, env: EMPTY if env.resource is None else [env.resource]
        if name == "rootResource":
            return lambda items, env: EMPTY if env.root is None else [env.root]
        if name == "context":
            return lambda items, env: EMPTY if env.context is None else [env.context]
        fixed = {
            "ucum": UCUM,
            "sct": "http://snomed.info/sct",
            "loinc": "http://loinc.org",
        }.get(name)
        if fixed is None and name.startswith("vs-"):
            fixed = "http://hl7.org/fhir/ValueSet/" + name[3:]
        if fixed is None and name.startswith("ext-"):
            fixed = "http://hl7.org/fhir/StructureDefinition/" + name[4:]
        if fixed is not None:
            constant = [fixed]
            return lambda items, env: constant

        def variable(items: list[Any], env: Env) -> list[Any]:
            if env.variables is None or name not in env.variables:
                raise FhirPathEvaluationError(f"no variable %{name}")
            value = env.variables[name]
            return value if type(value) is list else [value]

        return variable

    def _special(self, node: Special) -> Fn:
        if node.name == "$this":
            return lambda items, env: env.this
        if node.name == "$index":
            return lambda items, env: [env.index]
        return lambda items, env: env.total

    def _unary(self, node: Unary) -> Fn:
        operand = self.compile(node.operand)
        if node.op == "+":
            return operand

        def negate(items: list[Any], env: Env) -> list[Any]:
            value = plain(_single(operand(items, env), "unary -"))
            if value is None:
                return EMPTY
            if type(value) is Quantity:
                return [Quantity(-value.value, value.unit)]
            if not _numeric(value) or type(value) is bool:
                raise FhirPathEvaluationError("unary - expects a number")
            return [-value]

        return negate

    def _typeop(self, node: TypeOp) -> Fn:
        typed = _choice_property(node.operand, node.type_name)
        operand = self.compile(node.operand)
        if node.op == "as":
            if typed is not None:
                return self.compile(typed)
            type_name = node.type_name

            def as_(items: list[Any], env: Env) -> list[Any]:
                item = _single(operand(items, env), "as")
                return [item] if item is not None and type_matches(item, type_name) else EMPTY

            return as_
        if typed is not None:
            typed_fn = self.compile(typed)

            def is_choice(items: list[Any], env: Env) -> list[Any]:
                if _single(operand(items, env), "is") is None:
                    return EMPTY
                return TRUE if typed_fn(items, env) else FALSE

            return is_choice
        type_name = node.type_name

        def is_(items: list[Any], env: Env) -> list[Any]:
            item = _single(operand(items, env), "is")
            return EMPTY if item is None else _boolean(type_matches(item, type_name))

        return is_

    def _binary(self, node: Binary) -> Fn:
        op = node.op
        if op in _LOGIC or op in _PAIRWISE:
            decide = self.truth_of(node)
            return lambda items, env: _boolean(decide(items, env))
        left = self.compile(node.left)
        right = self.compile(node.right)
        if op == "|":
            return lambda items, env: _distinct(left(items, env) + right(items, env))
        if op == "&":

            def concatenate(items: list[Any], env: Env) -> list[Any]:
                a = plain(_single(left(items, env), "&"))
                b = plain(_single(right(items, env), "&"))
                return [(a or "") + (b or "")]

            return concatenate

        def arithmetic(items: list[Any], env: Env) -> list[Any]:
            a = _single(left(items, env), op)
            b = _single(right(items, env), op)
            if a is None or b is None:
                return EMPTY
            result = _add(plain(a), plain(b)) if op == "+" else _arithmetic(op, plain(a), plain(b))
            return EMPTY if result is None else [result]

        return arithmetic


_PAIRWISE: dict[str, Callable[[list[Any], list[Any]], bool | None]] = {
    "=": _equality,
    "!=": _inequality,
    "~": _equivalence,
    "!~": lambda a, b: not _equivalence(a, b),
    "<": _comparison(lambda o: o < 0, operator.lt),
    "<=": _comparison(lambda o: o <= 0, operator.le),
    ">": _comparison(lambda o: o > 0, operator.gt),
    ">=": _comparison(lambda o: o >= 0, operator.ge),
    "in": _membership,
    "contains": lambda a, b: _membership(b, a) if b else None,
}


def _and(left: Truth, right: Truth) -> Truth:
    def and_(items: list[Any], env: Env) -> bool | None:
        a = left(items, env)
        if a is False:
            return False
        b = right(items, env)
        if b is False:
            return False
        return True if a and b else None

    return and_


def _or(left: Truth, right: Truth) -> Truth:
    def or_(items: list[Any], env: Env) -> bool | None:
        a = left(items, env)
        if a is True:
            return True
        b = right(items, env)
        if b is True:
            return True
        return False if a is False and b is False else None

    return or_


def _xor(left: Truth, right: Truth) -> Truth:
    def xor(items: list[Any], env: Env) -> bool | None:
        a = left(items, env)
        b = right(items, env)
        return None if a is None or b is None else a != b

    return xor


def _implies(left: Truth, right: Truth) -> Truth:
    def implies(items: list[Any], env: Env) -> bool | None:
        a = left(items, env)
        if a is False:
            return True
        b = right(items, env)
        if a is True:
            return b
        return True if b is True else None

    return implies


_LOGIC: dict[str, Callable[[Truth, Truth], Truth]] = {
    "and": _and,
    "or": _or,
    "xor": _xor,
    "implies": _implies,
}


def compile_tree(node: Node, text: str) -> tuple[Fn, Truth]:
    """The expression as a collection-valued function and as a Boolean one."""
    compiler = _Compiler(text)
    return compiler.compile(node), compiler.truth_of(node)


FUNCTION_NAMES = frozenset(_FUNCTIONS)
