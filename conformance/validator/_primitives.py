"""Checks of FHIR R4 primitive values as they appear in JSON.

https://hl7.org/fhir/R4/datatypes.html#primitive and
https://hl7.org/fhir/R4/json.html#primitive: booleans are JSON booleans;
integer, positiveInt, unsignedInt and decimal are JSON numbers; every other
primitive is a JSON string, matching the regex its StructureDefinition gives
(``structures.json.gz``, ``primitive.regex``), which XML Schema anchors at
both ends and reads with ASCII character classes (``\\s`` is space, tab,
newline and return). The date types must also be real calendar dates ("Dates
SHALL be valid dates"), which the regexes do not check.

A check takes the JSON value and returns ``None`` when it is valid, else why
not (a message for the issue). The gateway refuses blank strings and control
characters (below U+0020 but tab, return and line feed) in any string, and a
code with whitespace other than single spaces.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

Check = Callable[[Any], str | None]

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_OTHER_WHITESPACE = re.compile("[\t\n\r\x0b\x0c]")

INT32_MAX = 2**31 - 1
# R4 says a string "SHALL NOT exceed 1MB in size" (``string.value`` has a
# maxLength of 1048576); the size is measured in UTF-8 bytes, which only a
# string of more than a quarter of that many characters can exceed.
_BYTES_PER_CHARACTER = 4

_DATE_TYPES = frozenset({"date", "dateTime", "instant"})
_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def json_name(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if value.__class__ is bool:
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _real_date(value: str) -> bool:
    """Whether the day of a YYYY-MM-DD prefix (if there is one) is in its month."""
    if len(value) < 10:
        return True
    day = int(value[8:10])
    month = int(value[5:7])
    if day <= 28 or (day <= _DAYS[month] and month != 2):
        return True
    year = int(value[0:4])
    return day == 29 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _boolean(value: Any) -> str | None:
    if value.__class__ is bool:
        return None
    return f"must be a JSON boolean (true or false), not {json_name(value)}"


def _integer(low: int, high: int, type_name: str) -> Check:
    def check(value: Any) -> str | None:
        if value.__class__ is not int:
            return f"must be a JSON number without a fraction ({type_name}), not {json_name(value)}"
        if value < low or value > high:
            return f"{value} is outside the range of {type_name} ({low} to {high})"
        return None

    return check


def _decimal(value: Any) -> str | None:
    cls = value.__class__
    if cls is int:
        return None
    if cls is float or cls is Decimal:
        if math.isfinite(value):
            return None
        return "must be a finite number"
    return f"must be a JSON number (decimal), not {json_name(value)}"


def _string(type_name: str, regex: str | None, max_bytes: int | None) -> Check:
    match = re.compile(regex, re.ASCII).fullmatch if regex else None
    dates = type_name in _DATE_TYPES
    single_spaces = type_name == "code"
    long_chars = max_bytes // _BYTES_PER_CHARACTER if max_bytes else None

    def check(value: Any) -> str | None:
        if value.__class__ is not str:
            return f"must be a JSON string ({type_name}), not {json_name(value)}"
        if not value or value.isspace():
            return "empty or blank strings are not allowed"
        # isprintable() is false for every control character (and for tab and
        # line breaks, and some rarer characters): only then look closer.
        if not value.isprintable() and _CONTROL.search(value) is not None:
            # R4 asks that strings hold no character below U+0020 but tab,
            # return and line feed; XML 1.0, R4's other normative format,
            # cannot carry one, so a resource holding it could not be
            # exchanged as XML (and PostgreSQL text cannot store U+0000).
            found = _CONTROL.search(value)
            assert found is not None
            return f"contains the control character U+{ord(found.group()):04X}"
        if single_spaces and not value.isprintable() and _OTHER_WHITESPACE.search(value):
            # "no whitespace other than single spaces in the contents" (R4's
            # code; the 4.0.1 regex lets a tab or line break through).
            return f"{_quoted(value)} is not a valid {type_name}: only single spaces may separate"
        if match is not None and match(value) is None:
            return f"{_quoted(value)} is not a valid {type_name}"
        if dates and not _real_date(value):
            return f"{_quoted(value)} is not a valid {type_name}: no such day"
        if (
            long_chars is not None
            and max_bytes is not None
            and len(value) > long_chars
            and len(value.encode("utf-8", "surrogatepass")) > max_bytes
        ):
            return f"is longer than FHIR allows for a {type_name} ({max_bytes:,} bytes)"
        return None

    return check


def _quoted(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def checker(type_name: str, definition: dict[str, Any]) -> Check:
    """The check of one primitive type, from its vendored definition."""
    primitive = definition["primitive"]
    if type_name == "boolean":
        return _boolean
    if type_name == "decimal":
        return _decimal
    if type_name == "integer":
        return _integer(
            primitive.get("minValueInteger", -(2**31)),
            primitive.get("maxValueInteger", INT32_MAX),
            type_name,
        )
    # The R4 definitions give positiveInt and unsignedInt as strings of digits;
    # in JSON they are numbers (json.html#primitive) of at most 2^31-1
    # (datatypes.html#positiveInt).
    if type_name == "positiveInt":
        return _integer(1, INT32_MAX, type_name)
    if type_name == "unsignedInt":
        return _integer(0, INT32_MAX, type_name)
    return _string(type_name, primitive.get("regex"), primitive.get("maxLength"))
