"""create, update, patch, delete and their conditional forms.

https://hl7.org/fhir/R4/http.html#create, #update, #patch, #delete, #cond-update. Each
public function opens one unit of work; the ``*_in`` forms run inside a unit of
work the caller holds, which is how a transaction Bundle makes many writes one.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import orjson

from conformance.registry import TypeInteraction
from conformance.validation import validate_resource
from consent.labels import labelled
from gateway import fhirjson
from gateway.access.facts import labelling_codes, labels_of, named_records, person_of
from gateway.access.index import PERSON_OF, stamped
from gateway.access.index import entries as index_entries
from gateway.access.people import ensure_interpretable
from gateway.access.provenance_rows import provenance_entries
from gateway.access.subjects import with_person_resolved
from gateway.errors import (
    Conflict,
    InvalidRequest,
    Issue,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from gateway.interactions.patching import Patch
from gateway.interactions.provenance import ACTIVITIES, Author, provenance
from gateway.interactions.read import not_known
from gateway.interactions.types import Access, Acting, Visible, require
from gateway.notifications import outbox, state
from gateway.notifications import subscriptions as subscription_requests
from gateway.search.matching import matching_ids
from gateway.store import (
    CurrentVersion,
    Index,
    IndexEntry,
    IndexRows,
    Store,
    StoredVersion,
    UnitOfWork,
    index_rows,
    last_content,
    more_rows,
)
from gateway.store.values import ReferenceValue

T = TypeVar("T")


@dataclass(frozen=True)
class WriteResult:
    """What a write did. ``created`` picks 201 over 200; ``matched`` says a
    conditional create found an existing resource and wrote nothing."""

    version: StoredVersion
    created: bool
    matched: bool = False


def new_id() -> str:
    """A server-assigned id: a UUIDv7 (RFC 9562 section 5.7), 48 bits of Unix
    milliseconds then version, variant and 74 random bits.

    Ids that grow with time keep every B-tree keyed by id (versions, current
    versions, the owner column of each index table) growing at its right
    edge, so a transaction of new resources dirties a few pages of each
    instead of one page per resource: with random ids a 100-resource
    transaction wrote 3.6-7.5 MB of SQLite WAL (more as the store grew), with
    these 2.0-2.7 MB, and its commit writes and syncs that much less.

    The id tells when the resource was created, to the millisecond, as a
    HAPI FHIR server's sequential ids tell the order of creation; whoever
    may see the resource sees its ``meta.lastUpdated`` anyway."""
    milliseconds = time.time_ns() // 1_000_000
    raw = bytearray(milliseconds.to_bytes(6, "big") + os.urandom(10))
    raw[6] = 0x70 | (raw[6] & 0x0F)  # version 7
    raw[8] = 0x80 | (raw[8] & 0x3F)  # variant 10 (RFC 9562)
    return str(uuid.UUID(bytes=bytes(raw)))


def _within(path_prefix: str, res_type: str, path: str) -> str:
    """``Patient.name`` inside ``Bundle.entry[2].resource.`` is
    ``Bundle.entry[2].resource.name``."""
    if not path_prefix:
        return path
    if path == res_type:
        return path_prefix.rstrip(".")
    return path_prefix + path.removeprefix(res_type + ".")


def checked_resource(
    body: Any,
    res_type: str,
    *,
    url_id: str | None = None,
    path_prefix: str = "",
    profile: str | None = None,
    valid: bool = False,
) -> dict[str, Any]:
    """The body as a valid ``res_type``, or ``InvalidRequest`` listing every
    problem with its element path. With ``url_id`` (update) the body's id must
    be present and equal to it. Valid means as R4 and as every UK Core profile
    its ``meta.profile`` claims, and with ``profile`` (``$validate``'s) as
    that profile too. ``valid``: the body was found so ahead (``Ready``);
    only its id is checked."""
    issues = [] if valid else validate_resource(body, res_type, profile=profile)
    if issues:
        # A resource that parses but uses a code outside a required binding
        # breaks the base profile: 422. Anything structural: 400.
        only_codes = all(i.code == "code-invalid" for i in issues)
        kind = Unprocessable if only_codes else InvalidRequest
        raise kind(
            f"the {res_type} is not valid FHIR R4: "
            + "; ".join(f"{i.path}: {i.message}" for i in issues[:5])
            + (f" (and {len(issues) - 5} more)" if len(issues) > 5 else ""),
            code="GW-0115" if only_codes else "GW-0110",
            issues=[
                Issue(i.code, i.message, (_within(path_prefix, res_type, i.path),)) for i in issues
            ],
        )
    assert isinstance(body, dict)
    if url_id is not None:
        body_id = body.get("id")
        if body_id is None:
            raise InvalidRequest(
                f"an update must carry the resource id; the URL says {url_id!r}",
                code="GW-0111",
                issues=[
                    Issue(
                        "required",
                        "id is missing",
                        (_within(path_prefix, res_type, f"{res_type}.id"),),
                    )
                ],
            )
        if body_id != url_id:
            raise InvalidRequest(
                f"the resource id {body_id!r} does not match the id in the URL {url_id!r}",
                code="GW-0112",
                issues=[
                    Issue(
                        "value",
                        "id does not match the URL",
                        (_within(path_prefix, res_type, f"{res_type}.id"),),
                    )
                ],
            )
    return body


@dataclass(frozen=True, slots=True)
class Prepared:
    """A resource ready to be stored as ``res_type/res_id``: its content with
    every element but the server's ``meta.versionId`` and ``meta.lastUpdated``,
    and the search index values of that content. Writers prepare outside the
    unit of work where they can, so the database's write lock is held for the
    writing alone, not for the index extraction."""

    res_type: str
    res_id: str
    content: dict[str, Any]
    index: list[IndexEntry] | IndexRows  # the rows made ahead, by a loader's worker


_SERVER_META = ("versionId", "lastUpdated")


def prepare(
    res_type: str, res_id: str, resource: dict[str, Any], source: str | None = None
) -> Prepared:
    """``source``, when given, is the author's ``meta.source`` (see
    ``gateway.interactions.provenance``); it replaces any the client sent.
    Restricted-data labels that the record's codes call for are added to
    its ``meta.security`` (``consent.labels``), before it is indexed."""
    content = _labelled(res_type, res_id, resource, source)
    return Prepared(res_type, res_id, content, index_entries(content))


def _labelled(
    res_type: str, res_id: str, resource: dict[str, Any], source: str | None
) -> dict[str, Any]:
    """``resource`` at ``res_type/res_id`` with the ``meta`` ``prepare`` gives it."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in _SERVER_META}
    if source is not None:
        meta["source"] = source
    security = labelled(meta.get("security") or [], labelling_codes(resource))
    if security is not None:
        meta["security"] = security
    return _with_meta(res_type, res_id, resource, meta)


