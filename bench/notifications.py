"""Notifications under an ADT feed (issue 27's checks): events per second
from an HL7 v2 ADT feed through to acknowledged deliveries with 100
subscribers, and the added cost of an ADT message with subscriptions active
(target: loading under 20% slower than without).

Run ``python -m bench.notifications`` (``--help`` for the options;
``--quick`` for a short run, ``--profile`` to see where the time goes).

Method
------
Two stores are built alike (``--stores``: SQLite files in a temporary
directory, or databases of a throwaway PostgreSQL cluster from
``tests.support.postgres``):

- ``--people`` people, each added by one of two hospitals (ADT A28,
  loaded as ``gateway load`` loads a file) with a registered GP practice
  (PD1, one of 30); about one in seven lives in a care home (an active
  EpisodeOfCare the home's system writes through the API) and about one in
  four has an open case with one of four councils (likewise);
- the same client registrations in both: a records system per care home
  and council, and ``--subscribers`` subscriber systems of GP practices,
  care homes, councils and the hospitals (45/20/20/15%).

In the second store each subscriber system then writes one rest-hook
Subscription through the API, as itself: admission, discharge or A&E
attendance, filtered by its care relationship with the person (registered,
resident, open-case, care; the hospitals' A&E subscriptions by class
instead), half id-only and half full-resource, each to its own path on one
receiver on loopback (``bench._receiver``, a process of its own answering
200 at once). One worker pass makes every handshake before anything is
measured.

The feed is one stream of ADT messages from the two hospitals: A01
admissions (inpatient), A04 attendances (emergency class: an A&E
attendance and an admission), and A03 discharges of visits still open,
about 35/25/40. Every message is an event, so this is the heavy end of a
real feed (where A08 updates, which are none, dilute it). Each round takes
the next ``--messages`` of the stream and loads them into both stores, one
after the other, the order alternating between rounds, each message through
``gateway.mllp.handle`` (what the MLLP listener does with a framed message:
parse, map, one transaction, its ACK), one at a time as an interface
engine sends them:

(a) without subscriptions: the outbox still records each event in the
    message's transaction; no worker runs (none would have anything to do);
(b) with the subscriptions and a ``NotificationWorker`` thread running in
    the same process, as ``gateway serve`` runs it (a pass every 0.5 s:
    fan-out with consent per subscriber, then one signed POST per
    subscription due). Each message's load time is measured while the
    worker competes for the store and the GIL.
(c) end to end, in the same run as (b): from the first message to every
    event taken off the outbox and every Subscription's ``acknowledged`` up
    to its ``numbered``; events per second over that time, and each
    notified event's latency from its ``timestamp`` (the instant its change
    was written) to its receipt.

With ``--worker process`` the worker runs instead in a process of its own
(``worker_process``), as a deployment runs it: in ``gateway serve``, beside
``gateway mllp``, which runs none. Then the two share the store (and, on
SQLite, its write lock) and the machine's cores, but not the GIL.

Figures are medians over ``--rounds`` rounds; latencies pooled over them.
CPU is this process's (``time.process_time``: loader, and the worker when it
is a thread here), per 1,000 messages loaded, up to the end of loading;
"to all acked" adds what comes after, and a worker process's own CPU.
Before measuring, a warm-up round of 50 messages goes to both stores and
the process's objects are frozen out of the garbage collector's sight, as
``gateway serve`` does at start-up. The audit entries that loads and
deliveries stage are left staged (no request asks for them to be
sequenced), in both stores alike.

``--profile`` then adds two rounds. One with subscriptions, unprofiled,
times the worker's steps (``fanout.assign``, ``sending.parcels``, ``send``,
``recorded``: each but ``send`` one unit of work) and, on SQLite, how long
the loader and the worker waited for the write lock and held it. The other
runs each configuration with cProfile on the thread that loads (where
``mllp.handle`` runs ``load_record``) and on the worker's thread, and
prints the functions that took the most time (the profiler slows the
worker's Python more than the loader's I/O, so its shares, not its totals,
are the figures to read).

What is left out: TLS (every endpoint is plain HTTP on one server on
loopback, where 100 real subscribers would be 100 hosts), the network's
round trips, and the MLLP socket itself.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import logging
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench._synthetic import nhs_numbers
from gateway import loading, mllp
from gateway.delivery import fanout, sending
from gateway.delivery.sending import Policy
from gateway.delivery.worker import NotificationWorker
from gateway.documents.signature import load_or_create_document_key
from gateway.notifications.subscriptions import FILTER_URL, PAYLOAD_URL
from gateway.notifications.topics import PREFIX
from gateway.store import Store, open_store
from mappings.hl7v2.parser import parse_message
from tests.conftest import access_token, keep_test_id_key, make_client
from tests.support.postgres import start_cluster

TARGET_SLOWDOWN = 0.20
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
BASE_URL = "https://gateway.bench.invalid/fhir"
# Invented organisations, ODS-shaped as the demo's are (a 9 where real codes
# have a letter or a low digit), so nothing here names a real one.
HOSPITALS = ("R9D", "R9F")
PRACTICES = tuple(f"F99B{n:02d}" for n in range(1, 31))
HOMES = tuple(f"V9B{n:02d}" for n in range(1, 13))
COUNCILS = ("E09000007", "E09000019", "E09000014", "E09000012")
# Subscriber systems by kind, as shares of ``--subscribers``, and what each
# kind subscribes to in turn: (topic, filter).
KINDS: tuple[tuple[str, float, tuple[str, ...], tuple[tuple[str, str], ...]], ...] = (
    (
        "gp-practice",
        0.45,
        PRACTICES,
        (
            ("admission", "relationship=registered"),
            ("discharge", "relationship=registered"),
            ("ae-attendance", "relationship=registered"),
        ),
    ),
    (
        "care-home",
        0.20,
        HOMES,
        (
            ("admission", "relationship=resident"),
            ("discharge", "relationship=resident"),
            ("ae-attendance", "relationship=resident"),
        ),
    ),
    (
        "council",
        0.20,
        COUNCILS,
        (
            ("discharge", "relationship=open-case"),
            ("admission", "relationship=open-case"),
            ("discharge", "relationship=open-case"),
        ),
    ),
    (
        "hospital",
        0.15,
        HOSPITALS,
        (
            ("admission", "relationship=care"),
            ("ae-attendance", "class=EMER"),
            ("discharge", "relationship=care"),
        ),
    ),
)
WARM_UP = 50


# -- the people and the feed ---------------------------------------------------


@dataclass(frozen=True)
class Person:
    index: int
    nhs: str
    practice: str
    home: str | None
    council: str | None

    @property
    def hospital(self) -> str:
        """The hospital that added them (either may admit them later)."""
        return HOSPITALS[self.index % len(HOSPITALS)]


def people(count: int, seed: int) -> list[Person]:
    rng = random.Random(seed)
    numbers = nhs_numbers(seed)
    found = []
    for index in range(count):
        home = HOMES[rng.randrange(len(HOMES))] if rng.random() < 0.15 else None
        council = (
            COUNCILS[rng.randrange(len(COUNCILS))]
            if rng.random() < (0.6 if home else 0.2)
            else None
        )
        found.append(Person(index, next(numbers), PRACTICES[index % len(PRACTICES)], home, council))
    return found


def _ts(moment: datetime) -> str:
    return f"{moment:%Y%m%d%H%M%S}"


_STRUCTURES = {"A01": "ADT_A01", "A03": "ADT_A03", "A04": "ADT_A01", "A28": "ADT_A05"}
_SURNAMES = ("Okafor", "Patel", "Nowak", "Murphy", "Ahmed", "Silva", "Jones", "Kaur", "Byrne")
_GIVEN = ("Ada", "Ben", "Chidi", "Dana", "Eli", "Fern", "Gus", "Hana", "Ivo", "Jude", "Kit")


def _person_segments(person: Person, hospital: str) -> list[str]:
    n = person.index
    pid = [""] * 12
    pid[0], pid[1] = "PID", "1"
    pid[3] = f"{person.nhs}^^^NHS^NH~H{n:07d}^^^{hospital}^MR"
    pid[5] = f"{_SURNAMES[n % len(_SURNAMES)]}^{_GIVEN[n % len(_GIVEN)]}"
    pid[7] = f"19{30 + n % 60:02d}{1 + n % 12:02d}{1 + n % 28:02d}"
    pid[8] = "F" if n % 2 else "M"
    pid[11] = f"{1 + n % 90} Bench Street^^London^^QB{1 + n % 9} {1 + n % 9}AB^GBR^H"
    return ["|".join(pid), f"PD1|||Practice {person.practice}^^{person.practice}"]


def message(
    event: str,
    person: Person,
    hospital: str,
    control: str,
    when: datetime,
    visit: Visit | None = None,
) -> str:
    """One ADT message, its segments separated by carriage returns."""
    segments = [
        f"MSH|^~\\&|PAS|{hospital}|GATEWAY|LONDON|{_ts(when)}||ADT^{event}^{_STRUCTURES[event]}|"
        f"{control}|P|2.4|||AL|NE|GBR|8859/1",
        f"EVN|{event}|{_ts(when)}",
        *_person_segments(person, hospital),
    ]
    if visit is not None:
        pv1 = [""] * 46
        pv1[0], pv1[1], pv1[2] = "PV1", "1", visit.klass
        pv1[3] = f"{'AE' if visit.klass == 'E' else 'W' + str(visit.number % 9)}^^^{hospital}"
        pv1[4] = "21"  # admission method: emergency, via A&E
        pv1[14] = "85" if person.home else "19"  # from a care home, or home
        pv1[19] = visit.id
        pv1[44] = _ts(visit.admitted)
        if event == "A03":
            pv1[36] = pv1[14]
            pv1[45] = _ts(when)
        segments.append("|".join(pv1).rstrip("|"))
        if visit.klass == "I":
            segments.append(f"DG1|1||J18.9^Pneumonia^I10||{_ts(visit.admitted)}|A")
    return "\r".join(segments)


@dataclass
class Visit:
    number: int
    person: Person
    hospital: str
    klass: str  # PV1-2: I inpatient, E emergency
    admitted: datetime

    @property
    def id(self) -> str:
        return f"V{self.number:08d}"


@dataclass
class Feed:
    """A hospital ADT stream: admissions, attendances and discharges of the
    visits still open, each person in one visit at a time."""

    people: list[Person]
    seed: int
    clock: datetime
    step: timedelta
    rng: random.Random = field(init=False)
    open: dict[int, Visit] = field(default_factory=dict)  # by person
    made: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed * 31 + 7)

    def take(self, count: int) -> list[tuple[str, bytes]]:
        """The next ``count`` messages, as (sending hospital, MLLP payload)."""
        return [self._next() for _ in range(count)]

    def _next(self) -> tuple[str, bytes]:
        rng = self.rng
        self.made += 1
        self.clock += self.step
        control = f"B{self.made:09d}"
        crowded = len(self.open) > len(self.people) // 3
        if self.open and (crowded or rng.random() < 0.4):
            visit = self.open.pop(rng.choice(list(self.open)))
            text = message("A03", visit.person, visit.hospital, control, self.clock, visit)
            return visit.hospital, text.encode("latin-1")
        person = rng.choice([p for p in self.people if p.index not in self.open])
        hospital = HOSPITALS[rng.randrange(len(HOSPITALS))]
        klass = "I" if rng.random() < 0.58 else "E"
        visit = Visit(self.made, person, hospital, klass, self.clock)
        self.open[person.index] = visit
        event = "A01" if klass == "I" else "A04"
        return hospital, message(event, person, hospital, control, self.clock, visit).encode(
            "latin-1"
        )


# -- the stores and the world in them ------------------------------------------


@dataclass(frozen=True)
class Stores:
    plain: Store
    subscribed: Store
    subscribed_url: str  # for a worker in a process of its own


@contextmanager
def sqlite_stores() -> Iterator[Stores]:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{directory}/subscribed.db"
        plain, subscribed = open_store(f"sqlite:///{directory}/plain.db"), open_store(url)
        try:
            yield Stores(plain, subscribed, url)
        finally:
            plain.close()
            subscribed.close()


@contextmanager
def postgres_stores() -> Iterator[Stores]:
    cluster = start_cluster()
    try:
        url = cluster.create_database("subscribed")
        plain, subscribed = open_store(cluster.create_database("plain")), open_store(url)
        try:
            yield Stores(plain, subscribed, url)
        finally:
            plain.close()
            subscribed.close()
    finally:
        cluster.stop()


@dataclass(frozen=True)
class Subscriber:
    client_id: str
    kind: str
    org: str
    topic: str
    criterion: str
    payload: str


def subscribers(count: int) -> list[Subscriber]:
    """``count`` subscriber systems, the kinds in their shares."""
    shares = [round(count * share) for _, share, _, _ in KINDS[1:]]
    counts = [count - sum(shares), *shares]
    found = []
    for (kind, _, orgs, wants), many in zip(KINDS, counts, strict=True):
        for n in range(many):
            topic, criterion = wants[n % len(wants)]
            found.append(
                Subscriber(
                    f"bench-{kind}-{n:03d}",
                    kind,
                    orgs[n % len(orgs)],
                    topic,
                    f"Encounter?{criterion}",
                    ("id-only", "full-resource")[n // len(wants) % 2],
                )
            )
    return found


def subscription(subscriber: Subscriber, endpoint: str) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "care pathway events (benchmark)",
        "criteria": PREFIX + subscriber.topic,
        "_criteria": {"extension": [{"url": FILTER_URL, "valueString": subscriber.criterion}]},
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "header": [f"X-Subscriber: {subscriber.client_id}"],
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": PAYLOAD_URL, "valueCode": subscriber.payload}]},
        },
    }


def _population(everyone: list[Person], clock: datetime) -> dict[str, bytes]:
    """Each hospital's A28s (person added) of the people it added, as a file."""
    files: dict[str, list[str]] = {hospital: [] for hospital in HOSPITALS}
    for person in everyone:
        text = message("A28", person, person.hospital, f"P{person.index:09d}", clock)
        files[person.hospital].append(text + "\r\n")
    return {hospital: "".join(texts).encode("latin-1") for hospital, texts in files.items()}


