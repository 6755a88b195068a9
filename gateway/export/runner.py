"""One bulk export, run: every resource of the types asked for put to the
consent engine as the requester (an analytics organisation, for a
secondary-use purpose), what it lets out pseudonymised and written as
NDJSON, one file per type (split every ``lines_per_file`` lines).

Memory does not grow with the store: resources are read a page at a time
(keyset paging, ``gateway.search.paging.scan``), each page decided by an
access layer of its own (the facts of that page's people, read at once),
and the people written of are gathered in the database (``export_person``)
rather than in the process. Every decision is made at the export's
transaction time, so one export is one consistent answer.

The audit entries (one per ``PEOPLE_PER_ENTRY`` people, naming each) are
staged before the export is marked complete: no file is offered before
the log says whose records are in it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gateway import fhirjson
from gateway.access.control import AccessControl, SharedFacts
from gateway.access.subjects import patient_by_identifier
from gateway.audit import staging
from gateway.audit.events import export_event
from gateway.export import jobs
from gateway.export.asking import COHORT_TYPE, GROUP, SYSTEM
from gateway.export.jobs import Job, OutputFile
from gateway.export.pseudonyms import Pseudonymiser
from gateway.keyfiles import SECRET_DIR_MODE, open_secret
from gateway.search.paging import scan
from gateway.store import Store, StoredVersion

PEOPLE_PER_ENTRY = 1000
# Audit entries staged per unit of work at the end of an export.
_ENTRIES_PER_STAGE = 50
LINES_PER_FILE = 100_000
# People's facts and named records kept between pages (a few tens of MB).
_FACTS_KEPT = 50_000
_SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}


class Cancelled(Exception):
    """The export is no longer the worker's to run (cancelled, or taken over)."""


class Unexportable(Exception):
    """The export cannot be run as asked; the message says why, to the
    client that asked (its status answers it)."""


# Says how far the export has got; ``False``: stop.
Checkpoint = Callable[[str], bool]


@dataclass
class _TypeFiles:
    """The NDJSON files of one type, opened as they fill."""

    folder: Path
    res_type: str
    limit: int
    files: list[OutputFile] = field(default_factory=list)
    _out: IO[bytes] | None = None
    _count: int = 0

    def write(self, line: bytes) -> None:
        if self._out is None or self._count >= self.limit:
            self.close()
            name = f"{self.res_type}-{len(self.files) + 1}.ndjson"
            # Personal data: readable by the gateway's user only.
            self._out = os.fdopen(open_secret(self.folder / name), "wb")
            self.files.append(OutputFile(self.res_type, name, 0))
            self._count = 0
        self._out.write(line)
        self._out.write(b"\n")
        self._count += 1

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
            last = self.files[-1]
            self.files[-1] = OutputFile(last.res_type, last.name, self._count)

    @property
    def written(self) -> int:
        return sum(f.count for f in self.files) + (self._count if self._out else 0)


def folder_of(directory: Path, job_id: str) -> Path:
    return directory / job_id


