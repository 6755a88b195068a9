"""read and vread: https://hl7.org/fhir/R4/http.html#read, #vread.

Each comes in two forms over the same checks: over a ``Reader`` (inside a
transaction Bundle, where reads see the Bundle's own writes) and over an
``AsyncReader`` (the HTTP hot path, on the event loop).
"""

from __future__ import annotations

from conformance.registry import TypeInteraction
from gateway.errors import Gone, NotFound
from gateway.interactions.types import require
from gateway.store import AsyncReader, Reader, StoredVersion


def _current(found: StoredVersion | None, res_type: str, res_id: str) -> StoredVersion:
    if found is None:
        raise NotFound(f"{res_type}/{res_id} is not known", code="GW-0410")
    if found.deleted:
        raise Gone(f"{res_type}/{res_id} was deleted", code="GW-0411")
    return found


def _version_number(res_type: str, res_id: str, version_id: str) -> int:
    require(res_type, TypeInteraction.VREAD)
    if not version_id.isdigit():
        raise NotFound(f"{res_type}/{res_id} has no version {version_id!r}", code="GW-0412")
    return int(version_id)


def _version(
    found: StoredVersion | None, res_type: str, res_id: str, version_id: str
) -> StoredVersion:
    if found is None:
        raise NotFound(f"{res_type}/{res_id} has no version {version_id}", code="GW-0412")
    if found.deleted:
        raise Gone(f"{res_type}/{res_id} version {version_id} is a deletion", code="GW-0411")
    return found


def read(store: Reader, res_type: str, res_id: str) -> StoredVersion:
    """The current version; ``Gone`` if its latest version is a deletion."""
    require(res_type, TypeInteraction.READ)
    return _current(store.read(res_type, res_id), res_type, res_id)


def vread(store: Reader, res_type: str, res_id: str, version_id: str) -> StoredVersion:
    """One version; ``Gone`` if that version is a deletion."""
    number = _version_number(res_type, res_id, version_id)
    return _version(store.vread(res_type, res_id, number), res_type, res_id, version_id)


async def read_async(reader: AsyncReader, res_type: str, res_id: str) -> StoredVersion:
    """``read`` on the event loop."""
    require(res_type, TypeInteraction.READ)
    return _current(await reader.read(res_type, res_id), res_type, res_id)


async def vread_async(
    reader: AsyncReader, res_type: str, res_id: str, version_id: str
) -> StoredVersion:
    """``vread`` on the event loop."""
    number = _version_number(res_type, res_id, version_id)
    found = await reader.vread(res_type, res_id, number)
    return _version(found, res_type, res_id, version_id)