def _patient_id(person: Person, clock: datetime) -> str:
    text = message("A28", person, person.hospital, "id", clock)
    record = loading.hl7v2_message_record(parse_message(text), text, person.hospital, "id")
    assert record.resources is not None, record.problem
    return next(str(r["id"]) for r in record.resources if r["resourceType"] == "Patient")


def build(
    store: Store,
    everyone: list[Person],
    wanted: list[Subscriber],
    endpoint: str | None,
    clock: datetime,
) -> None:
    """The people, their care homes' and councils' episodes, and the clients;
    with ``endpoint``, each subscriber's Subscription to it too."""
    store.migrate()
    keep_test_id_key(store)
    for hospital, text in _population(everyone, clock).items():
        report = loading.LoadReport()
        acting = loading.ForSource(loading.author_for("hl7v2", hospital))
        loading.load_stream(store, "hl7v2", acting, io.BytesIO(text), report, "population")
        assert not report.rejections, report.rejections[:3]
    with make_client(store, token=None) as api:
        tokens: dict[str, str] = {}
        for kind, orgs in (("care-home", HOMES), ("council", COUNCILS)):
            for org in orgs:
                tokens[org] = access_token(store, client_id=f"records-{org}", kind=kind, org=org)
        for person in everyone:
            subject = {"reference": f"Patient/{_patient_id(person, clock)}"}
            for manager in (person.home, person.council):
                if manager is None:
                    continue
                episode = {
                    "resourceType": "EpisodeOfCare",
                    "status": "active",
                    "patient": subject,
                    "managingOrganization": {"identifier": {"system": ODS, "value": manager}},
                    "period": {"start": "2025-01-01"},
                }
                answer = api.post(
                    "/fhir/EpisodeOfCare",
                    json=episode,
                    headers={"Authorization": f"Bearer {tokens[manager]}"},
                )
                assert answer.status_code == 201, answer.text
        for subscriber in wanted:
            token = access_token(
                store, client_id=subscriber.client_id, kind=subscriber.kind, org=subscriber.org
            )
            if endpoint is None:
                continue
            answer = api.post(
                "/fhir/Subscription",
                json=subscription(subscriber, f"{endpoint}/{subscriber.client_id}"),
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 201, answer.text


# -- the receiver ----------------------------------------------------------------


class Receiver:
    """``bench._receiver`` in a child process."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench._receiver"], stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self._process.stdout.readline())}"
        self._http = httpx.Client()

    def stats(self) -> dict[str, Any]:
        """What it was sent since it was last asked, and forget it."""
        found: dict[str, Any] = orjson.loads(self._http.get(f"{self.url}/stats?reset=1").content)
        return found

    def close(self) -> None:
        self._http.close()
        self._process.terminate()
        self._process.wait(timeout=10)


# -- the worker in a process of its own ----------------------------------------


def worker_process(url: str, key: str, holder: str) -> None:
    """``--worker process``: the worker alone in a process, as ``gateway
    serve`` runs it beside ``gateway mllp`` (which runs none), until its
    input closes; it says ``ready`` once warm, and at the end its CPU
    seconds since."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    store = open_store(url)
    worker = NotificationWorker(
        store,
        load_or_create_document_key(Path(key)),
        base_url=BASE_URL,
        policy=Policy(allow_loopback=True),
    )
    worker.holder = holder
    worker.run_once()
    gc.collect()
    gc.freeze()
    cpu = time.process_time()
    print("ready", flush=True)
    worker.start()
    sys.stdin.read()
    worker.stop()
    print(f"cpu {time.process_time() - cpu}", flush=True)
    store.close()


class WorkerProcess:
    """``worker_process`` in a child, started and warm when made."""

    def __init__(self, url: str, key: Path, holder: str) -> None:
        code = (
            "from bench.notifications import worker_process\n"
            f"worker_process({url!r}, {str(key)!r}, {holder!r})"
        )
        self._process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.strip() == "ready":
                return
        raise SystemExit("the worker's process ended before it was ready")

    def stop(self) -> float:
        """Stop it; its CPU seconds from ready to stopped."""
        out, _ = self._process.communicate(timeout=60)
        found = [line for line in out.splitlines() if line.startswith("cpu ")]
        if self._process.returncode != 0 or not found:
            raise SystemExit("the worker's process failed")
        return float(found[-1].split()[1])


# -- measuring ---------------------------------------------------------------------


def _scalar(store: Store, sql: str) -> int:
    value = store.select(sql, [])[0][0]
    return int(str(value or 0))


def outbox_size(store: Store) -> int:
    return _scalar(store, "SELECT COUNT(*) FROM notification_event")


def numbered(store: Store) -> int:
    return _scalar(store, "SELECT SUM(numbered) FROM subscription_state")


def drained(store: Store) -> bool:
    """Every event off the outbox, and every numbered one acknowledged."""
    if _scalar(store, "SELECT COUNT(*) FROM subscription_state WHERE status = 'error'"):
        raise SystemExit("a Subscription went to error: the receiver refused or failed")
    unacknowledged = _scalar(
        store,
        "SELECT SUM(numbered - acknowledged) FROM subscription_state "
        "WHERE status IN ('requested', 'active')",
    )
    return outbox_size(store) == 0 and unacknowledged == 0


@dataclass
class Run:
    """One configuration's round."""

    messages: int
    seconds: float  # loading, first message to last ACK
    cpu: float  # process CPU over the same
    latencies: list[float]  # per message, seconds
    events: int = 0  # on the outbox after it
    # With subscriptions: up to every delivery acknowledged.
    e2e_seconds: float = 0.0
    e2e_cpu: float = 0.0
    notified: int = 0  # numbered for subscribers
    received: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def ms_per_message(self) -> float:
        return 1000 * self.seconds / self.messages


async def _feed(store: Store, messages: list[tuple[str, bytes]], took: list[float]) -> None:
    for source, payload in messages:
        started = time.perf_counter()
        ack = await mllp.handle(store, source, payload)
        took.append(time.perf_counter() - started)
        if b"MSA|AA|" not in ack:
            raise SystemExit(f"a message was not accepted: {ack!r}")


class Bench:
    def __init__(self, stores: Stores, key: Path, receiver: Receiver, separate: bool) -> None:
        self.plain, self.subscribed = stores.plain, stores.subscribed
        self.url = stores.subscribed_url
        self.key = key
        self.signer = load_or_create_document_key(key)
        self.receiver = receiver
        self.separate = separate  # the worker in a process of its own
        # One loop for the whole run, so ``asyncio.to_thread`` keeps its
        # thread (and SQLite its connection on that thread) between rounds.
        self.loop = asyncio.new_event_loop()
        self.holder: str | None = None

    def worker(self) -> NotificationWorker:
        worker = NotificationWorker(
            self.subscribed, self.signer, base_url=BASE_URL, policy=Policy(allow_loopback=True)
        )
        # The same process throughout: each round's worker keeps the lease
        # the first took, rather than waiting out its 10 s.
        if self.holder is None:
            self.holder = worker.holder
        worker.holder = self.holder
        return worker

    def load(self, store: Store, messages: list[tuple[str, bytes]]) -> Run:
        took: list[float] = []
        cpu, started = time.process_time(), time.perf_counter()
        self.loop.run_until_complete(_feed(store, messages, took))
        return Run(len(messages), time.perf_counter() - started, time.process_time() - cpu, took)

    def without(self, messages: list[tuple[str, bytes]]) -> Run:
        before = outbox_size(self.plain)
        run = self.load(self.plain, messages)
        run.events = outbox_size(self.plain) - before
        return run

    def with_subscriptions(self, messages: list[tuple[str, bytes]], timeout: float = 600) -> Run:
        self.receiver.stats()
        before = numbered(self.subscribed)
        worker = self.worker()
        child = None
        if self.separate:
            assert self.holder is not None
            worker.stop()  # only its holder is used: the child works as it
            child = WorkerProcess(self.url, self.key, self.holder)
        cpu, started = time.process_time(), time.perf_counter()
        if child is None:
            worker.start()
        try:
            run = self.load(self.subscribed, messages)
            while not drained(self.subscribed):
                if time.perf_counter() - started > timeout:
                    raise SystemExit("the deliveries did not finish in time")
                time.sleep(0.01)
            run.e2e_seconds = time.perf_counter() - started
            run.e2e_cpu = time.process_time() - cpu
        finally:
            if child is None:
                worker.stop()
            else:
                run.e2e_cpu += child.stop()
        run.notified = numbered(self.subscribed) - before
        run.received = self.receiver.stats()
        return run

    def handshake(self) -> None:
        worker = self.worker()
        try:
            progress = worker.run_once()
        finally:
            worker.stop()
        active = _scalar(
            self.subscribed, "SELECT COUNT(*) FROM subscription_state WHERE status = 'active'"
        )
        stats = self.receiver.stats()
        assert progress.failed == 0 and active == progress.sent, (progress, active, stats)

    def idle_pass_ms(self, passes: int = 5) -> tuple[float, float]:
        """Worker passes with nothing waiting, in ms: a new worker's first,
        which looks at every Subscription (as a worker does every few
        seconds, for heartbeats due), and the next."""
        first: list[float] = []
        next_: list[float] = []
        for _ in range(passes):
            worker = self.worker()
            try:
                for took in (first, next_):
                    started = time.perf_counter()
                    worker.run_once()
                    took.append(1000 * (time.perf_counter() - started))
            finally:
                worker.stop()
        return statistics.median(first), statistics.median(next_)


# -- where the time goes ----------------------------------------------------------


@contextmanager
def timed_worker() -> Iterator[dict[str, list[float]]]:
    """Wall time of each step of the worker's passes (each of ``assign``,
    ``parcels`` and ``recorded`` is one unit of work, holding SQLite's write
    lock throughout), by step. The worker calls them through their modules,
    so wrapping the module's function is seen."""
    spent: dict[str, list[float]] = defaultdict(list)
    originals = [(module, name, getattr(module, name)) for module, name in _WORKER_STEPS]

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            _STEP.name = name
            try:
                return function(*args, **kwargs)
            finally:
                _STEP.name = None
                spent[name].append(time.perf_counter() - started)

        return call

    for module, name, function in originals:
        setattr(module, name, timed(name, function))
    try:
        yield spent
    finally:
        for module, name, function in originals:
            setattr(module, name, function)


# The worker's step under way on this thread, for ``timed_write_lock``.
_STEP = threading.local()
_WORKER_STEPS = (
    (fanout, "assign"),
    (sending, "parcels"),
    (sending, "send"),
    (sending, "recorded"),
)


_THREADS = {"asyncio": "loader (mllp.handle)", "notifications": "worker"}


@contextmanager
def timed_write_lock(store: Store) -> Iterator[dict[str, list[tuple[float, float]]]]:
    """(waited, held) for SQLite's write lock, by thread (the loader's
    executor thread, ``asyncio_*``; the worker's, ``notifications``) and the
    worker's step. Reaches into the SQLite store's writers' queue, so
    SQLite only."""
    found: dict[str, list[tuple[float, float]]] = defaultdict(list)
    original = getattr(store, "_writers_queue", None)
    if original is None:
        yield found
        return

    @contextmanager
    def queue() -> Iterator[None]:
        asked = time.perf_counter()
        with original():
            got = time.perf_counter()
            try:
                yield
            finally:
                thread = _THREADS.get(threading.current_thread().name.split("_")[0], "other")
                step = getattr(_STEP, "name", None)
                found[f"{thread}: {step}" if step else thread].append(
                    (got - asked, time.perf_counter() - got)
                )

    store._writers_queue = queue  # type: ignore[attr-defined]
    try:
        yield found
    finally:
        del store._writers_queue  # type: ignore[attr-defined]


def timed_round(bench: Bench, feed: Feed, messages: int) -> list[str]:
    """One more round with subscriptions, its worker's steps and the write
    lock timed (no profiler: these are the figures as they are)."""
    batch = feed.take(messages)
    with timed_worker() as steps, timed_write_lock(bench.subscribed) as lock:
        run = bench.with_subscriptions(batch)
    out = [
        f"\ntimed round: {messages} messages, {run.ms_per_message:.2f} ms/message with "
        f"subscriptions, {run.notified} notifications acked in {run.e2e_seconds:.1f} s "
        f"({run.e2e_seconds - run.seconds:.1f} s after the last message)",
    ]
    if steps:
        out.append("  worker steps (wall, s):          calls     total      mean ms   max ms")
    else:
        out.append("  (the worker runs in a process of its own: its steps are not timed)")
    for name, took in steps.items():
        out.append(
            f"  {name:<30}{len(took):>8,}{sum(took):>10.2f}{1000 * statistics.mean(took):>12.2f}"
            f"{1000 * max(took):>9.1f}"
        )
    if lock:
        out.append("  SQLite write lock (s):           units    waited      held   max wait ms")
        for thread, pairs in sorted(lock.items()):
            waits = [w for w, _ in pairs]
            out.append(
                f"  {thread:<30}{len(pairs):>8,}{sum(waits):>10.2f}"
                f"{sum(h for _, h in pairs):>10.2f}{1000 * max(waits):>12.1f}"
            )
        out.append(
            f"  loading took {run.seconds:.2f} s, of which waiting for the write lock "
            f"{sum(w for w, _ in lock.get(_THREADS['asyncio'], [])):.2f} s"
        )
    return out


# -- profiling -------------------------------------------------------------------


@contextmanager
def profiled_loading(profile: cProfile.Profile) -> Iterator[None]:
    """``load_record`` as ``mllp.handle`` calls it (on the executor's thread)
    under ``profile``."""
    original = loading.load_record

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return profile.runcall(original, *args, **kwargs)

    setattr(loading, "load_record", wrapped)  # noqa: B010 (patched for this round only)
    try:
        yield
    finally:
        setattr(loading, "load_record", original)  # noqa: B010


def _top(profile: cProfile.Profile, title: str, sort: str, lines: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats(sort).print_stats(lines)
    body = out.getvalue()
    # From the column headings on: the preamble repeats what the title says.
    start = body.find("   ncalls")
    return f"\n{title} (by {sort})\n{body[start:].rstrip()}"


def profile_round(bench: Bench, feed: Feed, messages: int, lines: int) -> list[str]:
    """One more round of each configuration under cProfile."""
    batch = feed.take(messages)
    out = []
    loader_plain = cProfile.Profile()
    with profiled_loading(loader_plain):
        bench.without(batch)
    loader_subscribed, worker_profile = cProfile.Profile(), cProfile.Profile()
    original = NotificationWorker.run_once

    def run_once(worker: NotificationWorker, now: float | None = None) -> Any:
        return worker_profile.runcall(original, worker, now)

    setattr(NotificationWorker, "run_once", run_once)  # noqa: B010 (this round only)
    try:
        with profiled_loading(loader_subscribed):
            run = bench.with_subscriptions(batch)
    finally:
        setattr(NotificationWorker, "run_once", original)  # noqa: B010
    out.append(
        f"\nprofiled round: {messages} messages; with subscriptions {run.ms_per_message:.2f} "
        f"ms/message, delivered in {run.e2e_seconds:.1f} s"
    )
    profiles = [
        (loader_plain, "loading thread, without subscriptions"),
        (loader_subscribed, "loading thread, with subscriptions and the worker"),
    ]
    if not bench.separate:
        profiles.append((worker_profile, "worker thread (run_once)"))
    for profile, title in profiles:
        out.append(_top(profile, title, "tottime", lines))
        out.append(_top(profile, title, "cumulative", lines))
    return out


# -- the report --------------------------------------------------------------------


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * (len(ordered) - 1) + 0.5))]


