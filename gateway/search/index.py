"""Index extraction: the search values a resource version carries.

Values are extracted at write time (``gateway.search.extract``) and stored in
the same unit of work as the version (``gateway.store.base.UnitOfWork.append``),
so searches read index tables and never scan resource JSON.
https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

from typing import Any

from gateway.search.extract import index_values
from gateway.store.base import IndexEntry


def index_entries(resource: dict[str, Any]) -> list[IndexEntry]:
    """Every (parameter, value) pair of the resource, for the index tables."""
    return [
        IndexEntry(code, value)
        for code, values in index_values(resource).items()
        for value in values
    ]
