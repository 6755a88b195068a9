"""The note of every source record loaded (``mapping_record``): the record
as it came, whom it is about, the moment it stands as at and what it
stated. What it answers: was this record loaded before, is a later one of
the person on file, and what did the source's last whole record state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway import fhirjson
from gateway.loading.sources import SourceRecord
from gateway.store import Querier, Store, UnitOfWork, as_bytes
from mappings.ukcore import typed_id


def seen(store: Querier, source_org: str, fmt: str, key: str) -> bool:
    return bool(
        store.select(
            "SELECT 1 FROM mapping_record WHERE source_org = ? AND format = ? AND record_key = ?",
            [source_org.upper(), fmt, key],
        )
    )


def any_loaded(reader: Querier, patient_id: str, formats: tuple[str, ...]) -> bool:
    """Whether a record of the person in one of ``formats`` has been loaded,
    from any organisation."""
    marks = ", ".join("?" for _ in formats)
    return bool(
        reader.select(
            f"SELECT 1 FROM mapping_record WHERE patient_id = ? AND format IN ({marks}) LIMIT 1",
            [patient_id, *formats],
        )
    )


def remember(
    uow: UnitOfWork,
    source_org: str,
    fmt: str,
    record: SourceRecord,
    stated: list[dict[str, Any]] | None,
) -> None:
    """Note a source record as loaded, with its content as it came, whom it
    is about, the moment it stands as at and what it stated (``None``: it
    was superseded and stated nothing), in the unit of work that writes it:
    the two are never parted, so a record is either loaded and noted or
    neither."""
    if record.key:
        resources = None if stated is None else orjson.dumps([typed_id(r) for r in stated]).decode()
        uow.execute(
            "INSERT INTO mapping_record (source_org, format, record_key, loaded_at, content, "
            "patient_id, resources, as_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [
                source_org.upper(),
                fmt,
                record.key,
                fhirjson.instant(),
                record.content,
                record.patient_id,
                resources,
                record.as_at,
            ],
        )


@dataclass(frozen=True)
class Later:
    """The source's records of a person later than the one being loaded."""

    moment: str  # the latest one's
    stated: frozenset[str]  # what any of them stated, as ``Type/id``


def superseded_by(reader: Querier, source_org: str, fmt: str, record: SourceRecord) -> Later | None:
    """The source's records of the person later than ``record`` (a care
    home's newer export, a hospital's later message), loaded first: what
    ``record`` says of the person, and of anything they stated, is then out
    of date, and a whole record (a snapshot) changes nothing."""
    if record.as_at is None or record.patient_id is None:
        return None
    rows = reader.select(
        "SELECT as_at, resources FROM mapping_record "
        "WHERE source_org = ? AND format = ? AND patient_id = ? AND as_at > ?",
        [source_org.upper(), fmt, record.patient_id, record.as_at],
    )
    if not rows:
        return None
    stated = frozenset(
        str(named)
        for _, resources in rows
        if resources is not None
        for named in orjson.loads(str(resources))
    )
    return Later(max(str(as_at) for as_at, _ in rows), stated)


def left_out(
    reader: Querier,
    source_org: str,
    fmt: str,
    record: SourceRecord,
    stated: list[dict[str, Any]],
) -> list[str]:
    """What the source's previous whole record of the person stated and this
    one leaves out (a stopped medicine, a contact removed), as ``Type/id``:
    no longer the source's to share, so it is retired (deleted, its history
    kept). Only what the loader wrote from that source's records is
    considered, never what anyone wrote otherwise; the Patient, shared by
    every source, never is."""
    if record.patient_id is None:
        return []
    rows = reader.select(
        "SELECT resources FROM mapping_record "
        "WHERE source_org = ? AND format = ? AND patient_id = ? AND resources IS NOT NULL "
        "ORDER BY loaded_at DESC LIMIT 1",
        [source_org.upper(), fmt, record.patient_id],
    )
    if not rows:
        return []
    kept = {typed_id(r) for r in stated}
    retired = []
    for named in orjson.loads(str(rows[0][0])):
        res_type, _, res_id = str(named).partition("/")
        if named in kept or res_type == "Patient":
            continue
        found = reader.read(res_type, res_id)
        if found is not None and not found.deleted:
            retired.append(str(named))
    return retired


def archived(store: Store, source_org: str, fmt: str, key: str) -> bytes | None:
    """A loaded record as its source sent it, if it was loaded."""
    rows = store.select(
        "SELECT content FROM mapping_record WHERE source_org = ? AND format = ? AND record_key = ?",
        [source_org.upper(), fmt, key],
    )
    if not rows or rows[0][0] is None:
        return None
    return as_bytes(rows[0][0])
