"""Hypothesis strategies for FHIR R4 resources, generated from the vendored
StructureDefinitions (``conformance/definitions``): each element's type,
cardinality and required binding, recursing into data types and backbone
elements to a bounded depth; and mutations that make them wrong in the ways
an attacker or a broken client would (wrong types, bad primitives, unknown
elements, deep nesting, huge arrays, odd unicode, NULs, big numbers).

Most of what the strategies make is valid or nearly so, so that writes get
through validation to storage and indexing; the mutations then aim at the
edges.
"""

from __future__ import annotations

import base64
import json
import re
import string
from collections import defaultdict
from datetime import date, datetime
from functools import cache
from typing import Any

from hypothesis import strategies as st

from conformance.definitions import structures, value_sets
from conformance.registry import RESOURCES, TypeInteraction

Json = Any

WRITABLE = tuple(t for t, s in RESOURCES.items() if s.supports(TypeInteraction.CREATE))
# Deeper than this, only primitives: enough to reach every kind of element
# of the types in scope without examples growing past what a pass can send.
MAX_DEPTH = 3

_SAFE = string.ascii_letters + string.digits + " -.'"
_ID = string.ascii_letters + string.digits + "-."

# Strings that have broken parsers elsewhere: NUL and other controls, lone
# surrogates, right-to-left marks, combining characters, astral planes.
ODD_TEXT = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "\x1b[31m",
        "\ud800",
        "\udfff",
        "\u202e\u0645\u0631\u062d\u0628\u0627",
        "e\u0301\u0301\u0301",
        "\U0001f600" * 3,
        "\ufeff",
        "\uffff",
        " ",
        "",
        "\r\n",
        "' OR 1=1 --",
        "%00",
        "..\\..\\",
        "${jndi:ldap://x}",
        "<script>alert(1)</script>",
    ]
)
BIG_NUMBERS = st.sampled_from(
    [
        2**31,
        2**63 - 1,
        2**63,
        2**64,
        -(2**63) - 1,
        10**20,
        10**400,
        1e308,
        -1e-320,
        0.1 + 0.2,
        -0.0,
    ]
)


@cache
def _types() -> dict[str, Any]:
    types: dict[str, Any] = structures()["types"]
    return types


@cache
def _children(type_name: str) -> dict[str, list[dict[str, Any]]]:
    """Each path of ``type_name`` to the elements directly beneath it."""
    below: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for element in _types()[type_name]["elements"][1:]:
        parent, _, name = element["path"].rpartition(".")
        if name not in ("id", "extension", "modifierExtension") or parent == type_name:
            below[parent].append(element)
    return dict(below)


@cache
def _codes(value_set: str) -> tuple[tuple[str, str], ...]:
    """(system, code) of a value set that could be expanded; () if not."""
    found = value_sets()["valueSets"].get(value_set.split("|")[0]) or {}
    return tuple(
        (system, code) for system, codes in (found.get("codes") or {}).items() for code in codes
    )


_SINCE = date(1900, 1, 1)


def _date() -> st.SearchStrategy[str]:
    return st.dates(min_value=_SINCE).map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}")


def _instant() -> st.SearchStrategy[str]:
    return st.datetimes(min_value=datetime(1900, 1, 1)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S") + "+00:00"
    )


_PRIMITIVES: dict[str, st.SearchStrategy[Json]] = {
    "boolean": st.booleans(),
    "integer": st.integers(-(2**31), 2**31 - 1),
    "positiveInt": st.integers(1, 2**31 - 1),
    "unsignedInt": st.integers(0, 2**31 - 1),
    "decimal": st.one_of(
        st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6, allow_nan=False, width=32)
    ),
    "string": st.text(_SAFE, min_size=1, max_size=20).filter(str.strip),
    "markdown": st.text(_SAFE, min_size=1, max_size=40).filter(str.strip),
    "code": st.from_regex(r"[a-z][a-z0-9\-]{0,9}", fullmatch=True),
    "id": st.text(_ID, min_size=1, max_size=64),
    "uri": st.sampled_from(["http://example.org/x", "urn:oid:1.2.3", "https://fhir.nhs.uk/Id/x"]),
    "url": st.just("https://example.org/endpoint"),
    "canonical": st.just("http://hl7.org/fhir/StructureDefinition/Patient"),
    "oid": st.just("urn:oid:2.16.840.1.113883"),
    "uuid": st.uuids().map(lambda u: f"urn:uuid:{u}"),
    "date": _date(),
    "dateTime": st.one_of(_date(), _instant()),
    "instant": _instant(),
    "time": st.times().map(lambda t: t.strftime("%H:%M:%S")),
    "base64Binary": st.binary(min_size=1, max_size=30).map(lambda b: base64.b64encode(b).decode()),
    "xhtml": st.just('<div xmlns="http://www.w3.org/1999/xhtml">text</div>'),
}


