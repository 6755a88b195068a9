"""A council's CLD return read a row at a time: the header mapped onto the
canonical items, each row as those items' values with the line it began on.

A return is CSV (comma separated, quoted as Excel quotes). It is read as
UTF-8, with or without a byte-order mark; a line that is not UTF-8 is read
as Windows-1252, which is what spreadsheets save. Memory stays flat however
long the file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from mappings.cld.items import REQUIRED, canonical_item


class UnreadableReturn(ValueError):
    """A return whose header cannot be read: nothing in it can be loaded."""


@dataclass(frozen=True)
class Row:
    line: int  # the line the row begins on, counting the header as line 1
    values: dict[str, str]  # canonical item -> value, blanks dropped
    problem: str | None = None


def _lines(stream: BinaryIO) -> Iterator[str]:
    for number, raw in enumerate(stream):
        if number == 0:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            yield raw.decode("cp1252", errors="replace")


def read_rows(stream: BinaryIO) -> Iterator[Row]:
    """Each row of a return, or ``UnreadableReturn`` when its header names
    a column that is no CLD item, names one twice, or lacks a required one."""
    reader = csv.reader(_lines(stream))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:  # a CR inside a field, a field past the csv module's limit
        raise UnreadableReturn(f"the header is not CSV: {exc}") from None
    columns: list[str] = []
    unknown: list[str] = []
    for name in header:
        item = canonical_item(name)
        if item is None:
            if name.strip():
                unknown.append(name.strip())
            columns.append("")
        elif item in columns:
            raise UnreadableReturn(f"the header names {item} twice (as {name.strip()!r})")
        else:
            columns.append(item)
    if unknown:
        raise UnreadableReturn(
            "the header has columns that are no CLD item: "
            + ", ".join(repr(name) for name in unknown)
        )
    missing = [item for item in REQUIRED if item not in columns]
    if missing:
        raise UnreadableReturn("the header lacks " + ", ".join(missing))
    if "NHS_Number" not in columns and "LA_Person_Unique_Identifier" not in columns:
        raise UnreadableReturn("the header has neither NHS_Number nor LA_Person_Unique_Identifier")
    line = reader.line_num + 1
    while True:
        start = line
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # the row's lines are read: the next row follows them
            line = reader.line_num + 1
            yield Row(start, {}, f"not CSV: {exc}")
            continue
        line = reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            yield Row(start, {}, f"{len(cells)} values where the header has {len(columns)}")
            continue
        values = {
            item: cell.strip() for item, cell in zip(columns, cells, strict=True) if item and cell
        }
        yield Row(start, {item: value for item, value in values.items() if value})
