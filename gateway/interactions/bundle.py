"""batch and transaction Bundles: https://hl7.org/fhir/R4/http.html#transaction.

A transaction is one unit of work: every entry succeeds or nothing is written.
Entries are processed in the order the specification sets (DELETE, POST, PUT
and PATCH, GET) whatever their order in the Bundle, and answered in the
Bundle's order. A PATCH entry carries its change as R4 says: a Binary holding
a JSON Patch, or a Parameters resource (FHIRPath Patch).
Before anything is written, every ``urn:uuid:`` full URL and every conditional
reference (``Patient?identifier=...``) is resolved to a real id and references
are rewritten to it; conditional creates (``ifNoneExist``) and conditional
updates are resolved in the same pass, so a reference to one finds the resource
it matched.

A batch runs each entry on its own; one entry's failure is reported in its
response and does not affect the others.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gateway import fhirjson, outcomes
from gateway.errors import GatewayError, InvalidRequest, Issue, PreconditionFailed
from gateway.integers import whole_number
from gateway.interactions import patching, write
from gateway.interactions import read as reads
from gateway.interactions.patching import Patch
from gateway.interactions.types import (
    Access,
    Acting,
    Authorize,
    ReturnPreference,
    Visible,
    supported_type,
)
from gateway.search.matching import matching_ids
from gateway.store import Reader, Store, StoredVersion, UnitOfWork

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class _Entry:
    index: int
    method: str
    res_type: str
    res_id: str | None
    version_id: str | None
    query: str
    full_url: str | None
    resource: dict[str, Any] | None
    if_none_exist: str | None
    if_match: int | None
    target_id: str | None = None  # id decided during reference resolution
    matched: StoredVersion | None = None  # conditional create that found a match
    minted: bool = False  # target_id was newly made for this entry
    prepared: write.Prepared | None = None  # the resource to write, once resolved
    patch: Patch | None = None  # a PATCH entry's change
    response: dict[str, Any] = field(default_factory=dict)

    def fresh_copy(self) -> _Entry:
        """A copy whose resource can be rewritten without touching this one's
        (an orjson round trip: many times faster than ``copy.deepcopy``)."""
        resource = None if self.resource is None else fhirjson.loads(fhirjson.dumps(self.resource))
        return dataclasses.replace(self, resource=resource, response={})

    @property
    def label(self) -> str:
        return f"entry {self.index} ({self.method} {self.url})"

    @property
    def url(self) -> str:
        path = self.res_type + (f"/{self.res_id}" if self.res_id else "")
        if self.version_id:
            path += f"/_history/{self.version_id}"
        return path + (f"?{self.query}" if self.query else "")


def parse_if_match(value: object) -> int | None:
    """``W/"3"``, ``"3"`` or ``3`` → 3 (a header's, or a Bundle entry's
    ``request.ifMatch``, which may be any JSON)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"If-Match {value!r} is not a version ETag", code="GW-0120")
    version = whole_number(value.strip().removeprefix("W/").strip('"'))
    if version is None:
        raise InvalidRequest(f"If-Match {value!r} is not a version ETag", code="GW-0120")
    return version


def _fail(index: int, message: str, path: str = "") -> InvalidRequest:
    expression = (f"Bundle.entry[{index}]{path}",)
    return InvalidRequest(
        f"entry {index}: {message}",
        code="GW-0130",
        issues=[Issue("invalid", message, expression)],
    )


