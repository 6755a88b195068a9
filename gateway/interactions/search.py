"""search-type and search-system: https://hl7.org/fhir/R4/http.html#search.

Runs a parsed ``SearchQuery`` against the store and builds the ``searchset``
Bundle: matches, then what ``_include`` and ``_revinclude`` brought in, a
total when asked, and ``self``/``next``/``previous`` links holding keyset
positions (``gateway.search.paging``).

Every candidate passes through a ``Visible`` check before it is counted or
shown: the consent layer supplies the check, so that a page is filled with
resources the requester may see, and includes and totals never reveal the
others. With it comes a ``Prefilter`` (``gateway.access.scope``): what the
requester could ever be shown, as SQL, so that the rows read and decided
are about those of the requester's own population, not the whole store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlencode

from conformance.registry import TypeInteraction
from gateway import fhirjson
from gateway.errors import InvalidRequest, Issue
from gateway.interactions.types import Visible, prefetch, require
from gateway.search import shaping
from gateway.search.extract import extract
from gateway.search.paging import (
    Position,
    Prefilter,
    count_statement,
    page_statement,
    read_page,
    row_position,
    row_version,
    scan,
    sorted_by_index,
)
from gateway.search.parameters import parameter
from gateway.search.query import (
    Condition,
    Include,
    ReferenceCriterion,
    SearchQuery,
    parse_condition,
)
from gateway.store import Store, StoredVersion
from gateway.store.values import ReferenceValue

_MAX_INCLUDE_ROUNDS = 4  # :iterate depth; FHIR leaves it to the server
MAX_INCLUDED = 1000
MAX_INCLUDE_SCAN = 20_000  # references followed in one round of includes
# Under consent, a chain or _has is resolved to the resources the requester
# may see, at most this many (else the search is refused as too broad).
_MAX_LINKED = 1000
_MAX_LINK_SCAN = 20_000


@dataclass
class SearchResult:
    matches: list[StoredVersion] = field(default_factory=list)
    included: list[StoredVersion] = field(default_factory=list)
    total: int | None = None
    next: Position | None = None
    previous: Position | None = None


# Beyond this many matches a total is not given when consent filters the
# results: each would have to be read and decided to count it.
_MAX_CHECKED_TOTAL = 200
# Nor when the pre-filter tests candidates one by one and there are more than
# this many to test.
_MAX_PROBED_TOTAL = 1000
# The most rows one page reads and decides to fill itself under consent: a
# search whose matches the requester mostly may not see is refused past it,
# rather than holding a worker while it reads the store.
MAX_SCANNED = 20_000
# A page reads its rows in batches that double, from what it shows.
_MAX_BATCH = 1000
# From this many candidates a sorted page reads them in the sort index's
# order, stopping at the page; below it, it reads them all and sorts them.
_SORT_BY_INDEX_FROM = 2000


def search(
    store: Store,
    query: SearchQuery,
    *,
    visible: Visible | None,
    includable: Callable[[str], bool],
    prefilter: Prefilter | None = None,
) -> SearchResult:
    """One page of matches for ``query``, with its includes and total.
    ``visible`` is the requester's consent check (``None`` only for the
    gateway's own searches, which see every match, as a benchmark's
    baseline does); ``prefilter`` the SQL form of what it could ever
    permit, which narrows what is read (never what is decided);
    ``includable`` says which types may be included (the token's
    scopes)."""
    for res_type in query.types or (query.res_type,):
        require(res_type, TypeInteraction.SEARCH_TYPE)
    result = SearchResult()
    enforced = visible is not None
    check: Visible = visible if visible is not None else _every
    if enforced and any(c.chain or c.reverse for c in query.conditions):
        linked = _with_visible_links(store, query, check, prefilter)
        if linked is None:  # a chain that reaches nothing the requester may see
            result.total = 0 if query.total != "none" or query.summary == "count" else None
            return result
        query = linked
    wants_total = query.total != "none" or query.summary == "count"
    # A requester who may see much is best served testing candidates one by
    # one as they are read; one who sees little, by reading what it sees;
    # either, when the query itself names one person's records, by testing
    # those few (what it sees may be far more: all it ever wrote).
    broad = enforced and prefilter is not None and prefilter.broad(store)
    probing = broad or (enforced and prefilter is not None and _names_few(query))

    def total() -> int | None:
        # A count of hidden resources would reveal them: under consent, what
        # is counted is what the requester may see.
        if enforced:
            return _checked_total(store, query, check, prefilter, probing)
        return _count(store, query, None, None)

    if query.summary == "count" or query.count == 0:
        if wants_total:
            result.total = total()
        return result
    position = Position.decode(query.cursor) if query.cursor is not None else None
    narrowing = prefilter if enforced else None
    if narrowing is not None:
        by_index = broad and sorted_by_index(query)
    else:
        by_index = sorted_by_index(query) and (
            _count(store, query, None, _SORT_BY_INDEX_FROM) >= _SORT_BY_INDEX_FROM
        )
    rows = _visible_rows(store, query, position, check, narrowing, by_index, probing)
    more = len(rows) > query.count
    rows = rows[: query.count]
    if wants_total:
        # When the first page holds every match, the total is the page's
        # size, and nothing more need be read.
        complete = position is None and not more
        result.total = len(rows) if complete else total()
    forward = position is None or position.forward
    if not forward:
        rows.reverse()
    result.matches = [version for _, version in rows]
    if rows:
        key_count = len(rows[0][0]) - 6
        if (forward and more) or not forward:
            result.next = row_position(rows[-1][0], key_count, True)
        if (not forward and more) or (forward and position is not None):
            result.previous = row_position(rows[0][0], key_count, False)
    result.included = _includes(store, query, result.matches, check, includable)
    return result


def _names_few(query: SearchQuery) -> bool:
    """Whether the query names the records it may match by whom they are
    of: a person's compartment, or a reference parameter naming resources
    by id (``subject=Patient/x``, or ``subject:Patient=x``)."""
    if query.compartment is not None:
        return True
    return any(
        condition.param is not None
        and condition.param.type == "reference"
        and condition.chain is None
        and condition.modifier in (None, "type")
        and not condition.negate
        and bool(condition.values)
        and all(
            isinstance(value, ReferenceCriterion) and value.target_id is not None
            for value in condition.values
        )
        for condition in query.conditions
    )


def _every(version: StoredVersion) -> bool:
    """The gateway's own searches see every match."""
    return True


