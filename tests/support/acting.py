"""The gateway acting for a test source: what tests that write straight to a
store, below the HTTP API, act as (``gateway.loading.source``)."""

from typing import Any

from gateway.interactions import write
from gateway.loading.source import ForSource, author_for
from gateway.store import Store, StoredVersion


def as_source(org: str = "TESTSRC") -> ForSource:
    """A fresh ``ForSource`` for ``org``'s records, as ``gateway load`` would act."""
    return ForSource(author_for("test", org))


def stored(store: Store, resource: dict[str, Any], res_id: str | None = None) -> StoredVersion:
    """``resource`` written straight to ``store`` as one version, with no
    Provenance beside it: for tests of the store itself, which count what
    it holds."""
    res_type = resource["resourceType"]
    prepared = write.prepare(res_type, res_id or write.new_id(), resource)
    with store.unit_of_work() as uow:
        return write.store_version(uow, prepared, method="PUT").version
