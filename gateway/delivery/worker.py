"""The delivery worker: a thread in each gateway process, of which one at a
time (the holder of the lease in ``notification_lease``) takes events off
the outbox, numbers them for their subscribers (``fanout``) and sends what
is due (``sending``). Several processes on one PostgreSQL behave as one: a
process that stops renewing the lease (killed, paused) is succeeded by
another once it runs out, and nothing it had not recorded is lost, since
each step commits what it did in the unit of work that checks the lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from gateway.auth.clients import ClientRegistry
from gateway.delivery import fanout, sending
from gateway.documents.signature import DocumentSigner
from gateway.errors import StoreUnavailable
from gateway.notifications import outbox, state
from gateway.store import Store

log = logging.getLogger("gateway.notifications")
_ROUNDS = 10  # the most Bundles one subscription is sent in one pass
_LOOK_EVERY_S = 5.0
_SENDERS = 8


@dataclass(frozen=True)
class Progress:
    """What one pass did."""

    events: int  # taken off the outbox
    sent: int  # Bundles acknowledged
    failed: int  # attempts that failed


class NotificationWorker:
    """Works the outbox every ``poll_s`` seconds while it holds the lease
    (``lease_s`` seconds, renewed each pass)."""

    def __init__(
        self,
        store: Store,
        signer: DocumentSigner,
        *,
        base_url: str | None = None,
        policy: sending.Policy | None = None,
        poll_s: float = 0.25,
        lease_s: float = 10.0,
    ) -> None:
        self._store = store
        self._signer = signer
        self._base_url = base_url
        self.policy = policy or sending.Policy()
        self._poll_s = poll_s
        self._lease_s = lease_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._registry = ClientRegistry(store)
        self._http = httpx.Client(
            follow_redirects=False,
            limits=httpx.Limits(max_connections=_SENDERS, max_keepalive_connections=_SENDERS),
        )
        # Subscribers' endpoints are called side by side: one slow endpoint
        # holds up one sender, not every subscriber.
        self._senders = ThreadPoolExecutor(_SENDERS, thread_name_prefix="notify")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._looked = 0.0  # when every Subscription was last looked at

    def run_once(self, now: float | None = None) -> Progress:
        """One pass: number what waits on the outbox, then send what is due.
        When nothing waits it reads and writes nothing more, so an idle
        gateway commits nothing; every few seconds it looks at every
        Subscription all the same, for heartbeats due."""
        moment = time.time() if now is None else now
        waiting = outbox.waiting(self._store)
        looking = moment - self._looked >= _LOOK_EVERY_S
        if not (waiting or looking or state.due(self._store, moment)):
            return Progress(0, 0, 0)
        self._looked = moment
        if not self._hold(moment):
            return Progress(0, 0, 0)  # another process works the outbox
        events = 0
        if waiting:
            delivering = fanout.deciding(self._store, self._registry)
            while taken := fanout.assign(
                self._store, delivering, self.holder, moment, self._lease_s
            ):
                events += taken
        sent = failed = 0
        # Again while anything was acknowledged: a handshake's events, and
        # more than one Bundle's worth, go out in this pass, not the next.
        vetted: dict[str, sending.Vetted] = {}
        for _ in range(_ROUNDS):
            due = sending.parcels(self._store, self._registry, moment, self._base_url)
            errors = list(self._senders.map(lambda p: self._send(p, vetted), due))
            sending.recorded(
                self._store, self.holder, list(zip(due, errors, strict=True)), moment,
                self.policy, self._lease_s,
            )  # fmt: skip
            acknowledged = sum(error is None for error in errors)
            sent += acknowledged
            failed += len(errors) - acknowledged
            if not acknowledged:
                break
        return Progress(events, sent, failed)

    def _hold(self, moment: float) -> bool:
        with self._store.unit_of_work() as uow:
            return state.hold(uow, self.holder, moment, self._lease_s)

    def _send(self, parcel: sending.Parcel, vetted: dict[str, sending.Vetted]) -> str | None:
        """Send ``parcel``; its endpoint is vetted once a pass (its name
        looked up once, not for every POST)."""
        endpoint = parcel.subscriber.subscription.endpoint
        if endpoint is not None and endpoint not in vetted:
            vetted[endpoint] = sending.vet(endpoint, self.policy.allow_loopback)
        known = vetted.get(endpoint) if endpoint is not None else None
        return sending.send(self._http, self._signer, parcel, self.policy, known)

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        """Pass after pass, every ``poll_s`` seconds, until asked to stop
        or ``until`` says so."""
        unavailable = False
        while not self._stop.is_set() and not until():
            try:
                self.run_once()
                if unavailable:
                    log.info("notification passes resume: the database is back")
                unavailable = False
            except StoreUnavailable as exc:  # said once, not every pass of the outage
                if not unavailable:
                    log.error("notification passes wait for the database: %s", exc.message)
                unavailable = True
            except Exception:  # the next pass tries again; the outbox keeps everything
                log.exception("notification pass failed")
            self._stop.wait(self._poll_s)

    def ask_to_stop(self) -> None:
        """End ``run`` after the pass under way."""
        self._stop.set()

    def close(self) -> None:
        """Release the senders and their connections."""
        self._senders.shutdown(wait=True)
        self._http.close()

    def start(self) -> None:
        """``run`` in a thread of this process (``stop`` ends it)."""
        self._thread = threading.Thread(target=self.run, name="notifications", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.ask_to_stop()
        if self._thread is not None:
            self._thread.join(timeout=self.policy.timeout_s + 5)
        self.close()