def _prepared_provenance(res_id: str, record: dict[str, Any]) -> Prepared:
    """What ``prepare`` makes of a Provenance ``provenance`` made, indexed
    without the generic extraction (``provenance_entries``: the same rows)."""
    content = _labelled("Provenance", res_id, record, None)
    return Prepared("Provenance", res_id, content, provenance_entries(content))


def _with_meta(
    res_type: str, res_id: str, resource: dict[str, Any], meta: dict[str, Any]
) -> dict[str, Any]:
    content: dict[str, Any] = {"resourceType": res_type, "id": res_id, "meta": meta}
    content.update((k, v) for k, v in resource.items() if k not in content)
    return content


@dataclass(frozen=True, slots=True)
class Ready:
    """A resource validated (as its type, no profile asked for) and
    prepared ahead of its write, by a loader's worker process (``prepare``
    and the validator are pure): what it was made from, its JSON byte for
    byte and the author's ``meta.source``, and what preparing it gave (its
    ``meta`` and index rows; the content is the resource with that meta,
    not sent twice). A transaction takes it for a resource that is still
    exactly that (``fits``); any other it validates and prepares itself."""

    stated: bytes
    source: str | None
    res_type: str
    res_id: str
    meta: dict[str, Any]
    index: IndexRows
    # Whether a transaction leaves its references as they are (none names
    # another entry or a search): resolving it then need not walk it.
    plain: bool = False

    def fits(self, resource: dict[str, Any]) -> bool:
        return orjson.dumps(resource) == self.stated

    def prepared(self, resource: dict[str, Any]) -> Prepared:
        """What ``prepare`` makes of ``resource``, which ``fits``."""
        content = _with_meta(self.res_type, self.res_id, resource, self.meta)
        return Prepared(self.res_type, self.res_id, content, self.index)


