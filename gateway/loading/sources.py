"""Each source format read from a byte stream, a record at a time, into
mapped source records (or the reason a record could not be mapped).

The formats: ``hl7v2`` (a hospital's ADT messages), ``cld`` (a council's
Client Level Data return), ``gp-connect`` (GP Connect structured record
Bundles), ``care-home`` (the care-home record export) and ``organisations``
(the operator's directory of organisations, a CSV). Reading is
streamed, so memory stays flat however large the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson

from mappings.carehome.record import map_care_home
from mappings.carehome.record import record_key as care_home_key
from mappings.cld.events import map_row, row_key
from mappings.cld.reader import UnreadableReturn, read_rows
from mappings.directory import UnreadableDirectory, read_directory
from mappings.gpconnect import map_structured_record
from mappings.gpconnect import record_key as gp_connect_key
from mappings.hl7v2.adt import map_adt
from mappings.hl7v2.parser import BrokenMessage, Message, parse_message, read_messages
from mappings.jsonrecords import read_json_records
from mappings.ukcore import Mapped, Unmappable


@dataclass(frozen=True)
class SourceRecord:
    """One record of a source file, mapped (or why it could not be)."""

    where: str  # where in the file: "message 3 (byte 1042)", "line 7"
    key: str  # the source's own id for this version of the record
    resources: list[dict[str, Any]] | None
    problem: str | None = None
    patient_id: str | None = None  # whom the record is about
    merged_from: str | None = None  # a Patient merged into resources[0]
    cancels: str | None = None  # an Encounter that must exist to be cancelled
    labels_from: dict[str, str] = field(default_factory=dict)  # as Mapped.labels_from
    dated_by: dict[str, str] = field(default_factory=dict)  # as Mapped.dated_by
    as_at: str | None = None  # as Mapped.as_at
    gathered: dict[str, tuple[str, str]] = field(default_factory=dict)  # as Mapped.gathered
    content: bytes = b""  # the record as it came, archived when it is loaded
    # The source's whole record of the person (a care-home export): what an
    # earlier one stated and this one leaves out is retired.
    snapshot: bool = False


def _mapped(
    where: str, key: str, mapped: Mapped, content: bytes, snapshot: bool = False
) -> SourceRecord:
    return SourceRecord(
        where,
        key,
        mapped.resources,
        patient_id=mapped.patient_id,
        merged_from=mapped.merged_from,
        cancels=mapped.cancels,
        labels_from=mapped.labels_from,
        dated_by=mapped.dated_by,
        as_at=mapped.as_at,
        gathered=mapped.gathered,
        content=content,
        snapshot=snapshot,
    )


def hl7v2_record(text: str, source: str, where: str) -> SourceRecord:
    """One HL7 v2 message's text as a source record."""
    try:
        message = parse_message(text)
    except BrokenMessage as exc:
        return SourceRecord(where, "", None, str(exc))
    return hl7v2_message_record(message, text, source, where)


def hl7v2_message_record(message: Message, text: str, source: str, where: str) -> SourceRecord:
    """A parsed HL7 v2 message (``text`` as it came) as a source record."""
    try:
        mapped = map_adt(message, source)
        return _mapped(where, message.control_id, mapped, text.encode("utf-8"))
    except Unmappable as exc:
        return SourceRecord(where, message.control_id, None, str(exc))


def hl7v2_records(stream: BinaryIO, source: str) -> Iterator[SourceRecord]:
    for number, (position, text) in enumerate(read_messages(stream), start=1):
        yield hl7v2_record(text, source, f"message {number} (byte {position})")


def cld_records(stream: BinaryIO, source: str) -> Iterator[SourceRecord]:
    """A council's return, a row a record. Every row must be the same
    council's (LA_Code): a row of another council's is refused, not loaded
    as this one's."""
    council_code = None
    try:
        for row in read_rows(stream):
            where = f"line {row.line}"
            if row.problem is not None:
                yield SourceRecord(where, "", None, row.problem)
                continue
            key = row_key(row.values)
            code = row.values.get("LA_Code", "").upper()
            council_code = council_code or code
            if code and code != council_code:
                yield SourceRecord(
                    where, key, None, f"LA_Code {code} is not the return's council ({council_code})"
                )
                continue
            try:
                yield _mapped(where, key, map_row(row.values, source), orjson.dumps(row.values))
            except Unmappable as exc:
                yield SourceRecord(where, key, None, str(exc))
    except UnreadableReturn as exc:
        yield SourceRecord("header (line 1)", "", None, str(exc))


def directory_records(stream: BinaryIO, source: str) -> Iterator[SourceRecord]:
    """The operator's organisation directory (``mappings.directory``), a
    row a record: each row's Organization, or why the row was refused."""
    try:
        for row in read_directory(stream):
            resources = None if row.organization is None else [row.organization]
            yield SourceRecord(row.where, row.key, resources, row.problem, content=row.content)
    except UnreadableDirectory as exc:
        yield SourceRecord("header (line 1)", "", None, str(exc))


def json_records(
    map_record: Callable[[dict[str, Any], str], Mapped],
    record_key: Callable[[dict[str, Any]], str],
    *,
    snapshot: bool,
) -> Callable[[BinaryIO, str], Iterator[SourceRecord]]:
    """A reader of a JSON format (NDJSON or one document) whose records
    ``map_record`` maps and ``record_key`` names; ``snapshot`` when each is
    the source's whole record of the person."""

    def read(stream: BinaryIO, source: str) -> Iterator[SourceRecord]:
        for where, found in read_json_records(stream):
            if isinstance(found, str):
                yield SourceRecord(where, "", None, found)
                continue
            try:
                key = record_key(found)
                mapped = map_record(found, source)
                yield _mapped(where, key, mapped, orjson.dumps(found), snapshot)
            except Unmappable as exc:
                yield SourceRecord(where, _safe_key(record_key, found), None, str(exc))

    return read


def _safe_key(record_key: Callable[[dict[str, Any]], str], record: dict[str, Any]) -> str:
    try:
        return record_key(record)
    except (Unmappable, KeyError, TypeError, ValueError):
        return ""


Reader = Callable[[BinaryIO, str], Iterator[SourceRecord]]

READERS: dict[str, Reader] = {
    "hl7v2": hl7v2_records,
    "cld": cld_records,
    # A GP Connect response holds the clinical areas that were asked for,
    # not always all of them: what it leaves out is not known to be gone.
    "gp-connect": json_records(map_structured_record, gp_connect_key, snapshot=False),
    "care-home": json_records(map_care_home, care_home_key, snapshot=True),
    # The operator's organisation directory: ODS code, name, kind, address.
    "organisations": directory_records,
}

FORMATS = tuple(READERS)
