"""HL7 v2 ADT feeds: ``split_messages``/``parse_message``/``map_adt`` as
``gateway load --format hl7v2`` runs them. A message that cannot be read
is refused (``BrokenMessage``), one that cannot be mapped too
(``Unmappable``), each as that record's rejection; nothing else escapes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tests.fuzz.targets._loading import read_all, seed

DEFAULT_SOURCE = "R9D"
_MSH4 = re.compile(rb"MSH\|[^|]*\|[^|]*\|([^|]*)\|")


def check(data: bytes) -> None:
    read_all("hl7v2", data, DEFAULT_SOURCE)


def _as_sent(message: bytes) -> bytes:
    found = _MSH4.search(message)
    sender = found.group(1).split(b"^")[0].decode("latin-1") if found else DEFAULT_SOURCE
    return seed(sender or DEFAULT_SOURCE, message)


def seeds(fixtures: Path, demo: Path) -> Iterator[bytes]:
    for path in sorted((fixtures / "hl7v2").glob("*.hl7")):
        yield _as_sent(path.read_bytes())
    for path in sorted((demo / "hospital").glob("*.hl7")):
        data = path.read_bytes()
        # One seed a message: small inputs mutate best.
        for message in re.split(rb"(?=(?:^|[\r\n])MSH\|)", data)[:40]:
            if message.strip():
                yield _as_sent(message.lstrip(b"\r\n"))
    # MLLP framing, as a listener receives it.
    yield seed(DEFAULT_SOURCE, b"\x0bMSH|^~\\&|PAS|R9D|||20260101||ADT^A01|1|P|2.4\rPID|1\x1c\r")
