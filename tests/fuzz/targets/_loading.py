"""What every source format's target checks: a file of any bytes read as
``gateway load`` reads it yields its records, each mapped or refused with
where it is and why (``SourceRecord.problem``: the per-record rejection),
and never raises; what it maps validates (a list of issues, never an
exception), as the loader validates it before writing.

An input is ``SOURCE\\nFILE``: the first line names the organisation the
file is loaded as (letters and digits, as an ODS code), so that the fuzzer
can keep a seed's records matching their sender and get past that check.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator

from conformance.validation import validate_resource
from gateway import fhirjson
from gateway.loading.sources import FORMAT, SourceRecord
from mappings.identity import use_id_key
from tests.support.ids import TEST_ID_KEY

# Mapped ids are keyed with a deployment's secret; the tests' will do.
use_id_key(TEST_ID_KEY)

_NOT_ODS = re.compile(rb"[^A-Z0-9]")


def split_input(data: bytes, default: str) -> tuple[str, bytes]:
    """The source and the file of one fuzz input."""
    first, newline, rest = data.partition(b"\n")
    if not newline:
        return default, data
    source = _NOT_ODS.sub(b"", first.upper())[:10].decode("ascii")
    return source or default, rest


def seed(source: str, file: bytes) -> bytes:
    """A seed: ``file`` loaded as ``source``."""
    return source.encode("ascii") + b"\n" + file


def read_all(form: str, data: bytes, default: str) -> list[SourceRecord]:
    """Every record of the input ``data`` read as ``form``, each checked as
    the contract says; an exception escaping here is a crash."""
    source, file = split_input(data, default)
    records = list(FORMAT[form].read(io.BytesIO(file), source))
    for record in records:
        assert isinstance(record, SourceRecord), record
        assert record.where, record
        if record.resources is None:
            # Refused: with a reason a person can read.
            assert record.problem, record
            continue
        for resource in record.resources:
            res_type = resource["resourceType"]
            assert isinstance(res_type, str) and resource.get("id"), resource
            validate_resource(resource, res_type)
            # JSON as the store writes it: no NaN or infinity (orjson would
            # write null), no integer past 64 bits (orjson refuses it).
            json.dumps(resource, allow_nan=False)
            fhirjson.dumps(resource)
    return records


def lines(files: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """The non-blank lines of NDJSON ``files``, at most ``limit``."""
    count = 0
    for file in files:
        for line in file.splitlines():
            if line.strip() and count < limit:
                count += 1
                yield line
