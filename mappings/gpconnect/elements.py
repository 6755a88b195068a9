"""STU3 data as R4 data: the element-level changes between the versions.

Almost every data type is the same in both; what differs is handled here:
code systems HL7 moved to terminology.hl7.org, references rewritten to the
mapped ids, the SNOMED CT description id on a Coding (an HL7 extension in
R4 and UK Core's description display), a quantity's GP Connect unit text,
and the Dosage whose dose and rate R4 groups as ``doseAndRate``. Other
element extensions are STU3 profiles' and are left behind.

https://hl7.org/fhir/R4/versions.html (STU3 to R4 differences)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mappings.gpconnect.bundle import Item, Json
from mappings.gpconnect.codes import (
    EXT_QUANTITY_TEXT,
    EXT_SCT_DESC_ID,
    R4_SCT_DESC_DISPLAY,
    R4_SCT_DESC_ID,
    SYSTEMS,
    TERMINOLOGY,
    V2_TABLE,
    V3_SYSTEM,
)
from mappings.gpconnect.references import Record


def r4_system(system: str) -> str:
    """The R4 URI of an STU3 code system."""
    if system in SYSTEMS:
        return SYSTEMS[system]
    if found := V2_TABLE.match(system):
        return f"{TERMINOLOGY}/v2-{found.group(1)}"
    if found := V3_SYSTEM.match(system):
        return f"{TERMINOLOGY}/v3-{found.group(1)}"
    return system


def extension_name(url: Any) -> str:
    """An extension's URL by its last segment, GP Connect's ``-GPC`` variant
    read as the CareConnect one (hosts and versions of the same extension
    vary between suppliers)."""
    if not isinstance(url, str):
        return ""
    return url.strip().rstrip("/").rsplit("/", 1)[-1].replace("CareConnect-GPC-", "CareConnect-")


def extensions(element: Json, name: str) -> list[Json]:
    return [
        found
        for found in element.get("extension") or []
        if isinstance(found, dict) and extension_name(found.get("url")) == name
    ]


def extension(element: Json, name: str) -> Json | None:
    found = extensions(element, name)
    return found[0] if found else None


def value(found: Json | None) -> Any:
    """The value[x] of an extension."""
    if found is None:
        return None
    return next((v for k, v in found.items() if k.startswith("value")), None)


def part(found: Json | None, name: str) -> Any:
    """The value of a complex extension's part (names compared regardless
    of case: suppliers write ``DescriptionID`` and ``descriptionId``)."""
    if found is None:
        return None
    for inner in found.get("extension") or []:
        if isinstance(inner, dict) and str(inner.get("url", "")).lower() == name.lower():
            return value(inner)
    return None


def _element_extensions(element: Json, result: Json) -> list[Json]:
    """The R4 extensions of an element, and what STU3 extensions become
    elements of ``result``; the rest are dropped."""
    kept: list[Json] = []
    for found in element.get("extension") or []:
        if not isinstance(found, dict):
            continue
        name = extension_name(found.get("url"))
        if name == EXT_SCT_DESC_ID:
            description = part(found, "descriptionId")
            if isinstance(description, str) and description:
                kept.append({"url": R4_SCT_DESC_ID, "valueId": description})
            words = part(found, "descriptionDisplay")
            if isinstance(words, str) and words.strip():
                kept.append({"url": R4_SCT_DESC_DISPLAY, "valueString": words.strip()})
        elif name == EXT_QUANTITY_TEXT:
            words = value(found)
            # R4 has the unit for it (UK Core retired its text extension).
            if isinstance(words, str) and words.strip() and "unit" not in result:
                result["unit"] = words.strip()
    return kept


def clean(found: Any, context: Item, record: Record) -> Any:
    """``found`` (any STU3 element written in ``context``) as R4: ``None``
    when nothing of it is left."""
    if isinstance(found, list):
        items = [c for c in (clean(v, context, record) for v in found) if c is not None]
        return items or None
    if isinstance(found, str):
        return found if found.strip() else None
    if not isinstance(found, dict):
        return found
    if isinstance(found.get("reference"), str):
        return record.reference(found, context)
    result: Json = {}
    for key, item in found.items():
        if key == "extension" or key.startswith("_") or key == "fhir_comments":
            continue
        converted = clean(item, context, record)
        if key == "system" and isinstance(converted, str):
            converted = r4_system(converted)
        if converted is not None:
            result[key] = converted
    kept = _element_extensions(found, result)
    if kept:
        result["extension"] = kept
    return result or None


_DOSE_AND_RATE = ("doseRange", "doseQuantity", "rateRatio", "rateRange", "rateQuantity")
_DOSAGE = (
    "sequence",
    "text",
    "additionalInstruction",
    "patientInstruction",
    "timing",
    "asNeededBoolean",
    "asNeededCodeableConcept",
    "site",
    "route",
    "method",
    "maxDosePerPeriod",
    "maxDosePerAdministration",
    "maxDosePerLifetime",
)


def dosage(found: Any, context: Item, record: Record) -> Json | None:
    """An STU3 Dosage as R4: dose and rate move into ``doseAndRate``."""
    if not isinstance(found, dict):
        return None
    result: Json = {k: found[k] for k in _DOSAGE if k in found}
    dose_and_rate = {k: found[k] for k in _DOSE_AND_RATE if k in found}
    if dose_and_rate:
        result["doseAndRate"] = [dose_and_rate]
    cleaned: Json | None = clean(result, context, record)
    return cleaned


def concept(system: str, code: str, display: str | None = None) -> Json:
    coding: Json = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


@dataclass(frozen=True)
class Shape:
    """How an STU3 resource's elements become an R4 one's: those copied as
    they are (``name[Type,...]`` for the kinds of a choice both versions
    share), those renamed, and those that were one and are now a list."""

    copy: tuple[str, ...] = ()
    rename: Mapping[str, str] = field(default_factory=dict)
    listed: frozenset[str] = frozenset()


def reshape(item: Item, shape: Shape, record: Record, element: Json | None = None) -> Json:
    """The elements of ``item``, or of ``element`` (a part of it), that
    ``shape`` names, in R4."""
    source = item.resource if element is None else element
    result: Json = {}

    def put(old: str, new: str) -> None:
        if old in source and (converted := clean(source[old], item, record)) is not None:
            if new in shape.listed and not isinstance(converted, list):
                converted = [converted]
            result[new] = converted

    for spec in shape.copy:
        name, _, kinds = spec.partition("[")
        for key in [name + kind for kind in kinds.rstrip("]").split(",")] if kinds else [name]:
            put(key, key)
    for old, new in shape.rename.items():
        put(old, new)
    return result
