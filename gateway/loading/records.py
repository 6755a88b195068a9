"""Loading source files through the same write path as the API: each source
record becomes one transaction (all of its resources, or none), authored by
the source organisation (``meta.source``, Provenance), labelled and indexed
like any write. Records that cannot be mapped are rejected with their
position and reason; the rest still load. Loading a file again changes
nothing: ids are derived from the source and a resource whose content has
not changed is not written again.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from gateway import fhirjson
from gateway.errors import Conflict, GatewayError
from gateway.interactions import bundle
from gateway.interactions.types import Acting, ReturnPreference
from gateway.interactions.write import Ready
from gateway.loading.ids import id_key
from gateway.loading.ledger import left_out, remember, seen, superseded_by
from gateway.loading.matches import note_probable_matches
from gateway.loading.person import Source, note_given, sources_on_file, with_what_is_known
from gateway.loading.reconcile import (
    as_stood,
    newly_labelled,
    outdated,
    same,
    with_labels_kept,
    with_what_is_gathered,
)
from gateway.loading.source import ForSource, author_for
from gateway.loading.sources import FORMAT, SourceRecord
from gateway.loading.workers import Mapper, WorkerFailed
from gateway.notifications import outbox
from gateway.search.matching import matching_ids
from gateway.store import Querier, Store, StoredVersion, UnitOfWork
from mappings.ukcore import typed_id

# Told after each record: the report so far and how many bytes have been read.
Progress = Callable[["LoadReport", int], None]


@dataclass(frozen=True)
class Rejection:
    file: str
    record: str  # where in the file: "message 3 (byte 1042)"
    key: str  # the source's own id for it, when it could be read
    reason: str


@dataclass
class LoadReport:
    records: int = 0
    loaded: int = 0
    unchanged: int = 0
    # Of those unchanged, how many were older than a record already loaded.
    superseded: int = 0
    written: Counter[str] = field(default_factory=Counter)
    rejections: list[Rejection] = field(default_factory=list)
    probable_matches: int = 0
    # Each record's outcome, in order, when the caller answers per record.
    outcomes: list[RecordOutcome] | None = None

    def outcome(self, record: SourceRecord, status: str, reason: str = "") -> None:
        if self.outcomes is not None:
            self.outcomes.append(RecordOutcome(record.where, record.key, status, reason))


@dataclass(frozen=True)
class RecordOutcome:
    where: str
    key: str
    status: str  # loaded, unchanged or rejected
    reason: str = ""


def _stored(reader: Querier, res_type: str, res_id: str) -> dict[str, Any] | None:
    """The live stored resource, meta aside (the gateway's own: versions,
    labels, source), or ``None`` when there is none."""
    return _content(reader.read(res_type, res_id))


def _content(found: StoredVersion | None) -> dict[str, Any] | None:
    """``found``'s resource, meta aside, if it is live."""
    if found is None or found.deleted or found.content is None:
        return None
    stored: dict[str, Any] = fhirjson.loads(found.content)
    stored.pop("meta", None)
    return stored


@dataclass
class _Done:
    """What became of one record, told to the report once it stands."""

    status: str  # loaded, unchanged or rejected
    reason: str = ""
    written: list[str] = field(default_factory=list)  # the resource types written
    versions: list[StoredVersion] = field(default_factory=list)
    matches: int = 0
    superseded: bool = False  # older than the source's latest record of the person


# How many records share one commit when a file or a push is loaded: a
# commit waits for the disk, and one per record was most of the time taken.
BATCH = 100
_ATTEMPTS = 3


def load_record(
    store: Store,
    fmt: str,
    acting: Acting,
    record: SourceRecord,
    report: LoadReport,
    file: str,
    *,
    within: UnitOfWork | None = None,
) -> Rejection | None:
    """Write one mapped source record (all its resources, or none), unless
    it was loaded before; the rejection, if it was refused. ``within`` is a
    unit of work shared with other records (each is undone alone if it is
    refused); without one, the record commits on its own. ``acting`` is
    the source organisation: the gateway loading its file
    (``gateway.loading.source``), or over the API the pushing client's
    repository, whose scopes and consent decisions apply exactly as for a
    transaction it sent itself; it is told each version written (for the
    audit entry) and records what must commit with them
    (``Acting.committing``) in the unit of work that commits them."""
    if within is None:
        with store.unit_of_work() as uow:
            done = _alone(uow, fmt, acting, record)
            _noted(acting, done)
            acting.committing(uow)
    else:
        done = _alone(within, fmt, acting, record)
        _noted(acting, done)
    report.records += 1
    report.outcome(record, done.status, done.reason)
    if done.status == "rejected":
        rejection = Rejection(file, record.where, record.key, done.reason)
        report.rejections.append(rejection)
        return rejection
    if done.status == "unchanged":
        report.unchanged += 1
        report.superseded += int(done.superseded)
        return None
    report.loaded += 1
    report.written.update(done.written)
    report.probable_matches += done.matches
    return None


