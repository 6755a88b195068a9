"""Soak (issue 30): mixed load against ``gateway serve --workers 2`` for a long
time, watching for errors, latency drift and worker memory growth.

Run ``python -m bench.soak`` (``make bench-soak``; ``--help`` for the
options); ``--minutes 3 --window 15`` is a quick run.

Method
------
1. A fresh store: SQLite in a temporary folder (default), or with ``--store
   postgres`` a database in a throwaway cluster (``tests.support.postgres``,
   as every benchmark makes it). ``gateway migrate`` makes its schema; then
   ``bench.export``'s population is written in this process through the
   write path's own steps (its Organizations, then ``--people`` people of 100
   to 300 resources each: a Patient registered with one of 100 practices,
   EpisodesOfCare with the community trust and for ~10% with the council,
   ~1% refusing the council, Conditions, MedicationStatements, Encounters,
   vital signs; some opted out or labelled restricted), none of it authored
   by a requester, so consent decides every read by care relationships.
2. ``gateway serve --workers 2`` on it (``bench.rest_core``'s ``running``),
   log level INFO (the access log on, as deployed), tokens lasting the run.
   Four clients are registered, each with limits that fit the load
   (``bench._clients.load_limits``: every load client's request in flight at
   once, no rate limit), and get their tokens at ``/auth/token``
   (``bench._clients``): the community trust (kind hospital, an episode with
   everyone), the GP practice with most of the people registered, the council
   (its open cases, less those who refused it) and a hospital that pushes
   HL7 v2 ADT. One request of every kind is checked before the load.
3. ``--clients`` closed-loop clients (default 8) in ``--load-procs`` processes
   of their own (default 2; raw HTTP/1.1 on keep-alive connections,
   ``bench._load``'s connection), each drawing its next request's kind by
   weight (``--mix``):

   ============  =====================================================  ======
   kind          request                                                 expect
   ============  =====================================================  ======
   read          ``GET Patient/{id}`` by the trust, GP or council, of a  200
                 person it sees
   hidden        ``GET Patient/{id}`` by the GP of someone not its        404
                 patient (consent refuses it as a missing record)
   search        one of: ``Observation?subject&code``,                    200
                 ``Condition?subject``, ``Patient?identifier=<NHS>``,
                 ``Observation?subject&_sort=-date&_count=20`` (trust),
                 ``Patient?birthdate=<a month>&_count=20`` (GP, council:
                 across everyone, consent-filtered)
   create        ``POST Observation`` by the trust about one of the       201
                 ``--write-people`` (people no read or search asks about)
   update        ``PUT Observation/{id}`` of one the client created       200
   transaction   10 entries: a new Patient (born 2001) and 9 Observations 200
                 referring to it by ``urn:uuid``
   summary       ``Patient/{id}/$summary`` (the signed document) by the   200
                 trust, GP or council, of a person it sees
   everything    ``Patient/{id}/$everything?_count=50`` (first page)      200
   ingest        ``POST $ingest?format=hl7v2``: one ADT message from the  200, 0
                 hospital (admission, then discharge, of its own          rejected
                 ``--ingest-people`` people; each person's visits cycle
                 over four ids, so what ingest writes stays bounded)
   ============  =====================================================  ======

   The stored data a read, search or document touches does not grow during
   the run (writes go to other people), so latency and memory are not
   pushed by a growing answer.
4. Every ``--window`` seconds (default 60) it prints one line: requests and
   errors by kind, p50/p99 per kind in that window (client-observed, ms, by
   the window in which the answer arrived), and the RSS of each worker
   (``VmRSS`` of ``/proc/<pid>/status``, sampled every ``--rss-every`` s; the
   window's last sample). Workers are the serve process's children that
   hold its listening socket; the other child, the background process
   (notifications, exports), is shown as ``bg``. A worker that is replaced
   counts as an error.

Verdict
-------
Errors: any status other than the kind's expected one (429 included), an
ingest answer rejecting a record, a connection error or a request taking
longer than ``--timeout``, an error or critical line in the server's log,
a worker replaced. RSS: per worker, the median of the samples of the first
window after the warm-up (``--warmup-minutes``, default 5: the windows it
covers are excluded and named in the summary) against the median of the
last window's samples; flat when it grew by at most 10%. PASS is 0 errors
and every worker flat. ``--json FILE`` writes every window.

Memory hunting: ``--tracemalloc SECONDS`` runs the server under
``bench._soak_trace`` (``gateway serve`` itself, with tracemalloc on in every
process), which writes each process's largest allocation growth since its
first snapshot every SECONDS to ``tracemalloc-<pid>.txt`` in the work
directory (kept; tracemalloc costs CPU and memory of its own, so the RSS of
such a run is not the verdict's), with the process's SQLite heap and its
larger functools caches; ``SOAK_TRACEMALLOC_FRAMES=0`` writes only those,
leaving tracemalloc off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import _population as population
from bench import export
from bench._clients import load_limits, register_and_ask_token
from bench._load import _Connection
from bench._synthetic import HEART_RATE, NHS_NUMBER_SYSTEM, SNOMED, nhs_numbers
from bench.rest_core import (
    HOST,
    Server,
    Skipped,
    free_port,
    gateway_command,
    patient,
    percentile,
    postgres_database,
    running,
    sqlite_database,
)
from bench.search_consent import gateway_migrate

FHIR_JSON = "application/fhir+json"
RSS_FLAT = 0.10  # the most a worker's RSS may grow after the warm-up
KINDS = (
    "read",
    "hidden",
    "search",
    "create",
    "update",
    "transaction",
    "summary",
    "everything",
    "ingest",
)
EXPECTED = {
    "read": 200,
    "hidden": 404,
    "search": 200,
    "create": 201,
    "update": 200,
    "transaction": 200,
    "summary": 200,
    "everything": 200,
    "ingest": 200,
}
DEFAULT_MIX = (
    "read=30,hidden=4,search=20,create=8,update=8,transaction=3,summary=8,everything=3,ingest=6"
)
TX_ENTRIES = 10
INGEST_HOSPITAL = "R9D"  # invented, ODS-shaped as the demo's (bench.notifications)
VISITS_PER_PERSON = 4  # an ingest person's visit ids cycle over these
_SAMPLE_BYTES = 300
_SAMPLES_PER_KIND = 3
_CLIENTS = {
    # role: (client id, kind of organisation)
    "trust": ("soak-trust", "hospital"),
    "gp": ("soak-gp", "gp-practice"),
    "council": ("soak-council", "council"),
    "hospital": ("soak-hospital", "hospital"),
}
SCOPES = "system/*.cruds"


# -- what the load asks for ---------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    res_id: str
    nhs: str


@dataclass(frozen=True)
class IngestPerson:
    """Someone only the hospital's ADT feed writes about."""

    index: int
    nhs: str


