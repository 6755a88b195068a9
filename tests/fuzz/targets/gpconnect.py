"""GP Connect structured records: ``read_json_records`` and
``map_structured_record`` as ``gateway load --format gp-connect`` runs
them. A record that is not JSON, or cannot be mapped (``Unmappable``), is
that record's rejection; nothing else escapes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tests.fuzz.mutators import json_mutator as MUTATOR  # noqa: F401  (run.py uses it)
from tests.fuzz.targets._loading import lines, read_all, seed

DEFAULT_SOURCE = "F99C01"


def check(data: bytes) -> None:
    read_all("gp-connect", data, DEFAULT_SOURCE)


def _practice(record: bytes, default: str) -> str:
    found = re.search(rb'"managingOrganization".{0,400}?"value"\s*:\s*"([A-Z0-9]+)"', record, re.S)
    return found.group(1).decode("ascii") if found else default


def seeds(fixtures: Path, demo: Path) -> Iterator[bytes]:
    for path in sorted((fixtures / "gpconnect").glob("structured-*.json")):
        if not path.name.endswith(".expected.json"):
            data = path.read_bytes()
            yield seed(_practice(data, "F84003"), data)
    for line in lines([(fixtures / "gpconnect" / "structured-records.ndjson").read_bytes()], 10):
        yield seed(_practice(line, "F84003"), line)
    demo_files = [path.read_bytes() for path in sorted((demo / "gp").glob("*.ndjson"))]
    for line in lines(demo_files, 30):
        yield seed(_practice(line, DEFAULT_SOURCE), line)
