"""The headings of a structured record (allergies, medications, problems...)
as UK Core Lists: the items the response carries under each, and the GP
system's warnings that the heading is incomplete.

A warning is what a reader must not miss: items left out as confidential or
by the person's wish, a record still in transit from a previous practice,
items awaiting filing. GP Connect puts each on the heading's List as a code
with its words in ``note``; UK Core has the extension for it. A heading
List names its items, so the gateway shows it only to whoever may see every
one of them (``gateway.access``); an item not carried over (a Specimen) is
not named.

https://developer.nhs.uk/apis/gpconnect/accessrecord_structured_development_list.html
https://simplifier.net/hl7fhirukcorer4/extension-ukcore-listwarningcode
"""

from __future__ import annotations

from typing import Any

from mappings.gpconnect.bundle import Item, Json
from mappings.gpconnect.codes import (
    EXT_LIST_WARNING,
    LIST_WARNING_SYSTEM,
    LIST_WARNINGS,
)
from mappings.gpconnect.elements import Shape, extensions, reshape, value
from mappings.gpconnect.references import Record
from mappings.identity import mapped_id
from mappings.ukcore import LIST_WARNING_URL, SNOMED

# What of a heading List is carried as it is. ``source`` (who compiled it)
# and ``encounter`` are not: a heading is the practice's record, not one
# consultation's.
HEADING = Shape(copy=("title", "code", "date", "orderedBy", "note", "emptyReason"))

# The areas that are headings of the record; the consultation, topic and
# category Lists are a consultation's own structure, which the items keep
# through their ``encounter``.
HEADINGS = frozenset(
    {
        "allergies",
        "ended-allergies",
        "medications",
        "problems",
        "immunisations",
        "consultations",
        "investigations",
        "referrals",
        "diary",
        "uncategorised",
    }
)


def heading_lists(record: Record) -> list[Json]:
    """One List per heading of the response, keyed by the person and the
    heading's code, so a later response's heading replaces it."""
    response = record.response
    lists = []
    for item in response.of_type("List"):
        if item.container is not None or response.area(item) not in HEADINGS:
            continue
        code = _heading_code(item)
        entries = _entries(item, record)
        warnings = _warnings(item)
        if not entries and item.resource.get("entry") and not warnings:
            continue  # it named only what is not carried over: nothing to say
        listing: Json = {
            "resourceType": "List",
            "id": mapped_id(record.source, "List", f"{record.patient_basis}|heading|{code}"),
            "status": "current",
            "mode": "snapshot",
            **reshape(item, HEADING, record),
            "subject": record.subject(),
        }
        if warnings:
            listing["extension"] = warnings
        if entries:
            listing["entry"] = entries
            listing.pop("emptyReason", None)  # R4 lst-1: a reason only for an empty List
        lists.append(listing)
    return lists


def _heading_code(item: Item) -> str:
    for coding in (item.resource.get("code") or {}).get("coding") or []:
        if coding.get("system") == SNOMED and isinstance(coding.get("code"), str):
            return str(coding["code"])
    raise LookupError(f"{item} has no heading code")  # area() found one


def _entries(item: Item, record: Record) -> list[Json]:
    """The heading's entries naming what is carried over: an item itself,
    or for a consultation's List its Encounter; each once, in order."""
    entries: list[Json] = []
    named: set[str] = set()
    for entry in item.resource.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        found = record.resolve(entry.get("item"), item)
        if found is not None and found.type == "List":
            found = record.resolve(found.resource.get("encounter"), found)
        target = record.target(found) if found is not None else None
        if target is None or target.reference in named:
            continue
        named.add(target.reference)
        kept: Json = {"item": {"reference": target.reference}}
        if isinstance(entry.get("date"), str):
            kept["date"] = entry["date"]
        entries.append(kept)
    return entries


def _warnings(item: Item) -> list[Json]:
    """GP Connect's warning codes on a heading as UK Core's extension, each
    code once; a code GP Connect does not define is not claimed."""
    codes: list[str] = []
    for extension in extensions(item.resource, EXT_LIST_WARNING):
        code: Any = value(extension)
        if isinstance(code, dict):  # some suppliers send a Coding
            code = code.get("code")
        if isinstance(code, str) and code in LIST_WARNINGS and code not in codes:
            codes.append(code)
    return [
        {
            "url": LIST_WARNING_URL,
            "valueCodeableConcept": {
                "coding": [
                    {"system": LIST_WARNING_SYSTEM, "code": code, "display": LIST_WARNINGS[code]}
                ]
            },
        }
        for code in codes
    ]
