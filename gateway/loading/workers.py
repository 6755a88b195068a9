"""A file's records mapped in worker processes, in file order, for the one
writer (``gateway load --jobs N``).

What a record takes before it meets the store needs nothing but the record:
mapping it (``Format.map``), validating its resources and preparing each
for writing (its content with labels and ``meta.source``, its index rows:
``gateway.interactions.write.ready_ahead``). That runs in ``jobs`` worker
processes, a chunk of records at a time; the writer, in this process,
reconciles each record with what is on file and writes it exactly as with
one job, in the same order and the same units of work. A resource the
reconciling changed (a person merged with what other sources said, a
visit's diagnoses gathered) is prepared again by the writer, so the result
is the same whichever ran where.

Memory stays bounded: at most ``IN_FLIGHT`` chunks per worker are out at
once, and a chunk is ``CHUNK`` records. Each worker puts the deployment's
key for mapped ids and the restricted code lists in force first, as the
writer's process has them (both are process-wide).

The writer is what every record waits on, so it never waits itself: the
workers run at a lower priority, and a chunk no worker has finished when
the writer comes to it (while they start, which takes a second or two, or
when other work on the machine keeps them from a core) the writer maps
itself, as with one job. Index rows cross between the processes as the
rows the store writes (``gateway.store.IndexRows``: plain tuples, text
already folded), and a resource prepared ahead as its fields
(``_compact``), several times faster to unpickle than a frozen dataclass's
default state.

A worker that dies, or a mapping that raises, stops the load with
``WorkerFailed`` naming the first record not loaded: every record before
it is written, none after it.
"""

from __future__ import annotations

import copyreg
import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import fields, replace
from itertools import islice
from types import TracebackType
from typing import Any, BinaryIO

from consent.labels import CodeLists, code_lists, use_code_lists
from gateway.interactions.write import Ready, ready_ahead
from gateway.loading.sources import Format, SourceRecord, Unmapped
from gateway.store import IndexRows
from mappings.identity import use_id_key

CHUNK = 50  # records a worker maps at a time
_NICER = 10  # how much lower the workers' scheduling priority is
IN_FLIGHT = 3  # chunks per worker sent ahead of the writer


class WorkerFailed(RuntimeError):
    """A worker process died, or failed to map a record: the load stops
    before the first record not mapped (``where`` in ``file``)."""

    def __init__(self, file: str, where: str, cause: BaseException) -> None:
        super().__init__(
            f"mapping {file} failed at or after {where}: {type(cause).__name__}: {cause}"
        )
        self.file = file
        self.where = where


class Mapper:
    """Maps the records of one load: in this process with one job, in a
    pool of ``jobs`` worker processes (started on first use) with more."""

    # Whether the writer maps a chunk itself rather than wait for a worker.
    map_when_waiting = True

    def __init__(self, jobs: int, id_key: bytes | None) -> None:
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        self.jobs = jobs
        self._id_key = id_key
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Mapper:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers. Whatever they are still mapping is not wanted
        (every chunk was taken, or mapped by the writer instead), and a
        worker kept from a core could take long to finish it: they are
        stopped, not waited for."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        # ProcessPoolExecutor.terminate_workers() from Python 3.14.
        workers = list((getattr(pool, "_processes", None) or {}).values())
        # What the pool still had to send its workers is not wanted either:
        # without this, a feeder thread blocked on a pipe the stopped workers
        # no longer read would hold the process at its exit (seen once, when
        # the pool's manager thread failed on a cancelled chunk as it stopped).
        calls = getattr(pool, "_call_queue", None)
        if calls is not None:
            calls.cancel_join_thread()
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.terminate()
        pool.shutdown(wait=True)

    def records(
        self, form: Format, stream: BinaryIO, source: str, author_source: str | None, file: str
    ) -> Iterator[tuple[SourceRecord, int]]:
        """Each record of ``stream`` mapped, in file order, with how far
        into ``stream`` reading had got when it was read (for progress).
        With workers, its resources that are valid come prepared for a
        write by ``author_source`` (``SourceRecord.ready``)."""
        items = form.split(stream, source)
        if self.jobs == 1:
            for item in items:
                yield _mapped_here(form, item, source), stream.tell()
            return
        first = list(islice(items, CHUNK))
        if self._pool is None and len(first) < CHUNK:
            # A stream of one chunk is mapped sooner than a worker starts.
            position = stream.tell()
            for item in first:
                yield _mapped_here(form, item, source), position
            return
        pool = self._started()
        pending: deque[tuple[Future[bytes], list[SourceRecord | Unmapped], int]]
        pending = deque()
        while True:
            while len(pending) < self.jobs * IN_FLIGHT:
                chunk, first = first or list(islice(items, CHUNK)), []
                if not chunk:
                    break
                try:
                    future = pool.submit(_map_chunk, form, source, author_source, chunk)
                except Exception as exc:  # the pool is broken: a worker died
                    head = pending[0][1][0] if pending else chunk[0]
                    raise WorkerFailed(file, head.where, exc) from exc
                pending.append((future, chunk, stream.tell()))
            if not pending:
                return
            future, chunk, position = pending.popleft()
            if self.map_when_waiting and not future.done():
                future.cancel()  # if no worker took it yet
                mapped = [_mapped_here(form, item, source) for item in chunk]
            else:
                try:
                    mapped = pickle.loads(future.result())
                except Exception as exc:
                    raise WorkerFailed(file, chunk[0].where, exc) from exc
            for record in mapped:
                yield record, position

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Spawned, not forked: a worker shares no database connection,
            # lock or thread with the writer.
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(self._id_key, code_lists()),
            )
        return self._pool


def _mapped_here(form: Format, item: SourceRecord | Unmapped, source: str) -> SourceRecord:
    return item if isinstance(item, SourceRecord) else form.map(item, source)


def _start(id_key: bytes | None, lists: CodeLists) -> None:
    """A worker maps and labels as the writer's process does, and gives
    way to the writer, whom every record waits on, for a core."""
    os.nice(_NICER)
    use_id_key(id_key)
    use_code_lists(lists)


def _map_chunk(
    form: Format, source: str, author_source: str | None, chunk: list[SourceRecord | Unmapped]
) -> bytes:
    """In a worker: ``chunk`` mapped, each record's valid resources
    prepared for a write by ``author_source``; pickled here, so that the
    writer's process unpickles it on the writer's own thread when it comes
    to it (the pool's thread would hold the interpreter's lock meanwhile,
    and every SQLite call of the writer's would wait for it), and not at
    all if the writer mapped the chunk itself."""
    done = []
    for item in chunk:
        record = _mapped_here(form, item, source)
        if record.resources:
            ready = {
                f"{r['resourceType']}/{r['id']}": found
                for r in record.resources
                if (found := ready_ahead(r, author_source)) is not None
            }
            record = replace(record, ready=ready)
        done.append(record)
    return pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL)


def _compact(value: Any) -> tuple[Any, tuple[Any, ...]]:
    """A resource prepared ahead, or its index rows, pickled as its class
    and fields: unpickled by its constructor (a frozen, slotted dataclass's
    default pickle state is set field by field in Python, several times
    slower)."""
    return type(value), tuple(getattr(value, name) for name in _FIELDS[type(value)])


_FIELDS: dict[type, tuple[str, ...]] = {
    kind: tuple(field.name for field in fields(kind)) for kind in (Ready, IndexRows)
}
for _kind in _FIELDS:
    copyreg.pickle(_kind, _compact)
