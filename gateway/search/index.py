"""Index extraction: the search values a resource version carries.

Values are extracted at write time (``gateway.search.extract``) and stored in
the same unit of work as the version (``gateway.store.base.UnitOfWork.append``),
so searches read index tables and never scan resource JSON.
https://hl7.org/fhir/R4/search.html
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from conformance.registry import RESOURCES
from gateway import fhirjson
from gateway.search.extract import date_range, extract_composite, index_values
from gateway.search.parameters import SearchParameter, parameters_for
from gateway.store.base import IndexEntry, Store
from gateway.store.values import (
    CompositeValue,
    DateRange,
    QuantityValue,
    ReferenceValue,
    SearchValue,
    SortValue,
    StringValue,
    TokenValue,
    normalise_text,
)

log = logging.getLogger("gateway.search")
# Bump when extraction changes what it produces for the same definitions.
EXTRACTION_RULES = "3"  # 2: sort keys; 3: a row for a missing one


OF_TYPE = ":of-type"
LAST_UPDATED = "_lastUpdated"


def index_entries(resource: dict[str, Any]) -> list[IndexEntry]:
    """Every (parameter, value) pair of the resource, for the index tables,
    plus what ``identifier:of-type`` searches: each typed identifier as one
    token ``type-system|type-code|value``
    (https://hl7.org/fhir/R4/search.html#modifiers)."""
    entries = [
        IndexEntry(code, value)
        for code, values in index_values(resource).items()
        for value in values
    ]
    for param in composite_parameters(resource["resourceType"]):
        for first, second in _pairs(extract_composite(resource, param)):
            entries.append(IndexEntry(param.code, CompositeValue(first, second)))
    identifiers = resource.get("identifier")
    for identifier in identifiers if isinstance(identifiers, list) else ():
        if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str):
            continue
        kind = identifier.get("type")
        for coding in kind.get("coding", ()) if isinstance(kind, dict) else ():
            if isinstance(coding, dict) and coding.get("system") and coding.get("code"):
                typed = f"{coding['system']}|{coding['code']}|{identifier['value']}"
                entries.append(IndexEntry("identifier" + OF_TYPE, TokenValue(None, typed)))
    return entries + sort_entries(resource["resourceType"], entries)


def last_updated_entries(instant: str) -> list[IndexEntry]:
    """The ``_lastUpdated`` value (and sort key) of a version stamped at
    ``instant``: the one index value the store sets itself, so writers can
    extract the rest of a resource's values before they take the write lock."""
    value = date_range(instant)
    return [
        IndexEntry(LAST_UPDATED, value),
        IndexEntry(LAST_UPDATED, SortValue(value.low, value.low)),
    ]


# The parameters a sort reads in index order (``gateway.search.paging``):
# the common ones, of the kinds whose sort key is text. Any other sort works
# out each candidate's key.
# Each is a row more per resource written, so the list is short.
SORTED_BY_INDEX = frozenset(
    {"_lastUpdated", "date", "birthdate", "name", "family", "identifier", "onset-date"}
)


def _sort_key(value: SearchValue) -> str | None:
    """What a sort compares of a value, as ``SqlBuilder.sort_expression``
    reads it from the value's own table."""
    if isinstance(value, TokenValue):
        return value.code
    if isinstance(value, StringValue):
        return normalise_text(value.value)
    if isinstance(value, DateRange):
        return value.low
    return None


def sort_entries(res_type: str, entries: list[IndexEntry]) -> list[IndexEntry]:
    """One ``SortValue`` for each parameter of ``SORTED_BY_INDEX`` that
    ``res_type`` defines: the least and greatest of its keys among
    ``entries``, or none (a row all the same, so that a sort finds the
    resources without a key in the index too, in order). ``_lastUpdated``
    is the store's to give (``last_updated_entries``)."""
    keys: dict[str, list[str]] = {}
    for entry in entries:
        if entry.param in SORTED_BY_INDEX and (key := _sort_key(entry.value)) is not None:
            keys.setdefault(entry.param, []).append(key)
    found = [IndexEntry(param, SortValue(min(some), max(some))) for param, some in keys.items()]
    found += [
        IndexEntry(param, SortValue(None, None))
        for param in _sorted_params(res_type)
        if param not in keys
    ]
    return found