def _row(label: str, values: list[float], fmt: str, summary: float | None = None) -> str:
    middle = statistics.median(values) if summary is None else summary
    cells = "".join(f"{format(v, fmt):>10}" for v in values)
    return f"  {label:<38}{cells}{format(middle, fmt):>12}"


def report(
    name: str,
    worker: str,
    subscribers: int,
    plain: list[Run],
    subscribed: list[Run],
    idle_ms: tuple[float, float],
) -> list[str]:
    rounds = len(plain)
    heading = "".join(f"{'round ' + str(n + 1):>10}" for n in range(rounds))
    lines = [f"{name}: {plain[0].messages} messages a round", f"  {'':<38}{heading}{'median':>12}"]

    def per_message(runs: list[Run]) -> list[float]:
        return [run.ms_per_message for run in runs]

    for label, runs in (
        ("(a) without subscriptions", plain),
        (f"(b) {subscribers} subscriptions, the worker in {worker}", subscribed),
    ):
        lines.append(f"  {label}")
        lines.append(_row("messages/s", [r.rate for r in runs], ",.0f"))
        lines.append(_row("ms per message (mean)", per_message(runs), ".2f"))
        lines.append(
            _row("ms per message p50", [1000 * statistics.median(r.latencies) for r in runs], ".2f")
        )
        lines.append(
            _row("ms per message p99", [1000 * _percentile(r.latencies, 0.99) for r in runs], ".2f")
        )
        lines.append(
            _row("process CPU s per 1,000 loading", [1e3 * r.cpu / r.messages for r in runs], ".2f")
        )
    slowdowns = [
        100 * (b.ms_per_message / a.ms_per_message - 1)
        for a, b in zip(plain, subscribed, strict=True)
    ]
    median_slowdown = statistics.median(per_message(subscribed)) / statistics.median(
        per_message(plain)
    )
    verdict = "PASS" if median_slowdown - 1 < TARGET_SLOWDOWN else "MISS"
    lines.append(
        _row("loading slower by (%)", slowdowns, "+.1f", 100 * (median_slowdown - 1))
        + f"   target < {100 * TARGET_SLOWDOWN:.0f}%: {verdict}"
    )
    lines.append("  (c) end to end, with subscriptions")
    lines.append(_row("events on the outbox", [float(r.events) for r in subscribed], ",.0f"))
    lines.append(_row("notifications numbered", [float(r.notified) for r in subscribed], ",.0f"))
    lines.append(
        _row(
            "notifications received",
            [float(r.received.get("events", 0)) for r in subscribed],
            ",.0f",
        )
    )
    lines.append(
        _row(
            "Bundles POSTed",
            [float(sum(r.received.get("bundles", {}).values())) for r in subscribed],
            ",.0f",
        )
    )
    lines.append(_row("first message to all acked (s)", [r.e2e_seconds for r in subscribed], ".2f"))
    lines.append(
        _row(
            "  of which after the last message (s)",
            [r.e2e_seconds - r.seconds for r in subscribed],
            ".2f",
        )
    )
    lines.append(
        _row("events/s end to end", [r.events / r.e2e_seconds for r in subscribed], ",.0f")
    )
    lines.append(
        _row("notifications/s end to end", [r.notified / r.e2e_seconds for r in subscribed], ",.0f")
    )
    lines.append(
        _row(
            "process CPU s per 1,000, to all acked",
            [1000 * r.e2e_cpu / r.messages for r in subscribed],
            ".2f",
        )
    )
    pooled = [x for r in subscribed for x in r.received.get("latencies", [])]
    if pooled:
        lines.append(
            f"  write to receipt, {len(pooled):,} notified events pooled: "
            f"p50 {1000 * statistics.median(pooled):,.0f} ms, "
            f"p99 {1000 * _percentile(pooled, 0.99):,.0f} ms, "
            f"max {1000 * max(pooled):,.0f} ms"
        )
    lines.append(
        f"  an idle worker pass: {idle_ms[1]:.2f} ms; one looking at every Subscription "
        f"(a new worker's first, then every few seconds): {idle_ms[0]:.1f} ms"
    )
    return lines