def _count(
    store: Store,
    query: SearchQuery,
    prefilter: Prefilter | None,
    at_most: int | None,
    probing: bool = False,
) -> int:
    """How many candidates match, up to ``at_most`` (when given)."""
    sql, params = count_statement(query, prefilter, at_most, probing=probing, dialect=store.dialect)
    (total,) = store.select(sql, params)[0]
    assert isinstance(total, int)
    return total


def _checked_total(
    store: Store,
    query: SearchQuery,
    visible: Visible,
    prefilter: Prefilter | None,
    probing: bool = False,
) -> int | None:
    """How many matches the requester may see, reading them all; ``None``
    (no total given) when there are too many to check."""
    limit = _MAX_CHECKED_TOTAL + 1
    # Tested one by one, candidates the requester may not see cost as much
    # as those it may: past a bound, too many to count at a page's cost.
    if probing and _count(store, query, None, _MAX_PROBED_TOTAL + 1) > _MAX_PROBED_TOTAL:
        return None
    if _count(store, query, prefilter, limit, probing) > _MAX_CHECKED_TOTAL:
        return None
    return _visible_total(store, query, visible, prefilter, probing)


def _visible_total(
    store: Store,
    query: SearchQuery,
    visible: Visible,
    prefilter: Prefilter | None,
    probing: bool = False,
) -> int:
    """How many matches the requester may see, reading them all."""
    ahead = partial(prefetch, visible)
    return sum(1 for _ in scan(store, query, visible, ahead, prefilter, probing))


# -- chains and _has under consent ---------------------------------------------------
#
# In SQL a chain (subject:Patient.name=x) or a _has matches through any live
# resource. Under consent that would reveal what a hidden resource says (that
# the person has a hidden HIV test, say), so each such condition is replaced
# by the resources it reaches that the requester may see.


def _with_visible_links(
    store: Store, query: SearchQuery, visible: Visible, prefilter: Prefilter | None
) -> SearchQuery | None:
    """``query`` with every chain and _has resolved for the requester;
    ``None`` when one of them reaches nothing visible (no match at all)."""
    conditions = []
    for condition in query.conditions:
        types = query.types or (query.res_type,)
        resolved = _visible_link(store, types, condition, visible, prefilter)
        if resolved is None:
            return None
        conditions.append(resolved)
    return dataclasses.replace(query, conditions=conditions)


