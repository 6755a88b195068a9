"""The delivery worker, and the bulk export worker (``gateway.export``), in
a process of their own, started by ``gateway serve`` beside the processes
that answer requests.

Deciding, signing and sending notifications is Python work: in a thread of
a process that also answers requests (or takes a source's ``$ingest``), it
takes its turns at that process's interpreter lock. Measured with 100
subscribers on SQLite (``bench/notifications.py``), loading an ADT feed was
44% slower beside a worker thread and 10% slower beside a worker process.

The process lives as long as the server that started it: it ends with it,
and when the server is killed outright (SIGKILL) the kernel ends it too
(Linux), or it sees it has been orphaned and stops after its pass. One
process per node; the lease in the database lets one of a deployment's
work at a time (``gateway.delivery.worker``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

from consent.labels import load_code_lists, use_code_lists
from gateway import logs
from gateway.config import Settings
from gateway.delivery.sending import Policy
from gateway.delivery.worker import NotificationWorker
from gateway.documents.signature import load_or_create_document_key
from gateway.export.worker import ExportWorker
from gateway.store import open_store

log = logging.getLogger("gateway.notifications")
_PR_SET_PDEATHSIG = 1


def start(settings: Settings) -> BaseProcess:
    """Start the delivery process for a server with ``settings``."""
    context = multiprocessing.get_context("spawn")  # nothing inherited but settings
    process = context.Process(
        target=_run, args=(settings, os.getpid()), name="gateway-notifications", daemon=True
    )
    process.start()
    return process


class Supervised:
    """The delivery process, started again whenever it ends before the
    server does: a database it could not reach at its start, a fatal signal
    (a SQLite -shm file that became unwritable is a SIGBUS). Waits between
    starts double from a second to half a minute, and are a second again
    once a process has lived a minute."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stopping = threading.Event()
        self.process = start(settings)
        self._thread = threading.Thread(target=self._watch, name="delivery-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        pause = 1.0
        started = time.monotonic()
        while not self._stopping.wait(1.0):
            if self.process.is_alive():
                if time.monotonic() - started > 60:
                    pause = 1.0
                continue
            log.error(
                "the delivery process ended (exit code %s); starting another in %g s",
                self.process.exitcode,
                pause,
            )
            if self._stopping.wait(pause):
                return
            self.process = start(self._settings)
            started = time.monotonic()
            pause = min(pause * 2, 30.0)

    def terminate(self) -> None:
        """Stop watching, and ask the process to end."""
        self._stopping.set()
        self._thread.join()
        self.process.terminate()

    def join(self, timeout: float | None = None) -> None:
        self.process.join(timeout)


def _die_with(parent: int) -> None:
    """Ask the kernel to end this process when its parent dies (Linux)."""
    if sys.platform.startswith("linux"):
        # Where that cannot be asked, ``run`` sees the orphaning after its pass.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # died before that took hold
        os._exit(0)


def _run(settings: Settings, parent: int) -> None:
    _die_with(parent)
    logs.configure(settings.log_level)
    use_code_lists(
        load_code_lists(settings.restricted_codes) if settings.restricted_codes else None
    )
    store = open_store(settings.database_url, pool_size=3)
    exporter = ExportWorker(store, settings.export_dir, expiry_s=settings.export_expiry_s)
    worker = NotificationWorker(
        store,
        load_or_create_document_key(Path(settings.document_key_path())),
        base_url=settings.base_url,
        policy=Policy(
            max_failures=settings.notify_max_failures,
            allow_loopback=settings.notify_allow_loopback,
        ),
    )

    def orphaned() -> bool:
        return os.getppid() != parent

    def stop(*_: object) -> None:
        worker.ask_to_stop()
        exporter.ask_to_stop()

    stopping = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, stop)
    try:
        if settings.notify:
            exporter.start()  # exports in a thread beside the deliveries
            worker.run(until=orphaned)
        else:
            exporter.run(until=orphaned)
    finally:
        signal.signal(signal.SIGTERM, stopping)
        exporter.stop()
        worker.close()
        store.close()
