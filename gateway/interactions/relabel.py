"""Stored records brought up to the restricted code lists in force.

Every write labels a record from its codes (``consent.labels``), but a
record stored before the lists grew (or before the rules reading them
changed) keeps the labels it was written with. Relabelling writes a new
version of each live record whose codes now call for a label it lacks: the
same content and author (``meta.source``), the labels added, and a
Provenance naming the gateway. Its earlier versions are then withheld as it
is (``gateway.access.control`` decides them with the labels it carries now).

The fingerprint of the lists relabelled to is recorded in the store, so a
gateway starting with other lists relabels once, and not again.
"""

from __future__ import annotations

import logging
from typing import Any

from conformance.registry import RESOURCES
from consent.labels import code_lists, labelled
from gateway import fhirjson
from gateway.access.facts import labelling_codes
from gateway.errors import PreconditionFailed
from gateway.interactions.provenance import Author
from gateway.interactions.write import prepare, record_provenance, store_version
from gateway.store import Store, StoredVersion

log = logging.getLogger("gateway.relabel")

GATEWAY = Author.gateway("gateway:relabel", "gateway relabel")
_STATE = "labels"


def relabel(store: Store, batch: int = 200) -> int:
    """Add the labels the lists in force call for to every live record
    lacking one; returns how many records were relabelled. Each batch
    commits on its own: interrupted, a relabel resumes on the next start,
    as the fingerprint is recorded last."""
    done = 0
    for res_type in RESOURCES:
        pending: list[tuple[StoredVersion, dict[str, Any]]] = []
        for version in store.iter_current(res_type):
            if version.content is None:
                continue
            resource = fhirjson.loads(version.content)
            security = (resource.get("meta") or {}).get("security") or []
            if labelled(security, labelling_codes(resource)) is None:
                continue
            pending.append((version, resource))
            if len(pending) >= batch:
                done += _relabel_batch(store, pending)
                pending = []
        done += _relabel_batch(store, pending)
    with store.unit_of_work() as uow:
        uow.set_index_version(code_lists().fingerprint, _STATE)
    return done


def _relabel_batch(store: Store, pending: list[tuple[StoredVersion, dict[str, Any]]]) -> int:
    if not pending:
        return 0
    with store.unit_of_work() as uow:
        written = []
        for version, resource in pending:
            # No source given: the record keeps its author.
            prepared = prepare(version.res_type, version.res_id, resource)
            try:
                result = store_version(
                    uow, prepared, method="PUT", expected_version=version.version
                )
            except PreconditionFailed:
                continue  # written since it was read, and labelled by that write
            written.append(result.version)
        record_provenance(uow, GATEWAY, "PUT", written)
    return len(written)


def ensure_labelled(store: Store) -> int | None:
    """Relabel if the store was labelled under other lists; returns the
    number of records relabelled, or ``None`` if nothing was needed."""
    if store.index_version(_STATE) == code_lists().fingerprint:
        return None
    log.info("restricted code lists changed: relabelling stored records")
    count = relabel(store)
    log.info("stored records relabelled", extra={"resources": count})
    return count
