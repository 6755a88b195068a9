"""history at instance, type and system level, as paged ``history`` Bundles.

https://hl7.org/fhir/R4/http.html#history. Newest versions first. Pages are
addressed by an opaque ``_cursor`` holding a keyset position, so a ``next``
link returns the same entries however many versions are written meanwhile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from conformance.registry import TypeInteraction
from gateway import fhirjson
from gateway.errors import InvalidRequest, Issue, NotFound
from gateway.integers import MAX_BIGINT, is_digits, whole_number
from gateway.interactions.types import prefetch, require
from gateway.store import HistoryPage, HistoryQuery, Store, StoredVersion, last_content

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
HISTORY_PARAMETERS = frozenset({"_count", "_since", "_cursor", "_format"})


@dataclass(frozen=True)
class HistoryRequest:
    """History parameters as parsed from a query string."""

    count: int = DEFAULT_PAGE_SIZE
    since: str | None = None
    before_seq: int | None = None
    after_seq: int | None = None


def _bad(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        f"history parameter {name!r}: {message}",
        code="GW-0310",
        issues=[Issue("value", f"history parameter {name!r}: {message}", (name,))],
    )


def parse_history_params(params: Sequence[tuple[str, str]]) -> HistoryRequest:
    count, since, before, after = DEFAULT_PAGE_SIZE, None, None, None
    for name, value in params:
        if name not in HISTORY_PARAMETERS:
            raise InvalidRequest(
                f"parameter {name!r} is not supported for history "
                f"(supported: {', '.join(sorted(HISTORY_PARAMETERS))})",
                code="GW-0311",
                issues=[Issue("not-supported", f"unknown parameter {name!r}", (name,))],
            )
        if name == "_count":
            number = whole_number(value)
            if number is None:
                if is_digits(value):
                    raise _bad(name, f"{value!r} is out of range (at most {MAX_BIGINT})")
                raise _bad(name, f"must be a non-negative integer, not {value!r}")
            count = min(number, MAX_PAGE_SIZE)
        elif name == "_since":
            since = fhirjson.instant(fhirjson.parse_instant(value))
        elif name == "_cursor":
            direction, seq = value[:1], whole_number(value[1:])
            if direction not in ("a", "b") or seq is None:
                raise _bad(name, f"{value!r} is not a page cursor this server issued")
            if direction == "b":
                before = seq
            else:
                after = seq
    return HistoryRequest(count=count, since=since, before_seq=before, after_seq=after)


def history(
    store: Store,
    request: HistoryRequest,
    res_type: str | None = None,
    res_id: str | None = None,
    *,
    visible: Callable[[StoredVersion], bool] | None,
) -> HistoryPage:
    """A page of history, of the versions ``visible`` lets the requester see
    (``None`` only for the gateway's own reading, which sees them all)."""
    if res_type is not None:
        require(
            res_type,
            TypeInteraction.HISTORY_INSTANCE if res_id else TypeInteraction.HISTORY_TYPE,
        )
    page = store.history(
        HistoryQuery(
            res_type=res_type,
            res_id=res_id,
            since=request.since,
            before_seq=request.before_seq,
            after_seq=request.after_seq,
            count=request.count,
        )
    )
    if res_type and res_id and not page.entries and store.read(res_type, res_id) is None:
        raise NotFound(f"{res_type}/{res_id} is not known", code="GW-0410")
    if visible is None:
        return page
    if res_type and res_id:
        # A resource the requester may not see has, for them, no history.
        current = store.read(res_type, res_id)
        latest = current if current is None or not current.deleted else last_content(store, current)
        if latest is None or not visible(latest):
            raise NotFound(f"{res_type}/{res_id} is not known", code="GW-0410")
        # Of a resource they may see, its deletions too; each earlier
        # version is decided on its own (its labels may have differed).
        entries = [v for v in page.entries if v.content is None or visible(v)]
        whole = not page.has_older and not page.has_newer
        return dataclasses.replace(page, entries=entries, total=len(entries) if whole else None)
    # Across resources, deleted versions carry nothing to decide on: they are
    # left out, as is every version the requester may not see; a count would
    # reveal them. What the page's decisions read (Provenance targets) is
    # read at once.
    prefetch(visible, page.entries)
    return dataclasses.replace(
        page,
        entries=[v for v in page.entries if v.content is not None and visible(v)],
        total=None,
    )


def _entry(base_url: str, version: StoredVersion) -> dict[str, Any]:
    full_url = f"{base_url}/{version.res_type}/{version.res_id}"
    request_url = (
        version.res_type if version.method == "POST" else f"{version.res_type}/{version.res_id}"
    )
    entry: dict[str, Any] = {"fullUrl": full_url}
    if version.content is not None:
        entry["resource"] = fhirjson.fragment(version.content)
    entry["request"] = {"method": version.method, "url": request_url}
    status = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}
    entry["response"] = {
        "status": status.get(version.method, "200 OK"),
        "etag": f'W/"{version.version}"',
        "lastModified": version.last_updated,
    }
    return entry


def history_bundle(
    page: HistoryPage, request: HistoryRequest, *, base_url: str, path: str
) -> dict[str, Any]:
    """The ``history`` Bundle for a page. ``path`` is the history URL relative
    to ``base_url`` (``Patient/1/_history``), used to build the paging links."""

    def link(relation: str, cursor: str | None) -> dict[str, str]:
        query: list[tuple[str, str]] = [("_count", str(request.count))]
        if request.since:
            query.append(("_since", request.since))
        if cursor:
            query.append(("_cursor", cursor))
        return {"relation": relation, "url": f"{base_url}/{path}?{urlencode(query)}"}

    current = None
    if request.before_seq is not None:
        current = f"b{request.before_seq}"
    elif request.after_seq is not None:
        current = f"a{request.after_seq}"
    links = [link("self", current)]
    if page.entries and page.has_newer:
        links.append(link("previous", f"a{page.entries[0].seq}"))
    if page.entries and page.has_older:
        links.append(link("next", f"b{page.entries[-1].seq}"))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "history",
    }
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    bundle["entry"] = [_entry(base_url, v) for v in page.entries]
    if not bundle["entry"]:
        del bundle["entry"]
    return bundle
