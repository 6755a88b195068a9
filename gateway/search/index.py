"""Index extraction: the search values a resource version carries.

Values are extracted at write time and stored in the same unit of work as the
version (``gateway.store.base.UnitOfWork.append``), so searches read index
tables and never scan resource JSON. https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

from typing import Any

from gateway.search.values import TokenValue
from gateway.store.base import IndexEntry


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def index_entries(resource: dict[str, Any]) -> list[IndexEntry]:
    """The index entries of a resource: today, its business identifiers."""
    entries: list[IndexEntry] = []
    seen: set[tuple[str | None, str]] = set()
    for identifier in _as_list(resource.get("identifier")):
        if not isinstance(identifier, dict):
            continue
        value = identifier.get("value")
        if not isinstance(value, str):
            continue
        system = identifier.get("system")
        key = (system if isinstance(system, str) else None, value)
        if key not in seen:
            seen.add(key)
            entries.append(IndexEntry("identifier", TokenValue(system=key[0], code=value)))
    return entries
