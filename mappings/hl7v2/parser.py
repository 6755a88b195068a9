"""HL7 v2 messages from bytes: MLLP framing, separators and escapes.

A file or a stream holds one or more messages, each starting with ``MSH``;
messages may be wrapped in MLLP framing (0x0B ... 0x1C 0x0D) and segments
end with CR, LF or CRLF. Text is ISO 8859-1 unless MSH-18 says UTF-8. Field
numbers follow the standard: ``MSH-3`` is ``segment("MSH").field(3)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

_START, _END = b"\x0b", b"\x1c"
_SEGMENT_END = re.compile(r"\r\n|\r|\n")


class BrokenMessage(ValueError):
    """Not an HL7 v2 message that can be read; the message says why."""


@dataclass(frozen=True)
class Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


def unescape(text: str, seps: Separators) -> str:
    """Replace HL7 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh..\\ \\.br\\)."""
    if seps.escape not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == seps.escape:
            end = text.find(seps.escape, i + 1)
            if end == -1:
                out.append(text[i:])
                break
            code = text[i + 1 : end]
            out.append(_escaped(code, seps))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _escaped(code: str, seps: Separators) -> str:
    simple = {
        "F": seps.field,
        "S": seps.component,
        "T": seps.subcomponent,
        "R": seps.repetition,
        "E": seps.escape,
        ".br": "\n",
    }
    if code in simple:
        return simple[code]
    if code.startswith("X") and re.fullmatch(r"X([0-9A-Fa-f]{2})+", code):
        return bytes.fromhex(code[1:]).decode("latin-1")
    return ""  # formatting codes (\H\, \N\, \.sp\ ...) carry no text


@dataclass(frozen=True)
class Segment:
    name: str
    fields: tuple[str, ...]  # raw fields; fields[0] is the name
    seps: Separators

    def field(self, number: int) -> str:
        """The raw field ``number`` (MSH-1 is the field separator itself)."""
        if self.name == "MSH":
            if number == 1:
                return self.seps.field
            number -= 1
        return self.fields[number] if number < len(self.fields) else ""

    def repetitions(self, number: int) -> list[str]:
        raw = self.field(number)
        return raw.split(self.seps.repetition) if raw else []

    def components(self, number: int, repetition: int = 0) -> list[str]:
        """The unescaped components of one repetition of a field."""
        repeats = self.repetitions(number)
        if repetition >= len(repeats):
            return []
        return [unescape(c, self.seps) for c in repeats[repetition].split(self.seps.component)]

    def value(self, number: int, component: int = 1, repetition: int = 0) -> str:
        """One component (1-based) of one repetition, unescaped; "" if absent."""
        parts = self.components(number, repetition)
        return parts[component - 1].strip() if component <= len(parts) else ""


@dataclass(frozen=True)
class Message:
    segments: tuple[Segment, ...]
    raw: str

    def segment(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    @property
    def control_id(self) -> str:
        msh = self.segments[0]
        return msh.value(10)

    @property
    def event(self) -> str:
        """The trigger event (``A01``) from MSH-9, else EVN-1."""
        msh = self.segments[0]
        event = msh.value(9, 2)
        if not event and (evn := self.segment("EVN")) is not None:
            event = evn.value(1)
        return event.upper()


def parse_message(text: str) -> Message:
    """One message's text (starting ``MSH``)."""
    text = text.strip("\r\n \t")
    if not text.startswith("MSH") or len(text) < 8:
        raise BrokenMessage("a message starts with an MSH segment")
    field_sep = text[3]
    encoding = text[4:8]
    if len(set(encoding + field_sep)) != 5:
        raise BrokenMessage("MSH-2 must name four distinct encoding characters")
    seps = Separators(field_sep, encoding[0], encoding[1], encoding[2], encoding[3])
    segments = []
    for line in _SEGMENT_END.split(text):
        if not line.strip():
            continue
        fields = line.split(field_sep)
        name = fields[0].strip()
        if not re.fullmatch(r"[A-Z][A-Z0-9]{2}", name):
            raise BrokenMessage(f"{name[:10]!r} is not a segment name")
        segments.append(Segment(name, tuple(fields), seps))
    message = Message(tuple(segments), text)
    if not message.control_id:
        raise BrokenMessage("MSH-10 (message control id) is empty")
    return message


def split_messages(data: bytes) -> Iterator[tuple[int, str]]:
    """(position, text) of each message in ``data``: MLLP frames or bare
    messages one after another, decoded as MSH-18 says (ISO 8859-1 by
    default)."""
    chunks: list[tuple[int, bytes]] = []
    if _START in data:
        position = 0
        while (start := data.find(_START, position)) != -1:
            end = data.find(_END, start)
            end = len(data) if end == -1 else end
            chunks.append((start, data[start + 1 : end]))
            position = end + 1
    else:
        starts = [m.start() for m in re.finditer(rb"(?:^|[\r\n])MSH", data)]
        for i, start in enumerate(starts):
            begin = start if data[start : start + 3] == b"MSH" else start + 1
            if i + 1 < len(starts):
                following = starts[i + 1]
                # The segment end before the next MSH belongs to this message.
                stop = following if data[following : following + 3] == b"MSH" else following + 1
            else:
                stop = len(data)
            chunks.append((begin, data[begin:stop]))
    for position, chunk in chunks:
        yield position, _decode(chunk)


def read_messages(stream: BinaryIO, chunk_size: int = 1 << 20) -> Iterator[tuple[int, str]]:
    """``split_messages`` over a file read a chunk at a time: memory stays
    bounded by the largest message, whatever the file's size."""
    buffer = b""
    offset = 0  # the file position of buffer[0]
    while True:
        chunk = stream.read(chunk_size)
        buffer += chunk
        # Keep the last (possibly unfinished) message back until more comes.
        cut = _last_start(buffer) if chunk else len(buffer)
        if cut > 0:
            for position, text in split_messages(buffer[:cut]):
                yield offset + position, text
            buffer, offset = buffer[cut:], offset + cut
        if not chunk:
            return


def _last_start(buffer: bytes) -> int:
    """Where the last message in ``buffer`` starts (0: only one so far)."""
    framed = buffer.rfind(_START)
    if framed > 0:
        return framed
    bare = max(buffer.rfind(b"\rMSH"), buffer.rfind(b"\nMSH"))
    return bare + 1 if bare >= 0 else 0


def _decode(chunk: bytes) -> str:
    head = chunk.split(b"\r", 1)[0].split(b"\n", 1)[0]
    charset = (
        head.split(head[3:4])[17].decode("ascii", "ignore")
        if len(head) > 4 and head.count(head[3:4]) >= 17
        else ""
    )
    if "UTF" in charset.upper():
        return chunk.decode("utf-8", errors="replace")
    return chunk.decode("latin-1")
