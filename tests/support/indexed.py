"""Resources written straight into a store with their index rows (search
values and access facts), all in one unit of work: for tests of search and
access below the write path, which need many resources quickly."""

from collections.abc import Iterable
from typing import Any

from gateway import fhirjson
from gateway.access.index import entries
from gateway.store import Store, StoredVersion


def put_indexed(store: Store, resources: Iterable[dict[str, Any]]) -> None:
    """Each of ``resources`` as its version 1, indexed as the write path
    indexes it, in one unit of work."""
    with store.unit_of_work() as uow:
        for resource in resources:
            uow.append(
                StoredVersion(
                    resource["resourceType"],
                    resource["id"],
                    1,
                    "2026-01-01T00:00:00.000000Z",
                    "PUT",
                    fhirjson.dumps(resource),
                ),
                entries(resource),
            )
