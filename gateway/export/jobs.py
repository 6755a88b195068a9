"""Bulk export jobs as the database keeps them (``export_job``), and each
analytics organisation's projects (``export_project``).

A job is accepted by the kick-off, claimed by one worker of the deployment
(``claim``: whichever gets there first; one that stops speaking for it,
``claimed`` more than ``STALE_S`` ago, is succeeded), and ends completed,
failed or cancelled. A completed job's files are kept until ``expires``;
then they are deleted and the job is forgotten, as a cancelled one is.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from consent.model import Requester
from gateway import fhirjson
from gateway.export.asking import ExportAsk
from gateway.store import Querier, Store, UnitOfWork

ACCEPTED = "accepted"
RUNNING = "in-progress"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
EXPIRED = "expired"
# Seconds after a worker last spoke for a job before another takes it over.
STALE_S = 60.0

_COLUMNS = (
    "id, client_id, requester, project, request, asked, status, progress, "
    "transaction_time, worker, claimed, expires, output, error"
)


@dataclass(frozen=True)
class OutputFile:
    """One NDJSON file of a completed export."""

    res_type: str
    name: str  # its file name in the export's folder
    count: int  # resources in it


@dataclass(frozen=True)
class Job:
    id: str
    requester: Requester  # decided as, and who alone may see it
    request: str  # the kick-off URL, as the manifest states it
    ask: ExportAsk
    status: str
    progress: str
    transaction_time: str
    worker: str | None = None
    claimed: float | None = None
    expires: float | None = None
    output: tuple[OutputFile, ...] = ()
    error: str | None = None

    @property
    def file_names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.output)


def _requester_json(requester: Requester) -> bytes:
    return fhirjson.dumps(dataclasses.asdict(requester))


def _job(row: tuple[Any, ...]) -> Job:
    (
        job_id,
        _client,
        requester,
        _project,
        request,
        asked,
        status,
        progress,
        transaction_time,
        worker,
        claimed,
        expires,
        output,
        error,
    ) = row
    files = fhirjson.loads(str(output).encode()) if output else []
    return Job(
        id=str(job_id),
        requester=Requester(**fhirjson.loads(str(requester).encode())),
        request=str(request),
        ask=ExportAsk.from_json(str(asked)),
        status=str(status),
        progress=str(progress),
        transaction_time=str(transaction_time),
        worker=None if worker is None else str(worker),
        claimed=None if claimed is None else float(claimed),
        expires=None if expires is None else float(expires),
        output=tuple(OutputFile(f["type"], f["name"], int(f["count"])) for f in files),
        error=None if error is None else str(error),
    )


def accept(store: Store, requester: Requester, ask: ExportAsk, request: str) -> Job:
    """Record a kick-off; the job, waiting for a worker. Its id is random
    (122 bits): a status URL cannot be guessed."""
    job = Job(
        id=uuid.uuid4().hex,
        requester=requester,
        request=request,
        ask=ask,
        status=ACCEPTED,
        progress="waiting to start",
        transaction_time=fhirjson.instant(),
    )
    with store.unit_of_work() as uow:
        uow.execute(
            "INSERT INTO export_job (id, client_id, requester, project, request, asked, "
            "status, progress, transaction_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                job.id,
                requester.client_id,
                _requester_json(requester).decode(),
                ask.project,
                request,
                ask.to_json().decode(),
                job.status,
                job.progress,
                job.transaction_time,
            ],
        )
    return job


def find(reader: Querier, job_id: str) -> Job | None:
    """The job ``job_id``, whatever its status, if there is one."""
    rows = reader.select(f"SELECT {_COLUMNS} FROM export_job WHERE id = ?", [job_id])
    return _job(rows[0]) if rows else None


def claim(store: Store, worker: str, now: float) -> Job | None:
    """Take the oldest job waiting, or one whose worker has stopped speaking
    for it (it starts again from nothing): ``None`` if there is none, or
    another worker took it first."""
    rows = store.select(
        "SELECT id FROM export_job WHERE status = ? OR (status = ? AND claimed < ?) "
        "ORDER BY transaction_time LIMIT 1",
        [ACCEPTED, RUNNING, now - STALE_S],
    )
    if not rows:
        return None
    job_id = str(rows[0][0])
    with store.unit_of_work() as uow:
        taken = uow.execute(
            "UPDATE export_job SET status = ?, worker = ?, claimed = ?, progress = ? "
            "WHERE id = ? AND (status = ? OR (status = ? AND claimed < ?))",
            [RUNNING, worker, now, "starting", job_id, ACCEPTED, RUNNING, now - STALE_S],
        )
    return find(store, job_id) if taken == 1 else None


def still_mine(store: Store, job: Job, worker: str, now: float, progress: str) -> bool:
    """Say the worker is still at ``job``, and how far it has got; ``False``
    when it is no longer its to do (cancelled, or taken over)."""
    with store.unit_of_work() as uow:
        return (
            uow.execute(
                "UPDATE export_job SET claimed = ?, progress = ? "
                "WHERE id = ? AND worker = ? AND status = ?",
                [now, progress, job.id, worker, RUNNING],
            )
            == 1
        )


def complete(
    uow: UnitOfWork, job: Job, worker: str, output: list[OutputFile], expires: float
) -> bool:
    """Mark ``job`` completed with its files, in ``uow`` (with its audit
    entries); ``False`` if it was no longer the worker's."""
    files = [{"type": f.res_type, "name": f.name, "count": f.count} for f in output]
    return (
        uow.execute(
            "UPDATE export_job SET status = ?, progress = ?, output = ?, expires = ? "
            "WHERE id = ? AND worker = ? AND status = ?",
            [
                COMPLETED,
                "complete",
                fhirjson.dumps(files).decode(),
                expires,
                job.id,
                worker,
                RUNNING,
            ],
        )
        == 1
    )


