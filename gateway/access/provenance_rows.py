"""The index rows of a Provenance shaped as the gateway makes one, without
the generic extraction: exactly the rows ``index.entries`` gives it, in the
same order (``tests/unit/access/test_provenance_index.py``), in a fraction
of the time. Every write makes one, a loader one a record, and the generic
extraction of each was a sixth of a loader's writer.

Kept out of ``gateway/access/index.py`` on purpose: that module's bytes
fingerprint the index's rules (``index.version``), and a store built with
other rules is reindexed before it serves. A faster way to the same rows
must not rebuild every deployment's index."""

from __future__ import annotations

from dataclasses import replace
from functools import cache, lru_cache
from typing import Any

import orjson

from consent.model import ID_SEPARATOR
from gateway.access import index
from gateway.search import index as search_index
from gateway.search.compartments import PATIENT_COMPARTMENT
from gateway.search.extract import extract
from gateway.search.parameters import parameters_for
from gateway.store import IndexEntry
from gateway.store.values import ReferenceValue, SortValue, TokenValue

# What a Provenance as ``gateway.interactions.provenance`` makes it holds:
# the elements each write's differ in (its id, the versions it names, when)
# and those its author and activity decide.
_ELEMENTS = frozenset({"resourceType", "id", "meta", "target", "recorded", "activity", "agent"})
_VARYING = ("_id", "patient", "recorded", "target")


def provenance_entries(resource: dict[str, Any]) -> list[IndexEntry]:
    """``index.entries(resource)`` for a Provenance: when it is shaped as
    the gateway makes one, the rows of its author and activity (its agents,
    ``meta.source``, ``_access-author``) are worked out once for each, by
    the generic extraction of a Provenance with no id, target or time; the
    rest (``_id``, ``patient``, ``recorded``, ``target``, whose record it
    is, ``_access-owner``) by the same functions ``entries`` uses, in the
    same order. Any other Provenance, or one with ``meta`` beyond its
    source (labels), is indexed by ``index.entries``."""
    meta = resource.get("meta")
    if (
        resource.keys() != _ELEMENTS
        or resource["resourceType"] != "Provenance"
        or not isinstance(meta, dict)
        or meta.keys() != {"source"}
        or not isinstance(resource["id"], str)
    ):
        return index.entries(resource)
    plan = _plan()
    fixed = _fixed(orjson.dumps([meta, resource["activity"], resource["agent"]]))
    if plan is None or fixed is None:
        return index.entries(resource)
    search_values, whose, rest = fixed
    found: list[IndexEntry] = []
    patients: list[Any] = []
    for code, definition in plan:
        if definition is None:
            found += search_values.get(code, ())
            continue
        values = extract(resource, definition)
        found += [IndexEntry(code, value) for value in values]
        if code == "patient":
            patients = values
    found += search_index.sort_entries("Provenance", found)
    # Whose record it is: the first Patient it names (``person_of``), else
    # what one naming none is.
    person = next(
        (
            value.target_id
            for value in patients
            if isinstance(value, ReferenceValue) and value.target_type == "Patient"
        ),
        None,
    )
    if person is not None:
        found.append(IndexEntry(index.PERSON_OF, ReferenceValue(None, "Patient", person)))
    else:
        found.append(whose)
    found += [e for e in rest if e.param == index.AUTHOR]
    found += _owner_rows(resource["id"])
    found += [e for e in rest if e.param != index.AUTHOR]
    if person is None:
        return found
    # Its sort keys keyed by its person, as ``index.entries`` keys them.
    return [
        IndexEntry(e.param, replace(e.value, person=person))
        if isinstance(e.value, SortValue)
        else e
        for e in found
    ]


def _owner_rows(res_id: str) -> list[IndexEntry]:
    """The ``_access-owner`` row ``index.access_entries`` gives a resource
    with id ``res_id``, if it has one."""
    owner, separator, _ = res_id.partition(ID_SEPARATOR)
    if separator and index.OWNER_CODE.fullmatch(owner):
        return [IndexEntry(index.OWNER, TokenValue(None, owner))]
    return []


@cache
def _plan() -> tuple[tuple[str, Any], ...] | None:
    """The Provenance's search parameters in the order ``index_values``
    takes them, each with its definition where its values vary from one
    Provenance to another (``None`` where its author and activity decide
    them); ``None`` when the fast path cannot match ``entries`` (a
    composite parameter, or its person read from another parameter)."""
    definitions = parameters_for("Provenance")
    if search_index.composite_parameters("Provenance") or tuple(
        PATIENT_COMPARTMENT.get("Provenance", ())
    )[:1] != ("patient",):
        return None
    if any(code not in definitions for code in _VARYING):
        return None
    return tuple(
        (code, definition if code in _VARYING else None)
        for code, definition in definitions.items()
        if definition.type not in ("composite", "special")
    )


@lru_cache(maxsize=64)
def _fixed(key: bytes) -> tuple[dict[str, list[IndexEntry]], IndexEntry, list[IndexEntry]] | None:
    """The rows of a Provenance its ``meta``, ``activity`` and ``agent``
    (``key``, as JSON) decide: its search values by parameter, the row
    saying whose record it is when it names no Patient, and its other
    access rows; ``None`` when those are not all it has."""
    meta, activity, agent = orjson.loads(key)
    bare = {"resourceType": "Provenance", "meta": meta, "activity": activity, "agent": agent}
    plan = _plan() or ()
    taken = {code for code, definition in plan if definition is None}
    values: dict[str, list[IndexEntry]] = {}
    for entry in search_index.index_entries(bare):
        if entry.param not in taken:
            return None  # what the fast path does not place (a sort key, say)
        values.setdefault(entry.param, []).append(entry)
    whose, *rest = index.access_entries(bare)
    if whose.param != index.WHOSE or any(e.param not in (index.AUTHOR, index.LABEL) for e in rest):
        return None
    return values, whose, rest
