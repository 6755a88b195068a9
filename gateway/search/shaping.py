"""``_summary`` and ``_elements``: returning part of each match.

https://hl7.org/fhir/R4/search.html#summary and #elements. A shaped resource
keeps ``resourceType``, ``id`` and ``meta`` and is tagged ``SUBSETTED`` so
that no one mistakes it for the whole resource.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from gateway import fhirjson

if TYPE_CHECKING:
    from gateway.search.query import SearchQuery

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
_ALWAYS = frozenset({"resourceType", "id", "meta"})


@cache
def _elements_marked(res_type: str) -> tuple[frozenset[str], frozenset[str]]:
    """The type's summary elements and its mandatory elements (JSON names)."""
    from fhir.resources.R4B import get_fhir_model_class

    summary, mandatory = set(), set()
    for name, info in get_fhir_model_class(res_type).model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        key = info.alias or name
        if extra.get("summary_element_property"):
            summary.add(key)
        if extra.get("element_required"):
            mandatory.add(key)
    return frozenset(summary), frozenset(mandatory)


def _kept(res_type: str, query: SearchQuery) -> frozenset[str] | None:
    summary, mandatory = _elements_marked(res_type)
    if query.summary == "true":
        return _ALWAYS | summary | mandatory
    if query.summary == "text":
        return _ALWAYS | mandatory | {"text"}
    if query.elements:
        return _ALWAYS | mandatory | set(query.elements)
    return None


def shaped(content: bytes, res_type: str, query: SearchQuery) -> dict[str, Any]:
    resource: dict[str, Any] = fhirjson.loads(content)
    if query.summary == "data":
        resource.pop("text", None)
    else:
        kept = _kept(res_type, query)
        if kept is not None:
            resource = {k: v for k, v in resource.items() if k in kept or k.lstrip("_") in kept}
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    resource["meta"] = meta
    return resource
