"""Conditional-operation criteria: which resources a query string matches.

Conditional create (``If-None-Exist``), conditional update (``PUT
[type]?...``) and conditional references in a transaction
(``Patient?identifier=...``) take search criteria
(https://hl7.org/fhir/R4/http.html#ccreate). They are parsed and run by the
search engine itself, inside the caller's unit of work, so what "matches"
means is exactly what search means. Parameters not understood are an error
naming the parameter, never silently dropped: a conditional write that ignored
part of its condition could match, and so overwrite, the wrong resource.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any
from urllib.parse import parse_qsl

from gateway.errors import InvalidRequest, Issue
from gateway.search.paging import page_statement, scan
from gateway.search.query import parse_search
from gateway.store import Querier, StoredVersion

# Result parameters shape a result page; they have no meaning as a condition.
_NOT_CRITERIA = frozenset(
    {"_count", "_sort", "_total", "_summary", "_elements", "_include", "_revinclude", "_cursor"}
)


def matching_ids(
    reader: Querier,
    res_type: str,
    criteria: str,
    *,
    visible: Callable[[StoredVersion], bool] | None,
    limit: int = 2,
) -> list[str]:
    """The ids of up to ``limit`` live ``res_type`` resources matching
    ``criteria`` (a query string such as ``identifier=sys|123``); with
    ``visible``, only of those the requester may see: what it may not see
    is not there for it, so a conditional write never reveals it. ``None``
    only for the gateway's own look-ups (whose record a write is, a load
    reconciling with what is on file), which must say so."""
    pairs = [(name, value) for name, value in parse_qsl(criteria, keep_blank_values=True)]
    pairs = [(name, value) for name, value in pairs if name != "_format"]
    for name, _ in pairs:
        if name in _NOT_CRITERIA or name.split(":")[0] in _NOT_CRITERIA:
            raise InvalidRequest(
                f"{name!r} is not a search criterion: conditional operations take search "
                "parameters only",
                code="GW-0301",
                issues=[Issue("not-supported", f"{name!r} in conditional criteria", (name,))],
            )
    query = parse_search(res_type, pairs)
    if not query.conditions:
        raise InvalidRequest(
            "conditional operations need at least one search parameter", code="GW-0300"
        )
    if visible is not None:
        return [version.res_id for version in islice(scan(reader, query, visible), limit)]
    statement = page_statement(query, None, limit - 1)
    return [str(row[0]) for row in reader.select(statement.sql, statement.params)][:limit]


_VERSION_COLUMNS = "c.res_type, c.res_id, v.version, v.last_updated, v.content, c.seq"


def _referring_sql(types: Sequence[str], condition: str = "1 = 1") -> str:
    marks = ", ".join("?" for _ in types)
    return (
        f"SELECT DISTINCT {_VERSION_COLUMNS} "
        "FROM search_reference r JOIN resource_current c "
        "ON c.res_type = r.res_type AND c.res_id = r.res_id "
        "JOIN resource_version v ON v.seq = c.seq "
        f"WHERE r.target_type = ? AND r.target_id = ? AND r.param = ? AND r.res_type IN ({marks}) "
        f"AND c.deleted = ? AND {condition} ORDER BY c.seq LIMIT ?"
    )


def _version(row: Sequence[object]) -> StoredVersion:
    res_type, res_id, version, last_updated, content, seq = row[:6]
    return StoredVersion(
        res_type=str(res_type),
        res_id=str(res_id),
        version=int(str(version)),
        last_updated=str(last_updated),
        method="GET",
        content=bytes(content) if content is not None else None,  # type: ignore[call-overload]
        seq=int(str(seq)),
        current=True,  # both statements read resource_current
    )


def referring(
    reader: Querier, target: tuple[str, str], param: str, types: Sequence[str], limit: int
) -> list[StoredVersion]:
    """The live resources of ``types`` whose reference parameter ``param``
    points at ``target`` (type, id), at most ``limit``: one statement, where
    a search per type would be several."""
    rows = reader.select(_referring_sql(types), [target[0], target[1], param, *types, False, limit])
    return [_version(row) for row in rows]


def with_referring(
    reader: Querier,
    target: tuple[str, str],
    param: str,
    types: Sequence[str],
    limit: int,
    only: tuple[str, Sequence[Any]] | None = None,
) -> tuple[StoredVersion | None, list[StoredVersion]]:
    """The latest version of ``target`` (its content as ``read`` gives it,
    a deletion too; ``None`` if it never existed) and ``referring(...)``,
    in one statement rather than two. ``only``: as ``referring_each``'s."""
    condition, values = only if only is not None else ("1 = 1", ())
    sql = (
        f"SELECT {_VERSION_COLUMNS}, 0 AS linked FROM resource_current c "
        "JOIN resource_version v ON v.seq = c.seq WHERE c.res_type = ? AND c.res_id = ? "
        f"UNION ALL SELECT q.*, 1 FROM ({_referring_sql(types, condition)}) q"
    )
    rows = reader.select(
        sql,
        [target[0], target[1], target[0], target[1], param, *types, False, *values, limit],
    )
    found = None
    linked = []
    for row in rows:
        if int(str(row[6])):
            linked.append(_version(row))
        else:
            found = _version(row)
    # A compound statement's order is the database's choice: as ``referring``.
    linked.sort(key=lambda version: version.seq)
    return found, linked


def referring_each(
    reader: Querier,
    target_type: str,
    target_ids: Sequence[str],
    param: str,
    types: Sequence[str],
    limit: int,
    only: tuple[str, Sequence[Any]] | None = None,
) -> dict[str, list[StoredVersion]] | None:
    """``referring`` for several targets of one type at once: each target's
    live resources, in write order. ``None`` when there are more than
    ``limit`` in all (read them target by target then). ``only``: an SQL
    condition on each referring row ``r`` (``res_type``, ``res_id``,
    ``target_id``) it must meet, and its values."""
    ids = sorted(set(target_ids))
    found: dict[str, list[StoredVersion]] = {target: [] for target in ids}
    if not ids:
        return found
    marks = ", ".join("?" for _ in types)
    condition, values = only if only is not None else ("1 = 1", ())
    sql = (
        f"SELECT DISTINCT {_VERSION_COLUMNS}, r.target_id "
        "FROM search_reference r JOIN resource_current c "
        "ON c.res_type = r.res_type AND c.res_id = r.res_id "
        "JOIN resource_version v ON v.seq = c.seq "
        f"WHERE r.target_type = ? AND r.target_id IN ({', '.join('?' for _ in ids)}) "
        f"AND r.param = ? AND r.res_type IN ({marks}) AND c.deleted = ? AND {condition} "
        "ORDER BY c.seq LIMIT ?"
    )
    params = [target_type, *ids, param, *types, False, *values, limit + 1]
    rows = reader.select(sql, params)
    if len(rows) > limit:
        return None
    for row in rows:
        found[str(row[6])].append(_version(row))
    return found
