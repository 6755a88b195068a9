"""What the demo's tests read back from the store the sources were loaded into."""

from __future__ import annotations

from typing import Any

from gateway import fhirjson
from gateway.store import Store


def stored(store: Store, res_type: str, res_id: str) -> dict[str, Any]:
    """The live resource, which must be there."""
    found = store.read(res_type, res_id)
    assert found is not None and found.content is not None and not found.deleted
    resource: dict[str, Any] = fhirjson.loads(found.content)
    return resource


def live(store: Store, res_type: str) -> list[dict[str, Any]]:
    """Every live resource of the type."""
    rows = store.select(
        "SELECT res_id FROM resource_current WHERE res_type = ? AND deleted = 0", [res_type]
    )
    return [stored(store, res_type, str(res_id)) for (res_id,) in rows]
