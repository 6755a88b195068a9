"""read and vread: https://hl7.org/fhir/R4/http.html#read, #vread."""

from __future__ import annotations

from conformance.registry import TypeInteraction
from gateway.errors import Gone, NotFound
from gateway.interactions.types import require
from gateway.store import Reader, StoredVersion


def _not_found(res_type: str, res_id: str) -> NotFound:
    return NotFound(f"{res_type}/{res_id} is not known", code="GW-0410")


def read(store: Reader, res_type: str, res_id: str) -> StoredVersion:
    """The current version; ``Gone`` if its latest version is a deletion."""
    require(res_type, TypeInteraction.READ)
    found = store.read(res_type, res_id)
    if found is None:
        raise _not_found(res_type, res_id)
    if found.deleted:
        raise Gone(f"{res_type}/{res_id} was deleted", code="GW-0411")
    return found


def vread(store: Reader, res_type: str, res_id: str, version_id: str) -> StoredVersion:
    """One version; ``Gone`` if that version is a deletion."""
    require(res_type, TypeInteraction.VREAD)
    if not version_id.isdigit():
        raise NotFound(f"{res_type}/{res_id} has no version {version_id!r}", code="GW-0412")
    found = store.vread(res_type, res_id, int(version_id))
    if found is None:
        raise NotFound(f"{res_type}/{res_id} has no version {version_id}", code="GW-0412")
    if found.deleted:
        raise Gone(f"{res_type}/{res_id} version {version_id} is a deletion", code="GW-0411")
    return found
