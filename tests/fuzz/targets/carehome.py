"""Care-home record exports: ``read_json_records``, ``validate_record`` and
``map_care_home`` as ``gateway load --format care-home`` runs them. A
record that is not JSON, fails the schema or cannot be mapped
(``Unmappable``) is that record's rejection; nothing else escapes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tests.fuzz.mutators import json_mutator as MUTATOR  # noqa: F401  (run.py uses it)
from tests.fuzz.targets._loading import lines, read_all, seed

DEFAULT_SOURCE = "V9C01"
_HOME = re.compile(rb'"careHome"\s*:\s*\{\s*"odsCode"\s*:\s*"([A-Za-z0-9]+)"')


def check(data: bytes) -> None:
    read_all("care-home", data, DEFAULT_SOURCE)


def _as_sent(record: bytes) -> bytes:
    found = _HOME.search(record)
    return seed(found.group(1).decode("ascii").upper() if found else DEFAULT_SOURCE, record)


def seeds(fixtures: Path, demo: Path) -> Iterator[bytes]:
    for path in sorted((fixtures / "carehome").glob("*.json")):
        if not path.name.endswith(".expected.json"):
            yield _as_sent(path.read_bytes())
    yield from map(_as_sent, lines([(fixtures / "carehome" / "export.ndjson").read_bytes()], 10))
    demo_files = [path.read_bytes() for path in sorted((demo / "care-home").glob("*.ndjson"))]
    yield from map(_as_sent, lines(demo_files, 20))