def _noted(acting: Acting, done: _Done) -> None:
    """Tell ``acting`` the versions a record wrote, once it stands."""
    if done.status == "loaded":
        for version in done.versions:
            acting.wrote(version)


def _alone(uow: UnitOfWork, fmt: str, acting: Acting, record: SourceRecord) -> _Done:
    """One record inside a savepoint: kept if it loads, undone if it is
    refused; tried again if a concurrent writer won a race for a version."""
    for _ in range(_ATTEMPTS):
        uow.execute("SAVEPOINT source_record", [])
        try:
            done = _load(uow, fmt, acting, record)
        except Conflict:
            uow.execute("ROLLBACK TO SAVEPOINT source_record", [])
            uow.execute("RELEASE SAVEPOINT source_record", [])
            continue
        if done.status == "rejected":
            uow.execute("ROLLBACK TO SAVEPOINT source_record", [])
        uow.execute("RELEASE SAVEPOINT source_record", [])
        return done
    return _Done("rejected", "other writers kept changing the same resources: send it again")


def _load(uow: UnitOfWork, fmt: str, acting: Acting, record: SourceRecord) -> _Done:
    source_org = acting.author.org_ods
    if record.resources is None:
        return _Done("rejected", record.problem or "")
    if record.key and seen(uow, source_org, fmt, record.key):
        return _Done("unchanged")  # sent again: it changes nothing twice
    resources = list(record.resources)
    stood: frozenset[str] = frozenset()  # what the source's later records stated
    if (later := superseded_by(uow, source_org, fmt, record)) is not None:
        if record.snapshot:
            remember(uow, source_org, fmt, record, None)  # archived, as every record is
            reason = f"a later record of the person (as at {later.moment}) is on file"
            return _Done("unchanged", reason, superseded=True)
        if record.merged_from is None:
            # What the source's later records state stands: the person, a
            # visit as its discharge left it (an update replayed late must
            # not admit the person again). The rest of this one (a diagnosis
            # no later message carried, an allergy) follows its own rules.
            resources = [r for r in resources if r["resourceType"] != "Patient"]
            stood = later.stated
    if record.cancels is not None:
        cancelled = uow.read("Encounter", record.cancels)
        if cancelled is None or cancelled.deleted:
            return _Done("rejected", "the visit it cancels was never admitted here")
    if record.merged_from is not None:
        merged = _merge(uow, record.merged_from, resources[0])
        if merged is None:
            return _Done(
                "rejected",
                f"the record it merges away (Patient/{record.merged_from}) is not known",
            )
        resources = merged
    try:
        resources = [_linked(uow, r) for r in resources]
    except _UnknownLink as exc:
        return _Done("rejected", str(exc))
    found = [uow.read(r["resourceType"], r["id"]) for r in resources]
    if stood:
        # One a later record stated that is gone since (a visit cancelled)
        # stays gone.
        on_file = [
            typed_id(r) not in stood or (v is not None and not v.deleted)
            for r, v in zip(resources, found, strict=True)
        ]
        resources = [r for r, kept in zip(resources, on_file, strict=True) if kept]
        found = [v for v, kept in zip(found, on_file, strict=True) if kept]
    if record.labels_from:
        resources = with_labels_kept(uow, resources, found, record.labels_from)
    before = [_content(version) for version in found]
    by = Source(source_org.upper(), fmt, record.key, record.as_at)
    person: dict[str, Any] | None = None  # the person as this record leaves them
    given: dict[str, str] = {}  # the elements of the person it gave
    stated = []
    for r, b in zip(resources, before, strict=True):
        if b is not None and typed_id(r) in stood:
            stated.append(as_stood(r, b, record.gathered))
        elif r["resourceType"] == "Patient" and r["id"] == record.patient_id:
            known = with_what_is_known(r, b, by, sources_on_file(uow, r["id"], b))
            person, given = known.resource, known.given
            stated.append(person)
        else:
            # Another Patient (one a merge retires) is written as it is given.
            stated.append(with_what_is_gathered(r, b, record.gathered))
    new_people = [
        r
        for r, b in zip(resources, before, strict=True)
        if r["resourceType"] == "Patient" and b is None
    ]
    changes = [
        (r, v)
        for r, b, v in zip(stated, before, found, strict=True)
        if (not same(r, b) or newly_labelled(r, v)) and not outdated(r, b, record.dated_by)
    ]
    # A person on file whom the source may not see yet is written after its
    # other resources, which may be what gives it its relationship (an open
    # service, a residence); if they do not, the person is left as they are.
    unseen = [_hidden_person(uow, r, v, acting) for r, v in changes]
    hidden = [change for change, unseen_now in zip(changes, unseen, strict=True) if unseen_now]
    changed = [r for (r, _), unseen_now in zip(changes, unseen, strict=True) if not unseen_now]
    retired = left_out(uow, source_org, fmt, record, stated) if record.snapshot else []
    versions: list[StoredVersion] = []
    try:
        if changed or retired:
            versions = _write_all(uow, changed, acting, retired, record.ready)
        seen_now = [r for r, v in hidden if not _hidden_person(uow, r, v, acting)]
        if seen_now:
            versions += _write_all(uow, seen_now, acting, ready=record.ready)
            changed += seen_now
    except Conflict:
        raise
    except GatewayError as exc:
        return _Done("rejected", exc.message)
    remember(uow, source_org, fmt, record, stated)
    if person is not None and _taken(uow, person, changes, changed, acting):
        note_given(uow, person["id"], by, given)
    if not (changed or retired):
        return _Done("unchanged")
    outbox.record_loaded(uow, fmt, record.patient_id)
    matches = sum(note_probable_matches(uow, patient) for patient in new_people)
    return _Done("loaded", "", [r["resourceType"] for r in changed], versions, matches)


