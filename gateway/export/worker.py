"""The export worker: takes accepted exports one at a time and runs them
(``runner``), and deletes the files of exports past their expiry or
cancelled. Any number of gateway processes may run one against the same
database: a job is claimed by one (``jobs.claim``), and one whose worker
stops speaking for it is taken over and run again from the start.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from gateway.errors import StoreUnavailable
from gateway.export import jobs, runner
from gateway.export.jobs import Job
from gateway.store import Store

log = logging.getLogger("gateway.export")


class ExportWorker:
    def __init__(
        self,
        store: Store,
        directory: str | Path,
        *,
        expiry_s: float,
        poll_s: float = 1.0,
        lines_per_file: int = runner.LINES_PER_FILE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._directory = Path(directory)
        self._expiry_s = expiry_s
        self._poll_s = poll_s
        self._lines_per_file = lines_per_file
        self._clock = clock
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Job | None:
        """Clear away what is finished with, then run the next export
        waiting, if any, to its end; the job run (as claimed)."""
        self.clean_up()
        job = jobs.claim(self._store, self.name, self._clock())
        if job is None:
            return None
        self._run(job)
        return job

    def _run(self, job: Job) -> None:
        def checkpoint(progress: str) -> bool:
            return jobs.still_mine(self._store, job, self.name, self._clock(), progress)

        try:
            output = runner.run(
                self._store,
                job,
                self._directory,
                checkpoint=checkpoint,
                lines_per_file=self._lines_per_file,
            )
            if not checkpoint("recording the audit entries"):
                raise runner.Cancelled(job.id)
            runner.audit_entries(self._store, job)
            with self._store.unit_of_work() as uow:
                if not jobs.complete(uow, job, self.name, output, self._clock() + self._expiry_s):
                    raise runner.Cancelled(job.id)
            log.info("export %s complete: %d files", job.id, len(output))
        except runner.Cancelled:
            log.info("export %s stopped: cancelled or taken over", job.id)
        except runner.Unexportable as exc:
            runner.remove_files(self._directory, job.id)
            jobs.fail(self._store, job, self.name, str(exc), self._clock() + self._expiry_s)
        except Exception as exc:
            log.exception("export %s failed", job.id)
            runner.remove_files(self._directory, job.id)
            jobs.fail(
                self._store,
                job,
                self.name,
                f"the export failed ({type(exc).__name__}); its files were removed",
                self._clock() + self._expiry_s,
            )

    def clean_up(self) -> int:
        """Delete the files of exports cancelled or past their expiry, and
        forget them; how many."""
        finished = jobs.finished_with(self._store, self._clock())
        for job in finished:
            runner.remove_files(self._directory, job.id)
            jobs.forget(self._store, job)
        return len(finished)

    # -- in the background -----------------------------------------------------

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        """Work until asked to stop (or ``until`` says so)."""
        unavailable = False
        while not self._stop.is_set() and not until():
            try:
                busy = self.run_once() is not None
                if unavailable:
                    log.info("export passes resume: the database is back")
                unavailable = False
            except StoreUnavailable as exc:  # said once, not every pass of the outage
                if not unavailable:
                    log.error("export passes wait for the database: %s", exc.message)
                unavailable = True
                busy = False
            except Exception:
                log.exception("export worker pass failed")
                busy = False
            if not busy:
                self._stop.wait(self._poll_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="gateway-export", daemon=True)
        self._thread.start()

    def ask_to_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self.ask_to_stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