def run(name: str, stores: Stores, receiver: Receiver, args: argparse.Namespace) -> list[str]:
    with tempfile.TemporaryDirectory() as keys:
        return _run(name, stores, Path(keys) / "document-key.pem", receiver, args)


def _run(
    name: str, stores: Stores, key: Path, receiver: Receiver, args: argparse.Namespace
) -> list[str]:
    everyone = people(args.people, args.seed)
    wanted = subscribers(args.subscribers)
    total = WARM_UP + args.messages * (args.rounds + (2 if args.profile else 0))
    start = datetime.now().replace(microsecond=0) - timedelta(days=3)
    # The stream's clock advances per message and ends by now: a person's
    # later message is always later (the loader keeps the latest as it stood).
    step = min(timedelta(seconds=30), timedelta(days=2.5) / total)
    started = time.perf_counter()
    build(stores.plain, everyone, wanted, None, start)
    build(stores.subscribed, everyone, wanted, receiver.url, start)
    bench = Bench(stores, key, receiver, separate=args.worker == "process")
    bench.handshake()
    print(
        f"{name}: {len(everyone)} people, {len(wanted)} subscriptions active, "
        f"the worker {'in a process of its own' if bench.separate else 'in the loading process'}, "
        f"built in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    feed = Feed(everyone, args.seed, start + timedelta(hours=1), step)
    warm = feed.take(WARM_UP)
    bench.without(warm)
    bench.with_subscriptions(warm)
    gc.collect()
    gc.freeze()
    without: list[Run] = []
    with_: list[Run] = []
    for number in range(args.rounds):
        batch = feed.take(args.messages)
        if number % 2 == 0:
            without.append(bench.without(batch))
            with_.append(bench.with_subscriptions(batch))
        else:
            with_.append(bench.with_subscriptions(batch))
            without.append(bench.without(batch))
        with_[-1].events = without[-1].events  # the same messages: the same events
        a, b = without[-1], with_[-1]
        print(
            f"{name} round {number + 1}: without {a.ms_per_message:.2f} ms/message, "
            f"with {b.ms_per_message:.2f} ms/message; {b.events} events, "
            f"{b.notified} notifications acked in {b.e2e_seconds:.1f} s",
            flush=True,
        )
    where = "its own process" if bench.separate else "a thread"
    lines = report(name, where, len(wanted), without, with_, bench.idle_pass_ms())
    if args.profile:
        lines += timed_round(bench, feed, args.messages)
        lines += profile_round(bench, feed, args.messages, args.profile_lines)
    bench.loop.close()
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=600, help="ADT messages a round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--people", type=int, default=400)
    parser.add_argument("--seed", type=int, default=27)
    parser.add_argument("--stores", default="sqlite", help="sqlite, postgres or both")
    parser.add_argument("--quick", action="store_true", help="150 messages, 2 rounds, 150 people")
    parser.add_argument("--profile", action="store_true", help="then one round under cProfile")
    parser.add_argument("--profile-lines", type=int, default=25)
    parser.add_argument(
        "--worker",
        choices=("thread", "process"),
        default="thread",
        help="the worker as a thread of the loading process, or in a process of its own "
        "(as gateway serve beside gateway mllp)",
    )
    args = parser.parse_args()
    # httpx logs every request at INFO: ten thousand lines of the worker's POSTs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.quick:
        args.messages, args.rounds, args.people = 150, 2, 150
    receiver = Receiver()
    lines: list[str] = []
    makers: dict[str, Callable[[], Any]] = {"sqlite": sqlite_stores, "postgres": postgres_stores}
    try:
        for name in args.stores.split(","):
            with makers[name]() as stores:
                lines += ["", *run(name, stores, receiver, args)]
    finally:
        receiver.close()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
