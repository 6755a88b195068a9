"""Loading source files through the same write path as the API: each source
record becomes one transaction (all of its resources, or none), authored by
the source organisation (``meta.source``, Provenance), labelled and indexed
like any write. Records that cannot be mapped are rejected with their
position and reason; the rest still load. Loading a file again changes
nothing: ids are derived from the source and a resource whose content has
not changed is not written again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gateway import fhirjson
from gateway.errors import GatewayError
from gateway.interactions import bundle
from gateway.interactions.provenance import Author
from gateway.interactions.types import ReturnPreference
from gateway.store import Store
from mappings.hl7v2.adt import map_adt
from mappings.hl7v2.parser import BrokenMessage, parse_message, read_messages
from mappings.ukcore import Unmappable

FORMATS = ("hl7v2",)


@dataclass(frozen=True)
class Rejection:
    file: str
    record: str  # where in the file: "message 3 (byte 1042)"
    key: str  # the source's own id for it, when it could be read
    reason: str


@dataclass
class LoadReport:
    records: int = 0
    loaded: int = 0
    unchanged: int = 0
    written: Counter[str] = field(default_factory=Counter)
    rejections: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class SourceRecord:
    """One record of a source file, mapped (or why it could not be)."""

    where: str
    key: str
    resources: list[dict[str, Any]] | None
    problem: str | None = None
    merged_from: str | None = None  # a Patient merged into resources[0]
    cancels: str | None = None  # an Encounter that must exist to be cancelled


def hl7v2_record(text: str, source: str, where: str) -> SourceRecord:
    """One HL7 v2 message's text as a source record."""
    try:
        message = parse_message(text)
    except BrokenMessage as exc:
        return SourceRecord(where, "", None, str(exc))
    try:
        mapped = map_adt(message, source)
    except Unmappable as exc:
        return SourceRecord(where, message.control_id, None, str(exc))
    return SourceRecord(
        where,
        message.control_id,
        mapped.resources,
        merged_from=mapped.merged_from,
        cancels=mapped.cancels,
    )


def _hl7v2_records(path: Path, source: str) -> Iterator[SourceRecord]:
    with path.open("rb") as stream:
        for number, (position, text) in enumerate(read_messages(stream), start=1):
            yield hl7v2_record(text, source, f"message {number} (byte {position})")


READERS: dict[str, Callable[[Path, str], Iterable[SourceRecord]]] = {"hl7v2": _hl7v2_records}


def _same(store: Store, resource: dict[str, Any]) -> bool:
    """Whether the stored resource already says this (meta aside)."""
    found = store.read(resource["resourceType"], resource["id"])
    if found is None or found.content is None:
        return False
    stored = fhirjson.loads(found.content)
    stored.pop("meta", None)
    mine = {k: v for k, v in resource.items() if k != "meta"}
    # Labels the gateway added are in meta, which is left out on both sides.
    return orjson.dumps(stored, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        mine, option=orjson.OPT_SORT_KEYS
    )


def _seen(store: Store, source_org: str, fmt: str, key: str) -> bool:
    return bool(
        store.select(
            "SELECT 1 FROM mapping_record WHERE source_org = ? AND format = ? AND record_key = ?",
            [source_org.upper(), fmt, key],
        )
    )


def _remember(store: Store, source_org: str, fmt: str, key: str) -> None:
    """Note a source record as loaded. Written after its resources: if the
    two are ever parted by a crash, loading it again rewrites the same
    content to the same ids."""
    if not key or _seen(store, source_org, fmt, key):
        return
    with store.unit_of_work() as uow:
        uow.execute(
            "INSERT INTO mapping_record (source_org, format, record_key, loaded_at) "
            "VALUES (?, ?, ?, ?)",
            [source_org.upper(), fmt, key, fhirjson.instant()],
        )