@cache
def _sorted_params(res_type: str) -> tuple[str, ...]:
    """The parameters of ``SORTED_BY_INDEX`` ``res_type`` defines, but
    ``_lastUpdated``, which every version carries."""
    defined = parameters_for(res_type)
    return tuple(sorted(p for p in SORTED_BY_INDEX if p in defined and p != LAST_UPDATED))


@cache
def index_version() -> str:
    """A fingerprint of the rules the index is built with: the parameter
    definitions and the extraction code. A store built with other rules is
    reindexed before it serves (``ensure_current``)."""
    digest = hashlib.sha256(EXTRACTION_RULES.encode())
    data = resources.files("gateway.search.data").joinpath("search_parameters_r4.json")
    digest.update(data.read_bytes())
    for module in ("extract.py", "index.py"):
        digest.update(resources.files("gateway.search").joinpath(module).read_bytes())
    return digest.hexdigest()[:16]


Extract = Callable[[dict[str, Any]], list[IndexEntry]]


def reindex(
    store: Store, batch: int = 500, *, entries: Extract = index_entries, version: str | None = None
) -> int:
    """Rebuild every live resource's index rows with ``entries`` (the rows
    of a resource: ``gateway.access.index`` adds the access facts to the
    search values), and record ``version`` (by default ``index_version()``);
    returns how many. Each batch commits on its own, so a reindex
    interrupted part-way resumes cleanly (it runs again on the next start,
    as the version is recorded last)."""
    done = 0
    for res_type in RESOURCES:
        pending: list[tuple[str, dict[str, Any]]] = []
        for stored in store.iter_current(res_type):
            assert stored.content is not None
            pending.append((stored.res_id, fhirjson.loads(stored.content)))
            if len(pending) >= batch:
                done += _reindex_batch(store, res_type, pending, entries)
                pending = []
        done += _reindex_batch(store, res_type, pending, entries)
    with store.unit_of_work() as uow:
        uow.set_index_version(version or index_version())
    return done


def _reindex_batch(
    store: Store, res_type: str, batch: list[tuple[str, dict[str, Any]]], entries: Extract
) -> int:
    if not batch:
        return 0
    rows = [(res_id, entries(resource)) for res_id, resource in batch]
    with store.unit_of_work() as uow:
        for res_id, index in rows:
            uow.replace_index(res_type, res_id, index)
    return len(batch)


def ensure_current(
    store: Store, *, entries: Extract = index_entries, version: str | None = None
) -> int | None:
    """Reindex if the store's index was built with other rules (``version``,
    by default ``index_version()``); returns the number of resources
    reindexed, or ``None`` if nothing was needed."""
    wanted = version or index_version()
    if store.index_version() == wanted:
        return None
    log.info("search index out of date: reindexing")
    count = reindex(store, entries=entries, version=wanted)
    log.info("search index rebuilt", extra={"resources": count})
    return count


@cache
def composite_parameters(res_type: str) -> tuple[SearchParameter, ...]:
    """The type's composite parameters of two components, the shape every
    composite of the types in scope has."""
    return tuple(
        p
        for p in parameters_for(res_type).values()
        if p.type == "composite" and len(p.components) == 2
    )


def _pairs(
    combinations: list[tuple[SearchValue, ...]],
) -> list[tuple[TokenValue | ReferenceValue, TokenValue | QuantityValue | DateRange | StringValue]]:
    pairs = []
    for combination in combinations:
        first, second = combination
        if isinstance(first, TokenValue | ReferenceValue) and isinstance(
            second, TokenValue | QuantityValue | DateRange | StringValue
        ):
            pairs.append((first, second))
    return pairs
