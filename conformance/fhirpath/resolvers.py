"""Resolvers for ``resolve()``: what a literal reference other than ``#id``
points at. Without one, such references resolve to nothing, and invariants
written as ``resolve().iif(empty(), true, ...)`` (ctm-1) pass."""

from __future__ import annotations

import re
from typing import Any

from conformance.fhirpath._compiler import Resolver

_LITERAL = re.compile(r"(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?")


def typed_stub_resolver(reference: str) -> dict[str, Any] | None:
    """A stand-in ``{"resourceType": T, "id": id}`` for a literal reference
    ``[base/]T/id``: enough for ``resolve() is Practitioner`` without I/O."""
    match = _LITERAL.fullmatch(reference)
    if match is None:
        return None
    return {"resourceType": match.group(1), "id": match.group(2)}


def bundle_resolver(bundle: dict[str, Any]) -> Resolver:
    """References between the entries of one Bundle: by ``fullUrl``, or by
    ``Type/id`` against the entries' resources."""
    by_url: dict[str, Any] = {}
    for entry in bundle.get("entry", ()):
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        if "fullUrl" in entry:
            by_url[entry["fullUrl"]] = resource
        if "id" in resource and "resourceType" in resource:
            by_url.setdefault(f"{resource['resourceType']}/{resource['id']}", resource)

    def resolve(reference: str) -> Any:
        found = by_url.get(reference)
        if found is None:
            match = _LITERAL.fullmatch(reference)
            if match is not None:
                found = by_url.get(f"{match.group(1)}/{match.group(2)}")
        return found

    return resolve