def fail(store: Store, job: Job, worker: str, error: str, expires: float) -> None:
    """Mark ``job`` failed, saying why (the status request answers it)."""
    with store.unit_of_work() as uow:
        uow.execute(
            "UPDATE export_job SET status = ?, progress = ?, error = ?, expires = ? "
            "WHERE id = ? AND worker = ? AND status = ?",
            [FAILED, "failed", error, expires, job.id, worker, RUNNING],
        )


def cancel(store: Store, job: Job) -> None:
    """Cancel ``job`` (a client's DELETE): a worker at it stops at its next
    page; its files go with the next clean-up."""
    with store.unit_of_work() as uow:
        uow.execute(
            "UPDATE export_job SET status = ?, progress = ?, expires = 0 WHERE id = ?",
            [CANCELLED, "cancelled", job.id],
        )


def finished_with(reader: Querier, now: float) -> list[Job]:
    """Jobs whose files are due for deletion: cancelled, or past expiry."""
    rows = reader.select(
        f"SELECT {_COLUMNS} FROM export_job WHERE status IN (?, ?, ?) AND expires <= ?",
        [COMPLETED, FAILED, CANCELLED, now],
    )
    return [_job(row) for row in rows]


def forget(store: Store, job: Job) -> None:
    """Close ``job`` for good once its files are gone: it answers as if it
    never was, and the people it gathered are dropped (its audit entries
    keep them)."""
    with store.unit_of_work() as uow:
        uow.execute(
            "UPDATE export_job SET status = ?, output = NULL WHERE id = ?", [EXPIRED, job.id]
        )
        uow.execute("DELETE FROM export_person WHERE job_id = ?", [job.id])


def project_secret(store: Store, org_ods: str, name: str) -> bytes:
    """The secret keying the pseudonyms of ``org_ods``'s project ``name``,
    made on first use (the first writer wins if two race)."""
    query = "SELECT secret FROM export_project WHERE org_ods = ? AND name = ?"
    rows = store.select(query, [org_ods, name])
    if not rows:
        with store.unit_of_work() as uow:
            uow.execute(
                "INSERT INTO export_project (org_ods, name, secret, created) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (org_ods, name) DO NOTHING",
                [org_ods, name, secrets.token_hex(32), fhirjson.instant()],
            )
        rows = store.select(query, [org_ods, name])
    return bytes.fromhex(str(rows[0][0]))
