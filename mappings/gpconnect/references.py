"""Where the mapped resources of one record go, and how references between
them are rewritten.

Each STU3 resource carried over gets an R4 id derived from the practice and
the resource's business identifier (GP Connect's cross-care-setting
identifier, an ODS or SDS code), else its logical id: the same resource in a
later response lands on the same id. A reference to a resource carried over
points at its new id; one to a resource in the response that is not carried
over (a List, a Specimen) keeps only what identifies it; one to a resource
outside the response keeps its identifier and display, or goes.

https://hl7.org/fhir/R4/references.html#Reference
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from mappings.gpconnect.bundle import Item, Json, Response
from mappings.gpconnect.codes import PREFERRED_IDENTIFIERS
from mappings.identity import id_basis, mapped_id
from mappings.ukcore import Unmappable

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Target:
    """Where one STU3 resource goes: its R4 type and id, and the id's basis
    (what a key made from this resource embeds: ``mappings.identity``)."""

    type: str
    id: str
    basis: str

    @property
    def reference(self) -> str:
        return f"{self.type}/{self.id}"


def identifier_key(resource: Json) -> str | None:
    """``system|value`` of the identifier that names ``resource`` best: a
    national one when it has one, else its first."""
    identifiers = [
        found
        for found in resource.get("identifier") or []
        if isinstance(found, dict)
        and isinstance(found.get("system"), str)
        and isinstance(found.get("value"), str)
    ]
    for system in PREFERRED_IDENTIFIERS:
        for found in identifiers:
            if found["system"] == system:
                return f"{system}|{found['value']}"
    if identifiers:
        return f"{identifiers[0]['system']}|{identifiers[0]['value']}"
    return None


def canonical_hash(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def describe(resource: Json) -> str | None:
    """Words that say what a resource is, for a reference that cannot link
    to it."""
    for name in ("title", "name", "description"):
        if isinstance(found := resource.get(name), str) and found.strip():
            return found.strip()
    for name in ("code", "type", "vaccineCode"):
        concept = resource.get(name)
        if not isinstance(concept, dict):
            continue
        if isinstance(concept.get("text"), str):
            return str(concept["text"])
        for coding in concept.get("coding") or []:
            if isinstance(coding.get("display"), str):
                return str(coding["display"])
    return None


@dataclass
class Record:
    """One record being mapped: the practice sending it, its response, the
    person it is about, and the R4 id each STU3 resource carried over gets."""

    source: str
    response: Response
    patient: Item
    patient_id: str
    # Its basis: what the keys of the person's records embed (mappings.identity).
    patient_basis: str
    # Allergies listed under "Ended allergies": resolved whatever they say.
    ended: set[int] = field(default_factory=set)
    _targets: dict[int, Target] = field(default_factory=dict)
    _keys: dict[tuple[str, str], Item] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._targets[self.patient.index] = Target("Patient", self.patient_id, self.patient_basis)

    def logical_key(self, item: Item) -> str:
        """The key of a resource without a business identifier: its logical
        id (within its container's, for a contained one)."""
        if item.container is not None:
            return f"{self.logical_key(self.response.items[item.container])}#{item.id}"
        if item.id:
            return f"{item.type}/{item.id}"
        # Nothing can refer to it; its content is all that names it.
        return f"{item.type}#{canonical_hash(item.resource)}"

    def assign(self, item: Item, r4_type: str, key: str, check: bool = True) -> Target:
        """Give ``item`` the R4 id of ``key``. Two different resources with
        one key are refused, as they would overwrite each other, unless
        ``check`` is off (a key made from the content itself)."""
        other = self._keys.setdefault((r4_type, key), item)
        if check and other is not item and other.resource != item.resource:
            raise Unmappable(
                f"{other.where} ({other}) and {item.where} ({item}) are both "
                f"{r4_type} {key.split('|')[-1]!r}, but differ: identifiers must be unique"
            )
        target = Target(
            r4_type, mapped_id(self.source, r4_type, key), id_basis(self.source, r4_type, key)
        )
        self._targets[item.index] = target
        return target

    def with_bases(self, value: Any) -> Any:
        """``value`` (JSON) with the id of every resource given one so far
        in its strings as that id's basis: what a key made from content
        hashes, so that the id it gives is its basis keyed."""
        bases = {target.id: target.basis for target in self._targets.values()}

        def based(found: Any) -> Any:
            if isinstance(found, str):
                return _UUID.sub(lambda made: bases.get(made.group(), made.group()), found)
            if isinstance(found, list):
                return [based(item) for item in found]
            if isinstance(found, dict):
                return {based(key): based(item) for key, item in found.items()}
            return found

        return based(value)

    def target(self, item: Item) -> Target | None:
        return self._targets.get(item.index)

    def placed(self, item: Item) -> Target:
        """The target of a resource being carried over (given one first)."""
        target = self._targets.get(item.index)
        if target is None:
            raise LookupError(f"{item} was not given an id before it was mapped")
        return target

    def subject(self) -> Json:
        return {"reference": f"Patient/{self.patient_id}"}

    def resolve(self, value: Any, context: Item) -> Item | None:
        """The response's resource a Reference names, if any."""
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return self.response.resolve(value["reference"], context)
        return None

    def reference(self, value: Json, context: Item) -> Json | None:
        """``value``, an STU3 Reference written in ``context``, as an R4 one;
        ``None`` when nothing of it can be kept."""
        display = value.get("display") if isinstance(value.get("display"), str) else None
        found = self.resolve(value, context)
        if found is not None:
            target = self.target(found)
            if target is not None:
                linked: Json = {"reference": target.reference}
                if display:
                    linked["display"] = display
                return linked
            return _named(found.resource, display)
        return _named({"identifier": [value.get("identifier")]}, display)


def _named(resource: Json, display: str | None) -> Json | None:
    """A Reference by identifier and words only."""
    named: Json = {}
    for found in resource.get("identifier") or []:
        if isinstance(found, dict) and found.get("system") and found.get("value"):
            named["identifier"] = {"system": found["system"], "value": found["value"]}
            break
    words = display or describe(resource)
    if words:
        named["display"] = words
    return named or None
