"""``gateway mllp``: a hospital's interface engine sends ADT messages over
MLLP (TCP, each message framed 0x0B ... 0x1C 0x0D) and gets an HL7 ACK for
each: AA accepted (loaded, or already loaded), AE error (a message read but
not mapped or written: the reason is in MSA-3 and ERR), AR rejected (not an
HL7 message, or not from the hospital this listener serves). Each message
goes through the same loader as ``gateway load``.
"""

from __future__ import annotations

import asyncio
import logging
import os

from gateway import fhirjson, loading
from gateway.store import Store
from mappings.hl7v2.parser import BrokenMessage, Message, parse_message

START, END = b"\x0b", b"\x1c\x0d"
_MAX_MESSAGE = 4 * 1024 * 1024
_log = logging.getLogger("gateway.mllp")


def _escape(text: str) -> str:
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def acknowledgement(original: Message | None, code: str, text: str = "") -> bytes:
    """An HL7 v2.4 ACK for ``original`` (AA, AE or AR), MLLP-framed."""
    now = fhirjson.instant()[:19].replace("-", "").replace(":", "").replace("T", "")
    msh = original.segments[0] if original is not None else None
    event = original.event if original is not None else ""
    control = original.control_id if original is not None else ""
    segments = [
        "|".join(
            [
                "MSH",
                "^~\\&",
                "GATEWAY",
                "LONDON",
                msh.value(3) if msh else "",
                msh.value(4) if msh else "",
                now,
                "",
                f"ACK^{event}" if event else "ACK",
                os.urandom(8).hex(),
                "P",
                "2.4",
            ]
        ),
        "|".join(["MSA", code, control, _escape(text)[:200]]),
    ]
    if code != "AA":
        segments.append(f"ERR|^^^{'207' if code == 'AE' else '102'}&{_escape(text)[:80]}&HL70357")
    return START + "\r".join(segments).encode("latin-1", errors="replace") + b"\r" + END


async def handle(store: Store, source_org: str, payload: bytes) -> bytes:
    """Load one framed message; its ACK."""
    text = payload.decode("latin-1")
    try:
        message = parse_message(text)
    except BrokenMessage as exc:
        return acknowledgement(None, "AR", str(exc))
    sender = message.segments[0].value(4).upper()
    if sender != source_org.upper():
        return acknowledgement(
            message, "AR", f"this listener takes messages from {source_org}, not {sender or '?'}"
        )
    record = loading.hl7v2_message_record(
        message, text, source_org.upper(), f"message {message.control_id}"
    )
    report = loading.LoadReport()
    acting = loading.ForSource(loading.author_for("hl7v2", source_org))
    rejection = await asyncio.to_thread(
        loading.load_record, store, "hl7v2", acting, record, report, "mllp"
    )
    if rejection is not None:
        return acknowledgement(message, "AE", rejection.reason)
    return acknowledgement(message, "AA")


async def serve_connection(
    store: Store, source_org: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    buffer = b""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            buffer += chunk
            while (start := buffer.find(START)) != -1 and (end := buffer.find(END, start)) != -1:
                payload, buffer = buffer[start + 1 : end], buffer[end + len(END) :]
                writer.write(await handle(store, source_org, payload))
                await writer.drain()
            if len(buffer) > _MAX_MESSAGE:
                writer.write(acknowledgement(None, "AR", "message too large"))
                await writer.drain()
                break
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(store: Store, source_org: str, host: str, port: int) -> None:
    server = await asyncio.start_server(
        lambda r, w: serve_connection(store, source_org, r, w), host, port
    )
    _log.info("MLLP listener for %s on %s:%s", source_org, host, port)
    async with server:
        await server.serve_forever()
