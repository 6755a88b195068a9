"""Every element of a FHIR R4 resource with its type and the invariants that
sit on it, for running the invariants where they apply (``bench/fhirpath.py``
and the FHIRPath agreement tests).

Element types come from fhirpathpy's R4 model tables (element path to type),
a development dependency: the gateway's validator walks with its own
definitions; this is only the benchmark's and the tests' walk.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from conformance.fhirpath import Invariant, Primitive, load_invariants


@dataclass(frozen=True)
class Site:
    """One element: its JSON value, where it is (``Patient.contact[0].period``),
    its path in the definition that holds it (``Patient.contact.period``), the
    path of its type's definition (``Period``; a backbone element's is its
    own path), and the resource and root resource around it."""

    value: Any
    location: str
    element_path: str
    type_path: str
    resource: dict[str, Any]
    root: dict[str, Any]


@cache
def _model() -> tuple[dict[str, str], dict[str, str]]:
    package = resources.files("fhirpathpy.models.r4")
    types = json.loads(package.joinpath("path2Type.json").read_text("utf-8"))
    elsewhere = json.loads(package.joinpath("pathsDefinedElsewhere.json").read_text("utf-8"))
    return types, elsewhere


def sites(resource: dict[str, Any]) -> Iterator[Site]:
    """Every element of the resource, the resource itself first."""
    resource_type = resource["resourceType"]
    yield from _walk(resource, resource_type, resource_type, resource_type, resource, resource)


def sites_of_type(value: Any, type_name: str) -> Iterator[Site]:
    """Every element of a data-type value evaluated on its own."""
    holder: dict[str, Any] = {}
    yield from _walk(value, type_name, type_name, type_name, holder, holder)


def _walk(
    value: Any,
    location: str,
    element_path: str,
    type_path: str,
    resource: dict[str, Any],
    root: dict[str, Any],
) -> Iterator[Site]:
    yield Site(value, location, element_path, type_path, resource, root)
    if type(value) is Primitive:
        for position, extension in enumerate(value.element.get("extension", ())):
            where = f"{location}.extension[{position}]"
            yield from _walk(
                extension, where, f"{type_path}.extension", "Extension", resource, root
            )
        return
    if type(value) is not dict:
        return
    types, elsewhere = _model()
    for prop in value:
        if prop == "resourceType" or (prop[0] == "_" and prop[1:] in value):
            continue
        name = prop[1:] if prop[0] == "_" else prop
        path = f"{type_path}.{name}"
        path = elsewhere.get(path, path)
        child_type = types.get(path)
        if child_type == "System.String":
            continue  # id and url of elements: not elements in their own right
        raw = value.get(name)
        extra = value.get("_" + name)
        items = raw if type(raw) is list else [raw]
        extras = extra if type(extra) is list else [extra] * len(items)
        for position, item in enumerate(items):
            element = extras[position] if position < len(extras) else None
            where = f"{location}.{name}" + (f"[{position}]" if type(raw) is list else "")
            if item is None and element is None:
                continue
            if child_type is None:
                if type(item) is not dict:
                    continue
                yield from _walk(item, where, path, path, resource, root)
            elif child_type == "Resource":
                contained_root = root if name == "contained" else item
                kind = item["resourceType"]
                yield from _walk(item, where, kind, kind, item, contained_root)
            elif type(item) is dict:
                yield from _walk(item, where, path, child_type, resource, root)
            else:
                primitive = item if element is None else Primitive(item, element)
                yield from _walk(primitive, where, path, child_type, resource, root)


@cache
def _index() -> dict[tuple[str, str], tuple[Invariant, ...]]:
    index: dict[tuple[str, str], list[Invariant]] = {}
    for invariant in load_invariants():
        for definition, paths in invariant.paths.items():
            for path in paths:
                index.setdefault((definition, path), []).append(invariant)
    return {k: tuple(v) for k, v in index.items()}


def invariants_at(site: Site) -> tuple[Invariant, ...]:
    """The invariants that sit on the element: those of its type's definition
    and those its holder's definition puts on it (txt-1 on Narrative.div)."""
    index = _index()
    found = index.get((site.type_path.split(".")[0], site.type_path), ())
    extra = index.get((site.element_path.split(".")[0], site.element_path), ())
    return found + tuple(i for i in extra if i not in found)


def checks(resource: dict[str, Any]) -> Iterator[tuple[Invariant, Site]]:
    """Every (invariant, element) pair of a resource."""
    for site in sites(resource):
        for invariant in invariants_at(site):
            yield invariant, site
