"""Each source format read from a byte stream, a record at a time, into
mapped source records (or the reason a record could not be mapped).

The formats: ``hl7v2`` (a hospital's ADT messages), ``cld`` (a council's
Client Level Data return), ``gp-connect`` (GP Connect structured record
Bundles), ``care-home`` (the care-home record export) and ``organisations``
(the operator's directory of organisations, a CSV). Reading is
streamed, so memory stays flat however large the file.

Each format is read in two steps (``Format``): ``split`` cuts the stream
into its records, in order (cheap, and stateful where the format is: a CLD
return's header and council); ``map`` maps one record, needing nothing but
the record, so records may be mapped in other processes
(``gateway.loading.workers``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

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

if TYPE_CHECKING:
    from gateway.interactions.write import Ready


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
    # Its resources validated and prepared for writing ahead, by "Type/id"
    # (``gateway.loading.workers``); none when mapped in the writer's process.
    ready: Mapping[str, Ready] = field(default_factory=dict)


@dataclass(frozen=True)
class Unmapped:
    """A record as ``Format.split`` cut it from its file: where it is, and
    what ``Format.map`` maps (picklable, for a worker process)."""

    where: str
    data: Any


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


def _hl7v2_split(stream: BinaryIO, source: str) -> Iterator[SourceRecord | Unmapped]:
    for number, (position, text) in enumerate(read_messages(stream), start=1):
        yield Unmapped(f"message {number} (byte {position})", text)


def _hl7v2_map(item: Unmapped, source: str) -> SourceRecord:
    return hl7v2_record(item.data, source, item.where)


def _cld_split(stream: BinaryIO, source: str) -> Iterator[SourceRecord | Unmapped]:
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
            yield Unmapped(where, (key, row.values))
    except UnreadableReturn as exc:
        yield SourceRecord("header (line 1)", "", None, str(exc))


def _cld_map(item: Unmapped, source: str) -> SourceRecord:
    key, values = item.data
    try:
        return _mapped(item.where, key, map_row(values, source), orjson.dumps(values))
    except Unmappable as exc:
        return SourceRecord(item.where, key, None, str(exc))


def _directory_split(stream: BinaryIO, source: str) -> Iterator[SourceRecord | Unmapped]:
    """The operator's organisation directory (``mappings.directory``), a
    row a record: each row's Organization, or why the row was refused."""
    try:
        for row in read_directory(stream):
            resources = None if row.organization is None else [row.organization]
            yield SourceRecord(row.where, row.key, resources, row.problem, content=row.content)
    except UnreadableDirectory as exc:
        yield SourceRecord("header (line 1)", "", None, str(exc))


def _read_whole(item: Unmapped, source: str) -> SourceRecord:
    raise TypeError("a directory's rows are mapped as they are read")


def _json_split(stream: BinaryIO, source: str) -> Iterator[SourceRecord | Unmapped]:
    for where, found in read_json_records(stream):
        yield (
            SourceRecord(where, "", None, found)
            if isinstance(found, str)
            else Unmapped(where, found)
        )


@dataclass(frozen=True)
class _JsonMap:
    """Maps a record of a JSON format (NDJSON or one document) that
    ``map_record`` maps and ``record_key`` names; ``snapshot`` when each is
    the source's whole record of the person. (A class, not a closure, so a
    worker process can be sent it.)"""

    map_record: Callable[[dict[str, Any], str], Mapped]
    record_key: Callable[[dict[str, Any]], str]
    snapshot: bool

    def __call__(self, item: Unmapped, source: str) -> SourceRecord:
        found: dict[str, Any] = item.data
        try:
            key = self.record_key(found)
            mapped = self.map_record(found, source)
            return _mapped(item.where, key, mapped, orjson.dumps(found), self.snapshot)
        except Unmappable as exc:
            return SourceRecord(item.where, _safe_key(self.record_key, found), None, str(exc))


def _safe_key(record_key: Callable[[dict[str, Any]], str], record: dict[str, Any]) -> str:
    try:
        return record_key(record)
    except (Unmappable, KeyError, TypeError, ValueError):
        return ""


@dataclass(frozen=True)
class Format:
    """How a format is read: ``split`` cuts a stream into its records, in
    order, each refused as it was read (a ``SourceRecord``) or ``Unmapped``;
    ``map`` maps one of those alone (no database, no state kept between
    records), in whichever process."""

    split: Callable[[BinaryIO, str], Iterator[SourceRecord | Unmapped]]
    map: Callable[[Unmapped, str], SourceRecord]

    def read(self, stream: BinaryIO, source: str) -> Iterator[SourceRecord]:
        """Every record of ``stream``, mapped in this process."""
        for item in self.split(stream, source):
            yield item if isinstance(item, SourceRecord) else self.map(item, source)


FORMAT: dict[str, Format] = {
    "hl7v2": Format(_hl7v2_split, _hl7v2_map),
    "cld": Format(_cld_split, _cld_map),
    # A GP Connect response holds the clinical areas that were asked for,
    # not always all of them: what it leaves out is not known to be gone.
    "gp-connect": Format(
        _json_split, _JsonMap(map_structured_record, gp_connect_key, snapshot=False)
    ),
    "care-home": Format(_json_split, _JsonMap(map_care_home, care_home_key, snapshot=True)),
    # The operator's organisation directory: ODS code, name, kind, address.
    "organisations": Format(_directory_split, _read_whole),
}

Reader = Callable[[BinaryIO, str], Iterator[SourceRecord]]

READERS: dict[str, Reader] = {name: form.read for name, form in FORMAT.items()}

FORMATS = tuple(FORMAT)