def remove_files(directory: Path, job_id: str) -> None:
    """Delete an export's folder, if there is one."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(folder_of(directory, job_id))


class _Pages:
    """Decides each page of a scan with an access layer of its own (its
    decisions dropped with it), over the facts of people and records read
    for earlier pages, kept until there are ``_FACTS_KEPT`` of them: each
    type is read in turn, and the same people's facts would otherwise be
    read again for every type."""

    def __init__(self, store: Store, job: Job, checkpoint: Checkpoint, progress: Callable[[], str]):
        self._store = store
        self._job = job
        self._moment = fhirjson.parse_instant(job.transaction_time)
        self._checkpoint = checkpoint
        self._progress = progress
        self._shared = SharedFacts()
        self.access = self._fresh()
        self.scope = self.access.scope

    def _fresh(self) -> AccessControl:
        shared = self._shared
        if len(shared.people) + len(shared.targets) + len(shared.labels_now) > _FACTS_KEPT:
            self._shared = SharedFacts()
        return AccessControl(
            self._store, self._job.requester, now=self._moment, shared=self._shared
        )

    def ahead(self, versions: Sequence[StoredVersion]) -> None:
        if not self._checkpoint(self._progress()):
            raise Cancelled(self._job.id)
        self.access = self._fresh()
        self.access.prefetch(versions)

    def keep(self, version: StoredVersion) -> bool:
        return self.access.visible(version)


def _subset(resource: dict[str, Any], kept: frozenset[str]) -> dict[str, Any]:
    """``resource`` with only the elements ``kept`` (``_elements``) and
    those every resource keeps, marked as a subset."""
    subset = {k: v for k, v in resource.items() if k in kept or k in ("resourceType", "id")}
    meta = dict(resource.get("meta") or {})
    meta["tag"] = [*(meta.get("tag") or []), _SUBSETTED]
    subset["meta"] = meta
    return subset


def _people_pages(store: Store, job_id: str) -> Iterator[list[str]]:
    after = ""
    while True:
        rows = store.select(
            "SELECT patient_id FROM export_person WHERE job_id = ? AND patient_id > ? "
            "ORDER BY patient_id LIMIT ?",
            [job_id, after, PEOPLE_PER_ENTRY],
        )
        if not rows:
            return
        page = [str(row[0]) for row in rows]
        yield page
        after = page[-1]


class _People:
    """The people written of, kept in the database a page at a time."""

    def __init__(self, store: Store, job_id: str) -> None:
        self._store = store
        self._job_id = job_id
        self._pending: set[str] = set()

    def add(self, patient_id: str) -> None:
        self._pending.add(patient_id)
        if len(self._pending) >= PEOPLE_PER_ENTRY:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        with self._store.unit_of_work() as uow:
            uow.execute_many(
                "INSERT INTO export_person (job_id, patient_id) VALUES (?, ?) "
                "ON CONFLICT (job_id, patient_id) DO NOTHING",
                [[self._job_id, patient_id] for patient_id in sorted(self._pending)],
            )
        self._pending.clear()


def run(
    store: Store,
    job: Job,
    directory: Path,
    *,
    checkpoint: Checkpoint,
    lines_per_file: int = LINES_PER_FILE,
) -> list[OutputFile]:
    """Write ``job``'s files into its folder under ``directory`` (anything
    an earlier attempt left there is removed first); its files. Raises
    ``Cancelled`` when ``checkpoint`` says to stop."""
    folder = folder_of(directory, job.id)
    remove_files(directory, job.id)
    folder.mkdir(mode=SECRET_DIR_MODE, parents=True)
    with store.unit_of_work() as uow:
        uow.execute("DELETE FROM export_person WHERE job_id = ?", [job.id])
    return _Export(store, job, checkpoint).write(folder, lines_per_file)


class _Export:
    """One run of an export: what it decides with, whom it covers, and
    how far it has got."""

    def __init__(self, store: Store, job: Job, checkpoint: Checkpoint) -> None:
        self._store = store
        self._ask = job.ask
        requester = job.requester
        key = jobs.project_secret(store, requester.org_ods, job.ask.project)
        self._pseudonyms = Pseudonymiser(key)
        self._people = _People(store, job.id)
        self._output: list[OutputFile] = []
        self._done = 0  # types written
        self._current: _TypeFiles | None = None
        self._pages = _Pages(store, job, checkpoint, self._progress)
        self._members = _members(store, job, self._pages.access) if job.ask.level == GROUP else None
        # Analytics may see most of every type: candidates are best tested
        # one by one as they are read (as a broad search does), not driven
        # from the list of what it sees, which SQLite rebuilds whole for
        # every page.
        self._probing = self._pages.scope.broad(store)

    def _progress(self) -> str:
        current = self._current
        written = sum(f.count for f in self._output) + (current.written if current else 0)
        kind = current.res_type if current else "-"
        return (
            f"{self._done} of {len(self._ask.types)} types done; at {kind}; "
            f"{written} resources written"
        )

    def write(self, folder: Path, lines_per_file: int) -> list[OutputFile]:
        for res_type in self._ask.types:
            self._current = files = _TypeFiles(folder, res_type, lines_per_file)
            try:
                self._write_type(res_type, files)
            finally:
                files.close()
            self._output.extend(files.files)
            self._current = None
            self._done += 1
        self._people.flush()
        return self._output

    def _write_type(self, res_type: str, files: _TypeFiles) -> None:
        kept = self._ask.kept_elements(res_type)
        for version in self._matches(res_type):
            # The page's access layer, which decided it, knows whose it is.
            person = self._pages.access.whose(version)
            if not self._covers(person):
                continue
            assert version.content is not None
            resource = self._pseudonyms.resource(fhirjson.loads(version.content), person)
            files.write(fhirjson.dumps(_subset(resource, kept) if kept else resource))
            if person is not None:
                self._people.add(person)

    def _matches(self, res_type: str) -> Iterator[StoredVersion]:
        """What consent lets out of ``res_type`` that the export asks for:
        each of its filters' matches, each resource once."""
        queries = self._ask.queries(res_type)
        seen: set[str] | None = set() if len(queries) > 1 else None
        pages = self._pages
        for query in queries:
            for version in scan(
                self._store, query, pages.keep, pages.ahead, pages.scope, probing=self._probing
            ):
                if seen is not None:
                    if version.res_id in seen:
                        continue
                    seen.add(version.res_id)
                yield version

    def _covers(self, person: str | None) -> bool:
        """Whether a record of ``person`` (``None``: no one's) is the
        export's: anything for the system; a person's record for patients;
        a member's for a Group."""
        if self._ask.level == SYSTEM:
            return True
        return person is not None and (self._members is None or person in self._members)