def _taken(
    uow: UnitOfWork,
    person: dict[str, Any],
    changes: list[tuple[dict[str, Any], StoredVersion | None]],
    written: list[dict[str, Any]],
    acting: Acting,
) -> bool:
    """Whether the source's view of ``person`` was taken: written, or, where
    it changed nothing, one the source may see (a source that does not yet
    care for the person gives none of their elements)."""
    if any(r is person for r in written):
        return True
    if any(r is person for r, _ in changes):
        return False  # a person the source may not see, left as they were
    return not _hidden_person(uow, person, uow.read("Patient", person["id"]), acting)


def _hidden_person(
    uow: UnitOfWork,
    resource: dict[str, Any],
    stored: StoredVersion | None,
    acting: Acting,
) -> bool:
    """Whether ``resource`` is a Patient already on file that the pushing
    source may not see (it has no care relationship with them). Such a
    person is not written: writing the Patient as the source's would make it
    the Patient's author, and so show it what others recorded. The source's
    resources are still linked to them, and what it said of them is kept
    with its record."""
    if resource["resourceType"] != "Patient" or stored is None:
        return False
    return not acting.access(uow).visible(stored)


def _write_all(
    uow: UnitOfWork,
    resources: list[dict[str, Any]],
    acting: Acting,
    retired: list[str] | None = None,
    ready: Mapping[str, Ready] | None = None,
) -> list[StoredVersion]:
    """Write ``resources`` whole, at their ids, and delete ``retired``, as
    one transaction Bundle in ``uow``; the versions written. ``ready``: as
    ``SourceRecord.ready``."""
    entries: list[dict[str, Any]] = [
        {"resource": r, "request": {"method": "PUT", "url": typed_id(r)}} for r in resources
    ]
    entries += [{"request": {"method": "DELETE", "url": url}} for url in retired or []]
    _, written = bundle.transaction_in(
        uow,
        acting,
        {"resourceType": "Bundle", "type": "transaction", "entry": entries},
        base_url="",
        prefer=ReturnPreference.MINIMAL,
        ready=ready,
    )
    return written


class _UnknownLink(ValueError):
    """A record links to a person the gateway does not know yet."""