def ready_ahead(resource: dict[str, Any], source: str | None) -> Ready | None:
    """``resource`` validated and prepared for a write by ``source``, or
    ``None`` when it is not valid (the write refuses it, saying why)."""
    res_type, res_id = resource.get("resourceType"), resource.get("id")
    if not (isinstance(res_type, str) and isinstance(res_id, str)):
        return None
    if validate_resource(resource, res_type):
        return None
    prepared = prepare(res_type, res_id, resource, source)
    meta = prepared.content["meta"]
    index = prepared.index
    assert not isinstance(index, IndexRows)
    person = next(  # whose record it is, as ``stamped`` finds them
        (
            e.value.target_id
            for e in index
            if e.param == PERSON_OF and isinstance(e.value, ReferenceValue)
        ),
        None,
    )
    rows = index_rows(index, person)
    plain = all(not resolved_in_transaction(r) for r in references(resource))
    return Ready(orjson.dumps(resource), source, res_type, res_id, meta, rows, plain)


def names_an_entry(reference: str) -> bool:
    """Whether ``reference`` can only name an entry of its transaction (by
    its full URL: a ``urn:uuid:`` or ``urn:oid:``)."""
    return reference.startswith(("urn:uuid:", "urn:oid:"))


def is_conditional(reference: str) -> bool:
    """Whether ``reference`` is a search a transaction resolves (``Type?...``)."""
    return "?" in reference and not reference.startswith(("http:", "https:", "#"))


def resolved_in_transaction(reference: str) -> bool:
    """Whether a transaction resolves ``reference`` (to an entry's id, or
    by a search) rather than store it as it is, whatever its entries'
    full URLs (``bundle._resolve``)."""
    return names_an_entry(reference) or is_conditional(reference)


