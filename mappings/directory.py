"""The organisation directory an operator provides: a CSV of ODS codes with
each organisation's name, kind and address, a row an Organization shaped
like UK Core (https://simplifier.net/hl7fhirukcorer4/ukcore-organization).

Columns (a header row, in any order; others are ignored): ``ods_code``,
``name``, ``kind`` (one of ``KINDS``), and optionally ``address`` (lines
separated by commas, the last a postcode when it reads as one). A row that
cannot be read is refused with its reason; the rest still load.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from mappings.identity import mapped_id
from mappings.ukcore import ODS, Unmappable

# The kinds the gateway knows organisations by (as ``gateway clients add
# --kind``), each with its words and the HL7 organization-type code.
KINDS: dict[str, tuple[str, str]] = {
    "gp-practice": ("GP practice", "prov"),
    "council": ("Council", "govt"),
    "care-home": ("Care home", "prov"),
    "hospital": ("Hospital trust", "prov"),
    "ambulance": ("Ambulance service", "prov"),
    "auditor": ("Privacy office", "other"),
    "analytics": ("Population health team", "govt"),
}
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
_TYPE_DISPLAY = {"prov": "Healthcare Provider", "govt": "Government", "other": "Other"}
REQUIRED = ("ods_code", "name", "kind")
# ODS codes (3 to 6 letters and digits) and GSS codes of councils (E09000007).
_CODE = re.compile(r"[A-Z0-9]{3,9}")
_POSTCODE = re.compile(r"[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][A-Z]{2}", re.IGNORECASE)
# Every directory row maps to one id per code, whoever loads it: a re-load,
# or another operator's file, updates the one Organization.
_ID_OWNER = "DIRECTORY"
# Marks an Organization as the operator's directory entry: its name, kind and
# address stand over what a source's own record of the organisation says.
DIRECTORY_TAG = {
    "system": "urn:london-care-gateway:organisation-directory",
    "code": "operator",
    "display": "The operator's organisation directory",
}


@dataclass(frozen=True)
class DirectoryRow:
    """One row read: where (``line 3``), its key (code and a digest of what
    it says, so a row sent again changes nothing and a changed one updates),
    and its Organization or why it has none."""

    where: str
    key: str
    organization: dict[str, Any] | None
    problem: str | None = None
    content: bytes = b""


class UnreadableDirectory(ValueError):
    """A file that is not a directory CSV at all (no usable header)."""


def read_directory(stream: BinaryIO) -> Iterator[DirectoryRow]:
    """Each data row of the CSV in ``stream``, mapped or refused."""
    # Read as bytes a line at a time (not through a TextIOWrapper, which
    # would close the stream when dropped and hide how far it was read).
    lines = (
        line.decode("utf-8-sig" if number == 0 else "utf-8") for number, line in enumerate(stream)
    )
    try:
        reader = csv.reader(lines)
        header = next(reader, None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UnreadableDirectory(f"the header cannot be read: {exc}") from exc
    if header is None:
        raise UnreadableDirectory("the file is empty: a header row is needed")
    columns = [column.strip().lower() for column in header]
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise UnreadableDirectory(f"the header lacks the column(s) {', '.join(missing)}")
    seen: dict[str, int] = {}
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            yield DirectoryRow(f"line {reader.line_num}", "", None, f"unreadable: {exc}")
            return
        line = reader.line_num
        where = f"line {line}"
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            problem = f"{len(cells)} fields where the header has {len(columns)}"
            yield DirectoryRow(where, "", None, problem)
            continue
        values = {column: cell.strip() for column, cell in zip(columns, cells, strict=True)}
        content = "\x1f".join(f"{k}={values.get(k, '')}" for k in (*REQUIRED, "address"))
        key = values.get("ods_code", "").upper()
        digest = hashlib.sha256(content.encode()).hexdigest()[:16]
        try:
            organization = map_row(values)
        except Unmappable as exc:
            yield DirectoryRow(where, key, None, str(exc))
            continue
        if key in seen:
            problem = f"ODS code {key} is already on line {seen[key]} of this file"
            yield DirectoryRow(where, key, None, problem)
            continue
        seen[key] = line
        yield DirectoryRow(where, f"{key}|{digest}", organization, content=content.encode())


def map_row(values: dict[str, str]) -> dict[str, Any]:
    """The Organization of one row's ``values``; ``Unmappable`` says why not."""
    code = values.get("ods_code", "").upper()
    name = values.get("name", "")
    kind = values.get("kind", "").lower()
    if not code:
        raise Unmappable("ods_code is empty")
    if not _CODE.fullmatch(code):
        raise Unmappable(f"ods_code {code!r} is not an ODS code (3 to 9 letters and digits)")
    if not name:
        raise Unmappable("name is empty")
    if kind not in KINDS:
        raise Unmappable(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    words, type_code = KINDS[kind]
    organization: dict[str, Any] = {
        "resourceType": "Organization",
        "id": mapped_id(_ID_OWNER, "organisation", code),
        "meta": {
            "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Organization"],
            "tag": [dict(DIRECTORY_TAG)],
        },
        "identifier": [{"system": ODS, "value": code}],
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": ORGANIZATION_TYPE,
                        "code": type_code,
                        "display": _TYPE_DISPLAY[type_code],
                    }
                ],
                "text": words,
            }
        ],
        "name": name,
    }
    address = _address(values.get("address", ""))
    if address:
        organization["address"] = [address]
    return organization


def _address(text: str) -> dict[str, Any] | None:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        return None
    address: dict[str, Any] = {"use": "work", "text": ", ".join(parts)}
    if len(parts) > 1 and _POSTCODE.fullmatch(parts[-1]):
        address["postalCode"] = parts[-1].upper()
        parts = parts[:-1]
    address["line"] = parts
    return address