def _parse_entry(
    index: int, raw: Any, base_url: str, kind: str, ready: Mapping[str, write.Ready] | None = None
) -> _Entry:
    if not isinstance(raw, dict):
        raise _fail(index, "an entry must be a JSON object")
    request = raw.get("request")
    if not isinstance(request, dict):
        raise _fail(index, f"every {kind} entry needs a request", ".request")
    method = request.get("method")
    if not isinstance(method, str) or method not in _ORDER:
        raise _fail(index, f"request.method {method!r} is not supported", ".request.method")
    url = request.get("url")
    if not isinstance(url, str) or not url:
        raise _fail(index, "request.url is required", ".request.url")
    if url.startswith(base_url + "/"):
        url = url[len(base_url) + 1 :]
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        raise _fail(index, f"request.url {url!r} is not on this server", ".request.url")
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise _fail(index, "request.url names no resource type", ".request.url")
    res_type = segments[0]
    res_id = segments[1] if len(segments) > 1 else None
    version_id = None
    if len(segments) == 4 and segments[2] == "_history":
        version_id = segments[3]
    elif len(segments) > 2:
        raise _fail(index, f"request.url {url!r} is not supported here", ".request.url")
    # Only a create, an update or a patch carries a resource; what a read or
    # a delete carries besides is not read (it was prepared for writing).
    resource = raw.get("resource") if method in ("POST", "PUT", "PATCH") else None
    if method in ("POST", "PUT"):
        if resource is None:
            raise _fail(index, f"a {method} entry needs a resource", ".resource")
        supported_type(res_type)
        ahead = ready.get(f"{res_type}/{res_id}") if ready and res_id else None
        try:
            resource = write.checked_resource(
                resource,
                res_type,
                url_id=res_id if method == "PUT" else None,
                path_prefix=f"Bundle.entry[{index}].resource.",
                valid=ahead is not None and ahead.fits(resource),
            )
        except InvalidRequest as exc:
            raise dataclasses.replace(exc, message=f"entry {index}: {exc.message}") from None
    patch = None
    if method == "PATCH":
        if res_id is None or parts.query:
            raise _fail(index, "a PATCH entry names the resource: [type]/[id]", ".request.url")
        supported_type(res_type)
        patch = _entry_patch(index, resource)
        resource = None  # the change, not a resource to write
    full_url = raw.get("fullUrl")
    if full_url is not None and not isinstance(full_url, str):
        raise _fail(index, "fullUrl must be a string", ".fullUrl")
    if_none_exist = request.get("ifNoneExist")
    return _Entry(
        index=index,
        method=method,
        res_type=res_type,
        res_id=res_id,
        version_id=version_id,
        query=parts.query,
        full_url=full_url,
        resource=resource,
        if_none_exist=if_none_exist if isinstance(if_none_exist, str) else None,
        if_match=parse_if_match(request.get("ifMatch")),
        patch=patch,
    )


def _entry_patch(index: int, resource: Any) -> Patch:
    """A PATCH entry's change, as R4 puts one in a Bundle: a Binary holding a
    JSON Patch, or a Parameters resource that is a FHIRPath Patch."""
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    if kind == "Binary" and resource.get("contentType") == patching.MEDIA_TYPE:
        try:
            raw = base64.b64decode(str(resource.get("data")), validate=True)
        except (binascii.Error, ValueError):
            raise _fail(index, "the Binary's data is not base64", ".resource.data") from None
    elif kind != "Parameters":
        raise _fail(
            index,
            "a PATCH entry's resource is a Binary of contentType application/json-patch+json, "
            "or a Parameters resource (FHIRPath Patch)",
            ".resource",
        )
    try:
        if kind == "Parameters":
            return patching.parse_fhirpath_patch(resource)
        return patching.parse(fhirjson.loads(raw))
    except InvalidRequest as exc:
        raise dataclasses.replace(exc, message=f"entry {index}: {exc.message}") from None