def references(value: Any) -> Iterator[str]:
    """Every ``reference`` string in ``value``, as a transaction finds them."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def _stamped(index: list[IndexEntry] | IndexRows, instant: str) -> Index:
    """``stamped``, of entries or of the rows made of them ahead."""
    if not isinstance(index, IndexRows):
        return stamped(index, instant)
    # The stamp's rows keyed as ``stamped`` keys them: after an entry naming
    # the person, left out again.
    named = [] if index.person is None else [_person_entry(index.person)]
    return more_rows(index, stamped(named, instant)[len(named) :])


def _person_entry(person: str) -> IndexEntry:
    return IndexEntry(PERSON_OF, ReferenceValue(None, "Patient", person))


def store_version(
    uow: UnitOfWork,
    prepared: Prepared,
    *,
    method: str,
    expected_version: int | None = None,
    fresh_id: bool = False,
) -> WriteResult:
    """Append the next version of the prepared resource with fresh meta.
    ``fresh_id`` says the server just minted the id, so there is no earlier
    version to look up (were there one, appending version 1 would conflict)."""
    res_type, res_id = prepared.res_type, prepared.res_id
    previous = None if fresh_id else uow.current(res_type, res_id)
    _check_if_match(res_type, res_id, previous, expected_version)
    named = with_person_resolved(uow, prepared.content)
    if named is not None:  # a person named by identifier: by their Patient's id too
        prepared = Prepared(res_type, res_id, named, index_entries(named))
    if res_type == "Consent":
        ensure_interpretable(uow, prepared.content)
    elif res_type == "Subscription":
        subscription_requests.read(prepared.content)  # deliverable as asked, or refused
    version = previous.version + 1 if previous else 1
    watched = outbox.watches(res_type)
    before = (
        outbox.before_of(uow, res_type, res_id)
        if watched and previous is not None and not previous.deleted
        else None
    )
    last_updated = fhirjson.instant()
    meta = {**prepared.content["meta"], "versionId": str(version), "lastUpdated": last_updated}
    stored = uow.append(
        StoredVersion(
            res_type=res_type,
            res_id=res_id,
            version=version,
            last_updated=last_updated,
            method=method,
            content=fhirjson.dumps({**prepared.content, "meta": meta}),
        ),
        _stamped(prepared.index, last_updated),
    )
    if watched:
        # The events this change is, on file with it or not at all.
        outbox.record(uow, before, prepared.content, stored)
    return WriteResult(version=stored, created=previous is None or previous.deleted)


def _check_if_match(
    res_type: str,
    res_id: str,
    previous: CurrentVersion | StoredVersion | None,
    expected_version: int | None,
) -> None:
    """``PreconditionFailed`` unless ``previous`` is the version If-Match asked for."""
    if expected_version is None or (
        previous is not None and not previous.deleted and previous.version == expected_version
    ):
        return
    found = (
        "no current version"
        if previous is None or previous.deleted
        else f"version {previous.version}"
    )
    raise PreconditionFailed(
        f"If-Match asked for version {expected_version} of {res_type}/{res_id}, but it has {found}",
        code="GW-0412",
    )


def _single_match(
    uow: UnitOfWork, res_type: str, query: str, what: str, visible: Visible
) -> str | None:
    uow.lock_type(res_type)
    matches = matching_ids(uow, res_type, query, visible=visible)
    if len(matches) > 1:
        raise PreconditionFailed(
            f"{what} criteria {query!r} match more than one {res_type}", code="GW-0413"
        )
    return matches[0] if matches else None


def create_in(
    uow: UnitOfWork,
    prepared: Prepared,
    *,
    access: Access,
    if_none_exist: str | None = None,
    fresh_id: bool = False,
) -> WriteResult:
    """Create the prepared resource (its id is minted by the server, or assigned
    up front by a transaction for ``urn:uuid`` references). With
    ``if_none_exist``, return the single existing match the requester may see
    instead of creating."""
    require(prepared.res_type, TypeInteraction.CREATE)
    if if_none_exist:
        existing = _single_match(
            uow, prepared.res_type, if_none_exist, "If-None-Exist", access.visible
        )
        if existing is not None:
            found = uow_read(uow, prepared.res_type, existing)
            return WriteResult(version=found, created=False, matched=True)
    if not fresh_id and writable(uow, access, prepared.res_type, prepared.res_id) != _NOTHING:
        # Only a transaction assigns ids up front, fresh ones: never reached.
        raise not_known(prepared.res_type, prepared.res_id, creating=True)
    access.check_change(None, prepared.content)
    return store_version(uow, prepared, method="POST", fresh_id=fresh_id)


def update_in(
    uow: UnitOfWork,
    prepared: Prepared,
    *,
    acting: Acting,
    access: Access,
    if_match: int | None = None,
) -> WriteResult:
    """Update, or create at the id given when nothing the requester may see
    stands there and the id is one it may assign (``Acting.may_assign_id``);
    anything else at an id it may not see is "not known", whether something
    is hidden there or nothing is."""
    require(prepared.res_type, TypeInteraction.UPDATE)
    res_type, res_id = prepared.res_type, prepared.res_id
    live, hidden, revivable = writable(uow, access, res_type, res_id)
    if live is None and (hidden or not (revivable or acting.may_assign_id(res_type, res_id))):
        raise not_known(res_type, res_id, creating=True)
    access.check_change(live, prepared.content)
    return store_version(uow, prepared, method="PUT", expected_version=if_match)


def conditional_update_in(
    uow: UnitOfWork,
    res_type: str,
    query: str,
    resource: dict[str, Any],
    *,
    acting: Acting,
    access: Access,
    if_match: int | None = None,
) -> WriteResult:
    """``PUT [type]?criteria``: update the one match the requester may see;
    with none, create (at the body's id, as ``update_in`` would, or at a new
    one). The id depends on what matches, so the resource is prepared in
    here."""
    require(res_type, TypeInteraction.UPDATE)
    match = _single_match(uow, res_type, query, "conditional update", access.visible)
    body_id = resource.get("id")
    if match is not None and body_id is not None and body_id != match:
        raise InvalidRequest(
            f"the resource id {body_id!r} differs from the id of the {res_type} the "
            "criteria matched",
            code="GW-0114",
        )
    prepared = prepare(res_type, match or body_id or new_id(), resource, acting.author.source)
    if match is None and body_id is None:
        access.check_change(None, prepared.content)
        return store_version(uow, prepared, method="PUT", fresh_id=True)
    return update_in(uow, prepared, acting=acting, access=access, if_match=if_match)


def patch_in(
    uow: UnitOfWork,
    res_type: str,
    res_id: str,
    patch: Patch,
    *,
    acting: Acting,
    access: Access,
    if_match: int | None = None,
) -> WriteResult:
    """The live version the requester may see, changed by ``patch`` and
    written as an update; anything else at the id is "not known", whether
    something is hidden there or nothing is. A patch never creates."""
    require(res_type, TypeInteraction.PATCH)
    live = writable(uow, access, res_type, res_id).live
    if live is None or live.content is None:
        raise not_known(res_type, res_id)
    # A stale client learns that first, not that its patch no longer applies.
    _check_if_match(res_type, res_id, live, if_match)
    patched = patch.apply(fhirjson.loads(live.content))
    resource = checked_resource(patched, res_type, url_id=res_id)
    prepared = prepare(res_type, res_id, resource, acting.author.source)
    access.check_change(live, prepared.content)
    return store_version(uow, prepared, method="PATCH", expected_version=if_match)


def conditional_patch_in(
    uow: UnitOfWork,
    res_type: str,
    query: str,
    patch: Patch,
    *,
    acting: Acting,
    access: Access,
    if_match: int | None = None,
) -> WriteResult:
    """``PATCH [type]?criteria``: patch the one match the requester may see;
    with none, the criteria name nothing it may know of."""
    require(res_type, TypeInteraction.PATCH)
    match = _single_match(uow, res_type, query, "conditional patch", access.visible)
    if match is None:
        raise NotFound(f"no {res_type} the criteria {query!r} match is known", code="GW-0416")
    return patch_in(uow, res_type, match, patch, acting=acting, access=access, if_match=if_match)


def delete_in(
    uow: UnitOfWork, res_type: str, res_id: str, *, access: Access
) -> StoredVersion | None:
    """Append a deleted version; ``None`` if there was nothing live the
    requester may see to delete (deleting twice, something never created or
    something hidden all succeed and write nothing, alike)."""
    require(res_type, TypeInteraction.DELETE)
    live = writable(uow, access, res_type, res_id).live
    if live is None:
        return None
    access.check_change(live, None)
    return uow.append(
        StoredVersion(
            res_type=res_type,
            res_id=res_id,
            version=live.version + 1,
            last_updated=fhirjson.instant(),
            method="DELETE",
            content=None,
        ),
        (),
    )


class Standing(NamedTuple):
    """What stands at an id, as a write by the requester sees it."""

    live: StoredVersion | None  # the live version it may see and change
    hidden: bool  # something it may not see: a live version, or a deletion of one
    revivable: bool  # a deletion of what it could see: it may write over it


_NOTHING = Standing(None, hidden=False, revivable=False)


def writable(uow: UnitOfWork, access: Access, res_type: str, res_id: str) -> Standing:
    """What stands at ``res_type/res_id`` for a write. Callers answer the
    hidden exactly as the missing: a write must not tell them apart, nor
    overwrite what the requester does not know."""
    current = uow.read(res_type, res_id)
    if current is None:
        return Standing(None, hidden=False, revivable=False)
    if current.deleted:
        last = last_content(uow, current)
        seen = last is None or access.visible(last)
        return Standing(None, hidden=not seen, revivable=seen)
    if not access.visible(current):
        return Standing(None, hidden=True, revivable=False)
    return Standing(current, hidden=False, revivable=False)


def record_provenance(
    uow: UnitOfWork, author: Author, method: str, written: list[StoredVersion]
) -> None:
    """The Provenance of what one request wrote by ``method`` (POST, PUT or
    DELETE)."""
    if not written:
        return
    # A Subscription's subscriber is the client that wrote it (the gateway
    # writing one, its status say, changes no subscriber).
    if not author.is_gateway:
        state.noted(uow, author.client_id, written)
    for group in _shared_alike(written):
        record = provenance(author, ACTIVITIES[method], group)
        store_version(uow, _prepared_provenance(new_id(), record), method="POST", fresh_id=True)


def _shared_alike(written: list[StoredVersion]) -> list[list[StoredVersion]]:
    """``written`` in groups that consent treats alike: one person's, with
    the same security labels. A Provenance is shown only to those who may
    see all it names, so one naming a mental health record beside an
    allergy would hide how the allergy came to be from everyone who may see
    only the allergy. A resource shown only with the records it names (a
    visit with its diagnoses, a List) carries their labels as its own here;
    one naming a record written before has a group of its own, as has a
    deletion, whose content is gone."""
    contents = {
        f"{v.res_type}/{v.res_id}": fhirjson.loads(v.content)
        for v in written
        if v.content is not None
    }
    labels = {reference: labels_of(resource) for reference, resource in contents.items()}
    groups: dict[tuple[Any, ...], list[StoredVersion]] = {}
    for version in written:
        reference = f"{version.res_type}/{version.res_id}"
        resource = contents.get(reference) if version.content is not None else None
        if resource is None:
            key: tuple[Any, ...] = ("deleted", version.res_type, version.res_id)
        else:
            named = [r.split("/_history/")[0] for r in named_records(resource)]
            if any(r not in labels for r in named):
                key = ("names", version.res_type, version.res_id)
            else:
                high_water = labels[reference].union(*(labels[r] for r in named))
                key = (person_of(resource), high_water)
        groups.setdefault(key, []).append(version)
    return list(groups.values())


def uow_read(uow: UnitOfWork, res_type: str, res_id: str) -> StoredVersion:
    """Read inside a unit of work (the version it sees is locked for it)."""
    found = uow.read(res_type, res_id)
    if found is None or found.deleted:  # only live resources match
        raise PreconditionFailed(f"{res_type}/{res_id} changed during the request")
    return found


# -- one unit of work each -------------------------------------------------------

_ATTEMPTS = 3


def in_unit_of_work(store: Store, work: Callable[[UnitOfWork], T]) -> T:
    """Run ``work`` in a unit of work, again if a concurrent writer won a race
    for the same version (two update-as-creates of one new id, say): the retry
    sees the winner's version and writes the next one, as if the two had
    arrived one after the other. ``work`` must be safe to repeat; anything it
    wrote is rolled back with the unit of work it lost in."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with store.unit_of_work() as uow:
                return work(uow)
        except Conflict:
            if attempt == _ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def create(
    store: Store,
    acting: Acting,
    res_type: str,
    body: Any,
    *,
    if_none_exist: str | None = None,
) -> WriteResult:
    require(res_type, TypeInteraction.CREATE)
    acting.authorize(res_type, "c")
    if if_none_exist:
        acting.authorize(res_type, "s")
    resource = checked_resource(body, res_type)
    prepared = prepare(res_type, new_id(), resource, acting.author.source)

    def work(uow: UnitOfWork) -> WriteResult:
        result = create_in(
            uow, prepared, access=acting.access(uow), if_none_exist=if_none_exist, fresh_id=True
        )
        if not result.matched:
            record_provenance(uow, acting.author, "POST", [result.version])
        return _noted(uow, acting, result)

    return in_unit_of_work(store, work)


