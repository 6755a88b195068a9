"""Parsing a FHIR search into a query: https://hl7.org/fhir/R4/search.html.

``parse_search(res_type, params)`` turns the request's parameters into a
``SearchQuery``: the conditions every match must meet (AND across
parameters, OR across comma-separated values), and the result parameters
(``_count``, ``_sort``, ``_total``, ``_summary``, ``_elements``,
``_include``, ``_revinclude``). A parameter the server does not know, or a
value it cannot read, is an error naming the parameter; with
``Prefer: handling=lenient`` it is left out instead and reported as ignored,
so the ``self`` link can show what was really searched.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from gateway import fhirjson
from gateway.errors import InvalidRequest, Issue
from gateway.integers import MAX_BIGINT, is_digits, whole_number
from gateway.search.extract import HIGH_OPEN, LOW_OPEN
from gateway.search.parameters import SearchParameter, parameter
from gateway.store.values import DateRange

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
DEFAULT_COUNT = 50
MAX_COUNT = 1000
# A search's size, bounded: each alternative deepens the SQL expression a
# parameter becomes (SQLite refuses a tree over 1000 deep, at about 500
# alternatives), and the time to plan and run a search grows faster than
# its alternatives do (measured on SQLite: 1,000 in all took a second,
# 10,000 over a minute).
MAX_VALUES = 100  # comma-separated alternatives of one parameter
MAX_TERMS = 200  # alternatives of all the search's parameters together
MAX_PARAMETERS = 50  # parameters (names, repeats included) in one search
# Search values hold no control characters (the parser uses some as markers;
# PostgreSQL text holds no NUL): tab, CR and LF aside.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
RESULT_PARAMETERS = frozenset(
    {
        "_count",
        "_sort",
        "_total",
        "_summary",
        "_elements",
        "_include",
        "_revinclude",
        "_format",
        "_cursor",
        "_type",
    }
)
_MODIFIERS: dict[str, frozenset[str]] = {
    "string": frozenset({"exact", "contains", "missing"}),
    "token": frozenset({"not", "text", "missing", "of-type"}),
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "uri": frozenset({"missing", "below", "above"}),
    "reference": frozenset({"missing", "identifier"}),
    "composite": frozenset({"missing"}),
    "special": frozenset({"missing"}),
}
_ESCAPED_COMMA = "\x00"


# -- the query ---------------------------------------------------------------------


@dataclass(frozen=True)
class TokenCriterion:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code (``system|``)


@dataclass(frozen=True)
class OfTypeCriterion:
    type_system: str
    type_code: str
    value: str


@dataclass(frozen=True)
class Comparison:
    """A prefixed number, date or quantity value. Dates carry the range the
    value's precision implies; numbers the implicit range of their
    significant figures (https://hl7.org/fhir/R4/search.html#number)."""

    prefix: str
    low: str | Decimal
    high: str | Decimal
    system: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class ReferenceCriterion:
    target_type: str | None
    target_id: str | None
    url: str | None = None


@dataclass(frozen=True)
class CompositeCriterion:
    """``first$second`` for a composite parameter of two components."""

    first: TokenCriterion | ReferenceCriterion
    second: TokenCriterion | Comparison | str
    second_type: str


Value = (
    str
    | TokenCriterion
    | OfTypeCriterion
    | Comparison
    | ReferenceCriterion
    | CompositeCriterion
    | bool
)


@dataclass(frozen=True)
class Condition:
    """One search parameter as used in a query: OR across ``values``.

    ``chain`` is set for a chained parameter (``subject:Patient.name=x``):
    the reference must point at a ``chain[0]`` resource matching
    ``chain[1]``. ``reverse`` is set for ``_has``: some resource of
    ``reverse[0]`` whose reference parameter ``reverse[1]`` points here must
    match ``reverse[2]``."""

    param: SearchParameter | None  # None only for _has
    modifier: str | None = None
    values: tuple[Value, ...] = ()
    chain: tuple[str, Condition] | None = None
    reverse: tuple[str, str, Condition] | None = None
    negate: bool = False  # token :not


@dataclass(frozen=True)
class SortKey:
    param: SearchParameter
    descending: bool


@dataclass(frozen=True)
class Include:
    """``_include=Source:param[:Target]`` or ``_revinclude=...``."""

    source_type: str
    param: SearchParameter
    target_type: str | None
    iterate: bool = False


@dataclass
class SearchQuery:
    res_type: str  # the type searched, or the first of ``types``
    types: tuple[str, ...] = ()  # system search over several types (``_type``)
    conditions: list[Condition] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    sort: list[SortKey] = field(default_factory=list)
    total: str = "accurate"  # none | estimate | accurate
    summary: str | None = None  # true | text | data | count | false
    elements: tuple[str, ...] = ()
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    cursor: str | None = None
    # Patient compartment search: (compartment type, id, (type, reference
    # parameter) pairs that put a resource of that type in the compartment)
    compartment: tuple[str, str, tuple[tuple[str, SearchParameter], ...]] | None = None
    ignored: list[str] = field(default_factory=list)  # lenient handling
    canonical: list[tuple[str, str]] = field(default_factory=list)  # what was searched


# -- parsing -----------------------------------------------------------------------


def _bad(name: str, message: str, code: str = "GW-0320") -> InvalidRequest:
    return InvalidRequest(
        f"search parameter {name!r}: {message}",
        code=code,
        issues=[Issue("value", f"search parameter {name!r}: {message}", (name,))],
    )


def _split_values(raw: str) -> list[str]:
    """Comma-separated alternatives, honouring ``\\,`` escapes."""
    text = raw.replace("\\,", _ESCAPED_COMMA)
    return [part.replace(_ESCAPED_COMMA, ",").replace("\\|", "|") for part in text.split(",")]


def _split_token(value: str) -> tuple[str | None, str | None]:
    """``system|code`` with ``\\|`` escapes; ``None`` system when no bar."""
    marker = "\x01"
    text = value.replace("\\|", marker)
    if "|" not in text:
        return None, text.replace(marker, "|")
    system, _, code = text.partition("|")
    return system.replace(marker, "|"), code.replace(marker, "|")


_DATE = re.compile(
    r"(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<hour>\d{2})(:(?P<minute>\d{2})(:(?P<second>\d{2})(?P<fraction>\.\d+)?)?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?"
)


def date_range(text: str) -> DateRange:
    """The range of instants a FHIR date, dateTime or instant of any
    precision covers, in UTC (a value without a zone is taken as UTC)."""
    from datetime import UTC, datetime, timedelta

    match = _DATE.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a FHIR date or dateTime")
    parts = match.groupdict()
    year, month, day = int(parts["year"]), int(parts["month"] or 1), int(parts["day"] or 1)
    hour, minute = int(parts["hour"] or 0), int(parts["minute"] or 0)
    second = int(parts["second"] or 0)
    fraction = parts["fraction"] or ""
    micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
    zone = parts["zone"]
    tz = UTC
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz = __import__("datetime").timezone(
            sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        )
    low = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    # A range reaching past year 9999 (or, in UTC, before year 1) ends there,
    # as the values indexed from resources do (``extract.date_range``).
    try:
        if fraction:
            high = fhirjson.instant(low + timedelta(microseconds=1))
        elif parts["second"]:
            high = fhirjson.instant(low + timedelta(seconds=1))
        elif parts["minute"]:
            high = fhirjson.instant(low + timedelta(minutes=1))
        elif parts["hour"]:
            high = fhirjson.instant(low + timedelta(hours=1))
        elif parts["day"]:
            high = fhirjson.instant(low + timedelta(days=1))
        elif parts["month"]:
            high = fhirjson.instant(low.replace(year=year + (month == 12), month=month % 12 + 1))
        else:
            high = fhirjson.instant(low.replace(year=year + 1))
    except (OverflowError, ValueError):  # year 10000, or year 0 in UTC
        high = LOW_OPEN if year == 1 else HIGH_OPEN
    try:
        low_text = fhirjson.instant(low)
    except OverflowError:
        low_text = LOW_OPEN if year == 1 else HIGH_OPEN
    return DateRange(low_text, high)


def _prefixed(value: str) -> tuple[str, str]:
    if len(value) > 2 and value[:2] in PREFIXES and not value[2].isalpha():
        return value[:2], value[2:]
    return "eq", value


def _number_range(name: str, kind: str, raw: str, text: str) -> tuple[Decimal, Decimal]:
    """The implicit range of a number's significant figures: 100 is
    [99.5, 100.5), 1e2 is [50, 150). Only a finite decimal has one."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise _bad(
            name, f"{raw!r} is not a valid {kind} value: {text!r} is not a decimal"
        ) from None
    if not number.is_finite():
        raise _bad(name, f"{raw!r} is not a valid {kind} value: {text!r} is not a finite number")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    try:
        half = Decimal(5).scaleb(exponent - 1)
        return number - half, number + half
    except ArithmeticError:  # decimal's Overflow, InvalidOperation...: an exponent past 10**6
        raise _bad(name, f"{raw!r} is not a valid {kind} value: {text!r} is out of range") from None


def _comparison(name: str, param: SearchParameter, raw: str) -> Comparison:
    prefix, text = _prefixed(raw)
    if param.type == "date":
        try:
            span = date_range(text)
        except ValueError as exc:
            raise _bad(name, f"{raw!r} is not a valid date value") from exc
        if prefix == "ap":
            _approximable(name, raw, span)
        return Comparison(prefix, span.low, span.high)
    if param.type == "number":
        low, high = _number_range(name, param.type, raw, text)
        return Comparison(prefix, low, high)
    number, _, rest = text.partition("|")
    low, high = _number_range(name, param.type, raw, number)
    system, _, code = rest.partition("|") if rest else ("", "", "")
    return Comparison(prefix, low, high, system or None, code or None)


def _approximable(name: str, raw: str, span: DateRange) -> None:
    """``ap`` widens a date by a tenth of its distance from now
    (``gateway.search.sql``): refuse a date so far off that the widened
    range leaves the years 1 to 9999 the server can represent."""
    from gateway.search.sql import _approximately  # sql imports this module

    try:
        _approximately(span.low, span.high)
    except (OverflowError, InvalidRequest):
        raise _bad(
            name,
            f"{raw!r}: ap widens this date past the years 1 to 9999 this server can search",
        ) from None


def _reference(name: str, param: SearchParameter, raw: str, base_url: str) -> ReferenceCriterion:
    value = raw
    if base_url and value.startswith(base_url + "/"):
        value = value[len(base_url) + 1 :]
    if "://" in value or value.startswith("urn:"):
        return ReferenceCriterion(None, None, url=value)
    parts = [p for p in value.split("/") if p]
    if len(parts) == 1:
        target = param.targets[0] if len(param.targets) == 1 else None
        return ReferenceCriterion(target, parts[0])
    if len(parts) == 2:
        return ReferenceCriterion(parts[0], parts[1])
    if len(parts) == 4 and parts[2] == "_history":
        return ReferenceCriterion(parts[0], parts[1])
    raise _bad(name, f"{raw!r} is not a reference (use [type]/[id], [id] or a URL)")


def _values(
    name: str, param: SearchParameter, modifier: str | None, raw: str, base_url: str
) -> tuple[Value, ...]:
    parts = _split_values(raw)
    if any(part == "" for part in parts):
        raise _bad(name, "has an empty value")
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise _bad(name, ":missing takes true or false")
        return (raw == "true",)
    values: list[Value] = []
    for part in parts:
        if param.type in ("string", "uri"):
            values.append(part)
        elif param.type == "token":
            if modifier == "text":
                values.append(part)
            elif modifier == "of-type":
                if param.code != "identifier":
                    raise _bad(name, ":of-type applies to identifier parameters")
                pieces = part.split("|")
                if len(pieces) != 3 or not all(pieces):
                    raise _bad(name, ":of-type takes [type system]|[type code]|[value]")
                values.append(OfTypeCriterion(*pieces))
            else:
                system, code = _split_token(part)
                values.append(TokenCriterion(system, code or None))
        elif param.type in ("date", "number", "quantity"):
            values.append(_comparison(name, param, part))
        elif param.type == "composite":
            values.append(_composite(name, param, part, base_url))
        elif param.type == "reference":
            if modifier == "identifier":
                system, code = _split_token(part)
                values.append(TokenCriterion(system, code or None))
            else:
                values.append(_reference(name, param, part, base_url))
        else:
            raise _bad(name, f"searching by {param.type} parameters is not supported", "GW-0322")
    return tuple(values)


def _composite(name: str, param: SearchParameter, raw: str, base_url: str) -> CompositeCriterion:
    parts = raw.replace("\\$", "\x02").split("$")
    if len(parts) != 2 or len(param.components) != 2 or not all(parts):
        raise _bad(name, "takes [first component]$[second component]")
    first_text, second_text = (p.replace("\x02", "$") for p in parts)
    first_kind, second_kind = (c.type for c in param.components)
    first: TokenCriterion | ReferenceCriterion
    if first_kind == "reference":
        first = _reference(name, dataclasses.replace(param, type="reference"), first_text, base_url)
    else:
        system, code = _split_token(first_text)
        first = TokenCriterion(system, code or None)
    second: TokenCriterion | Comparison | str
    if second_kind == "token":
        system, code = _split_token(second_text)
        second = TokenCriterion(system, code or None)
    elif second_kind in ("quantity", "date", "number"):
        second = _comparison(name, dataclasses.replace(param, type=second_kind), second_text)
    else:
        second = second_text
    return CompositeCriterion(first, second, second_kind)


def _known(res_type: str, code: str, name: str) -> SearchParameter:
    """The parameter ``code`` of ``res_type``, as named in the query
    parameter ``name`` (the same, or one that holds it: ``_include``,
    ``_has:...``, ``code:modifier``)."""
    found = parameter(res_type, code)
    if found is None:
        if code == name:
            message = f"unknown search parameter {name!r} for {res_type}"
            diagnostics = f"unknown search parameter {name!r}"
        else:
            message = diagnostics = f"{name!r}: {code!r} is not a search parameter of {res_type}"
        raise InvalidRequest(
            message, code="GW-0321", issues=[Issue("not-supported", diagnostics, (name,))]
        )
    return found


def parse_condition(res_type: str, name: str, raw: str, base_url: str = "") -> Condition:
    """One ``name=raw`` query parameter (possibly chained or ``_has``)."""
    if name.startswith("_has:"):
        pieces = name.split(":", 3)
        if len(pieces) != 4 or not all(pieces[1:]):
            raise _bad(name, "_has takes _has:[type]:[reference parameter]:[parameter]")
        _, source_type, ref_code, rest = pieces
        from conformance.registry import resource_support

        if resource_support(source_type) is None:
            raise _bad(name, f"{source_type!r} is not a resource type this server holds")
        ref = _known(source_type, ref_code, name)
        if ref.type != "reference":
            raise _bad(name, f"{ref_code!r} is not a reference parameter of {source_type}")
        inner = parse_condition(source_type, rest, raw, base_url)
        return Condition(param=None, reverse=(source_type, ref_code, inner))
    head, dot, rest = name.partition(".")
    code, _, modifier_text = head.partition(":")
    modifier = modifier_text or None
    param = _known(res_type, code, name)
    if dot:
        if param.type != "reference":
            raise _bad(name, f"{code!r} is not a reference parameter, so it cannot be chained")
        if modifier is not None:
            target = modifier
        elif len(param.targets) == 1:
            target = param.targets[0]
        else:
            raise _bad(
                name,
                f"{code!r} may refer to {', '.join(param.targets)}: name the type "
                f"({code}:[type].{rest})",
            )
        inner = parse_condition(target, rest, raw, base_url)
        return Condition(param=param, chain=(target, inner))
    allowed = _MODIFIERS.get(param.type, frozenset())
    if modifier is not None and modifier not in allowed:
        if param.type == "reference" and modifier in param.targets:
            values = _values(name, param, None, raw, base_url)
            typed = tuple(
                ReferenceCriterion(modifier, v.target_id, v.url)
                if isinstance(v, ReferenceCriterion)
                else v
                for v in values
            )
            return Condition(param=param, modifier="type", values=typed)
        raise _bad(name, f"the modifier :{modifier} is not supported here", "GW-0323")
    values = _values(name, param, modifier, raw, base_url)
    return Condition(param=param, modifier=modifier, values=values, negate=(modifier == "not"))


def _parse_sort(res_type: str, raw: str) -> list[SortKey]:
    keys = []
    for item in raw.split(","):
        descending = item.startswith("-")
        code = item[1:] if descending else item
        if not code:
            raise _bad(
                "_sort",
                f"{raw!r} has an empty sort key: name search parameters of {res_type}, "
                "comma-separated, each with - before it to sort descending",
            )
        param = parameter(res_type, code)
        if param is None:
            raise _bad("_sort", f"{code!r} is not a search parameter of {res_type}", "GW-0321")
        if param.type in ("composite", "special"):
            raise _bad("_sort", f"cannot sort by the {param.type} parameter {code!r}")
        keys.append(SortKey(param, descending))
    return keys


def _parse_include(res_type: str, raw: str, name: str, reverse: bool) -> Include:
    pieces = raw.split(":")
    if len(pieces) not in (2, 3):
        raise _bad(name, "takes [type]:[search parameter] or [type]:[search parameter]:[type]")
    source_type, code = pieces[0], pieces[1]
    if not reverse and source_type != res_type and not name.endswith(":iterate"):
        raise _bad(name, f"_include names {source_type}, but the search is for {res_type}")
    from conformance.registry import resource_support

    if resource_support(source_type) is None:
        raise _bad(name, f"{source_type!r} is not a resource type this server holds")
    param = _known(source_type, code, name)
    if param.type != "reference":
        raise _bad(name, f"{code!r} is not a reference parameter")
    target = pieces[2] if len(pieces) == 3 else None
    return Include(source_type, param, target, iterate=name.endswith(":iterate"))


def parse_system_search(
    params: Sequence[tuple[str, str]],
    *,
    base_url: str = "",
    lenient: bool = False,
    within: Collection[str] | None = None,
) -> SearchQuery:
    """A search across types (``GET [base]?_type=...``): over the types
    ``_type`` names, or every type in scope (of those ``within`` lists, when
    given: the ones the requester may search), with parameters every one of
    them defines alike (``_id``, ``_lastUpdated``, ``_tag``...)."""
    from conformance.registry import RESOURCES, TypeInteraction

    named = [t for name, raw in params if name == "_type" for t in raw.split(",") if t]
    for res_type in named:
        support = RESOURCES.get(res_type)
        if support is None or not support.supports(TypeInteraction.SEARCH_TYPE):
            raise _bad("_type", f"{res_type!r} is not a type this server searches")
    types = tuple(dict.fromkeys(named)) or tuple(
        t
        for t, s in RESOURCES.items()
        if s.supports(TypeInteraction.SEARCH_TYPE) and (within is None or t in within)
    )
    if not types:
        raise _bad("_type", "names no type that may be searched here", code="GW-0321")
    query = parse_search(types[0], params, base_url=base_url, lenient=lenient)
    query.types = types
    for condition in query.conditions:
        param = condition.param
        for res_type in types[1:]:
            other = parameter(res_type, param.code) if param is not None else None
            if param is None or other is None or other.type != param.type:
                name = param.code if param is not None else "_has"
                raise _bad(name, f"is not a parameter of every type searched ({res_type})")
    if named:
        query.canonical.insert(0, ("_type", ",".join(types)))
    return query


def parse_search(
    res_type: str,
    params: Sequence[tuple[str, str]],
    *,
    base_url: str = "",
    lenient: bool = False,
    bounded: bool = True,
) -> SearchQuery:
    """The search ``params`` ask for. ``bounded``: within the size a
    request's search may have (``MAX_PARAMETERS``, ``MAX_VALUES``,
    ``MAX_TERMS``); only the gateway's own searches, sized by their
    callers, are not."""
    query = SearchQuery(res_type=res_type)
    if bounded:
        _check_size(params)
    for name, raw in params:
        try:
            control = _CONTROL.search(name) or _CONTROL.search(raw)
            if control:
                raise _bad(
                    name,
                    f"contains the control character U+{ord(control.group()):04X}, "
                    "which no search value holds",
                )
            _apply(query, res_type, name, raw, base_url)
        except InvalidRequest:
            if not lenient:
                raise
            query.ignored.append(name)
    return query


def _check_size(params: Sequence[tuple[str, str]]) -> None:
    if len(params) > MAX_PARAMETERS:
        raise _too_costly(
            f"the search has {len(params)} parameters; at most {MAX_PARAMETERS} are allowed"
        )
    terms = 0
    for name, raw in params:
        if name in RESULT_PARAMETERS:
            continue
        count = len(_split_values(raw))
        if count > MAX_VALUES:
            raise _too_costly(
                f"search parameter {name!r}: has {count} comma-separated values; "
                f"at most {MAX_VALUES} are allowed",
                name,
            )
        terms += count
    if terms > MAX_TERMS:
        raise _too_costly(
            f"the search has {terms} values in all (its parameters' comma-separated "
            f"alternatives together); at most {MAX_TERMS} are allowed"
        )


def _too_costly(message: str, name: str | None = None) -> InvalidRequest:
    expression = (name,) if name else ()
    return InvalidRequest(
        message, code="GW-0324", issues=[Issue("too-costly", message, expression)]
    )


def _apply(query: SearchQuery, res_type: str, name: str, raw: str, base_url: str) -> None:
    if name == "_count":
        count = whole_number(raw)
        if count is None:
            if is_digits(raw):
                raise _bad(name, f"{raw!r} is out of range (at most {MAX_BIGINT})")
            raise _bad(name, f"must be a non-negative integer, not {raw!r}")
        # Over the ceiling, the page is the ceiling's size, and the links say
        # so: a search's self link gives the parameters the server used.
        query.count = min(count, MAX_COUNT)
        query.canonical.append((name, str(query.count)))
        return
    elif name == "_sort":
        query.sort = _parse_sort(res_type, raw)
    elif name == "_total":
        if raw not in ("none", "estimate", "accurate"):
            raise _bad(name, "takes none, estimate or accurate")
        query.total = raw
    elif name == "_summary":
        if raw not in ("true", "false", "text", "data", "count"):
            raise _bad(name, "takes true, text, data, count or false")
        query.summary = None if raw == "false" else raw
    elif name == "_elements":
        query.elements = tuple(e.strip() for e in raw.split(",") if e.strip())
    elif name in ("_include", "_include:iterate"):
        query.includes.append(_parse_include(res_type, raw, name, reverse=False))
    elif name in ("_revinclude", "_revinclude:iterate"):
        query.revincludes.append(_parse_include(res_type, raw, name, reverse=True))
    elif name == "_cursor":
        query.cursor = raw
        return
    elif name in ("_format", "_type"):
        return
    else:
        query.conditions.append(parse_condition(res_type, name, raw, base_url))
    query.canonical.append((name, raw))