def primitive(type_code: str, binding: dict[str, Any] | None = None) -> st.SearchStrategy[Json]:
    """A valid value of the primitive ``type_code`` (a code of its required
    binding, when the value set can be expanded)."""
    if type_code == "code" and binding and binding.get("strength") == "required":
        codes = _codes(binding["valueSet"])
        if codes:
            return st.sampled_from([code for _, code in codes])
    return _PRIMITIVES.get(type_code, _PRIMITIVES["string"])


def _is_primitive(type_code: str) -> bool:
    found = _types().get(type_code)
    return type_code in _PRIMITIVES or (found is not None and found["kind"] == "primitive-type")


def _json_names(element: dict[str, Any]) -> list[tuple[str, str]]:
    """(JSON property name, type code) for each type ``element`` may take."""
    name = element["path"].rpartition(".")[2]
    codes = [t["code"] for t in element.get("type") or [{"code": "BackboneElement"}]]
    if name.endswith("[x]"):
        base = name[:-3]
        return [(base + code[0].upper() + code[1:], code) for code in codes]
    return [(name, codes[0])]


@st.composite
def _reference(draw: st.DrawFn, targets: tuple[str, ...]) -> Json:
    """A reference to one of ``targets`` (any type when none are named)."""
    target = draw(st.sampled_from(targets or ("Patient", "Practitioner", "Organization")))
    if target in ("Resource", "Any"):
        target = "Patient"
    return draw(
        st.sampled_from(
            [
                {"reference": f"{target}/{draw(st.text(_ID, min_size=1, max_size=8))}"},
                {"display": "someone"},
                {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "1"}},
            ]
        )
    )


def _targets(element: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        target
        for kind in element.get("type") or ()
        if kind["code"] == "Reference"
        for target in kind.get("targetProfile") or ()
    )


def _value(
    draw: st.DrawFn, owner: str, path: str, element: dict[str, Any], code: str, depth: int
) -> Json:
    if _is_primitive(code):
        return draw(primitive(code, element.get("binding")))
    if code == "Reference":
        return draw(_reference(_targets(element)))
    if code == "Extension":
        return {"url": "http://example.org/extension", "valueString": "x"}
    if code in ("Resource", "DomainResource"):
        return draw(resource(draw(st.sampled_from(["Patient", "Medication"])), depth + 1))
    if "contentReference" in element:
        owner_path = element["contentReference"].lstrip("#")
        return draw(_object(owner_path.split(".")[0], owner_path, depth + 1))
    if code in ("BackboneElement", "Element") and path in _children(owner):
        return draw(_object(owner, path, depth + 1))
    if code in _types():
        return draw(_object(code, code, depth + 1))
    return draw(primitive("string"))


@st.composite
def _object(draw: st.DrawFn, owner: str, path: str, depth: int) -> Json:
    """The object at ``path`` of type ``owner``: its required elements and
    a few optional ones, each as its cardinality and type say."""
    elements = _children(owner).get(path, [])
    if depth > MAX_DEPTH:
        elements = [
            e for e in elements if e["min"] > 0 or all(_is_primitive(c) for _, c in _json_names(e))
        ]
    required = [e for e in elements if e["min"] > 0]
    optional = [e for e in elements if e["min"] == 0 and not e["path"].endswith(".id")]
    chosen = required + draw(
        st.lists(st.sampled_from(optional), max_size=6 if depth == 0 else 3, unique_by=id)
        if optional
        else st.just([])
    )
    if not chosen and optional:  # FHIR has no empty objects
        plain = [e for e in optional if all(_is_primitive(c) for _, c in _json_names(e))]
        chosen = [draw(st.sampled_from(plain or optional))]
    result: dict[str, Json] = {}
    for element in chosen:
        name, code = draw(st.sampled_from(_json_names(element)))
        child = element["path"]
        if element["max"] == "1":
            result[name] = _value(draw, owner, child, element, code, depth)
        else:
            count = draw(st.integers(max(element["min"], 1), 3))
            result[name] = [_value(draw, owner, child, element, code, depth) for _ in range(count)]
    return result


