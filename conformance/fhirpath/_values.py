"""FHIRPath values over FHIR JSON: primitives with extensions, partial dates and
times, quantities, and the equality, equivalence and ordering rules between them.

A collection item is whatever ``json`` parsed (dict, str, int, float, bool;
decimals may be ``Decimal``), a ``Primitive`` where a primitive carries an id
or extensions (``"_birthDate"``), or a value made by the expression itself
(``DateTime``, ``Time``, ``Quantity``).

http://hl7.org/fhirpath/N1/#equality, http://hl7.org/fhirpath/N1/#comparison
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from conformance.fhirpath._errors import FhirPathEvaluationError

UCUM = "http://unitsofmeasure.org"


class Primitive:
    """A FHIR primitive with its id and extensions (the JSON ``_name`` object).
    ``value`` is None for an element that has extensions but no value."""

    __slots__ = ("element", "value")

    def __init__(self, value: Any, element: dict[str, Any]) -> None:
        self.value = value
        self.element = element

    def __repr__(self) -> str:
        return f"Primitive({self.value!r}, {self.element!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Primitive)
            and self.value == other.value
            and self.element == other.element
        )

    __hash__ = None  # type: ignore[assignment]


def plain(item: Any) -> Any:
    """The value of a primitive, or the item itself."""
    return item.value if type(item) is Primitive else item


# Dates, date-times and times with the precision they were written at.

_DATE_RE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:T(?:(\d{2})(?::(\d{2})(?::(\d{2}(?:\.\d+)?))?)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_TIME_RE = re.compile(r"(\d{2})(?::(\d{2})(?::(\d{2}(?:\.\d+)?))?)?")


class DateTime:
    """A FHIRPath Date or DateTime: ``parts`` (year, month, day, hour, minute,
    second as Decimal) up to its precision, and a timezone offset in minutes
    when one was given."""

    __slots__ = ("has_time", "offset", "parts", "text")

    def __init__(
        self, parts: tuple[Any, ...], offset: int | None, has_time: bool, text: str
    ) -> None:
        self.parts = parts
        self.offset = offset
        self.has_time = has_time
        self.text = text

    @classmethod
    def parse(cls, text: str) -> DateTime | None:
        match = _DATE_RE.fullmatch(text)
        if match is None:
            return None
        groups = match.groups()
        parts: list[Any] = []
        for group in groups[:5]:
            if group is None:
                break
            parts.append(int(group))
        if len(parts) == 5 and groups[5] is not None:
            parts.append(Decimal(groups[5]))
        if len(parts) > 1 and not 1 <= parts[1] <= 12:
            return None
        if len(parts) > 2 and not 1 <= parts[2] <= 31:
            return None
        zone = groups[6]
        offset = None
        if zone is not None:
            offset = (
                0 if zone == "Z" else int(zone[0] + "1") * (int(zone[1:3]) * 60 + int(zone[4:]))
            )
        return cls(tuple(parts), offset, "T" in text, text)

    def utc_parts(self) -> tuple[Any, ...]:
        """The parts moved to UTC where there is a time and an offset."""
        if self.offset is None or len(self.parts) < 4 or self.offset == 0:
            return self.parts
        year, month, day, hour = self.parts[:4]
        minute = self.parts[4] if len(self.parts) > 4 else 0
        moment = datetime(year, month, day, hour, minute) - timedelta(minutes=self.offset)
        moved = (moment.year, moment.month, moment.day, moment.hour, moment.minute)
        return moved[: len(self.parts)] + self.parts[5:]

    def __repr__(self) -> str:
        return f"@{self.text}"

    def __str__(self) -> str:
        return self.text


class Time:
    """A FHIRPath Time: hour, minute, second (Decimal) up to its precision."""

    __slots__ = ("parts", "text")

    def __init__(self, parts: tuple[Any, ...], text: str) -> None:
        self.parts = parts
        self.text = text

    @classmethod
    def parse(cls, text: str) -> Time | None:
        match = _TIME_RE.fullmatch(text)
        if match is None:
            return None
        hour, minute, second = match.groups()
        parts: list[Any] = [int(hour)]
        if minute is not None:
            parts.append(int(minute))
            if second is not None:
                parts.append(Decimal(second))
        return cls(tuple(parts), text)

    def __repr__(self) -> str:
        return f"@T{self.text}"

    def __str__(self) -> str:
        return self.text


def now() -> DateTime:
    moment = datetime.now(UTC)
    text = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    parsed = DateTime.parse(text)
    assert parsed is not None
    return parsed


def today() -> DateTime:
    parsed = DateTime.parse(datetime.now(UTC).date().isoformat())
    assert parsed is not None
    return parsed


# Quantities.

# UCUM units the comparisons convert between: unit -> (dimension, factor to its base).
_UCUM_FACTORS: dict[str, tuple[str, Decimal]] = {}
for _prefix, _factor in (
    ("", "1"),
    ("k", "1000"),
    ("d", "0.1"),
    ("c", "0.01"),
    ("m", "0.001"),
    ("u", "0.000001"),
    ("n", "0.000000001"),
):
    for _base in ("g", "L", "l", "m", "mol", "s"):
        _UCUM_FACTORS[_prefix + _base] = (_base.lower(), Decimal(_factor))
_UCUM_FACTORS.update(
    {
        "min": ("s", Decimal(60)),
        "h": ("s", Decimal(3600)),
        "d": ("s", Decimal(86400)),
        "wk": ("s", Decimal(604800)),
        "[in_i]": ("m", Decimal("0.0254")),
        "[lb_av]": ("g", Decimal("453.59237")),
    }
)
_CALENDAR = {
    "year": "a",
    "years": "a",
    "month": "mo",
    "months": "mo",
    "week": "wk",
    "weeks": "wk",
    "day": "d",
    "days": "d",
    "hour": "h",
    "hours": "h",
    "minute": "min",
    "minutes": "min",
    "second": "s",
    "seconds": "s",
    "millisecond": "ms",
    "milliseconds": "ms",
}


class Quantity:
    """A FHIRPath Quantity: a decimal and a unit (UCUM code or calendar word)."""

    __slots__ = ("unit", "value")

    def __init__(self, value: Decimal, unit: str) -> None:
        self.value = value
        self.unit = unit

    def __repr__(self) -> str:
        return f"{self.value} '{self.unit}'"

    def in_base(self) -> tuple[str, Decimal] | None:
        unit = _CALENDAR.get(self.unit, self.unit)
        known = _UCUM_FACTORS.get(unit)
        if known is None:
            return None
        return known[0], self.value * known[1]


def to_decimal(value: Any) -> Decimal:
    if type(value) is float:
        return Decimal(repr(value))
    if type(value) is Decimal:
        return value
    return Decimal(value)


def quantity_of(item: Any) -> Quantity | None:
    """A FHIR Quantity (JSON object) or a FHIRPath one as a Quantity, else None."""
    if type(item) is Quantity:
        return item
    if type(item) is dict and "value" in item:
        value = plain(item["value"])
        if type(value) in (int, float, Decimal):
            unit = item.get("code") if item.get("system", UCUM) == UCUM else None
            unit = unit or item.get("unit") or item.get("code") or "1"
            return Quantity(to_decimal(value), unit)
    return None


# Equality, equivalence, ordering.

_NUMBERS = (int, float, Decimal)


def _compare_parts(left: tuple[Any, ...], right: tuple[Any, ...]) -> int | None:
    for a, b in zip(left, right, strict=False):
        if a != b:
            return -1 if a < b else 1
    return 0 if len(left) == len(right) else None


def compare_datetimes(left: DateTime, right: DateTime) -> int | None:
    """-1, 0, 1, or None where the precisions differ and the common part is equal."""
    if left.offset is not None and right.offset is not None:
        return _compare_parts(left.utc_parts(), right.utc_parts())
    return _compare_parts(left.parts, right.parts)


def _as_datetime(value: Any) -> DateTime | None:
    if type(value) is DateTime:
        return value
    if type(value) is str:
        return DateTime.parse(value)
    return None


def _as_time(value: Any) -> Time | None:
    if type(value) is Time:
        return value
    if type(value) is str:
        return Time.parse(value)
    return None


def _quantities(left: Any, right: Any) -> tuple[Decimal, Decimal] | bool | None:
    """Both quantities' values in one unit, None where they cannot be
    compared, False where either is not a quantity."""
    a = quantity_of(left)
    b = quantity_of(right)
    if a is None or b is None:
        return False
    if a.unit == b.unit or _CALENDAR.get(a.unit, a.unit) == _CALENDAR.get(b.unit, b.unit):
        return a.value, b.value
    base_a, base_b = a.in_base(), b.in_base()
    if base_a is None or base_b is None or base_a[0] != base_b[0]:
        return None
    return base_a[1], base_b[1]


def equal(left: Any, right: Any) -> bool | None:
    """FHIRPath ``=`` on two items: True, False, or None (empty) where
    precisions differ."""
    left = plain(left)
    right = plain(right)
    tl, tr = type(left), type(right)
    if tl is str and tr is str:
        return bool(left == right)
    if tl in _NUMBERS and tr in _NUMBERS:
        if tl is float or tr is float:
            return to_decimal(left) == to_decimal(right)
        return bool(left == right)
    if tl is bool or tr is bool:
        return left is right
    if tl is DateTime or tr is DateTime:
        a, b = _as_datetime(left), _as_datetime(right)
        if a is None or b is None:
            return False
        order = compare_datetimes(a, b)
        return None if order is None else order == 0
    if tl is Time or tr is Time:
        ta, tb = _as_time(left), _as_time(right)
        if ta is None or tb is None:
            return False
        order = _compare_parts(ta.parts, tb.parts)
        return None if order is None else order == 0
    if tl is Quantity or tr is Quantity:
        values = _quantities(left, right)
        if values is False:
            return False
        if values is None or values is True:
            return None
        return values[0] == values[1]
    if tl is dict and tr is dict:
        return _deep_equal(left, right)
    if tl is list and tr is list:
        return len(left) == len(right) and all(
            equal(a, b) is True for a, b in zip(left, right, strict=True)
        )
    return False


def _deep_equal(left: dict[str, Any], right: dict[str, Any]) -> bool:
    if left.keys() != right.keys():
        return False
    return all(equal(value, right[key]) is True for key, value in left.items())


def _normalise_text(value: str) -> str:
    return " ".join(value.split()).lower()


def _decimal_places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def equivalent(left: Any, right: Any) -> bool:
    """FHIRPath ``~`` on two items."""
    left = plain(left)
    right = plain(right)
    tl, tr = type(left), type(right)
    if tl is str and tr is str:
        return _normalise_text(left) == _normalise_text(right)
    if tl in (int, float, Decimal) and tr in (int, float, Decimal) and bool not in (tl, tr):
        a, b = to_decimal(left), to_decimal(right)
        places = min(_decimal_places(a), _decimal_places(b))
        quantum = Decimal(1).scaleb(-places)
        return a.quantize(quantum) == b.quantize(quantum)
    if tl is DateTime or tr is DateTime:
        da, db = _as_datetime(left), _as_datetime(right)
        return da is not None and db is not None and compare_datetimes(da, db) == 0
    if tl is dict and tr is dict:
        if left.keys() != right.keys():
            return False
        return all(equivalent(value, right[key]) for key, value in left.items())
    if tl is list and tr is list:
        return len(left) == len(right) and all(any(equivalent(a, b) for b in right) for a in left)
    return equal(left, right) is True


def compare(left: Any, right: Any) -> int | None:
    """-1, 0 or 1 for FHIRPath's ``<`` family, None where the result is empty
    (precisions or units that cannot be compared). Two JSON strings that both
    read as dates or date-times compare as such: FHIR JSON carries dates as
    strings, and no R4 invariant orders two strings that are not dates."""
    left = plain(left)
    right = plain(right)
    tl, tr = type(left), type(right)
    if tl in _NUMBERS and tr in _NUMBERS and bool not in (tl, tr):
        a, b = (to_decimal(left), to_decimal(right)) if float in (tl, tr) else (left, right)
        return -1 if a < b else (1 if a > b else 0)
    if tl is str and tr is str:
        da, db = DateTime.parse(left), DateTime.parse(right)
        if da is not None and db is not None:
            return compare_datetimes(da, db)
        return -1 if left < right else (1 if left > right else 0)
    if tl is DateTime or tr is DateTime:
        da, db = _as_datetime(left), _as_datetime(right)
        if da is None or db is None:
            raise FhirPathEvaluationError(f"cannot compare {left!r} with {right!r}")
        return compare_datetimes(da, db)
    if tl is Time or tr is Time:
        ta, tb = _as_time(left), _as_time(right)
        if ta is None or tb is None:
            raise FhirPathEvaluationError(f"cannot compare {left!r} with {right!r}")
        return _compare_parts(ta.parts, tb.parts)
    values = _quantities(left, right)
    if values is None:
        return None
    if values is not False and values is not True:
        a, b = values
        return -1 if a < b else (1 if a > b else 0)
    raise FhirPathEvaluationError(f"cannot compare {left!r} with {right!r}")


def key(item: Any) -> Any:
    """A hashable stand-in for an item, equal where FHIRPath's ``=`` is true
    (used by distinct, union, intersect and the like)."""
    item = plain(item)
    kind = type(item)
    if kind is str:
        return item
    if kind is bool:
        return ("b", item)
    if kind is int or kind is float or kind is Decimal:
        return ("n", to_decimal(item).normalize())
    if kind is dict:
        return ("d", tuple(sorted((k, key(v)) for k, v in item.items())))
    if kind is list:
        return ("l", tuple(key(v) for v in item))
    if kind is DateTime:
        return ("t", item.utc_parts(), item.offset is None)
    if kind is Time:
        return ("T", item.parts)
    if kind is Quantity:
        return ("q", item.value.normalize(), item.unit)
    return ("o", id(item))


def to_string(item: Any) -> str | None:
    value = plain(item)
    kind = type(value)
    if kind is str:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is Decimal:
        return str(value)
    if kind is float:
        return repr(value)
    if kind is DateTime or kind is Time:
        return str(value.text)
    if kind is Quantity:
        return f"{value.value} '{value.unit}'"
    return None


def to_integer(item: Any) -> int | None:
    value = plain(item)
    kind = type(value)
    if kind is bool:
        return 1 if value else 0
    if kind is int:
        return int(value)
    if kind is str and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    return None


def to_decimal_value(item: Any) -> Decimal | None:
    value = plain(item)
    kind = type(value)
    if kind is bool:
        return Decimal(1 if value else 0)
    if kind in (int, float, Decimal):
        return to_decimal(value)
    if kind is str and re.fullmatch(r"[+-]?\d+(\.\d+)?", value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            return None
    return None


_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})


def to_boolean(item: Any) -> bool | None:
    value = plain(item)
    kind = type(value)
    if kind is bool:
        return bool(value)
    if kind is int or kind is Decimal or kind is float:
        return True if value == 1 else (False if value == 0 else None)
    if kind is str:
        word = value.lower()
        return True if word in _TRUE_WORDS else (False if word in _FALSE_WORDS else None)
    return None