def update(
    store: Store,
    acting: Acting,
    res_type: str,
    res_id: str,
    body: Any,
    *,
    if_match: int | None = None,
) -> WriteResult:
    require(res_type, TypeInteraction.UPDATE)
    acting.authorize(res_type, "u")
    resource = checked_resource(body, res_type, url_id=res_id)
    prepared = prepare(res_type, res_id, resource, acting.author.source)

    def work(uow: UnitOfWork) -> WriteResult:
        result = update_in(
            uow, prepared, acting=acting, access=acting.access(uow), if_match=if_match
        )
        record_provenance(uow, acting.author, _method(result), [result.version])
        return _noted(uow, acting, result)

    return in_unit_of_work(store, work)


def conditional_update(
    store: Store,
    acting: Acting,
    res_type: str,
    query: str,
    body: Any,
    *,
    if_match: int | None = None,
) -> WriteResult:
    require(res_type, TypeInteraction.UPDATE)
    acting.authorize(res_type, "u")
    acting.authorize(res_type, "s")
    resource = checked_resource(body, res_type)

    def work(uow: UnitOfWork) -> WriteResult:
        result = conditional_update_in(
            uow,
            res_type,
            query,
            resource,
            acting=acting,
            access=acting.access(uow),
            if_match=if_match,
        )
        record_provenance(uow, acting.author, _method(result), [result.version])
        return _noted(uow, acting, result)

    return in_unit_of_work(store, work)


