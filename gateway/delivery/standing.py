"""A Subscription saying where it stands: the gateway writes its status
(``active`` after the handshake, ``error``, ``off`` by an operator) as a new
version that keeps its subscriber as its author (``meta.source``), so that
it stays its subscriber's to see, with a Provenance naming the gateway."""

from __future__ import annotations

from gateway import fhirjson
from gateway.interactions import write
from gateway.interactions.provenance import Author, provenance
from gateway.store import StoredVersion, UnitOfWork


def write_status(
    uow: UnitOfWork,
    found: StoredVersion,
    status: str,
    author: Author,
    error: str | None = None,
) -> StoredVersion:
    """Write ``found`` (the Subscription's latest version) again with
    ``status`` and R4's ``error`` note (none when ``error`` is ``None``);
    the version written. Raises ``PreconditionFailed`` if it changed since
    it was read, ``Unprocessable`` if it breaks a rule it was written before."""
    resource = fhirjson.loads(found.content or b"{}")
    resource["status"] = status
    if error is None:
        resource.pop("error", None)
    else:
        resource["error"] = error[:500]
    prepared = write.prepare("Subscription", found.res_id, resource)  # the author kept
    result = write.store_version(uow, prepared, method="PUT", expected_version=found.version)
    record = provenance(author, "UPDATE", [result.version])
    write.store_version(
        uow, write.prepare("Provenance", write.new_id(), record), method="POST", fresh_id=True
    )
    return result.version
