"""Loading source files through the same write path as the API: each source
record becomes one transaction (all of its resources, or none), authored by
the source organisation (``meta.source``, Provenance), labelled and indexed
like any write. Records that cannot be mapped are rejected with their
position and reason; the rest still load. Loading a file again changes
nothing: ids are derived from the source and a resource whose content has
not changed is not written again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from gateway import fhirjson
from gateway.errors import Conflict, GatewayError
from gateway.interactions import bundle
from gateway.interactions.provenance import Author
from gateway.interactions.types import (
    AccessThrough,
    Authorize,
    ReturnPreference,
    allow_all,
    see_everything,
)
from gateway.loading.matches import note_probable_matches
from gateway.loading.sources import READERS, SourceRecord
from gateway.search.extract import date_range
from gateway.search.matching import matching_ids
from gateway.store import Querier, Store, StoredVersion, UnitOfWork, as_bytes

# Told each version a record wrote and whom the record is about.
Wrote = Callable[[str, str | None], None]

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


def _same(resource: dict[str, Any], stored: dict[str, Any] | None) -> bool:
    """Whether ``stored`` already says what ``resource`` does (meta aside)."""
    if stored is None:
        return False
    mine = {k: v for k, v in resource.items() if k != "meta"}
    return orjson.dumps(stored, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        mine, option=orjson.OPT_SORT_KEYS
    )


def _labels(security: Any) -> set[tuple[Any, Any]]:
    return {
        (label.get("system"), label.get("code"))
        for label in security or []
        if isinstance(label, dict)
    }


def _with_labels_kept(
    reader: Querier,
    resources: list[dict[str, Any]],
    found: list[StoredVersion | None],
    labels_from: dict[str, str],
) -> list[dict[str, Any]]:
    """``resources``, those whose confidentiality the record leaves unstated
    (``labels_from``) with the labels stored on the resource each is tied
    to added to their own: a visit protected on file stays protected, and
    a diagnosis added to it is protected too."""
    on_file: dict[str, StoredVersion | None] = {
        f"{v.res_type}/{v.res_id}": v for v in found if v is not None
    }
    kept = []
    for resource in resources:
        tied_to = labels_from.get(f"{resource['resourceType']}/{resource['id']}")
        if tied_to is None:
            kept.append(resource)
            continue
        if tied_to not in on_file:
            res_type, _, res_id = tied_to.partition("/")
            on_file[tied_to] = reader.read(res_type, res_id)
        version = on_file[tied_to]
        stored: dict[str, Any] = {}
        if version is not None and version.content is not None:
            stored = fhirjson.loads(version.content).get("meta") or {}
        meta = resource.get("meta") or {}
        labels = list(meta.get("security") or [])
        stated = _labels(labels)
        labels += [
            label
            for label in stored.get("security") or []
            if isinstance(label, dict) and (label.get("system"), label.get("code")) not in stated
        ]
        kept.append({**resource, "meta": {**meta, "security": labels}} if labels else resource)
    return kept


def _newly_labelled(resource: dict[str, Any], found: StoredVersion | None) -> bool:
    """Whether the source labels ``resource`` in a way its stored version is
    not (a hospital visit protected since): a change, though nothing else
    in it is, or the protection asked for would be ignored. (A label the
    source no longer states is taken off when the record next changes.)"""
    stated = _labels((resource.get("meta") or {}).get("security"))
    if not stated or found is None or found.deleted or found.content is None:
        return False
    stored = fhirjson.loads(found.content).get("meta") or {}
    return not stated <= _labels(stored.get("security"))


def _outdated(
    resource: dict[str, Any], stored: dict[str, Any] | None, dated_by: dict[str, str]
) -> bool:
    """Whether ``resource`` states a standing fact as at a date before the
    one its stored version states it as at (``dated_by``, as
    ``Mapped.dated_by``): the later statement stands, whichever came first."""
    element = dated_by.get(f"{resource['resourceType']}/{resource['id']}")
    if element is None or stored is None:
        return False
    mine, theirs = resource.get(element), stored.get(element)
    if not (isinstance(mine, str) and isinstance(theirs, str)):
        return False
    try:
        return date_range(mine).low < date_range(theirs).low
    except ValueError:
        return False  # a date on file that cannot be read: the new statement replaces it


def _seen(store: Querier, source_org: str, fmt: str, key: str) -> bool:
    return bool(
        store.select(
            "SELECT 1 FROM mapping_record WHERE source_org = ? AND format = ? AND record_key = ?",
            [source_org.upper(), fmt, key],
        )
    )


def _remember(
    uow: UnitOfWork,
    source_org: str,
    fmt: str,
    record: SourceRecord,
    stated: list[dict[str, Any]] | None,
) -> None:
    """Note a source record as loaded, with its content as it came, whom it
    is about, the moment it stands as at and what it stated (``None``: it
    was superseded and stated nothing), in the unit of work that writes it:
    the two are never parted, so a record is either loaded and noted or
    neither."""
    if record.key:
        resources = (
            None
            if stated is None
            else orjson.dumps([f"{r['resourceType']}/{r['id']}" for r in stated]).decode()
        )
        uow.execute(
            "INSERT INTO mapping_record (source_org, format, record_key, loaded_at, content, "
            "patient_id, resources, as_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [
                source_org.upper(),
                fmt,
                record.key,
                fhirjson.instant(),
                record.content,
                record.patient_id,
                resources,
                record.as_at,
            ],
        )


def _superseded_by(reader: Querier, source_org: str, fmt: str, record: SourceRecord) -> str | None:
    """The moment of the source's latest record of the person, when it is
    later than ``record``'s (a care home's newer export, a hospital's later
    message, loaded first): what ``record`` says of the person is then out
    of date, and a whole record (a snapshot) changes nothing."""
    if record.as_at is None or record.patient_id is None:
        return None
    rows = reader.select(
        "SELECT MAX(as_at) FROM mapping_record "
        "WHERE source_org = ? AND format = ? AND patient_id = ? AND as_at IS NOT NULL",
        [source_org.upper(), fmt, record.patient_id],
    )
    latest = rows[0][0] if rows else None
    return str(latest) if latest is not None and str(latest) > record.as_at else None


@dataclass
class _Done:
    """What became of one record, told to the report once it stands."""

    status: str  # loaded, unchanged or rejected
    reason: str = ""
    written: list[str] = field(default_factory=list)  # the resource types written
    versions: list[str] = field(default_factory=list)
    matches: int = 0
    superseded: bool = False  # older than the source's latest record of the person


# How many records share one commit when a file or a push is loaded: a
# commit waits for the disk, and one per record was most of the time taken.
BATCH = 100
_ATTEMPTS = 3


def load_record(
    store: Store,
    fmt: str,
    author: Author,
    record: SourceRecord,
    report: LoadReport,
    file: str,
    *,
    authorize: Authorize = allow_all,
    access: AccessThrough = see_everything,
    wrote: Wrote = lambda version, patient_id: None,
    within: UnitOfWork | None = None,
) -> Rejection | None:
    """Write one mapped source record (all its resources, or none), unless
    it was loaded before; the rejection, if it was refused. ``within`` is a
    unit of work shared with other records (each is undone alone if it is
    refused); without one, the record commits on its own. Over the API,
    ``authorize`` and ``access`` are the pushing client's scopes and consent
    decisions, exactly as for a transaction it sent itself, and ``wrote`` is
    told each version written (for the request's audit entry)."""
    if within is None:
        with store.unit_of_work() as uow:
            done = _alone(uow, fmt, author, record, authorize, access)
    else:
        done = _alone(within, fmt, author, record, authorize, access)
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
    for version in done.versions:
        wrote(version, record.patient_id)
    report.loaded += 1
    report.written.update(done.written)
    report.probable_matches += done.matches
    return None


def _alone(
    uow: UnitOfWork,
    fmt: str,
    author: Author,
    record: SourceRecord,
    authorize: Authorize,
    access: AccessThrough,
) -> _Done:
    """One record inside a savepoint: kept if it loads, undone if it is
    refused; tried again if a concurrent writer won a race for a version."""
    for _ in range(_ATTEMPTS):
        uow.execute("SAVEPOINT source_record", [])
        try:
            done = _load(uow, fmt, author, record, authorize, access)
        except Conflict:
            uow.execute("ROLLBACK TO SAVEPOINT source_record", [])
            uow.execute("RELEASE SAVEPOINT source_record", [])
            continue
        if done.status == "rejected":
            uow.execute("ROLLBACK TO SAVEPOINT source_record", [])
        uow.execute("RELEASE SAVEPOINT source_record", [])
        return done
    return _Done("rejected", "other writers kept changing the same resources: send it again")


def _load(
    uow: UnitOfWork,
    fmt: str,
    author: Author,
    record: SourceRecord,
    authorize: Authorize,
    access: AccessThrough,
) -> _Done:
    source_org = author.org_ods
    if record.resources is None:
        return _Done("rejected", record.problem or "")
    if record.key and _seen(uow, source_org, fmt, record.key):
        return _Done("unchanged")  # sent again: it changes nothing twice
    resources = list(record.resources)
    if (later := _superseded_by(uow, source_org, fmt, record)) is not None:
        if record.snapshot:
            _remember(uow, source_org, fmt, record, None)  # archived, as every record is
            reason = f"a later record of the person (as at {later}) is on file"
            return _Done("unchanged", reason, superseded=True)
        if record.merged_from is None:
            # The person as the source's later record states them stands; the
            # rest of this one (a visit, an allergy) follows its own rules.
            resources = [r for r in resources if r["resourceType"] != "Patient"]
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
    if record.labels_from:
        resources = _with_labels_kept(uow, resources, found, record.labels_from)
    before = [_content(version) for version in found]
    stated = [
        _with_what_is_gathered(
            _with_what_is_known(r, b, _keeps_registration(uow, fmt, r, b)), b, record.gathered
        )
        for r, b in zip(resources, before, strict=True)
    ]
    new_people = [
        r
        for r, b in zip(resources, before, strict=True)
        if r["resourceType"] == "Patient" and b is None
    ]
    changes = [
        (r, v)
        for r, b, v in zip(stated, before, found, strict=True)
        if (not _same(r, b) or _newly_labelled(r, v)) and not _outdated(r, b, record.dated_by)
    ]
    # A person on file whom the source may not see yet is written after its
    # other resources, which may be what gives it its relationship (an open
    # service, a residence); if they do not, the person is left as they are.
    unseen = [_hidden_person(uow, r, v, access) for r, v in changes]
    hidden = [change for change, unseen_now in zip(changes, unseen, strict=True) if unseen_now]
    changed = [r for (r, _), unseen_now in zip(changes, unseen, strict=True) if not unseen_now]
    retired = _left_out(uow, source_org, fmt, record, stated) if record.snapshot else []
    versions: list[str] = []
    try:
        if changed or retired:
            versions = _write_all(uow, changed, author, authorize, access, retired)
        seen_now = [r for r, v in hidden if not _hidden_person(uow, r, v, access)]
        if seen_now:
            versions += _write_all(uow, seen_now, author, authorize, access)
            changed += seen_now
    except Conflict:
        raise
    except GatewayError as exc:
        return _Done("rejected", exc.message)
    _remember(uow, source_org, fmt, record, stated)
    if not (changed or retired):
        return _Done("unchanged")
    matches = sum(note_probable_matches(uow, patient) for patient in new_people)
    return _Done("loaded", "", [r["resourceType"] for r in changed], versions, matches)


def _hidden_person(
    uow: UnitOfWork,
    resource: dict[str, Any],
    stored: StoredVersion | None,
    access: AccessThrough,
) -> bool:
    """Whether ``resource`` is a Patient already on file that the pushing
    source may not see (it has no care relationship with them). Such a
    person is not written: writing the Patient as the source's would make it
    the Patient's author, and so show it what others recorded. The source's
    resources are still linked to them, and what it said of them is kept
    with its record."""
    if resource["resourceType"] != "Patient" or access is see_everything or stored is None:
        return False
    return not access(uow).visible(stored)


def _left_out(
    reader: Querier,
    source_org: str,
    fmt: str,
    record: SourceRecord,
    stated: list[dict[str, Any]],
) -> list[str]:
    """What the source's previous whole record of the person stated and this
    one leaves out (a stopped medicine, a contact removed), as ``Type/id``:
    no longer the source's to share, so it is retired (deleted, its history
    kept). Only what the loader wrote from that source's records is
    considered, never what anyone wrote otherwise; the Patient, shared by
    every source, never is."""
    if record.patient_id is None:
        return []
    rows = reader.select(
        "SELECT resources FROM mapping_record "
        "WHERE source_org = ? AND format = ? AND patient_id = ? AND resources IS NOT NULL "
        "ORDER BY loaded_at DESC LIMIT 1",
        [source_org.upper(), fmt, record.patient_id],
    )
    if not rows:
        return []
    kept = {f"{r['resourceType']}/{r['id']}" for r in stated}
    retired = []
    for named in orjson.loads(str(rows[0][0])):
        res_type, _, res_id = str(named).partition("/")
        if named in kept or res_type == "Patient":
            continue
        found = reader.read(res_type, res_id)
        if found is not None and not found.deleted:
            retired.append(str(named))
    return retired


def _write_all(
    uow: UnitOfWork,
    resources: list[dict[str, Any]],
    author: Author,
    authorize: Authorize = allow_all,
    access: AccessThrough = see_everything,
    retired: list[str] | None = None,
) -> list[str]:
    """Write ``resources`` whole, at their ids, and delete ``retired``, as
    one transaction Bundle in ``uow``; the versions written
    (``Patient/1/_history/2``)."""
    entries: list[dict[str, Any]] = [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources
    ]
    entries += [{"request": {"method": "DELETE", "url": url}} for url in retired or []]
    response = bundle.transaction_in(
        uow,
        {"resourceType": "Bundle", "type": "transaction", "entry": entries},
        base_url="",
        prefer=ReturnPreference.MINIMAL,
        authorize=authorize,
        author=author,
        access=access,
    )
    # base_url is "", so each location is "/Type/id/_history/n".
    return [
        str(e["response"]["location"]).lstrip("/")
        for e in response.get("entry", [])
        if "location" in e["response"]
    ]


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
    found = matching_ids(store, "Patient", query)
    if len(found) != 1:
        value = query.rpartition("|")[2]
        raise _UnknownLink(
            f"the person it links to ({value}) is "
            + ("not known here yet: load their record first" if not found else "ambiguous")
        )
    return {**resource, "patient": {**patient, "reference": f"Patient/{found[0]}"}}


# The formats whose statement of the registered practice stands over any
# other's: the practice's own record, and a hospital's administration system
# (traced against the NHS spine). Once one of them has been loaded for a
# person, a council's or a care home's statement (often out of date) no
# longer changes it: the registered practice is what opens the person's
# whole record to a GP.
_STATES_REGISTRATION = ("gp-connect", "hl7v2")


def _keeps_registration(
    reader: Querier, fmt: str, resource: dict[str, Any], stored: dict[str, Any] | None
) -> bool:
    """Whether the registered practice on file stands against the one
    ``resource`` (a Patient, from a source of format ``fmt``) states."""
    if resource["resourceType"] != "Patient" or stored is None or fmt in _STATES_REGISTRATION:
        return False
    stated, on_file = resource.get("generalPractitioner"), stored.get("generalPractitioner")
    if not stated or not on_file or stated == on_file:
        return False
    return bool(
        reader.select(
            "SELECT 1 FROM mapping_record WHERE patient_id = ? AND format IN (?, ?) LIMIT 1",
            [resource["id"], *_STATES_REGISTRATION],
        )
    )


def _with_what_is_known(
    resource: dict[str, Any], stored: dict[str, Any] | None, keeps_registration: bool = False
) -> dict[str, Any]:
    """A Patient as this source states it, over what other sources stated
    (``stored``).

    Every source's record of a person lands on one Patient, and no source
    states everything (a council return has no name; a hospital no ethnic
    category, perhaps). An element this source states replaces the stored
    one, but for the registered practice when ``keeps_registration``
    (``_keeps_registration``); one it leaves out is kept; identifiers are
    merged, one per system and value. Other resources are each one source's
    own, written whole."""
    if resource["resourceType"] != "Patient" or stored is None:
        return resource
    merged = {**stored, **resource}
    if keeps_registration:
        merged["generalPractitioner"] = stored["generalPractitioner"]
    identifiers: dict[tuple[Any, Any], dict[str, Any]] = {}
    for identifier in [*stored.get("identifier", []), *resource.get("identifier", [])]:
        slot = (identifier.get("system"), identifier.get("value"))
        identifiers[slot] = {**identifiers.get(slot, {}), **identifier}
    if identifiers:
        merged["identifier"] = list(identifiers.values())
    return merged


def _with_what_is_gathered(
    resource: dict[str, Any], stored: dict[str, Any] | None, gathered: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """``resource`` with the items of its gathering list (``gathered``, as
    ``Mapped.gathered``) that are on file and that it does not name kept
    before its own: a visit's diagnoses from earlier messages stay."""
    spec = gathered.get(f"{resource['resourceType']}/{resource['id']}")
    if spec is None or stored is None:
        return resource
    element, key = spec

    def named(item: Any) -> Any:
        return (item.get(key) or {}).get("reference") if isinstance(item, dict) else None

    stated = resource.get(element) or []
    stated_names = {named(item) for item in stated}
    kept = [item for item in stored.get(element) or [] if named(item) not in stated_names]
    if not kept:
        return resource
    return {**resource, element: [*kept, *stated]}


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


def merge_patients(store: Store, author: Author, keep: str, retire: str) -> None:
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
        _write_all(uow, written, author)


def archived(store: Store, source_org: str, fmt: str, key: str) -> bytes | None:
    """A loaded record as its source sent it, if it was loaded."""
    rows = store.select(
        "SELECT content FROM mapping_record WHERE source_org = ? AND format = ? AND record_key = ?",
        [source_org.upper(), fmt, key],
    )
    if not rows or rows[0][0] is None:
        return None
    return as_bytes(rows[0][0])


def author_for(fmt: str, source_org: str) -> Author:
    return Author(source_org.upper(), source_org.upper(), f"load:{fmt}", f"gateway load ({fmt})")


def load(
    store: Store,
    fmt: str,
    source_org: str,
    paths: Iterable[Path],
    progress: Progress = lambda report, position: None,
) -> LoadReport:
    """Load every record of ``paths`` as ``source_org`` wrote it."""
    author = author_for(fmt, source_org)
    report = LoadReport()
    done = 0  # bytes of the files already loaded
    for path in paths:

        def told(report: LoadReport, position: int, before: int = done) -> None:
            progress(report, before + position)

        with path.open("rb") as stream:
            load_stream(store, fmt, author, stream, report, str(path), progress=told)
        done += path.stat().st_size
    return report


def load_stream(
    store: Store,
    fmt: str,
    author: Author,
    stream: BinaryIO,
    report: LoadReport,
    name: str,
    *,
    authorize: Authorize = allow_all,
    access: AccessThrough = see_everything,
    wrote: Wrote = lambda version, patient_id: None,
    progress: Progress = lambda report, position: None,
) -> LoadReport:
    """Load every record of ``stream`` (a file or a request body called
    ``name``) as ``author``'s organisation wrote it."""
    records = READERS[fmt](stream, author.org_ods)
    while batch := list(islice(records, BATCH)):
        with store.unit_of_work() as uow:
            for record in batch:
                load_record(
                    store,
                    fmt,
                    author,
                    record,
                    report,
                    name,
                    authorize=authorize,
                    access=access,
                    wrote=wrote,
                    within=uow,
                )
        progress(report, stream.tell())
    return report
