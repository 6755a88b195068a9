"""The response Bundle of ``$gpc.getstructuredrecord`` read: checked as FHIR
STU3, its resources (contained ones too) listed once each, and every way a
reference may name one of them (``Type/id``, a full URL, ``#id`` inside its
container) indexed.

https://developer.nhs.uk/apis/gpconnect/accessrecord_structured_development_retrieve_patient_record.html
https://hl7.org/fhir/STU3/references.html#references
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson
from pydantic import ValidationError

from mappings.gpconnect.codes import LIST_AREAS
from mappings.ukcore import SNOMED, Unmappable

Json = dict[str, Any]
# Errors named in a refusal: enough to fix the first few, not a flood.
_ERRORS_SHOWN = 3


@dataclass(frozen=True)
class Item:
    """One STU3 resource of the response, where it sits, and the resource
    that contains it when it is a contained one."""

    index: int
    resource: Json
    where: str
    container: int | None = None

    @property
    def type(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def id(self) -> str | None:
        found = self.resource.get("id")
        return found if isinstance(found, str) else None

    def __str__(self) -> str:
        return f"{self.type}/{self.id}" if self.id else self.where


@dataclass
class Response:
    """The resources of one response, and how references find them."""

    bundle: Json
    items: list[Item] = field(default_factory=list)
    _names: dict[str, int] = field(default_factory=dict)
    _local: dict[tuple[int, str], int] = field(default_factory=dict)

    def of_type(self, *types: str) -> Iterator[Item]:
        return (item for item in self.items if item.type in types)

    def resolve(self, reference: str, context: Item) -> Item | None:
        """The resource ``reference``, written in ``context``, names, if it
        is in the response."""
        if reference.startswith("#"):
            container = context.index if context.container is None else context.container
            found = self._local.get((container, reference[1:]))
            return self.items[found] if found is not None else None
        reference = reference.split("/_history/")[0]
        found = self._names.get(reference)
        if found is None and reference.startswith(("http://", "https://")):
            # An absolute URL of a server other than the fullUrls': its
            # last two segments are still the type and id.
            found = self._names.get("/".join(reference.rstrip("/").split("/")[-2:]))
        return self.items[found] if found is not None else None

    def area(self, item: Item) -> str | None:
        """The area of a List, from its heading code."""
        for coding in (item.resource.get("code") or {}).get("coding") or []:
            if coding.get("system") == SNOMED and coding.get("code") in LIST_AREAS:
                return LIST_AREAS[coding["code"]]
        return None

    def _add(self, resource: Json, where: str, container: int | None, full_url: Any) -> Item:
        item = Item(len(self.items), resource, where, container)
        self.items.append(item)
        if container is not None:
            if item.id:
                self._local[(container, item.id)] = item.index
            return item
        if item.id:
            self._names.setdefault(f"{item.type}/{item.id}", item.index)
        if isinstance(full_url, str) and full_url:
            self._names.setdefault(full_url, item.index)
        return item


def record_key(bundle: dict[str, Any]) -> str:
    """The source's own id for this version of the record: ``Bundle.id`` and
    ``meta.lastUpdated`` when the response gives both, else a hash of its
    canonical JSON, so the same response is the same record however often
    it is loaded, and a later one is another."""
    bundle_id = bundle.get("id") if isinstance(bundle, dict) else None
    meta = bundle.get("meta") if isinstance(bundle, dict) else None
    updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
    if isinstance(bundle_id, str) and bundle_id and isinstance(updated, str) and updated:
        return f"{bundle_id}@{updated}"
    canonical = orjson.dumps(bundle, option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


@cache
def _stu3_type(name: str) -> bool:
    from fhir.resources.STU3 import get_fhir_model_class

    try:
        get_fhir_model_class(name)
    except (ValueError, KeyError, AttributeError):
        return False
    return name not in ("Resource", "DomainResource", "Element", "BackboneElement")


def _path(loc: tuple[int | str, ...]) -> str:
    path = "Bundle"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _unknown_types(bundle: Json) -> Iterator[str]:
    """Where a resource names a type STU3 does not have (which the models
    cannot even start on)."""
    entries = bundle.get("entry")
    for number, entry in enumerate(entries if isinstance(entries, list) else []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        where = f"Bundle.entry[{number}].resource"
        found = [(where, resource)]
        contained = resource.get("contained")
        for inner, item in enumerate(contained if isinstance(contained, list) else []):
            if isinstance(item, dict):
                found.append((f"{where}.contained[{inner}]", item))
        for place, candidate in found:
            kind = candidate.get("resourceType")
            if not isinstance(kind, str) or not _stu3_type(kind):
                yield f"{place}.resourceType: {kind!r} is not a FHIR STU3 resource type"


def _modifier_extensions(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "modifierExtension" and item:
                urls = ", ".join(str(e.get("url")) for e in item if isinstance(e, dict))
                yield f"{path}.modifierExtension ({urls})"
            else:
                yield from _modifier_extensions(item, f"{path}.{key}")
    elif isinstance(value, list):
        for number, item in enumerate(value):
            yield from _modifier_extensions(item, f"{path}[{number}]")


def read_response(bundle: Any) -> Response:
    """The response, checked against the STU3 models; ``Unmappable`` naming
    the first problems by element path when it is not STU3."""
    from fhir.resources.STU3.bundle import Bundle

    if not isinstance(bundle, dict):
        raise Unmappable(f"a structured record is a FHIR Bundle, not {type(bundle).__name__}")
    kind = bundle.get("resourceType")
    if kind != "Bundle":
        raise Unmappable(f"a structured record is a FHIR Bundle, not {kind!r}")
    problems = list(_unknown_types(bundle))
    if not problems:
        try:
            model = Bundle.model_validate(bundle)
        except ValidationError as exc:
            problems = [
                f"{_path(tuple(error['loc']))}: {error['msg']}"
                for error in exc.errors()
                if error.get("loc")
            ] or [str(exc)]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            problems = [f"Bundle: cannot be read ({exc})"]
    if problems:
        more = len(problems) - _ERRORS_SHOWN
        shown = "; ".join(problems[:_ERRORS_SHOWN]) + (f"; and {more} more" if more > 0 else "")
        raise Unmappable(f"not a valid FHIR STU3 Bundle: {shown}")
    # The models' own JSON: numbers sent as strings become numbers, and so on.
    normal: Json = orjson.loads(model.model_dump_json(exclude_none=True))
    modifier = next(_modifier_extensions(normal, "Bundle"), None)
    if modifier is not None:
        # FHIR forbids acting on a resource whose modifier extension is not
        # understood: it may reverse the meaning of everything else.
        raise Unmappable(f"{modifier}: a modifier extension the gateway does not understand")
    response = Response(normal)
    for number, entry in enumerate(normal.get("entry") or []):
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        where = f"Bundle.entry[{number}].resource"
        item = response._add(resource, where, None, entry.get("fullUrl"))
        for inner, contained in enumerate(resource.get("contained") or []):
            response._add(contained, f"{where}.contained[{inner}]", item.index, None)
    return response