@st.composite
def resource(draw: st.DrawFn, res_type: str, depth: int = 0) -> Json:
    """A resource of ``res_type``, mostly valid."""
    body = draw(_object(res_type, res_type, depth))
    if draw(st.booleans()):
        body.pop("meta", None)  # the server writes meta; half the time it is left to
    if depth > 0:
        body["id"] = "c1"
    return {"resourceType": res_type, **body}


# -- mutations -----------------------------------------------------------------------------


def _paths(value: Json, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value``."""
    found = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*at, index))
    return found


def _replace(value: Json, path: tuple[Any, ...], new: Json) -> Json:
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(value[head], tuple(rest), new)
    return copy


def nested(depth: int, kind: str) -> Json:
    """A value nested ``depth`` deep in lists or objects: a placeholder that
    ``to_bytes`` writes out (Python's own JSON encoder recurses, and stops
    far short of what a client can send)."""
    return f"{_DEEP}{kind}:{depth}{_DEEP}"


_DEEP = "\x00deep\x00"
_DEEP_JSON = re.compile(r'"\\u0000deep\\u0000(list|dict):([0-9]+)\\u0000deep\\u0000"')


def _deep_text(found: re.Match[str]) -> str:
    kind, depth = found.group(1), int(found.group(2))
    opening, closing = ("[", "]") if kind == "list" else ('{"extension":', "}")
    return opening * depth + '"x"' + closing * depth


WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    BIG_NUMBERS,
    ODD_TEXT,
    st.just([]),
    st.just({}),
    st.just([None]),
    st.just({"resourceType": "Patient"}),
    st.just("1941-13-45"),
    st.just("2026-02-30T25:61:00Z"),
    st.just("-999999999-01-01"),
    st.sampled_from([nested(40, "list"), nested(40, "dict")]),
    st.text(max_size=30),
)


@st.composite
def mutated(draw: st.DrawFn, value: Json) -> Json:
    """``value`` with one thing made wrong."""
    kind = draw(
        st.sampled_from(
            [
                "wrong value",
                "unknown element",
                "drop",
                "deep",
                "wide",
                "long string",
                "odd key",
                "primitive sibling",
            ]
        )
    )
    paths = _paths(value)
    path = draw(st.sampled_from(paths))
    if kind == "wrong value":
        return _replace(value, path, draw(WRONG_VALUES))
    objects = [p for p in paths if isinstance(_at(value, p), dict)]
    where = draw(st.sampled_from(objects)) if objects else ()
    target = dict(_at(value, where)) if objects else {}
    if kind == "unknown element":
        target[draw(st.sampled_from(["foo", "valueFoo", "_foo", "resourceType", "id"]))] = draw(
            WRONG_VALUES
        )
    elif kind == "drop" and target:
        target.pop(draw(st.sampled_from(sorted(target))))
    elif kind == "deep":
        target["extension"] = nested(
            draw(st.sampled_from([200, 1100, 5000])), draw(st.sampled_from(["list", "dict"]))
        )
    elif kind == "wide":
        count = draw(st.sampled_from([1001, 20_000]))
        target["identifier"] = [{"value": str(i)} for i in range(count)]
    elif kind == "long string":
        target["text"] = {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">'
            + "x" * draw(st.sampled_from([70_000, 1_100_000]))
            + "</div>",
        }
    elif kind == "odd key":
        target[draw(ODD_TEXT)] = "x"
    else:
        target["_" + draw(st.sampled_from(sorted(target) or ["id"]))] = draw(WRONG_VALUES)
    return _replace(value, where, target)


def _at(value: Json, path: tuple[Any, ...]) -> Json:
    for step in path:
        value = value[step]
    return value


def to_bytes(value: Json) -> bytes:
    """``value`` as JSON text, as a client might send it: big integers as
    they are, lone surrogates escaped, ``nested`` values written out."""
    return _DEEP_JSON.sub(_deep_text, json.dumps(value, ensure_ascii=True)).encode()