def _parse_bundle(body: Any, base_url: str) -> tuple[str, list[Any]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise InvalidRequest(
            "POST to the base URL takes a Bundle of type batch or transaction",
            code="GW-0131",
        )
    kind = body.get("type")
    if kind not in ("batch", "transaction"):
        raise InvalidRequest(
            f"Bundle.type {kind!r}: only batch and transaction are processed here",
            code="GW-0132",
            issues=[Issue("value", f"unsupported Bundle.type {kind!r}", ("Bundle.type",))],
        )
    entries = body.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidRequest("Bundle.entry must be an array", code="GW-0133")
    return kind, entries


def _walk_references(value: Any, rewrite: Callable[[str], str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                value[key] = rewrite(item)
            else:
                _walk_references(item, rewrite)
    elif isinstance(value, list):
        for item in value:
            _walk_references(item, rewrite)


class _NeedsDatabase(Exception):
    """Resolving the transaction takes a search: it must happen in the unit of work."""


def _permissions(entry: _Entry) -> list[tuple[str, str]]:
    """What an entry does, in SMART scope letters (c r u d s) on its type:
    a conditional create or update also searches."""
    if entry.method in ("GET", "HEAD"):
        return [(entry.res_type, "s" if entry.res_id is None else "r")]
    if entry.method == "DELETE":
        return [(entry.res_type, "d")]
    if entry.method == "PATCH":
        return [(entry.res_type, "r"), (entry.res_type, "u")]  # a test operation reads
    if entry.method == "POST":
        return [(entry.res_type, "c")] + ([(entry.res_type, "s")] if entry.if_none_exist else [])
    return [(entry.res_type, "u")] + ([(entry.res_type, "s")] if entry.res_id is None else [])


def _authorized(entry: _Entry, authorize: Authorize) -> None:
    for res_type, permission in _permissions(entry):
        try:
            authorize(res_type, permission)
        except GatewayError as exc:
            raise dataclasses.replace(exc, message=f"{entry.label}: {exc.message}") from None


def _resolve(
    uow: UnitOfWork | None,
    entries: list[_Entry],
    authorize: Authorize,
    source: str,
    visible: Visible | None,
    ready: Mapping[str, write.Ready] | None = None,
) -> None:
    """Decide the id of every entry that creates or conditionally updates,
    then rewrite references to ``urn:uuid`` full URLs and conditional
    references to those ids, and prepare each resource for writing.

    Without a unit of work, raises ``_NeedsDatabase`` if any of that takes a
    search (conditional creates, updates and references); a transaction of
    plain creates and updates is resolved before it takes the write lock.
    Searches find only what the requester may see (``visible``; ``None``
    only without a unit of work, where nothing is searched). A resource
    still as it was prepared ahead (``ready``) is not prepared again."""
    seen: dict[str, int] = {}
    by_full_url: dict[str, str] = {}
    for entry in entries:
        if entry.method == "POST":
            if entry.if_none_exist:
                if uow is None:
                    raise _NeedsDatabase
                assert visible is not None
                uow.lock_type(entry.res_type)
                matches = matching_ids(uow, entry.res_type, entry.if_none_exist, visible=visible)
                if len(matches) > 1:
                    raise PreconditionFailed(
                        f"ifNoneExist {entry.if_none_exist!r} matches more than one "
                        f"{entry.res_type}",
                        code="GW-0413",
                    )
                if matches:
                    entry.target_id = matches[0]
                    entry.matched = uow.read(entry.res_type, matches[0])
            if entry.target_id is None:
                entry.target_id = write.new_id()
                entry.minted = True
        elif entry.method == "PUT" and entry.res_id is None:
            if uow is None:
                raise _NeedsDatabase
            assert visible is not None
            uow.lock_type(entry.res_type)
            matches = matching_ids(uow, entry.res_type, entry.query, visible=visible)
            if len(matches) > 1:
                raise PreconditionFailed(
                    f"conditional update {entry.query!r} matches more than one {entry.res_type}",
                    code="GW-0413",
                )
            body_id = entry.resource.get("id") if entry.resource else None
            entry.target_id = matches[0] if matches else (body_id or write.new_id())
        else:
            entry.target_id = entry.res_id
        if entry.method != "GET" and entry.target_id is not None:
            key = f"{entry.res_type}/{entry.target_id}"
            if key in seen:
                raise _fail(
                    entry.index,
                    f"{key} is also changed by entry {seen[key]}; a transaction may "
                    "change a resource only once",
                )
            seen[key] = entry.index
        if entry.full_url and entry.target_id and entry.method in ("POST", "PUT"):
            by_full_url[entry.full_url] = f"{entry.res_type}/{entry.target_id}"

    conditional_cache: dict[str, str] = {}

    def rewrite_for(entry: _Entry) -> Callable[[str], str]:
        def rewrite(reference: str) -> str:
            if reference in by_full_url:
                return by_full_url[reference]
            if write.names_an_entry(reference):
                raise _fail(
                    entry.index,
                    f"reference {reference!r} names no entry of this transaction",
                    ".resource",
                )
            if write.is_conditional(reference):
                if reference not in conditional_cache:
                    ref_type, _, query = reference.partition("?")
                    supported_type(ref_type)
                    authorize(ref_type, "s")  # resolving it is a search
                    if uow is None:
                        raise _NeedsDatabase
                    assert visible is not None
                    found = matching_ids(uow, ref_type, query, visible=visible)
                    if len(found) != 1:
                        raise PreconditionFailed(
                            f"entry {entry.index}: conditional reference {reference!r} "
                            f"matches {'no' if not found else 'more than one'} {ref_type}",
                            code="GW-0414",
                        )
                    conditional_cache[reference] = f"{ref_type}/{found[0]}"
                return conditional_cache[reference]
            return reference

        return rewrite

    for entry in entries:
        if entry.resource is None:
            continue
        key = f"{entry.res_type}/{entry.target_id}"
        ahead = ready.get(key) if ready else None
        # A resource prepared ahead that names no other entry and no search
        # is left as it is by the walk: it is not walked.
        fits = ahead is not None and ahead.plain and not by_full_url and ahead.fits(entry.resource)
        if not fits:
            _walk_references(entry.resource, rewrite_for(entry))
            fits = ahead is not None and ahead.fits(entry.resource)
        if entry.target_id is not None and entry.matched is None:
            entry.prepared = (
                ahead.prepared(entry.resource)
                if ahead is not None and fits and ahead.res_id == entry.target_id
                else write.prepare(entry.res_type, entry.target_id, entry.resource, source)
            )


def _resolved_offline(
    parsed: list[_Entry],
    authorize: Authorize,
    source: str,
    ready: Mapping[str, write.Ready] | None = None,
) -> list[_Entry] | None:
    """Copies of ``parsed`` resolved and prepared without the database, or
    ``None`` when resolving them takes a search."""
    entries = [entry.fresh_copy() for entry in parsed]
    try:
        _resolve(None, entries, authorize, source, None, ready)
    except _NeedsDatabase:
        return None
    return entries


def _location(base_url: str, version: StoredVersion) -> str:
    return f"{base_url}/{version.res_type}/{version.res_id}/_history/{version.version}"


def _response(
    status: int,
    base_url: str,
    version: StoredVersion | None,
    prefer: ReturnPreference,
    *,
    location: bool = True,
) -> dict[str, Any]:
    response: dict[str, Any] = {"status": outcomes.status_line(status)}
    if version is not None:
        if location:
            response["location"] = _location(base_url, version)
        response["etag"] = f'W/"{version.version}"'
        response["lastModified"] = version.last_updated
    entry: dict[str, Any] = {"response": response}
    if version is not None and version.content is not None:
        entry["fullUrl"] = f"{base_url}/{version.res_type}/{version.res_id}"
        if prefer is ReturnPreference.REPRESENTATION:
            entry["resource"] = fhirjson.fragment(version.content)
        elif prefer is ReturnPreference.OPERATION_OUTCOME:
            response["outcome"] = outcomes.information(f"{status} {outcomes.REASON[status]}")
    return entry


def _read(reader: Reader, entry: _Entry, base_url: str, visible: Visible) -> dict[str, Any]:
    if entry.res_id is None or entry.query:
        raise _fail(
            entry.index,
            "only read and vread (GET [type]/[id] or [type]/[id]/_history/[vid]) are "
            "supported in a Bundle",
            ".request.url",
        )
    if entry.version_id is not None:
        found = reads.vread(reader, entry.res_type, entry.res_id, entry.version_id, visible)
    else:
        found = reads.read(reader, entry.res_type, entry.res_id, visible)
    return _response(200, base_url, found, ReturnPreference.REPRESENTATION, location=False)


@dataclass
class _Written:
    """What one entry wrote, for the request's Provenance."""

    by_method: dict[str, list[StoredVersion]] = field(default_factory=dict)

    def add(self, method: str, version: StoredVersion | None) -> None:
        if version is not None:
            self.by_method.setdefault(method, []).append(version)

    def record(self, uow: UnitOfWork, acting: Acting) -> None:
        for method, versions in self.by_method.items():
            write.record_provenance(uow, acting.author, method, versions)

    @property
    def versions(self) -> list[StoredVersion]:
        return [version for versions in self.by_method.values() for version in versions]

    def noted(self, uow: UnitOfWork, acting: Acting) -> None:
        """Tell ``acting`` every version written, and let it record in
        ``uow`` what must commit with them."""
        for version in self.versions:
            acting.wrote(version)
        acting.committing(uow)


W = TypeVar("W")


def _noting(
    attempt: Callable[[UnitOfWork], tuple[W, _Written]], acting: Acting
) -> Callable[[UnitOfWork], tuple[W, _Written]]:
    """``attempt``, noting what it wrote as its last step (a retry after a
    lost race starts again before it)."""

    def noted(uow: UnitOfWork) -> tuple[W, _Written]:
        answer, written = attempt(uow)
        written.noted(uow, acting)
        return answer, written

    return noted


def _write(
    uow: UnitOfWork,
    entry: _Entry,
    base_url: str,
    prefer: ReturnPreference,
    written: _Written,
    acting: Acting,
    access: Access,
) -> dict[str, Any]:
    assert entry.target_id is not None or entry.method == "DELETE"
    if entry.method == "DELETE":
        if entry.res_id is None:
            raise _fail(entry.index, "conditional delete is not supported", ".request.url")
        written.add("DELETE", write.delete_in(uow, entry.res_type, entry.res_id, access=access))
        return {"response": {"status": outcomes.status_line(204)}}
    if entry.method == "PATCH":
        assert entry.patch is not None and entry.target_id is not None
        patched = write.patch_in(
            uow,
            entry.res_type,
            entry.target_id,
            entry.patch,
            acting=acting,
            access=access,
            if_match=entry.if_match,
        )
        written.add("PATCH", patched.version)
        return _response(200, base_url, patched.version, prefer)
    if entry.method == "POST" and entry.matched is not None:
        return _response(200, base_url, entry.matched, prefer)
    assert entry.prepared is not None
    if entry.method == "POST":
        result = write.create_in(uow, entry.prepared, access=access, fresh_id=entry.minted)
    else:
        result = write.update_in(
            uow, entry.prepared, acting=acting, access=access, if_match=entry.if_match
        )
    written.add("POST" if result.created else "PUT", result.version)
    return _response(201 if result.created else 200, base_url, result.version, prefer)


def transaction(
    store: Store,
    acting: Acting,
    body: Any,
    *,
    base_url: str,
    prefer: ReturnPreference,
) -> dict[str, Any]:
    """Process a transaction Bundle for ``acting``; all or nothing. Its
    scopes are asked about every entry before anything is written; what is
    read, matched or changed must be visible to it, and what is written is
    its author's (``gateway.interactions.provenance``)."""
    attempt = _transaction_work(body, base_url, prefer, acting)
    entries, _ = write.in_unit_of_work(store, _noting(attempt, acting))
    return _transaction_response(entries)


def transaction_in(
    uow: UnitOfWork,
    acting: Acting,
    body: Any,
    *,
    base_url: str,
    prefer: ReturnPreference,
    ready: Mapping[str, write.Ready] | None = None,
) -> tuple[dict[str, Any], list[StoredVersion]]:
    """``transaction``, as part of a larger unit of work the caller commits
    (or rolls back): a loader's batch of source records. The response and
    the versions written (the caller's to note once they stand). ``ready``:
    resources validated and prepared ahead, by "Type/id" (a loader's
    workers): those still exactly so are not validated or prepared again."""
    entries, written = _transaction_work(body, base_url, prefer, acting, ready)(uow)
    return _transaction_response(entries), written.versions


def _transaction_response(entries: list[_Entry]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [e.response for e in entries],
    }


def _transaction_work(
    body: Any,
    base_url: str,
    prefer: ReturnPreference,
    acting: Acting,
    ready: Mapping[str, write.Ready] | None = None,
) -> Callable[[UnitOfWork], tuple[list[_Entry], _Written]]:
    """What a transaction does in a unit of work, once its Bundle is parsed,
    authorised and (where it can be) resolved."""
    source = acting.author.source
    if ready:  # prepared by another author, it is not this one's
        ready = {key: r for key, r in ready.items() if r.source == source}
    _, raw_entries = _parse_bundle(body, base_url)
    parsed = [
        _parse_entry(i, raw, base_url, "transaction", ready) for i, raw in enumerate(raw_entries)
    ]
    for entry in parsed:
        _authorized(entry, acting.authorize)
    resolved = _resolved_offline(parsed, acting.authorize, source, ready)

    def attempt(uow: UnitOfWork) -> tuple[list[_Entry], _Written]:
        decisions = acting.access(uow)
        if resolved is not None:
            entries = resolved
        else:
            # Resolution rewrites references in place and assigns new ids:
            # give each attempt fresh copies, so a retry starts clean.
            entries = [entry.fresh_copy() for entry in parsed]
            _resolve(uow, entries, acting.authorize, source, decisions.visible, ready)
        written = _Written()
        for entry in sorted(entries, key=lambda e: (_ORDER[e.method], e.index)):
            try:
                if entry.method in ("GET", "HEAD"):
                    entry.response = _read(uow, entry, base_url, decisions.visible)
                else:
                    entry.response = _write(
                        uow, entry, base_url, prefer, written, acting, decisions
                    )
            except GatewayError as exc:
                raise dataclasses.replace(
                    exc,
                    message=f"transaction failed at {entry.label}: {exc.message}",
                    issues=[
                        dataclasses.replace(
                            issue,
                            expression=issue.expression or (f"Bundle.entry[{entry.index}]",),
                        )
                        for issue in exc.issues
                    ],
                ) from exc
        written.record(uow, acting)
        return entries, written

    return attempt


def batch(
    store: Store,
    acting: Acting,
    body: Any,
    *,
    base_url: str,
    prefer: ReturnPreference,
) -> dict[str, Any]:
    """Process a batch Bundle for ``acting``; each entry on its own (one its
    scopes refuse, or that reads or changes what it may not see, is
    answered with its error)."""
    source = acting.author.source
    _, raw_entries = _parse_bundle(body, base_url)
    responses: list[dict[str, Any]] = [{} for _ in raw_entries]
    parsed: list[_Entry] = []
    for index, raw in enumerate(raw_entries):
        try:
            parsed.append(_parse_entry(index, raw, base_url, "batch"))
        except GatewayError as exc:
            responses[index] = _error_entry(exc)
    for entry in sorted(parsed, key=lambda e: (_ORDER[e.method], e.index)):
        try:
            _authorized(entry, acting.authorize)
            if entry.method in ("GET", "HEAD"):
                visible = acting.access(store).visible
                responses[entry.index] = _read(store, entry, base_url, visible)
                continue

            offline = _resolved_offline([entry], acting.authorize, source)

            def attempt(
                uow: UnitOfWork, entry: _Entry = entry, offline: list[_Entry] | None = offline
            ) -> tuple[dict[str, Any], _Written]:
                decisions = acting.access(uow)
                if offline is not None:
                    target = offline[0]
                else:
                    target = entry.fresh_copy()
                    _resolve(uow, [target], acting.authorize, source, decisions.visible)
                written = _Written()
                response = _write(uow, target, base_url, prefer, written, acting, decisions)
                written.record(uow, acting)
                return response, written

            response, _ = write.in_unit_of_work(store, _noting(attempt, acting))
            responses[entry.index] = response
        except GatewayError as exc:
            responses[entry.index] = _error_entry(exc)
    return {"resourceType": "Bundle", "type": "batch-response", "entry": responses}


def _error_entry(error: GatewayError) -> dict[str, Any]:
    return {
        "response": {
            "status": outcomes.status_line(outcomes.status_of(error)),
            "outcome": outcomes.operation_outcome(error),
        }
    }
