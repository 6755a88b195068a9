"""A bulk export's folder, read as the analytics views need it: the
completion manifest's ``transactionTime``, and every resource a line at a
time.

A Bulk Data v2 export (https://hl7.org/fhir/uv/bulkdata/export.html#response---complete-status)
is a folder of NDJSON files, one resource a line, and ``manifest.json``.
The files are found by their suffix, not by their names: a type split over
``Encounter-1.ndjson`` and ``Encounter-2.ndjson``, or files named anything
else, are read alike, and each line's ``resourceType`` says what it is. So
one pass over the folder feeds every view, and memory holds one line.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

MANIFEST = "manifest.json"
SUFFIXES = (".ndjson", ".ndjson.gz")


class ExportError(ValueError):
    """A folder that is not a readable export: missing, a manifest that is
    not JSON, a line that is not a resource."""


@dataclass(frozen=True)
class Manifest:
    """What the completion manifest says that the views use."""

    transaction_time: datetime | None
    request: str | None
    output_counts: dict[str, int]


def read_manifest(folder: Path) -> Manifest | None:
    """The folder's ``manifest.json``, or None when it has none."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        body = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ExportError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise ExportError(f"{path}: not a JSON object")
    counts: dict[str, int] = {}
    for entry in body.get("output") or []:
        if isinstance(entry, dict) and isinstance(entry.get("type"), str):
            count = entry.get("count")
            if isinstance(count, int):
                counts[entry["type"]] = counts.get(entry["type"], 0) + count
    request = body.get("request")
    return Manifest(
        transaction_time=_instant(body.get("transactionTime"), path),
        request=request if isinstance(request, str) else None,
        output_counts=counts,
    )


def _instant(value: Any, path: Path) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ExportError(f"{path}: transactionTime is not an instant")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ExportError(f"{path}: transactionTime {value!r} is not an instant") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def as_at(folder: Path) -> datetime:
    """The moment the export stands for: its manifest's ``transactionTime``,
    else now."""
    manifest = read_manifest(folder)
    if manifest is not None and manifest.transaction_time is not None:
        return manifest.transaction_time
    return datetime.now(UTC)


def data_files(folder: Path) -> list[Path]:
    """The folder's NDJSON files, in name order (so a split type is read
    in its parts' order)."""
    if not folder.is_dir():
        raise ExportError(f"{folder}: not a folder")
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.name.endswith(SUFFIXES)),
        key=_natural,
    )


def _natural(path: Path) -> tuple[Any, ...]:
    """``Encounter-2`` before ``Encounter-10``."""
    stem = path.name.split(".", 1)[0]
    base, _, number = stem.rpartition("-")
    if base and number.isdigit():
        return (base, int(number), path.name)
    return (stem, 0, path.name)


def resources(folder: Path, types: frozenset[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every resource of the export, one line at a time; only those of
    ``types`` when given (a line of another type is parsed to learn its
    type, but nothing more is done with it)."""
    for path in data_files(folder):
        yield from _lines(path, types)


def _lines(path: Path, types: frozenset[str] | None) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                resource = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ExportError(f"{path.name} line {number}: not JSON ({exc})") from exc
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                raise ExportError(f"{path.name} line {number}: not a FHIR resource")
            if types is None or resource["resourceType"] in types:
                yield resource