def _visible_link(
    store: Store,
    types: Sequence[str],
    condition: Condition,
    visible: Visible,
    prefilter: Prefilter | None,
) -> Condition | None:
    if condition.chain is not None:
        assert condition.param is not None
        target, inner = condition.chain
        ids = [v.res_id for v in _linked(store, target, inner, visible, prefilter)]
        if not ids:
            return None
        values = tuple(ReferenceCriterion(target, res_id) for res_id in ids)
        return Condition(param=condition.param, modifier="type", values=values)
    if condition.reverse is not None:
        source_type, ref_code, inner = condition.reverse
        reference = parameter(source_type, ref_code)
        assert reference is not None
        targets = {
            value.target_id
            for source in _linked(store, source_type, inner, visible, prefilter)
            if source.content is not None
            for value in extract(fhirjson.loads(source.content), reference)
            if isinstance(value, ReferenceValue) and value.target_type in types and value.target_id
        }
        if not targets:
            return None
        return parse_condition(types[0], "_id", ",".join(sorted(targets)))
    return condition


def _linked(
    store: Store, res_type: str, inner: Condition, visible: Visible, prefilter: Prefilter | None
) -> list[StoredVersion]:
    """The ``res_type`` resources meeting ``inner`` that the requester may see."""
    query = SearchQuery(res_type=res_type, conditions=[inner], total="none")
    linked = _with_visible_links(store, query, visible, prefilter)
    if linked is None:
        return []
    too_broad = InvalidRequest(
        f"a chained or _has criterion on {res_type} matches too many resources to check "
        "against consent; narrow it",
        code="GW-0326",
    )
    scanned = 0

    def counted(version: StoredVersion) -> bool:
        nonlocal scanned
        scanned += 1
        if scanned > _MAX_LINK_SCAN:
            raise too_broad
        return visible(version)

    found: list[StoredVersion] = []
    for version in scan(store, linked, counted, prefilter=prefilter):
        found.append(version)
        if len(found) > _MAX_LINKED:
            raise too_broad
    return found


def _visible_rows(
    store: Store,
    query: SearchQuery,
    position: Position | None,
    visible: Visible,
    prefilter: Prefilter | None,
    by_index: bool,
    probing: bool = False,
) -> list[tuple[Sequence[Any], StoredVersion]]:
    """Up to ``count + 1`` visible rows (with their versions) from
    ``position``, reading on from the last row read while the check hides
    some, in batches that double; refused past ``MAX_SCANNED`` rows.
    ``by_index``: in the sort index's order (``page_statement``)."""
    wanted = query.count + 1
    batch = wanted
    scanned = 0
    found: list[tuple[Sequence[Any], StoredVersion]] = []
    while len(found) < wanted:
        statement = page_statement(
            query,
            position,
            batch - 1,
            prefilter,
            by_index=by_index,
            probing=probing,
            dialect=store.dialect,
        )
        key_count = statement.key_count
        rows = read_page(store, statement)
        versions = [row_version(row, key_count) for row in rows]
        prefetch(visible, versions)
        found.extend((row, v) for row, v in zip(rows, versions, strict=True) if visible(v))
        scanned += len(rows)
        if len(rows) < batch:
            break
        if len(found) < wanted and scanned >= MAX_SCANNED:
            raise InvalidRequest(
                f"this search reads more than {MAX_SCANNED} resources the requester may not "
                "see to fill a page; narrow it (by patient, code or date, say)",
                code="GW-0327",
                issue_type="too-costly",
            )
        position = row_position(rows[-1], key_count, statement.forward)
        batch = min(batch * 2, max(_MAX_BATCH, wanted))
    return found[:wanted]


def _live(store: Store, keys: Sequence[tuple[str, str]]) -> list[StoredVersion]:
    """The live resources among ``keys``, in their order, read at once."""
    found = store.read_many(keys) if keys else {}
    return [v for key in keys if (v := found.get(key)) is not None and not v.deleted]