@dataclass(frozen=True)
class Plan:
    """Everything a load process needs (pickled to it)."""

    host: str
    port: int
    tokens: Mapping[str, str]  # by role
    mix: Mapping[str, int]  # kind: weight
    everyone: Sequence[Person]  # the people reads and searches ask about (the trust sees all)
    gp_sees: Sequence[Person]
    gp_hidden: Sequence[Person]
    council_sees: Sequence[Person]
    write_people: Sequence[str]  # Patient ids creates are about
    ingest_people: Sequence[IngestPerson]
    clients: int
    start: float  # time.time() the load starts
    window: float
    windows: int
    timeout: float
    seed: int


def _request(
    plan: Plan,
    role: str,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = FHIR_JSON,
) -> bytes:
    """A complete HTTP/1.1 request as ``role``, keep-alive."""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {plan.host}:{plan.port}",
        f"Accept: {FHIR_JSON}",
        f"Authorization: Bearer {plan.tokens[role]}",
    ]
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b"")


def heart_rate(subject: str, n: int, res_id: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Observation"}
    if res_id is not None:
        resource["id"] = res_id
    resource.update(
        {
            "status": "final",
            "code": {"coding": [{"system": SNOMED, "code": HEART_RATE, "display": "Heart rate"}]},
            "subject": {"reference": subject},
            "effectiveDateTime": f"2025-07-{1 + n % 28:02d}T10:{n % 60:02d}:00Z",
            "valueQuantity": {
                "value": 60 + n % 40,
                "unit": "beats/minute",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        }
    )
    return resource


def transaction(n: int) -> dict[str, Any]:
    """A new Patient (born 2001: no search's month) and its Observations."""
    person = patient(n)
    person["birthDate"] = f"2001-{1 + n % 12:02d}-{1 + n % 28:02d}"
    person["identifier"] = [{"system": "urn:soak:person", "value": str(uuid.uuid4())}]
    url = f"urn:uuid:{uuid.uuid4()}"
    entries: list[dict[str, Any]] = [
        {"fullUrl": url, "resource": person, "request": {"method": "POST", "url": "Patient"}}
    ]
    entries += [
        {"resource": heart_rate(url, n + k), "request": {"method": "POST", "url": "Observation"}}
        for k in range(TX_ENTRIES - 1)
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def adt_message(person: IngestPerson, event: str, visit: int, n: int, when: datetime) -> bytes:
    """One ADT message about ``person`` (``bench.notifications``' message)."""
    with warnings.catch_warnings():  # bench.notifications imports the tests' helpers
        warnings.simplefilter("ignore")
        from bench.notifications import Person as FeedPerson
        from bench.notifications import Visit, message

    who = FeedPerson(person.index, person.nhs, "F99B01", None, None)
    admitted = when - timedelta(hours=1)
    stay = Visit(person.index * VISITS_PER_PERSON + visit, who, INGEST_HOSPITAL, "I", admitted)
    text = message(event, who, INGEST_HOSPITAL, f"S{n:012d}", when, stay)
    return text.encode("latin-1")


@dataclass
class _ClientState:
    """One closed-loop client's own: its rng, the Observations it created
    (for updates) and where each of its ingest people is."""

    rng: random.Random
    created: list[tuple[str, str]] = field(default_factory=list)  # (id, subject)
    subject: str = ""  # of the create in flight
    made: int = 0
    admitted: dict[int, int] = field(default_factory=dict)  # ingest person: open visit
    visits: Counter[int] = field(default_factory=Counter)  # ingest person: visits so far


_SEARCHES = (
    "obs-code",
    "conditions",
    "nhs-number",
    "obs-sorted",
    "born-month",
)


def next_request(plan: Plan, kind: str, index: int, state: _ClientState) -> tuple[str, bytes]:
    """Client ``index``'s next request of ``kind``: (its kind, its bytes); an
    update before the client has created anything is a create."""
    if kind == "update" and not state.created:
        kind = "create"
    return kind, _next_request(plan, kind, index, state)


def _next_request(plan: Plan, kind: str, index: int, state: _ClientState) -> bytes:
    rng = state.rng
    state.made += 1
    n = state.made * plan.clients + index
    if kind == "read":
        role, people = rng.choice(
            [("trust", plan.everyone), ("gp", plan.gp_sees), ("council", plan.council_sees)]
        )
        return _request(plan, role, "GET", f"/fhir/Patient/{rng.choice(people).res_id}")
    if kind == "hidden":
        return _request(plan, "gp", "GET", f"/fhir/Patient/{rng.choice(plan.gp_hidden).res_id}")
    if kind == "search":
        which = rng.choice(_SEARCHES)
        person = rng.choice(plan.everyone)
        subject = f"Patient/{person.res_id}"
        if which == "obs-code":
            path = f"/fhir/Observation?subject={subject}&code={SNOMED}%7C{HEART_RATE}"
        elif which == "conditions":
            path = f"/fhir/Condition?subject={subject}"
        elif which == "nhs-number":
            path = f"/fhir/Patient?identifier={NHS_NUMBER_SYSTEM}%7C{person.nhs}"
        elif which == "obs-sorted":
            path = f"/fhir/Observation?subject={subject}&_sort=-date&_count=20"
        else:
            month = 1 + rng.randrange(12)
            end = f"{1960 + month // 12}-{month % 12 + 1:02d}-01"
            path = f"/fhir/Patient?birthdate=ge1960-{month:02d}-01&birthdate=lt{end}&_count=20"
            return _request(plan, rng.choice(("gp", "council")), "GET", path)
        return _request(plan, "trust", "GET", path)
    if kind == "update":
        res_id, subject = rng.choice(state.created)
        body = orjson.dumps(heart_rate(subject, n, res_id))
        return _request(plan, "trust", "PUT", f"/fhir/Observation/{res_id}", body)
    if kind == "create":
        subject = state.subject = f"Patient/{rng.choice(plan.write_people)}"
        return _request(
            plan, "trust", "POST", "/fhir/Observation", orjson.dumps(heart_rate(subject, n))
        )
    if kind == "transaction":
        return _request(plan, "trust", "POST", "/fhir", orjson.dumps(transaction(n)))
    if kind == "summary":
        role, people = rng.choice(
            [("trust", plan.everyone), ("gp", plan.gp_sees), ("council", plan.council_sees)]
        )
        return _request(plan, role, "GET", f"/fhir/Patient/{rng.choice(people).res_id}/$summary")
    if kind == "everything":
        person = rng.choice(plan.everyone)
        return _request(
            plan, "trust", "GET", f"/fhir/Patient/{person.res_id}/$everything?_count=50"
        )
    if kind == "ingest":
        mine = plan.ingest_people[index :: plan.clients] or plan.ingest_people
        pushed = rng.choice(mine)
        when = datetime.now(UTC).replace(tzinfo=None)
        if pushed.index in state.admitted:
            visit = state.admitted.pop(pushed.index)
            event = "A03"
        else:
            visit = state.visits[pushed.index] % VISITS_PER_PERSON
            state.visits[pushed.index] += 1
            state.admitted[pushed.index] = visit
            event = "A01"
        body = adt_message(pushed, event, visit, n, when)
        return _request(
            plan, "hospital", "POST", "/fhir/$ingest?format=hl7v2", body, "application/hl7-v2"
        )
    raise ValueError(kind)


def _kind_of(request: bytes) -> str:
    return request.split(b" ", 2)[1].decode("ascii", "replace")


def ingest_rejected(body: bytes) -> int:
    """How many records an ``$ingest`` answer says were rejected (-1: unreadable)."""
    try:
        answer = orjson.loads(body)
        for parameter in answer.get("parameter", []):
            if parameter.get("name") == "summary":
                for part in parameter.get("part", []):
                    if part.get("name") == "rejected":
                        return int(part.get("valueInteger", -1))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        pass
    return -1


def _created_id(head: bytes) -> str | None:
    lower = head.lower()
    at = lower.find(b"\r\nlocation:")
    if at < 0:
        return None
    end = head.find(b"\r\n", at + 2)
    path = head[at + 11 : end].strip().decode("latin-1").split("/_history/")[0]
    return path.rsplit("/", 1)[-1]


# -- the load processes -------------------------------------------------------------------


@dataclass
class Tally:
    """One kind's answers in one window, as a load process counted them."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    problems: Counter[str] = field(default_factory=Counter)  # error by what it was
    samples: list[str] = field(default_factory=list)

    def error(self, what: str, sample: str) -> None:
        self.errors += 1
        self.problems[what] += 1
        if len(self.samples) < _SAMPLES_PER_KIND:
            self.samples.append(f"{what}: {sample[:_SAMPLE_BYTES]}")

    def merge(self, other: Tally) -> None:
        self.latencies_ms += other.latencies_ms
        self.statuses.update(other.statuses)
        self.errors += other.errors
        self.problems.update(other.problems)
        for sample in other.samples:
            if len(self.samples) < _SAMPLES_PER_KIND:
                self.samples.append(sample)


class _Windows:
    """The tallies of the window in progress, by kind."""

    def __init__(self) -> None:
        self.current: dict[str, Tally] = {}

    def tally(self, kind: str) -> Tally:
        found = self.current.get(kind)
        if found is None:
            found = self.current[kind] = Tally()
        return found

    def take(self) -> dict[str, Tally]:
        taken, self.current = self.current, {}
        return taken


async def _client(
    plan: Plan, index: int, until: float, windows: _Windows, stop: asyncio.Event
) -> None:
    state = _ClientState(random.Random(f"{plan.seed}-soak-{index}"))
    kinds = [k for k in KINDS if plan.mix.get(k, 0) > 0]
    weights = [plan.mix[k] for k in kinds]
    conn = _Connection(plan.host, plan.port)
    while time.time() < until and not stop.is_set():
        kind, request = next_request(plan, state.rng.choices(kinds, weights)[0], index, state)
        started = time.perf_counter()
        try:
            status, head, body = await asyncio.wait_for(conn.exchange(request), plan.timeout)
        except TimeoutError:
            conn.close()
            windows.tally(kind).error("timeout", f"no answer in {plan.timeout:g} s")
            continue
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            windows.tally(kind).error(type(exc).__name__, str(exc))
            await asyncio.sleep(0.05)
            continue
        elapsed = (time.perf_counter() - started) * 1000
        tally = windows.tally(kind)
        tally.latencies_ms.append(elapsed)
        tally.statuses[status] += 1
        if status != EXPECTED[kind]:
            text = body.decode("utf-8", "replace")
            tally.error(f"HTTP {status}", f"{_kind_of(request)}: {text}")
        elif kind == "ingest" and ingest_rejected(body) != 0:
            tally.error("ingest rejected", body.decode("utf-8", "replace"))
        elif kind == "create":
            found = _created_id(head)
            if found and len(state.created) < 2000:
                state.created.append((found, state.subject))
    conn.close()


async def _reporter(plan: Plan, proc: int, windows: _Windows, results: Any) -> None:
    """At each window's end, hand its tallies to the parent."""
    for number in range(plan.windows):
        boundary = plan.start + (number + 1) * plan.window
        await asyncio.sleep(max(0.0, boundary - time.time()))
        taken = windows.take()
        results.put((number, proc, taken))


async def _run_load(plan: Plan, proc: int, clients: Sequence[int], results: Any) -> None:
    await asyncio.sleep(max(0.0, plan.start - time.time()))
    windows = _Windows()
    until = plan.start + plan.windows * plan.window
    stop = asyncio.Event()
    reporter = asyncio.ensure_future(_reporter(plan, proc, windows, results))
    await asyncio.gather(*(_client(plan, i, until, windows, stop) for i in clients))
    await reporter


def load_main(plan: Plan, proc: int, clients: Sequence[int], results: Any) -> None:
    """A load process: run ``clients`` from ``plan.start`` to the end of the last window."""
    try:
        import uvloop

        uvloop.run(_run_load(plan, proc, clients, results))
    except ImportError:
        asyncio.run(_run_load(plan, proc, clients, results))
    except BaseException as exc:  # told to the parent, never swallowed
        results.put((-1, proc, f"load process failed: {type(exc).__name__}: {exc}"))
        raise


# -- the server's processes ---------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    """``VmRSS`` of ``pid`` in KiB (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_file_kib(pid: int) -> int | None:
    """The part of ``pid``'s RSS that maps files (``RssFile`` and
    ``RssShmem``: code, SQLite's -shm): KiB, None when it is gone. The rest
    is its heap."""
    found = 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(("RssFile:", "RssShmem:")):
                    found += int(line.split()[1])
    except OSError:
        return None
    return found


def children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as handle:
            next(handle)
            for line in handle:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":  # LISTEN
                    inodes.add(cols[9])
    return inodes


def _holds(pid: int, inodes: set[str]) -> bool:
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(fd.path)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return True
    return False


def server_processes(server: Server) -> tuple[list[int], list[int]]:
    """(workers, others): the serve process's children holding its listening
    socket, and the rest (the background process)."""
    inodes = _listening_inodes(server.port)
    workers: list[int] = []
    others: list[int] = []
    for pid in children(server.process.pid):
        (workers if _holds(pid, inodes) else others).append(pid)
    return workers, others


# -- windows and the verdict (pure) -------------------------------------------------------


@dataclass
class KindWindow:
    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    statuses: dict[int, int]
    problems: dict[str, int]
    samples: list[str]


def kind_window(tally: Tally) -> KindWindow:
    latencies = sorted(tally.latencies_ms)
    return KindWindow(
        requests=len(latencies),
        errors=tally.errors,
        p50_ms=percentile(latencies, 50) if latencies else None,
        p99_ms=percentile(latencies, 99) if latencies else None,
        max_ms=latencies[-1] if latencies else None,
        statuses=dict(tally.statuses),
        problems=dict(tally.problems),
        samples=list(tally.samples),
    )


@dataclass
class Window:
    number: int
    end_s: float  # seconds since the load started
    kinds: dict[str, KindWindow]
    requests: int
    errors: int  # the clients' and the server's
    p50_ms: float | None  # every kind together
    p99_ms: float | None
    worker_rss_kib: list[int]  # by worker slot, the window's last sample
    worker_rss_samples: list[list[int]]  # by worker slot, every sample in the window
    other_rss_kib: list[int]  # the background process(es)
    server_errors: dict[str, int]
    server_error_samples: list[str]
    worker_restarts: int
    load_average: float
    # by worker slot, the part of the last sample mapping files (``rss_file_kib``)
    worker_rss_file_kib: list[int] = field(default_factory=list)


def make_window(
    number: int,
    end_s: float,
    tallies: Mapping[str, Tally],
    rss_samples: Sequence[Sequence[int]],
    other_rss: Sequence[int],
    server_errors: Mapping[str, int],
    server_error_samples: Sequence[str],
    worker_restarts: int,
    load_average: float,
    rss_file: Sequence[int] = (),
) -> Window:
    kinds = {k: kind_window(tallies[k]) for k in KINDS if k in tallies}
    everything = sorted(x for t in tallies.values() for x in t.latencies_ms)
    client_errors = sum(w.errors for w in kinds.values())
    return Window(
        number=number,
        end_s=end_s,
        kinds=kinds,
        requests=sum(w.requests for w in kinds.values()),
        errors=client_errors + sum(server_errors.values()) + worker_restarts,
        p50_ms=percentile(everything, 50) if everything else None,
        p99_ms=percentile(everything, 99) if everything else None,
        worker_rss_kib=[s[-1] if s else 0 for s in rss_samples],
        worker_rss_samples=[list(s) for s in rss_samples],
        other_rss_kib=list(other_rss),
        server_errors=dict(server_errors),
        server_error_samples=list(server_error_samples),
        worker_restarts=worker_restarts,
        load_average=load_average,
        worker_rss_file_kib=list(rss_file),
    )


def warmup_windows(warmup_s: float, window_s: float, windows: int) -> int:
    """How many whole windows the warm-up covers, leaving at least two."""
    return max(0, min(math.ceil(warmup_s / window_s - 1e-9), windows - 2))


@dataclass
class WorkerGrowth:
    slot: int
    start_kib: float  # median of the first window after the warm-up
    end_kib: float  # median of the last window
    peak_kib: int  # highest sample after the warm-up
    growth: float  # end / start - 1

    @property
    def flat(self) -> bool:
        return self.growth <= RSS_FLAT


def rss_growth(windows: Sequence[Window], warmup: int) -> list[WorkerGrowth]:
    """Each worker's RSS from the first window after ``warmup`` windows to the last."""
    after = windows[warmup:]
    if len(after) < 2:
        return []
    found = []
    for slot in range(len(after[0].worker_rss_samples)):
        first = after[0].worker_rss_samples[slot] or [after[0].worker_rss_kib[slot]]
        last = after[-1].worker_rss_samples[slot] or [after[-1].worker_rss_kib[slot]]
        start, end = statistics.median(first), statistics.median(last)
        peak = max(max(w.worker_rss_samples[slot] or [w.worker_rss_kib[slot]]) for w in after)
        found.append(WorkerGrowth(slot, start, end, peak, end / start - 1 if start else math.inf))
    return found


@dataclass
class Verdict:
    passed: bool
    errors: int
    growth: list[WorkerGrowth]
    warmup_windows: int
    reasons: list[str]


def verdict(windows: Sequence[Window], warmup: int, setup_errors: int = 0) -> Verdict:
    errors = setup_errors + sum(w.errors for w in windows)
    growth = rss_growth(windows, warmup)
    reasons = []
    if errors:
        reasons.append(f"{errors} errors")
    if not growth:
        reasons.append("too few windows after the warm-up to judge RSS")
    for g in growth:
        if not g.flat:
            reasons.append(
                f"worker {g.slot} RSS grew {g.growth:+.1%} after the warm-up "
                f"(more than {RSS_FLAT:.0%})"
            )
    return Verdict(not reasons, errors, growth, warmup, reasons)


# -- printing -------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f}" if minutes == int(minutes) else f"{minutes:.1f}"


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.0f}"


def window_line(w: Window) -> str:
    parts = [
        f"{w.end_s / 60:5.1f} min",
        f"{w.requests:6d} req",
        f"{w.errors:3d} err",
        f"p50/p99 {_ms(w.p50_ms)}/{_ms(w.p99_ms)} ms",
        "RSS "
        + "/".join(_mib(r) for r in w.worker_rss_kib)
        + " MiB"
        + (
            f" (files {'/'.join(_mib(r) for r in w.worker_rss_file_kib)})"
            if w.worker_rss_file_kib
            else ""
        ),
        f"bg {'/'.join(_mib(r) for r in w.other_rss_kib) or '-'}",
        f"load {w.load_average:.1f}",
    ]
    line = " | ".join(parts)
    kinds = "  ".join(
        f"{k} {v.requests}"
        + (f"!{v.errors}" if v.errors else "")
        + f" {_ms(v.p50_ms)}/{_ms(v.p99_ms)}"
        for k, v in w.kinds.items()
    )
    return f"{line}\n           {kinds}"


def summary_lines(windows: Sequence[Window], result: Verdict, window_s: float) -> list[str]:
    lines = ["", "Summary"]
    requests = sum(w.requests for w in windows)
    lines.append(
        f"  {requests:,} requests in {len(windows)} windows of {window_s:g} s; "
        f"errors: {result.errors}"
    )
    problems: Counter[str] = Counter()
    samples: list[str] = []
    for w in windows:
        for kind, k in w.kinds.items():
            for what, n in k.problems.items():
                problems[f"{kind}: {what}"] += n
            samples += [f"{kind}: {s}" for s in k.samples]
        for message, n in w.server_errors.items():
            problems[f"server log: {message}"] += n
        samples += w.server_error_samples
        if w.worker_restarts:
            problems["worker replaced"] += w.worker_restarts
    for what, n in problems.most_common():
        lines.append(f"    {n} x {what}")
    for sample in samples[:6]:
        lines.append("    e.g. " + sample.replace("\n", " ")[:400])
    lines.append("  p99 (ms) over time, every kind together, then by kind:")
    lines.append("    all         " + " ".join(_ms(w.p99_ms) for w in windows))
    for kind in KINDS:
        if any(kind in w.kinds for w in windows):
            values = [_ms(w.kinds[kind].p99_ms) if kind in w.kinds else "-" for w in windows]
            lines.append(f"    {kind:<11} " + " ".join(values))
    lines.append("  worker RSS (MiB) at each window's end:")
    slots = max((len(w.worker_rss_kib) for w in windows), default=0)
    for slot in range(slots):
        values = [
            _mib(w.worker_rss_kib[slot]) if slot < len(w.worker_rss_kib) else "-" for w in windows
        ]
        lines.append(f"    worker {slot}    " + " ".join(values))
    lines.append(
        "    background  " + " ".join("/".join(_mib(r) for r in w.other_rss_kib) for w in windows)
    )
    if result.warmup_windows:
        lines.append(
            f"  warm-up: the first {result.warmup_windows} window(s) "
            f"({_minutes(result.warmup_windows * window_s)} min) excluded from the RSS verdict"
        )
    else:
        lines.append("  warm-up: none excluded")
    for g in result.growth:
        lines.append(
            f"  worker {g.slot}: {_mib(g.start_kib)} MiB after warm-up -> {_mib(g.end_kib)} MiB "
            f"at the end ({g.growth:+.1%}; peak {_mib(g.peak_kib)} MiB)"
            f" [{'flat' if g.flat else 'GROWS'}]"
        )
    lines.append(
        f"  {'PASS' if result.passed else 'FAIL'}: 0 errors and worker RSS flat within "
        f"{RSS_FLAT:.0%} after the warm-up"
        + ("" if result.passed else " -- " + "; ".join(result.reasons))
    )
    return lines


# -- setting up -----------------------------------------------------------------------------


@dataclass
class World:
    plan_parts: dict[str, Any]
    seeded_resources: int
    seed_s: float


def seed_store(url: str, people: int, seed: int, log: Any) -> World:
    """``bench.export``'s population of ``people`` people, written in this
    process; the people each role asks about."""
    from gateway.store import open_store

    started = time.perf_counter()
    shapes = [export.shape(seed, n) for n in range(people)]
    numbers = population.nhs_numbers_for(seed, people)
    store = open_store(url, pool_size=1, bulk=True)
    try:
        export.write_organisations(store, seed)
        for first in range(0, people, 20):
            export.write_people(store, seed, shapes[first : first + 20], numbers)
    finally:
        store.close()
    written = population.ORGANISATIONS + sum(s.size for s in shapes)
    log(f"seeded {written:,} resources ({people} people) in {time.perf_counter() - started:.0f} s")
    # A tenth of the people (at least 3) get writes only; the others are read.
    writes = max(3, people // 10)
    read_shapes, write_shapes = shapes[writes:], shapes[:writes]
    everyone = [Person(export.patient_id(seed, s.number), numbers[s.number]) for s in read_shapes]
    plans = {s.number: population.plan_person(seed, s.number) for s in read_shapes}
    practice = export.busiest_practices(seed, read_shapes, 1)[0]
    gp_sees = [
        p
        for s, p in zip(read_shapes, everyone, strict=True)
        if plans[s.number].practice == practice
    ]
    gp_hidden = [
        p
        for s, p in zip(read_shapes, everyone, strict=True)
        if plans[s.number].practice != practice
    ]
    council_sees = [
        p
        for s, p in zip(read_shapes, everyone, strict=True)
        if population.sees("10%", plans[s.number])
    ]
    if not council_sees:
        raise RuntimeError("no one has an open case with the council: seed more --people")
    taken = set(numbers)
    ingest_numbers = [n for n in islice(nhs_numbers(seed + 1), people + 1000) if n not in taken]
    return World(
        plan_parts={
            "everyone": everyone,
            "gp_sees": gp_sees,
            "gp_hidden": gp_hidden,
            "council_sees": council_sees,
            "write_people": [export.patient_id(seed, s.number) for s in write_shapes],
            "gp_ods": population.practice_ods(practice),
            "ingest_numbers": ingest_numbers,
        },
        seeded_resources=written,
        seed_s=time.perf_counter() - started,
    )


def register(base: str, url: str, gp_ods: str, clients: int) -> dict[str, str]:
    """Each role's client registered with limits that fit the load (all
    ``clients`` may be its requests at once), and its token."""
    orgs = {
        "trust": (population.TRUST, "Community trust"),
        "gp": (gp_ods, f"Practice {gp_ods}"),
        "council": (population.COUNCIL, "Camden Council"),
        "hospital": (INGEST_HOSPITAL, "Soak hospital"),
    }
    tokens = {}
    for role, (client_id, kind) in _CLIENTS.items():
        ods, name = orgs[role]
        answer = register_and_ask_token(
            base, url, client_id, ods, name, kind, SCOPES, load_limits(clients)
        )
        if answer.status_code != 200:
            raise RuntimeError(f"token for {role}: {answer.status_code} {answer.text[:300]}")
        tokens[role] = str(answer.json()["access_token"])
    return tokens


def check_each_kind(plan: Plan) -> list[str]:
    """One request of every kind, by its own client, before the load: what went wrong."""
    wrong = []
    state = _ClientState(random.Random(plan.seed))
    with httpx.Client(base_url=f"http://{plan.host}:{plan.port}", timeout=120) as http:
        for kind in KINDS:
            kind, raw = next_request(plan, kind, 0, state)
            head, _, body = raw.partition(b"\r\n\r\n")
            lines = head.decode("ascii").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines[1:])
            headers.pop("Host"), headers.pop("Content-Length", None)
            answer = http.request(method, path, content=body or None, headers=headers)
            if answer.status_code != EXPECTED[kind]:
                wrong.append(f"{kind}: {method} {path}: {answer.status_code} {answer.text[:300]}")
            elif kind == "ingest" and ingest_rejected(answer.content) != 0:
                wrong.append(f"ingest: {answer.text[:300]}")
            elif kind == "create":
                found = answer.headers.get("location", "").split("/_history/")[0]
                state.created.append((found.rsplit("/", 1)[-1], state.subject))
    return wrong


def parse_mix(text: str) -> dict[str, int]:
    mix: dict[str, int] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in KINDS:
            raise SystemExit(f"unknown kind {name!r} in --mix (known: {', '.join(KINDS)})")
        mix[name] = int(weight)
    if not any(mix.values()):
        raise SystemExit("--mix gives every kind weight 0")
    return mix


# -- the run ----------------------------------------------------------------------------------


class _Sampler:
    """RSS of the server's workers, by slot: a replaced worker takes its slot."""

    def __init__(self, server: Server, workers: int) -> None:
        self.server = server
        self.slots: list[int] = []
        self.others: list[int] = []
        self.restarts = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found, others = server_processes(server)
            if len(found) >= workers:
                self.slots, self.others = found[:workers], others
                return
            time.sleep(0.2)
        raise RuntimeError(f"found {len(found)} of {workers} workers holding the socket")

    def sample(self) -> tuple[list[int], list[int]]:
        rss = [rss_kib(pid) for pid in self.slots]
        if any(r is None for r in rss):
            found, others = server_processes(self.server)
            new = [pid for pid in found if pid not in self.slots]
            for slot, value in enumerate(rss):
                if value is None and new:
                    self.slots[slot] = new.pop(0)
                    self.restarts += 1
            self.others = others
            rss = [rss_kib(pid) for pid in self.slots]
        return [r or 0 for r in rss], [rss_kib(pid) or 0 for pid in self.others]


def drive(
    server: Server, plan: Plan, args: argparse.Namespace, log: Any
) -> tuple[list[Window], int]:
    """Run the load; its windows and the setup errors."""
    sampler = _Sampler(server, args.workers)
    ctx = mp.get_context("spawn")
    results: Any = ctx.Queue()
    procs_n = max(1, min(args.load_procs, args.clients))
    groups = [list(range(i, args.clients, procs_n)) for i in range(procs_n)]
    server.read_log(None)
    procs = [
        ctx.Process(
            target=load_main, args=(plan, i, g, results), name=f"soak-load-{i}", daemon=True
        )
        for i, g in enumerate(groups)
    ]
    for proc in procs:
        proc.start()
    windows: list[Window] = []
    pending: dict[int, list[dict[str, Any]]] = {}
    setup_errors = 0
    try:
        for number in range(plan.windows):
            boundary = plan.start + (number + 1) * plan.window
            rss_samples: list[list[int]] = [[] for _ in sampler.slots]
            restarts_before = sampler.restarts
            other: list[int] = []
            while True:
                now = time.time()
                if now >= boundary:
                    break
                time.sleep(min(args.rss_every, boundary - now))
                if time.time() >= plan.start:
                    rss, other = sampler.sample()
                    for slot, value in enumerate(rss):
                        rss_samples[slot].append(value)
            got = pending.pop(number, [])
            deadline = time.monotonic() + max(30.0, plan.timeout + 10)
            while len(got) < len(procs):
                try:
                    w, _proc, data = results.get(timeout=max(0.1, deadline - time.monotonic()))
                except Exception as exc:  # queue.Empty: a load process is stuck or gone
                    raise RuntimeError(f"window {number}: a load process did not report") from exc
                if w < 0:
                    raise RuntimeError(str(data))
                if w == number:
                    got.append(data)
                else:
                    pending.setdefault(w, []).append(data)
            tallies: dict[str, Tally] = {}
            for data in got:
                for kind, raw in data.items():
                    tallies.setdefault(kind, Tally()).merge(raw)
            logged = server.read_log(None)
            window = make_window(
                number,
                boundary - plan.start,
                tallies,
                rss_samples,
                other,
                logged.errors,
                logged.error_samples,
                sampler.restarts - restarts_before,
                os.getloadavg()[0],
                [rss_file_kib(pid) or 0 for pid in sampler.slots],
            )
            windows.append(window)
            log(window_line(window))
    finally:
        for proc in procs:
            proc.join(timeout=plan.timeout + 15)
            if proc.is_alive():
                proc.terminate()
    return windows, setup_errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Mixed load against gateway serve --workers 2 for a long time: errors, "
        "p99 over time and worker RSS over time (PASS: 0 errors, RSS flat within 10%% "
        "after the warm-up).",
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the load runs")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per reported window")
    parser.add_argument(
        "--warmup-minutes",
        type=float,
        default=5.0,
        help="minutes excluded from the RSS verdict (whole windows)",
    )
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--clients", type=int, default=8, help="closed-loop clients in all")
    parser.add_argument("--load-procs", type=int, default=2, help="load processes")
    parser.add_argument(
        "--people", type=int, default=200, help="people seeded (100-300 resources each)"
    )
    parser.add_argument(
        "--ingest-people", type=int, default=40, help="people the ADT feed is about"
    )
    parser.add_argument("--mix", default=DEFAULT_MIX, help="kind=weight, comma-separated")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a request may take")
    parser.add_argument("--rss-every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--seed", type=int, default=30)
    parser.add_argument(
        "--server-log-level", default="INFO", help="GATEWAY_LOG_LEVEL (INFO: access log on)"
    )
    parser.add_argument(
        "--tracemalloc",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run the server with tracemalloc, writing each process's growth every SECONDS",
    )
    parser.add_argument("--json", type=Path, help="write every window and the verdict here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return parser


def _log(text: str) -> None:
    print(text, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    mix = parse_mix(args.mix)
    windows_n = max(1, math.ceil(args.minutes * 60 / args.window - 1e-9))
    warmup = warmup_windows(args.warmup_minutes * 60, args.window, windows_n)
    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    keep = args.keep or args.tracemalloc > 0
    _log(
        f"bench.soak: {os.cpu_count()} CPUs, Python {platform.python_version()}, {args.store}, "
        f"{args.workers} workers, {args.clients} clients in {args.load_procs} load processes, "
        f"{windows_n} windows of {args.window:g} s ({args.minutes:g} min), warm-up "
        f"{warmup} window(s), mix {','.join(f'{k}={v}' for k, v in mix.items())}"
    )
    env = {
        **os.environ,
        "GATEWAY_LOG_LEVEL": args.server_log_level,
        "GATEWAY_TOKEN_LIFETIME": str(int(args.minutes * 60 + 3600)),
        "GATEWAY_AUDIT_KEY": str(workdir / "audit-key.pem"),
        "GATEWAY_DOCUMENT_KEY": str(workdir / "document-key.pem"),
        "GATEWAY_EXPORT_DIR": str(workdir / "exports"),
    }
    env.pop("GATEWAY_BASE_URL", None)
    if args.tracemalloc > 0:
        env["SOAK_TRACEMALLOC_EVERY"] = str(args.tracemalloc)
        env["SOAK_TRACEMALLOC_DIR"] = str(workdir)
    database = sqlite_database(workdir) if args.store == "sqlite" else postgres_database()
    code = 1
    try:
        with database as db:
            gateway_migrate(db.url, _log)
            world = seed_store(db.url, args.people, args.seed, _log)
            command = gateway_command(free_port(), args.workers, db.url)
            if args.tracemalloc > 0:
                command[command.index("gateway")] = "bench._soak_trace"
            with running("gateway", command, workdir / "gateway.log", env) as server:
                parts = world.plan_parts
                tokens = register(server.base, db.url, parts["gp_ods"], args.clients)
                ingest_people = [
                    IngestPerson(i, nhs)
                    for i, nhs in enumerate(parts["ingest_numbers"][: args.ingest_people])
                ]
                plan = Plan(
                    host=HOST,
                    port=server.port,
                    tokens=tokens,
                    mix=mix,
                    everyone=parts["everyone"],
                    gp_sees=parts["gp_sees"],
                    gp_hidden=parts["gp_hidden"],
                    council_sees=parts["council_sees"],
                    write_people=parts["write_people"],
                    ingest_people=ingest_people,
                    clients=args.clients,
                    start=0.0,
                    window=args.window,
                    windows=windows_n,
                    timeout=args.timeout,
                    seed=args.seed,
                )
                _log(
                    f"people: {len(plan.everyone)} read (GP {parts['gp_ods']} sees "
                    f"{len(plan.gp_sees)}, the council {len(plan.council_sees)}), "
                    f"{len(plan.write_people)} written to, {len(ingest_people)} by ADT"
                )
                wrong = check_each_kind(plan)
                if wrong:
                    for line in wrong:
                        _log(f"check failed: {line}")
                    raise RuntimeError("a kind of request failed its check; no load run")
                plan = Plan(**{**plan.__dict__, "start": time.time() + 3.0})
                windows, setup_errors = drive(server, plan, args, _log)
        result = verdict(windows, warmup, setup_errors)
        for line in summary_lines(windows, result, args.window):
            _log(line)
        if args.json:
            args.json.write_bytes(
                orjson.dumps(
                    {
                        "store": args.store,
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "options": {k: str(v) for k, v in vars(args).items()},
                        "seeded_resources": world.seeded_resources,
                        "windows": [asdict(w) for w in windows],
                        "verdict": {
                            "passed": result.passed,
                            "errors": result.errors,
                            "warmup_windows": result.warmup_windows,
                            "growth": [asdict(g) for g in result.growth],
                            "reasons": result.reasons,
                        },
                    },
                    option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                )
            )
            _log(f"series written to {args.json}")
        code = 0 if result.passed else 1
    except Skipped as exc:
        _log(f"{args.store}: SKIPPED: {exc}")
        code = 2
    finally:
        if keep:
            _log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