def load_record(
    store: Store, fmt: str, author: Author, record: SourceRecord, report: LoadReport, file: str
) -> Rejection | None:
    """Write one mapped source record (all its resources in one transaction),
    unless it was loaded before; the rejection, if it was refused."""
    source_org = author.org_ods
    report.records += 1
    if record.resources is None:
        rejection = Rejection(file, record.where, record.key, record.problem or "")
        report.rejections.append(rejection)
        return rejection
    if record.key and _seen(store, source_org, fmt, record.key):
        report.unchanged += 1  # sent again: it changes nothing twice
        return None
    resources = list(record.resources)
    problem = None
    if record.cancels is not None:
        cancelled = store.read("Encounter", record.cancels)
        if cancelled is None or cancelled.deleted:
            problem = "the visit it cancels was never admitted here"
    if record.merged_from is not None:
        merged = _merge(store, record.merged_from, resources[0])
        if merged is None:
            problem = f"the record it merges away (Patient/{record.merged_from}) is not known"
        else:
            resources = merged
    if problem is not None:
        rejection = Rejection(file, record.where, record.key, problem)
        report.rejections.append(rejection)
        return rejection
    changed = [r for r in resources if not _same(store, r)]
    if not changed:
        report.unchanged += 1
        _remember(store, source_org, fmt, record.key)
        return None
    entries = [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in changed
    ]
    try:
        bundle.transaction(
            store,
            {"resourceType": "Bundle", "type": "transaction", "entry": entries},
            base_url="",
            prefer=ReturnPreference.MINIMAL,
            author=author,
        )
    except GatewayError as exc:
        rejection = Rejection(file, record.where, record.key, exc.message)
        report.rejections.append(rejection)
        return rejection
    _remember(store, source_org, fmt, record.key)
    report.loaded += 1
    report.written.update(r["resourceType"] for r in changed)
    return None


# What names a person without being their record: these keep pointing at
# the record merged away (Provenance and audit say what happened to it).
_NOT_REPOINTED = frozenset({"Patient", "Provenance", "AuditEvent"})


def _merge(store: Store, retired_id: str, survivor: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A merge as whole resources to write: the retired Patient inactive and
    ``replaced-by`` the survivor, the survivor ``replaces`` it, and every
    record that named the retired one re-pointed to the survivor. ``None``
    when the retired Patient is not known."""
    found = store.read("Patient", retired_id)
    if found is None or found.content is None:
        return None
    retired = fhirjson.loads(found.content)
    retired.pop("meta", None)
    retired["active"] = False
    retired["link"] = [{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}]
    survivor = {
        **survivor,
        "link": [{"other": {"reference": f"Patient/{retired_id}"}, "type": "replaces"}],
    }
    written = [survivor, retired]
    rows = store.select(
        "SELECT DISTINCT res_type, res_id FROM search_reference "
        "WHERE target_type = 'Patient' AND target_id = ?",
        [retired_id],
    )
    old, new = f"Patient/{retired_id}", f"Patient/{survivor['id']}"
    for res_type, res_id in rows:
        if str(res_type) in _NOT_REPOINTED:
            continue
        current = store.read(str(res_type), str(res_id))
        if current is None or current.content is None:
            continue
        moved = orjson.loads(current.content.replace(f'"{old}"'.encode(), f'"{new}"'.encode()))
        moved.pop("meta", None)
        written.append(moved)
    return written


def author_for(fmt: str, source_org: str) -> Author:
    return Author(source_org.upper(), source_org.upper(), f"load:{fmt}", f"gateway load ({fmt})")


def load(
    store: Store,
    fmt: str,
    source_org: str,
    paths: Iterable[Path],
    progress: Callable[[LoadReport], None] = lambda report: None,
) -> LoadReport:
    """Load every record of ``paths`` as ``source_org`` wrote it."""
    reader = READERS[fmt]
    author = author_for(fmt, source_org)
    report = LoadReport()
    for path in paths:
        for record in reader(path, source_org.upper()):
            load_record(store, fmt, author, record, report, str(path))
            progress(report)
    return report