def _includes(
    store: Store,
    query: SearchQuery,
    matches: list[StoredVersion],
    visible: Visible,
    includable: Callable[[str], bool],
) -> list[StoredVersion]:
    """What ``_include`` and ``_revinclude`` add to the page: at most
    ``MAX_INCLUDED`` resources the requester may see, refused past that (a
    page silently missing some would read as complete). The references
    followed are read at most ``MAX_INCLUDE_SCAN`` a round and the
    resources in batches, so the work is bounded whatever the fan-out."""
    if not matches or not (query.includes or query.revincludes):
        return []
    shown = {(m.res_type, m.res_id) for m in matches}
    included: list[StoredVersion] = []
    sources = matches
    for round_number in range(_MAX_INCLUDE_ROUNDS):
        keys: list[tuple[str, str]] = []
        for include in query.includes:
            if round_number == 0 or include.iterate:
                keys.extend(_forward(store, include, sources))
        for include in query.revincludes:
            if round_number == 0 or include.iterate:
                keys.extend(_reverse(store, include, sources))
        if len(keys) > MAX_INCLUDE_SCAN:
            raise _too_many_included(
                f"the page's _include and _revinclude follow more than {MAX_INCLUDE_SCAN} "
                "references"
            )
        fresh = []
        for key in dict.fromkeys(keys):
            if key not in shown:
                shown.add(key)
                fresh.append(key)
        new: list[StoredVersion] = []
        for start in range(0, len(fresh), _MAX_BATCH):
            batch = _live(store, fresh[start : start + _MAX_BATCH])
            candidates = [v for v in batch if includable(v.res_type)]
            prefetch(visible, candidates)
            new.extend(v for v in candidates if visible(v))
            if len(included) + len(new) > MAX_INCLUDED:
                raise _too_many_included(
                    f"the page's _include and _revinclude add more than {MAX_INCLUDED} resources"
                )
        included.extend(new)
        if not new:
            break
        sources = new
    return included


def _too_many_included(what: str) -> InvalidRequest:
    message = f"{what}, the most this server adds to one page: ask for a smaller _count"
    return InvalidRequest(message, code="GW-0328", issues=[Issue("too-costly", message)])


def _forward(
    store: Store, include: Include, sources: Sequence[StoredVersion]
) -> list[tuple[str, str]]:
    ids = [s.res_id for s in sources if s.res_type == include.source_type]
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    sql = (
        "SELECT r.target_type, r.target_id FROM search_reference r "
        f"WHERE r.res_type = ? AND r.param = ? AND r.res_id IN ({marks}) "
        "AND r.target_id IS NOT NULL"
    )
    params: list[object] = [include.source_type, include.param.code, *ids]
    if include.target_type:
        sql += " AND r.target_type = ?"
        params.append(include.target_type)
    sql += f" LIMIT {MAX_INCLUDE_SCAN + 1}"
    return [(str(t), str(i)) for t, i in store.select(sql, params)]


def _reverse(
    store: Store, include: Include, targets: Sequence[StoredVersion]
) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    by_type: dict[str, list[str]] = {}
    for target in targets:
        by_type.setdefault(target.res_type, []).append(target.res_id)
    for target_type, ids in by_type.items():
        if include.target_type and include.target_type != target_type:
            continue
        marks = ", ".join("?" for _ in ids)
        sql = (
            "SELECT DISTINCT r.res_type, r.res_id FROM search_reference r "
            f"WHERE r.res_type = ? AND r.param = ? AND r.target_type = ? "
            f"AND r.target_id IN ({marks}) LIMIT {MAX_INCLUDE_SCAN + 1}"
        )
        rows = store.select(sql, [include.source_type, include.param.code, target_type, *ids])
        keys.extend((str(t), str(i)) for t, i in rows)
    return keys


# -- the Bundle ----------------------------------------------------------------------


def searchset_bundle(
    result: SearchResult, query: SearchQuery, *, base_url: str, path: str
) -> dict[str, Any]:
    """The ``searchset`` Bundle. ``path`` is the search URL relative to
    ``base_url`` (``Patient``), for the links."""

    def link(relation: str, position: Position | None) -> dict[str, str]:
        params = list(query.canonical)
        if position is not None:
            params.append(("_cursor", position.encode()))
        url = f"{base_url}/{path}" if path else base_url
        return {"relation": relation, "url": f"{url}?{urlencode(params)}" if params else url}

    current = Position.decode(query.cursor) if query.cursor else None
    links = [link("self", current)]
    if result.next is not None:
        links.append(link("next", result.next))
    if result.previous is not None:
        links.append(link("previous", result.previous))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    bundle["link"] = links
    entries = [_entry(base_url, v, "match", query) for v in result.matches]
    entries.extend(_entry(base_url, v, "include", query) for v in result.included)
    if entries:
        bundle["entry"] = entries
    return bundle


def _entry(base_url: str, version: StoredVersion, mode: str, query: SearchQuery) -> dict[str, Any]:
    assert version.content is not None
    resource: Any = fhirjson.fragment(version.content)
    if mode == "match" and (query.elements or query.summary in ("true", "text", "data")):
        resource = shaping.shaped(version.content, version.res_type, query)
    return {
        "fullUrl": f"{base_url}/{version.res_type}/{version.res_id}",
        "resource": resource,
        "search": {"mode": mode},
    }