def patch(
    store: Store,
    acting: Acting,
    res_type: str,
    res_id: str,
    patch: Patch,
    *,
    if_match: int | None = None,
) -> WriteResult:
    """``PATCH [type]/[id]``. The requester must be allowed to read what it
    changes as well as to change it: a ``test`` operation reads."""
    require(res_type, TypeInteraction.PATCH)
    acting.authorize(res_type, "r")
    acting.authorize(res_type, "u")

    def work(uow: UnitOfWork) -> WriteResult:
        result = patch_in(
            uow,
            res_type,
            res_id,
            patch,
            acting=acting,
            access=acting.access(uow),
            if_match=if_match,
        )
        record_provenance(uow, acting.author, "PATCH", [result.version])
        return _noted(uow, acting, result)

    return in_unit_of_work(store, work)


def conditional_patch(
    store: Store,
    acting: Acting,
    res_type: str,
    query: str,
    patch: Patch,
    *,
    if_match: int | None = None,
) -> WriteResult:
    """``PATCH [type]?criteria``."""
    require(res_type, TypeInteraction.PATCH)
    acting.authorize(res_type, "r")
    acting.authorize(res_type, "u")
    acting.authorize(res_type, "s")

    def work(uow: UnitOfWork) -> WriteResult:
        result = conditional_patch_in(
            uow, res_type, query, patch, acting=acting, access=acting.access(uow), if_match=if_match
        )
        record_provenance(uow, acting.author, "PATCH", [result.version])
        return _noted(uow, acting, result)

    return in_unit_of_work(store, work)


def delete(store: Store, acting: Acting, res_type: str, res_id: str) -> StoredVersion | None:
    """The deletion written, or ``None`` when there was nothing live the
    requester may see there."""
    require(res_type, TypeInteraction.DELETE)
    acting.authorize(res_type, "d")

    def work(uow: UnitOfWork) -> StoredVersion | None:
        deleted = delete_in(uow, res_type, res_id, access=acting.access(uow))
        if deleted is not None:
            record_provenance(uow, acting.author, "DELETE", [deleted])
            acting.wrote(deleted)
            acting.committing(uow)
        return deleted

    return in_unit_of_work(store, work)


def _method(result: WriteResult) -> str:
    """The Provenance activity of a PUT: a create when nothing stood there."""
    return "POST" if result.created else "PUT"


def _noted(uow: UnitOfWork, acting: Acting, result: WriteResult) -> WriteResult:
    """``result``, its version noted for the audit entry when it wrote one,
    and what must commit with it recorded in ``uow`` (the last step of the
    work: a retry after a lost race starts again before it)."""
    if not result.matched:
        acting.wrote(result.version)
        acting.committing(uow)
    return result
