"""JSON source files read one record at a time.

A file is either newline-delimited JSON (one record, an object, per line:
what an export of many records should be, read in constant memory) or one
JSON document holding a single record, pretty-printed or not (what an API
response saved to disk looks like). A single document is read whole, so it
is bounded: records are one person's, and a larger document is refused
rather than exhausting memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson

# One person's record in one document; larger documents must be NDJSON.
DOCUMENT_LIMIT = 64 * 1024 * 1024

Record = dict[str, Any]


def read_json_records(stream: BinaryIO) -> Iterator[tuple[str, Record | str]]:
    """Each record of ``stream`` with where it is ("line 3" or "document"):
    the object, or the reason it could not be read."""
    first, start = stream.readline(), 1
    while first and not first.strip():  # leading blank lines
        first, start = stream.readline(), start + 1
    if not first:
        return
    try:
        whole_line = orjson.loads(first)
    except orjson.JSONDecodeError:
        whole_line = None
    if isinstance(whole_line, list) or (
        whole_line is None and first.lstrip().startswith((b"{", b"["))
    ):
        yield from _document(first, stream)
        return
    yield f"line {start}", _object(first)
    for number, line in enumerate(stream, start=start + 1):
        if line.strip():
            yield f"line {number}", _object(line)


def _object(line: bytes) -> Record | str:
    try:
        found = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    if not isinstance(found, dict):
        return f"a record is a JSON object, not {type(found).__name__}"
    return found


def _document(start: bytes, stream: BinaryIO) -> Iterator[tuple[str, Record | str]]:
    rest = stream.read(DOCUMENT_LIMIT + 1 - len(start))
    if len(start) + len(rest) > DOCUMENT_LIMIT:
        yield (
            "document",
            (
                f"a single JSON document over {DOCUMENT_LIMIT // (1024 * 1024)} MB; "
                "send many records as NDJSON, one per line"
            ),
        )
        return
    found = _object(start + rest)
    if isinstance(found, dict) or not isinstance(found, str) or not found.startswith("a record"):
        yield "document", found
        return
    # A JSON array of records: each is one record.
    for index, item in enumerate(orjson.loads(start + rest), start=1):
        yield (
            f"item {index}",
            item
            if isinstance(item, dict)
            else (f"a record is a JSON object, not {type(item).__name__}"),
        )