def _linked(store: Querier, resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` with its links to people named by a source's own id
    (``Patient?identifier=...``) made references to the Patients they name,
    so what is stored, and compared, is a plain reference."""
    patient = resource.get("patient")
    if not (isinstance(patient, dict) and str(patient.get("reference", "")).startswith("Patient?")):
        return resource
    query = str(patient["reference"]).removeprefix("Patient?")
    found = matching_ids(store, "Patient", query, visible=None)
    if len(found) != 1:
        value = query.rpartition("|")[2]
        raise _UnknownLink(
            f"the person it links to ({value}) is "
            + ("not known here yet: load their record first" if not found else "ambiguous")
        )
    return {**resource, "patient": {**patient, "reference": f"Patient/{found[0]}"}}


# What names a person without being their record: these keep pointing at
# the record merged away (Provenance and audit say what happened to it).
_NOT_REPOINTED = frozenset({"Patient", "Provenance", "AuditEvent"})


def _merge(
    store: Querier, retired_id: str, survivor: dict[str, Any]
) -> list[dict[str, Any]] | None:
    """A merge as whole resources to write: the retired Patient inactive and
    ``replaced-by`` the survivor, the survivor ``replaces`` it, and every
    record that named the retired one re-pointed to the survivor. ``None``
    when the retired Patient is not known."""
    retired = _stored(store, "Patient", retired_id)
    if retired is None:
        return None
    retired["active"] = False
    retired["link"] = [{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}]
    survivor = {
        **survivor,
        "link": [{"other": {"reference": f"Patient/{retired_id}"}, "type": "replaces"}],
    }
    written = [survivor, retired]
    rows = store.select(
        "SELECT DISTINCT res_type, res_id FROM search_reference "
        "WHERE target_type = 'Patient' AND target_id = ?",
        [retired_id],
    )
    old, new = f"Patient/{retired_id}", f"Patient/{survivor['id']}"
    for res_type, res_id in rows:
        if str(res_type) in _NOT_REPOINTED:
            continue
        current = store.read(str(res_type), str(res_id))
        if current is None or current.content is None:
            continue
        moved = orjson.loads(current.content.replace(f'"{old}"'.encode(), f'"{new}"'.encode()))
        moved.pop("meta", None)
        written.append(moved)
    return written


def merge_patients(store: Store, acting: Acting, keep: str, retire: str) -> None:
    """An operator's merge: ``retire`` becomes inactive and replaced by
    ``keep``, and everything that named it is re-pointed, in one
    transaction, as a hospital's merge message does."""
    if keep == retire:
        raise ValueError("a record cannot be merged into itself")
    with store.unit_of_work() as uow:
        survivor = _stored(uow, "Patient", keep)
        if survivor is None:
            raise ValueError(f"Patient/{keep} is not known")
        written = _merge(uow, retire, survivor)
        if written is None:
            raise ValueError(f"Patient/{retire} is not known")
        for version in _write_all(uow, written, acting):
            acting.wrote(version)
        acting.committing(uow)


@contextmanager
def settled() -> Iterator[None]:
    """What the process holds before a load (its modules, the FHIR models,
    search parameters, code lists) kept out of the garbage collector's full
    collections while it loads, as ``gateway serve`` keeps it for good
    (``gateway.http.app``): a load makes objects by the million, and each
    full collection walked all of that again (measured: about 90 us of the
    writer's 2.5 ms a CLD record). Given back after, for a process that does
    more than load (tests run many)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def load(
    store: Store,
    fmt: str,
    source_org: str,
    paths: Iterable[Path],
    progress: Progress = lambda report, position: None,
    *,
    jobs: int = 1,
    report: LoadReport | None = None,
) -> LoadReport:
    """Load every record of ``paths`` as ``source_org`` wrote it: the gateway
    acting for that source. With ``jobs`` above 1, records are mapped in
    that many worker processes (``gateway.loading.workers``), and written
    here exactly as with one; ``WorkerFailed`` if one fails, ``report``
    (when given) then saying what was loaded before."""
    acting = ForSource(author_for(fmt, source_org))
    report = LoadReport() if report is None else report
    done = 0  # bytes of the files already loaded
    with Mapper(jobs, id_key(store) if jobs > 1 else None) as mapper:
        for path in paths:

            def told(report: LoadReport, position: int, before: int = done) -> None:
                progress(report, before + position)

            with path.open("rb") as stream:
                load_stream(
                    store, fmt, acting, stream, report, str(path), progress=told, mapper=mapper
                )
            done += path.stat().st_size
    return report


def load_stream(
    store: Store,
    fmt: str,
    acting: Acting,
    stream: BinaryIO,
    report: LoadReport,
    name: str,
    *,
    progress: Progress = lambda report, position: None,
    mapper: Mapper | None = None,
) -> LoadReport:
    """Load every record of ``stream`` (a file or a request body called
    ``name``) as ``acting``'s organisation wrote it, ``BATCH`` records a
    unit of work; mapped by ``mapper`` (in this process if none)."""
    mapper = mapper or Mapper(1, None)
    records = mapper.records(FORMAT[fmt], stream, acting.author.org_ods, acting.author.source, name)
    batch: list[SourceRecord] = []
    position = 0
    try:
        for record, position in records:
            batch.append(record)
            if len(batch) == BATCH:
                _load_batch(store, fmt, acting, batch, report, name)
                progress(report, position)
                batch = []
    except WorkerFailed:
        # What was mapped before the failure is loaded; nothing after it.
        _load_batch(store, fmt, acting, batch, report, name)
        raise
    if batch:
        _load_batch(store, fmt, acting, batch, report, name)
        progress(report, position)
    return report


def _load_batch(
    store: Store,
    fmt: str,
    acting: Acting,
    batch: list[SourceRecord],
    report: LoadReport,
    name: str,
) -> None:
    """``batch``, one record after another, in one unit of work."""
    if not batch:
        return
    with store.unit_of_work() as uow:
        for record in batch:
            load_record(store, fmt, acting, record, report, name, within=uow)
        acting.committing(uow)