def _members(store: Store, job: Job, access: AccessControl) -> frozenset[str]:
    """The people the export's Group names now, active members only (by
    Patient id, or by an identifier that names one Patient), if the
    requester may still read the Group."""
    assert job.ask.group is not None
    group = store.read(COHORT_TYPE, job.ask.group)
    if group is None or group.content is None or not access.visible(group):
        raise Unexportable(f"Group/{job.ask.group} is no longer there to export")
    found: set[str] = set()
    for member in fhirjson.loads(group.content).get("member") or []:
        if not isinstance(member, dict) or member.get("inactive") is True:
            continue
        entity = member.get("entity") or {}
        reference = entity.get("reference")
        identifier = entity.get("identifier") or {}
        if isinstance(reference, str) and reference.startswith("Patient/"):
            found.add(reference.removeprefix("Patient/"))
        elif isinstance(identifier.get("system"), str) and isinstance(identifier.get("value"), str):
            named = patient_by_identifier(store, (identifier["system"], identifier["value"]))
            if named is not None:
                found.add(named)
    return frozenset(found)


def audit_entries(store: Store, job: Job) -> int:
    """Stage the export's audit entries, naming every person written of;
    how many."""
    total = store.select("SELECT COUNT(*) FROM export_person WHERE job_id = ?", [job.id])
    count = int(str(total[0][0]))
    entries = -(-count // PEOPLE_PER_ENTRY)
    batch = []
    recorded = fhirjson.instant()
    for number, page in enumerate(_people_pages(store, job.id), start=1):
        batch.append(
            export_event(
                recorded=recorded,
                asker=job.requester,
                export_id=job.id,
                project=job.ask.project,
                people=page,
                part=(number, entries),
            )
        )
        if len(batch) >= _ENTRIES_PER_STAGE:
            with store.unit_of_work() as uow:
                staging.stage(uow, batch)
            batch = []
    if batch:
        with store.unit_of_work() as uow:
            staging.stage(uow, batch)
    return entries


def file_path(directory: Path, job_id: str, name: str) -> Path | None:
    """The path of the export's file ``name``, if it is one of its files'
    names (never a path out of its folder)."""
    if os.sep in name or name.startswith("."):
        return None
    return folder_of(directory, job_id) / name
