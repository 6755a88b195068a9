"""Group commit for the audit log: requests hand their entries to one writer
thread per process, which appends whatever has gathered in one transaction
and then releases every request whose entry it made durable. A request
waits for that (fail closed: no entry, no response), but shares the commit
with its neighbours, so the log keeps pace with the reads it records.

Its transactions also move into the log the entries that writes have
staged in their own transactions (``gateway.audit.staging``): a write waits
for that (``sequenced``) so that its answer, too, leaves with its entry in
the log. It does so once on starting, and at least once a second while it
writes, for what a crashed node left.

The same thread signs a checkpoint every ``checkpoint_every`` seconds when
the log has grown, and once more when the writer closes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any

from gateway import metrics
from gateway.audit import log, staging
from gateway.audit.checkpoint import Signer
from gateway.errors import StoreUnavailable
from gateway.store import Store

_log = logging.getLogger("gateway.audit")
_BATCH = 1000
# Seconds between looks for staged entries no write is waiting for.
_SWEEP_S = 1.0


_COMMITS_OK = metrics.AUDIT_COMMITS.labels(outcome="ok")
_COMMITS_FAILED = metrics.AUDIT_COMMITS.labels(outcome="failed")


def _settle(
    done: Future[list[int]], result: list[int] | None = None, exception: Any = None
) -> None:
    """Resolve a request's future, unless it is no longer wanted: a caller
    that stopped waiting (a timeout) may have cancelled it, and setting a
    cancelled future raises, which must not stop the writer."""
    try:
        if exception is not None:
            done.set_exception(exception)
        else:
            done.set_result(result if result is not None else [])
    except InvalidStateError:
        pass


class AuditUnavailable(RuntimeError):
    """The audit entry could not be written: the request must fail.
    ``transient`` when the database could not be used (``StoreUnavailable``):
    the request fails as unavailable (503), not as a fault (500)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class _Pending:
    records: list[log.AuditRecord]
    done: Future[list[int]]
    # A write's ticket: no entry of its own, but a transaction must run to
    # move the entry it staged into the log.
    sequencing: bool = False


class AuditWriter:
    def __init__(self, store: Store, signer: Signer, checkpoint_every: float = 10.0) -> None:
        self._store = store
        self._signer = signer
        self._every = checkpoint_every
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._closed = False
        self._swept = 0.0
        self._failing = False  # the last commit failed: said once, not per batch
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(self, records: list[log.AuditRecord]) -> Future[list[int]]:
        """Queue ``records``; the future resolves to their log indexes once
        committed, or fails with ``AuditUnavailable``."""
        done: Future[list[int]] = Future()
        for record in records:
            # Hashed and its columns read here, by the caller, while the writer commits.
            record.leaf  # noqa: B018
            record.columns  # noqa: B018
        if self._closed or not self._thread.is_alive():
            done.set_exception(AuditUnavailable("the audit log is closed"))
        else:
            metrics.AUDIT_QUEUE.inc()
            self._queue.put(_Pending(records, done))
        return done

    def record(self, records: list[log.AuditRecord]) -> list[int]:
        """``submit`` and wait."""
        return self.submit(records).result()

    def sequenced(self) -> Future[list[int]]:
        """A future that resolves once every entry staged before the call is
        in the log (``gateway.audit.staging``), or fails with
        ``AuditUnavailable``."""
        done: Future[list[int]] = Future()
        if self._closed or not self._thread.is_alive():
            done.set_exception(AuditUnavailable("the audit log is closed"))
        else:
            metrics.AUDIT_QUEUE.inc()
            self._queue.put(_Pending([], done, sequencing=True))
        return done

    def _run(self) -> None:
        self._commit([_Pending([], Future(), sequencing=True)])  # what a crash left staged
        signed_at = time.monotonic()
        stopping = False
        while not stopping:
            try:
                stopping, signed_at = self._turn(signed_at)
            except Exception:
                # Never the end of the writer: a request whose entry went
                # unanswered fails closed on its own timeout.
                _log.exception("the audit writer's turn failed; it carries on")
                time.sleep(0.1)

    def _turn(self, signed_at: float) -> tuple[bool, float]:
        """One batch: gather what is queued, commit it, sign when due.
        Whether the writer is to stop, and when it last signed."""
        timeout = max(0.05, self._every - (time.monotonic() - signed_at))
        batch: list[_Pending] = []
        stopping = False
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            first = _Pending([], Future())  # nothing queued: a turn to sign
        else:
            if first is None:
                stopping = True
            else:
                batch.append(first)
        while len(batch) < _BATCH and not stopping:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                stopping = True
            else:
                batch.append(more)
        metrics.AUDIT_QUEUE.dec(len(batch))
        self._commit([p for p in batch if p.records or p.sequencing])
        if stopping or time.monotonic() - signed_at >= self._every:
            self._sign()
            signed_at = time.monotonic()
        return stopping, signed_at

    def _commit(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        # Staged entries are moved when a write waits for them, and at least
        # once a second for any a crashed node left: a batch of reads alone
        # spares the look.
        sweep = time.monotonic() - self._swept >= _SWEEP_S
        began = time.perf_counter()
        try:
            with self._store.unit_of_work() as uow:
                if sweep or any(pending.sequencing for pending in batch):
                    staging.sequence(uow)
                    self._swept = time.monotonic()
                indexes = log.append(uow, [r for p in batch for r in p.records])
        except Exception as exc:  # the database's failure is the requests' failure
            _COMMITS_FAILED.inc()
            if not self._failing:
                _log.error("audit entries could not be written: %s", exc)
            self._failing = True
            for pending in batch:
                _settle(
                    pending.done,
                    exception=AuditUnavailable(
                        str(exc), transient=isinstance(exc, StoreUnavailable)
                    ),
                )
            return
        metrics.AUDIT_COMMIT.observe(time.perf_counter() - began)
        _COMMITS_OK.inc()
        if self._failing:
            _log.info("audit entries are written again")
            self._failing = False
        start = 0
        appended = 0
        for pending in batch:
            _settle(pending.done, result=indexes[start : start + len(pending.records)])
            start += len(pending.records)
            appended += len(pending.records)
        if appended:
            metrics.AUDIT_ENTRIES.inc(appended)

    def _sign(self) -> None:
        try:
            log.sign_checkpoint(self._store, self._signer)
        except Exception as exc:
            _log.error("the audit checkpoint could not be signed: %s", exc)

    def close(self) -> None:
        """Write what is queued, sign a last checkpoint, stop."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=30)
