"""Benchmark of the core REST interactions against the real server.

Run ``python -m bench.rest_core`` (``--help`` for the options; ``make bench``).

Method
------
For each store (SQLite in a fresh temporary file; PostgreSQL 15 in a throwaway
cluster the benchmark starts and removes itself, skipped with a message when
``initdb`` is missing) the benchmark:

1. starts the real server as a subprocess, exactly as an operator would:
   ``python -m gateway serve --workers 2 --database-url ...``
   on a free loopback port, and waits for ``GET /readyz`` to answer 200; then
   registers a benchmark client with a fresh key and gets an access token at
   ``/auth/token`` (SMART Backend Services), which every request carries;
2. checks each interaction once (a create, a read, an update and a transaction
   must give the right status and shape) so that a broken server is reported
   as broken rather than as fast;
3. drives it with closed-loop clients (16 by default): each client sends its
   next request as soon as the previous answer is in, over its own keep-alive
   connection. The clients run in separate load-generator processes
   (``bench._load``: raw asyncio streams on uvloop with pre-built request
   bytes, a few tens of microseconds of client CPU per request), never in the
   server's process. Each phase runs a warm-up (2 s) that is not counted and
   then a measured window (10 s):

   - ``create``       ``POST /fhir/Patient``
   - ``read``         ``GET /fhir/Patient/{id}`` over ids created just before
   - ``update``       ``PUT /fhir/Patient/{id}`` (body carries the id); each
                      client updates its own ids, so no two writers collide
   - ``transaction``  ``POST /fhir`` with a transaction Bundle of 100 POST
                      entries: 50 Patients with ``urn:uuid:`` full URLs and 50
                      Observations whose subject references them

Then a bare Starlette app (``bench._bare``) on uvicorn with the same worker
count and uvicorn options serves the very bytes (and ETag/Last-Modified) the
gateway returned for those ids from an in-memory dict, under the same read
load. Its throughput is the ceiling for this machine, server stack and client;
``gateway read / bare read`` says how much of it the gateway's own work
(routing, the format and requester checks, middleware and access log, and the
database query) leaves.

Reading the figures
-------------------
``req/s`` counts responses to requests started in the measured window;
``res/s`` is resources written per second (100 per transaction). ``p50``,
``p95``, ``p99`` are client-observed latencies in milliseconds, including any
queueing: with 16 closed-loop clients the server is saturated, so latency is
roughly ``clients / throughput`` and the tail shows stalls (lock waits, fsync,
garbage collection). ``conns`` is how many of the clients' connections each
server worker holds: uvicorn's workers share one listening socket and
whichever wakes first accepts, so a handful of keep-alive connections can all
land on one worker and halve the figures; the load generator reconnects
(up to 10 times) until the split is even, and shows the split it ran with.

``srv ms/req`` is the CPU time all server processes spent per request in the
window (from /proc), the figure least disturbed by the machine's size; ``srv
CPU``, ``db CPU`` (PostgreSQL's processes), ``load CPU`` (the load generator)
and ``other`` (anything else on the machine) are in percent of one core, so
on 2 cores they add up to at most 200 %. ``app p50/p99`` is the time the
gateway's own access log says the app spent per request (from its outermost
middleware to the last byte handed to uvicorn, thread-pool waits included);
the gap to the client's latency is queueing in the socket, uvicorn and client.

On a 2-core machine the server's two workers, PostgreSQL and the load
generator all compete for the same two cores, so absolute figures are
pessimistic and vary between runs by 10-20 % (more for SQLite writes, whose
lock waits are timing-sensitive); ratios (gateway / bare app) are steadier,
because both sides pay the same client. If ``load CPU`` approaches 100 %, add
``--load-procs``; if ``other`` is large, something else was running. The
PostgreSQL cluster runs with fsync off (it is thrown away), while SQLite
commits with ``synchronous=FULL`` as the gateway configures it, so write
figures favour PostgreSQL on durability cost.

Targets printed with PASS/MISS: read throughput at least half the bare app's;
read p99 under 20 ms at 16 clients; transaction ingest of at least 3,000
resources/s on SQLite.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson

from bench._clients import load_limits, register_and_ask_token
from bench._load import LoaderResult, PhaseSpec, loader_main

HOST = "127.0.0.1"
_BALANCE_ATTEMPTS = 10  # reconnects to even out connections over server workers
FHIR_JSON = "application/fhir+json"
OPERATIONS = ("create", "read", "update", "transaction")

TARGET_READ_RATIO = 0.50
TARGET_READ_P99_MS = 20.0
TARGET_TX_RESOURCES_PER_S = 3000.0

_FAMILIES = ("Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson")
_GIVEN = ("Alex", "Sam", "Jo", "Priya", "Mohammed", "Olivia", "Kwame", "Mei")


class Skipped(Exception):
    """A store that cannot run here (PostgreSQL without its binaries)."""


# -- FHIR payloads -------------------------------------------------------------------


def patient(n: int, res_id: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient"}
    if res_id is not None:
        resource["id"] = res_id
    resource.update(
        {
            "identifier": [
                {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": f"9{n % 10**9:09d}"}
            ],
            "active": True,
            "name": [
                {
                    "use": "official",
                    "family": _FAMILIES[n % len(_FAMILIES)],
                    "given": [_GIVEN[n % len(_GIVEN)]],
                }
            ],
            "telecom": [{"system": "phone", "value": "020 7946 0000", "use": "home"}],
            "gender": ("female", "male")[n % 2],
            "birthDate": f"{1940 + n % 70}-{1 + n % 12:02d}-{1 + n % 28:02d}",
            "address": [
                {
                    "use": "home",
                    "line": [f"{1 + n % 200} High Street"],
                    "city": "London",
                    "postalCode": "SW1A 1AA",
                    "country": "GB",
                }
            ],
        }
    )
    return resource


def observation(n: int, subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]
        },
        "subject": {"reference": subject},
        "effectiveDateTime": "2024-05-01T10:30:00Z",
        "valueQuantity": {
            "value": 60 + n % 40,
            "unit": "beats/minute",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def transaction_bundle(variant: int, entries: int) -> dict[str, Any]:
    """``entries`` POST entries: Patients with urn:uuid full URLs, then as many
    Observations referring to them (one more Patient when ``entries`` is odd)."""
    patients = entries - entries // 2
    full_urls = [f"urn:uuid:{uuid.uuid4()}" for _ in range(patients)]
    bundle_entries: list[dict[str, Any]] = [
        {
            "fullUrl": url,
            "resource": patient(variant * entries + i),
            "request": {"method": "POST", "url": "Patient"},
        }
        for i, url in enumerate(full_urls)
    ]
    bundle_entries += [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": observation(i, full_urls[i]),
            "request": {"method": "POST", "url": "Observation"},
        }
        for i in range(entries // 2)
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": bundle_entries}


# The bearer token every request carries, once ``authenticate`` has one (the
# bare app's requests carry it too, so both parse the same headers).
_authorization: dict[str, str] = {}


def authenticate(base: str, database_url: str, connections: int) -> dict[str, str]:
    """Register a benchmark client (every scope, limits fit for
    ``connections``) with a fresh key and get a token from the running
    gateway's token endpoint, as a client would."""
    answer = register_and_ask_token(
        base,
        database_url,
        "bench-client",
        "A81001",
        "Benchmark Surgery",
        "gp-practice",
        "system/*.cruds",
        load_limits(connections),
    )
    check(answer.status_code == 200, f"token request: {answer.status_code} {answer.text}")
    _authorization["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return dict(_authorization)


def http_request(method: str, path: str, port: int, body: bytes | None = None) -> bytes:
    """A complete HTTP/1.1 request, keep-alive."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", f"Accept: {FHIR_JSON}"]
    lines += [f"{name}: {value}" for name, value in _authorization.items()]
    if body is not None:
        lines += [f"Content-Type: {FHIR_JSON}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b"")


# -- processes -----------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """Every process's ``/proc/<pid>/stat`` fields, from field 3 (state) on:
    ``[1]`` is the parent pid, ``[3]`` the session id, ``[11]``/``[12]`` the
    user/system CPU ticks."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        yield int(entry.name), stat[stat.rfind(")") + 2 :].split()


def cpu_ticks_to_seconds(ticks: int) -> float:
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time the whole machine (every core, every process) has been busy."""
    with open("/proc/stat") as handle:
        ticks = [int(n) for n in handle.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return cpu_ticks_to_seconds(sum(ticks[:8]) - idle)


def _log_time(epoch: float) -> str:
    """An instant in the format of the gateway's JSON log ``time`` field."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


@dataclass
class ServerLog:
    """What the server logged during one phase."""

    app_ms: list[float] = field(default_factory=list)  # access-log durations in the window
    statuses: Counter[int] = field(default_factory=Counter)  # whole phase, warm-up included
    errors: Counter[str] = field(default_factory=Counter)  # error lines by message
    error_samples: list[str] = field(default_factory=list)
    warnings: Counter[str] = field(default_factory=Counter)  # warning lines by message


class Server:
    """A server subprocess in a session of its own, logging to a file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.port = int(command[command.index("--port") + 1])
        self.log_path = log_path
        self._log_offset = 0
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def _session_stats(self) -> Iterator[tuple[int, list[str]]]:
        """The stat fields of the server's processes (its session): the
        uvicorn supervisor and its workers."""
        return ((pid, f) for pid, f in proc_stats() if int(f[3]) == self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU time used so far by every process of the server."""
        return cpu_ticks_to_seconds(sum(int(f[11]) + int(f[12]) for _, f in self._session_stats()))

    def connection_spread(self, workers: int) -> list[int]:
        """Established client connections held by each server process, largest
        first, padded with zeros to ``workers`` entries. uvicorn's workers
        share one listening socket and whichever wakes first accepts, so a
        handful of keep-alive connections can all land on one worker."""
        owner: dict[str, int] = {}
        for pid, _ in self._session_stats():
            with contextlib.suppress(OSError):
                for fd in os.scandir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        link = os.readlink(fd.path)
                        if link.startswith("socket:["):
                            owner[link[8:-1]] = pid
        counts: Counter[int] = Counter()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as handle:
                next(handle)
                for line in handle:
                    cols = line.split()
                    local_port = int(cols[1].rsplit(":", 1)[1], 16)
                    if local_port == self.port and cols[3] == "01" and cols[9] in owner:
                        counts[owner[cols[9]]] += 1  # 01: ESTABLISHED
        spread = sorted(counts.values(), reverse=True)
        return spread + [0] * (workers - len(spread))

    def read_log(self, window: tuple[float, float] | None) -> ServerLog:
        """Parse what the server logged since the last call."""
        found = ServerLog()
        with self.log_path.open("rb") as handle:
            handle.seek(self._log_offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self._log_offset += end
        low, high = (_log_time(window[0]), _log_time(window[1])) if window else ("", "~")
        for line in data[:end].splitlines():
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                if b"Traceback" in line or b"Error" in line:
                    found.errors[line.decode(errors="replace")[:200]] += 1
                continue
            if not isinstance(event, dict):
                continue
            if event.get("logger") == "gateway.access":
                found.statuses[int(event.get("status", 0))] += 1
                if low <= str(event.get("time", "")) <= high:
                    found.app_ms.append(float(event.get("duration_ms", 0.0)))
            elif event.get("level") == "warning":
                found.warnings[str(event.get("message"))[:200]] += 1
            elif event.get("level") in ("error", "critical"):
                found.errors[str(event.get("message"))[:200]] += 1
                if len(found.error_samples) < 3:
                    found.error_samples.append(
                        str(event.get("exception") or event.get("message"))[-1500:]
                    )
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)  # our own session only
                self.process.wait(timeout=10)
        self._log.close()


@contextlib.contextmanager
def running(name: str, command: list[str], log_path: Path, env: dict[str, str]) -> Iterator[Server]:
    server = Server(name, command, env, log_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def gateway_command(port: int, workers: int, database_url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gateway",
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--database-url",
        database_url,
    ]


def bare_command(port: int, workers: int, data: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench._bare",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--data",
        str(data),
    ]


# -- databases -----------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    url: str
    postmaster_pid: int | None = None  # PostgreSQL's, to count its CPU apart

    def cpu_seconds(self) -> float:
        """CPU time used so far by the database server's processes (none for
        SQLite, which runs inside the gateway's processes)."""
        if self.postmaster_pid is None:
            return 0.0
        return cpu_ticks_to_seconds(
            sum(
                int(f[11]) + int(f[12])
                for pid, f in proc_stats()
                if self.postmaster_pid in (pid, int(f[1]))  # the postmaster or a child
            )
        )


@contextlib.contextmanager
def sqlite_database(workdir: Path) -> Iterator[Database]:
    yield Database(f"sqlite:///{workdir}/bench.db")


@contextlib.contextmanager
def postgres_database() -> Iterator[Database]:
    """A database in a throwaway PostgreSQL cluster (the test suite's helper:
    initdb/pg_ctl as the postgres user when root, free loopback port, trust
    authentication, fsync off), removed afterwards."""
    try:
        from tests.support.postgres import ClusterUnavailable, start_cluster
    except ImportError as exc:
        raise Skipped(
            f"the cluster helper tests.support.postgres is not importable: {exc}"
        ) from exc
    import psycopg

    try:
        cluster = start_cluster()
    except (ClusterUnavailable, OSError, psycopg.OperationalError) as exc:
        raise Skipped(f"PostgreSQL could not start: {exc}") from exc
    try:
        url = cluster.create_database("bench")
        pid_file = Path(cluster.directory, "data", "postmaster.pid")
        yield Database(url, int(pid_file.read_text().split()[0]))
    finally:
        cluster.stop()


# -- phases --------------------------------------------------------------------------


@dataclass
class PhaseResult:
    store: str  # sqlite, postgres, or "bare app"
    op: str
    clients: int
    connections: str  # per server worker, "8/8"
    requests: int
    errors: int
    seconds: float
    req_per_s: float
    resources_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    server_cpu_ms_per_req: float
    server_cpu_pct: float  # of one core
    db_cpu_pct: float  # of one core: PostgreSQL's processes (0 for SQLite, in-process)
    load_cpu_pct: float  # of one core
    other_cpu_pct: float  # of one core: whatever else ran on the machine meanwhile
    app_p50_ms: float | None
    app_p99_ms: float | None
    statuses: dict[int, int]
    unexpected: dict[int, list[str]]
    client_exceptions: dict[str, int]
    server_statuses: dict[int, int]
    server_errors: dict[str, int]
    server_error_samples: list[str]
    server_warnings: dict[str, int]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class Rig:
    """What a phase runs against and with."""

    server: Server
    database: Database | None
    workers: int
    load_procs: int


def run_phase(
    store: str,
    op: str,
    spec: PhaseSpec,
    rig: Rig,
    resources_per_request: int = 1,
    created_ids: list[str] | None = None,
) -> PhaseResult:
    """Run one phase; with ``created_ids``, append the ids of created resources to it."""
    ctx = mp.get_context("spawn")
    ready: Any = ctx.Queue()
    results: Any = ctx.Queue()
    start_at: Any = ctx.Value("d", 0.0)
    server = rig.server
    groups = [
        list(range(i, spec.total_clients, rig.load_procs))
        for i in range(min(rig.load_procs, spec.total_clients))
    ]
    commands: list[Any] = [ctx.Queue() for _ in groups]
    procs = [
        ctx.Process(
            target=loader_main,
            args=(spec, group, ready, commands[i], start_at, results),
            name=f"bench-load-{i}",
            daemon=True,
        )
        for i, group in enumerate(groups)
    ]
    for proc in procs:
        proc.start()
    try:
        for attempt in range(1, _BALANCE_ATTEMPTS + 1):
            for _ in procs:
                if ready.get(timeout=60) != "ready":
                    raise RuntimeError(results.get(timeout=5))
            time.sleep(0.05)
            spread = server.connection_spread(rig.workers)
            if max(spread) - min(spread) <= 1 or attempt == _BALANCE_ATTEMPTS:
                break
            for queue in commands:
                queue.put("reconnect")
        begin = time.monotonic() + 0.1
        start_at.value = begin
        for queue in commands:
            queue.put("go")
        time.sleep(max(0.0, begin + spec.warmup - time.monotonic()))
        cpu_before, wall_before = server.cpu_seconds(), time.time()
        busy_before = machine_busy_seconds()
        db_before = rig.database.cpu_seconds() if rig.database else 0.0
        time.sleep(max(0.0, begin + spec.warmup + spec.duration - time.monotonic()))
        cpu_after, wall_after = server.cpu_seconds(), time.time()
        busy_after = machine_busy_seconds()
        db_after = rig.database.cpu_seconds() if rig.database else 0.0
        outcomes: list[LoaderResult] = []
        for _ in procs:
            got = results.get(timeout=120)
            if isinstance(got, str):
                raise RuntimeError(got)
            outcomes.append(got)
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
    logged = server.read_log((wall_before, wall_after))
    latencies = sorted(ns / 1e6 for outcome in outcomes for ns in outcome.latencies_ns)
    statuses: Counter[int] = Counter()
    exceptions: Counter[str] = Counter()
    unexpected: dict[int, list[str]] = {}
    for outcome in outcomes:
        statuses.update(outcome.statuses)
        exceptions.update(outcome.exceptions)
        for status, samples in outcome.unexpected.items():
            unexpected.setdefault(status, []).extend(samples)
    count = len(latencies)
    errors = sum(n for status, n in statuses.items() if status != spec.expected_status)
    errors += sum(exceptions.values())
    app_ms = sorted(logged.app_ms)
    load_cpu = sum(o.cpu_seconds for o in outcomes)
    db_cpu = db_after - db_before
    result = PhaseResult(
        store=store,
        op=op,
        clients=spec.total_clients,
        connections="/".join(str(n) for n in spread),
        requests=count,
        errors=errors,
        seconds=spec.duration,
        req_per_s=count / spec.duration,
        resources_per_s=count * resources_per_request / spec.duration,
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        server_cpu_ms_per_req=(cpu_after - cpu_before) * 1000 / count if count else float("nan"),
        server_cpu_pct=100 * (cpu_after - cpu_before) / spec.duration,
        db_cpu_pct=100 * db_cpu / spec.duration,
        load_cpu_pct=100 * load_cpu / spec.duration,
        other_cpu_pct=100
        * (busy_after - busy_before - (cpu_after - cpu_before) - db_cpu - load_cpu)
        / spec.duration,
        app_p50_ms=percentile(app_ms, 50) if app_ms else None,
        app_p99_ms=percentile(app_ms, 99) if app_ms else None,
        statuses=dict(statuses),
        unexpected=unexpected,
        client_exceptions=dict(exceptions),
        server_statuses=dict(logged.statuses),
        server_errors=dict(logged.errors),
        server_error_samples=logged.error_samples,
        server_warnings=dict(logged.warnings),
    )
    if created_ids is not None:
        for outcome in outcomes:
            created_ids.extend(outcome.created_ids)
    print(_row(result), flush=True)
    return result


# -- checks and seeding ----------------------------------------------------------------


def check(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


def smoke_test(client: httpx.Client, entries: int) -> None:
    """One of each interaction, checked for status and shape."""
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    created = client.post("/fhir/Patient", content=orjson.dumps(patient(1)), headers=headers)
    check(created.status_code == 201, f"create: {created.status_code} {created.text[:500]}")
    res_id = created.json()["id"]
    read = client.get(f"/fhir/Patient/{res_id}", headers=headers)
    check(read.status_code == 200, f"read: {read.status_code} {read.text[:500]}")
    updated = client.put(
        f"/fhir/Patient/{res_id}", content=orjson.dumps(patient(2, res_id)), headers=headers
    )
    check(updated.status_code == 200, f"update: {updated.status_code} {updated.text[:500]}")
    check(updated.json()["meta"]["versionId"] == "2", f"update: {updated.text[:300]}")
    bundle = orjson.dumps(transaction_bundle(0, entries))
    answer = client.post("/fhir", content=bundle, headers=headers)
    check(answer.status_code == 200, f"transaction: {answer.status_code} {answer.text[:500]}")
    got = answer.json()
    check(len(got.get("entry", [])) == entries, "transaction: wrong number of entries")
    check(
        all(e["response"]["status"].startswith("201") for e in got["entry"]),
        f"transaction: not all entries created: {answer.text[:500]}",
    )
    last = got["entry"][-1].get("resource")
    if entries > 1 and last is not None:
        reference = last["subject"]["reference"]
        check(reference.startswith("Patient/"), f"transaction: reference left as {reference}")


def capture_reads(client: httpx.Client, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The gateway's read answers for ``ids``, for the bare app to serve."""
    captured: dict[str, dict[str, Any]] = {}
    for res_id in ids:
        answer = client.get(f"/fhir/Patient/{res_id}", headers={"Accept": FHIR_JSON})
        check(answer.status_code == 200, f"read {res_id}: {answer.status_code} {answer.text}")
        captured[res_id] = {
            "body": answer.content.decode("utf-8"),
            "headers": {
                name: answer.headers[name]
                for name in ("etag", "last-modified")
                if name in answer.headers
            },
        }
    return captured


def seed(client: httpx.Client, count: int) -> list[str]:
    headers = {"Content-Type": FHIR_JSON, "Prefer": "return=minimal"}
    ids = []
    for n in range(count):
        answer = client.post("/fhir/Patient", content=orjson.dumps(patient(n)), headers=headers)
        check(answer.status_code == 201, f"seed: {answer.status_code} {answer.text[:300]}")
        ids.append(answer.headers["location"].split("/_history/")[0].rsplit("/", 1)[-1])
    return ids


# -- one store -------------------------------------------------------------------------


@dataclass
class Options:
    duration: float
    warmup: float
    clients: int
    workers: int
    load_procs: int
    read_ids: int
    tx_entries: int
    ops: tuple[str, ...]


def _spec(
    name: str,
    port: int,
    requests: list[bytes],
    expected: int,
    options: Options,
    mode: Literal["shared", "partition"] = "shared",
    collect_location: bool = False,
) -> PhaseSpec:
    return PhaseSpec(
        name=name,
        host=HOST,
        port=port,
        requests=requests,
        expected_status=expected,
        warmup=options.warmup,
        duration=options.duration,
        total_clients=options.clients,
        mode=mode,
        collect_location=collect_location,
    )


def bench_gateway(
    store: str, rig: Rig, options: Options
) -> tuple[list[PhaseResult], dict[str, dict[str, Any]]]:
    """Every phase on one running gateway; returns the results and the read
    answers captured for the bare app."""
    server = rig.server
    port = server.port
    results: list[PhaseResult] = []
    assert rig.database is not None
    auth = authenticate(server.base, rig.database.url, options.clients)
    with httpx.Client(base_url=server.base, timeout=60, headers=auth) as client:
        smoke_test(client, options.tx_entries)
    server.read_log(None)
    created: list[str] = []
    if "create" in options.ops:
        bodies = [orjson.dumps(patient(n)) for n in range(256)]
        requests = [http_request("POST", "/fhir/Patient", port, body) for body in bodies]
        spec = _spec("create", port, requests, 201, options, collect_location=True)
        results.append(run_phase(store, "create", spec, rig, created_ids=created))
    wanted = max(options.read_ids, options.clients)
    ids = list(dict.fromkeys(created))[:wanted]
    with httpx.Client(base_url=server.base, timeout=60, headers=auth) as client:
        if len(ids) < wanted:
            ids += seed(client, wanted - len(ids))
        captured = capture_reads(client, ids)
    server.read_log(None)
    if "read" in options.ops:
        requests = [http_request("GET", f"/fhir/Patient/{res_id}", port) for res_id in ids]
        spec = _spec("read", port, requests, 200, options)
        results.append(run_phase(store, "read", spec, rig))
    if "update" in options.ops:
        requests = [
            http_request(
                "PUT", f"/fhir/Patient/{res_id}", port, orjson.dumps(patient(n + 7, res_id))
            )
            for n, res_id in enumerate(ids)
        ]
        spec = _spec("update", port, requests, 200, options, mode="partition")
        results.append(run_phase(store, "update", spec, rig))
    if "transaction" in options.ops:
        bundles = [orjson.dumps(transaction_bundle(v, options.tx_entries)) for v in range(8)]
        requests = [http_request("POST", "/fhir", port, bundle) for bundle in bundles]
        spec = _spec("transaction", port, requests, 200, options)
        results.append(run_phase(store, "transaction", spec, rig, options.tx_entries))
    return results, captured


def bench_bare(
    captured: dict[str, dict[str, Any]], workdir: Path, options: Options, env: dict[str, str]
) -> PhaseResult:
    data = workdir / "bare.json"
    data.write_bytes(orjson.dumps(captured))
    port = free_port()
    command = bare_command(port, options.workers, data)
    with running("bare app", command, workdir / "bare.log", env) as server:
        requests = [http_request("GET", f"/fhir/Patient/{res_id}", port) for res_id in captured]
        spec = _spec("read", port, requests, 200, options)
        rig = Rig(server, None, options.workers, options.load_procs)
        return run_phase("bare app", "read", spec, rig)


# -- report ------------------------------------------------------------------------------

_COLUMNS = (
    ("store", "<9"),
    ("op", "<12"),
    ("clients", ">7"),
    ("conns", ">7"),
    ("requests", ">9"),
    ("errors", ">7"),
    ("req/s", ">8"),
    ("res/s", ">8"),
    ("p50 ms", ">8"),
    ("p95 ms", ">8"),
    ("p99 ms", ">8"),
    ("srv ms/req", ">11"),
    ("srv CPU", ">8"),
    ("db CPU", ">7"),
    ("load CPU", ">9"),
    ("other", ">6"),
    ("app p50/p99 ms", ">16"),
)
_HEADER = "".join(f"{name:{spec}}" for name, spec in _COLUMNS)


def _row(r: PhaseResult) -> str:
    app = (
        f"{r.app_p50_ms:.2f}/{r.app_p99_ms:.2f}"
        if r.app_p50_ms is not None and r.app_p99_ms is not None
        else "-"
    )
    values = (
        r.store,
        r.op,
        r.clients,
        r.connections,
        r.requests,
        r.errors,
        f"{r.req_per_s:,.0f}",
        f"{r.resources_per_s:,.0f}",
        f"{r.p50_ms:.2f}",
        f"{r.p95_ms:.2f}",
        f"{r.p99_ms:.2f}",
        f"{r.server_cpu_ms_per_req:.3f}",
        f"{r.server_cpu_pct:.0f}%",
        f"{r.db_cpu_pct:.0f}%" if r.store == "postgres" else "-",
        f"{r.load_cpu_pct:.0f}%",
        f"{r.other_cpu_pct:.0f}%",
        app,
    )
    return "".join(f"{v:{spec}}" for v, (_, spec) in zip(values, _COLUMNS, strict=True))


@dataclass
class Target:
    store: str
    name: str
    passed: bool
    figure: str


def evaluate(results: list[PhaseResult], clients: int) -> list[Target]:
    targets: list[Target] = []
    by = {(r.store, r.op): r for r in results}
    bare = by.get(("bare app", "read"))
    for store in ("sqlite", "postgres"):
        read = by.get((store, "read"))
        if read is not None and bare is not None and bare.req_per_s > 0:
            ratio = read.req_per_s / bare.req_per_s
            targets.append(
                Target(
                    store,
                    f"read throughput >= {TARGET_READ_RATIO:.0%} of the bare app's",
                    ratio >= TARGET_READ_RATIO,
                    f"{ratio:.1%} ({read.req_per_s:,.0f} / {bare.req_per_s:,.0f} req/s)",
                )
            )
        if read is not None:
            targets.append(
                Target(
                    store,
                    f"read p99 < {TARGET_READ_P99_MS:.0f} ms at {clients} clients",
                    read.p99_ms < TARGET_READ_P99_MS and read.errors == 0,
                    f"{read.p99_ms:.2f} ms" + (f", {read.errors} errors" if read.errors else ""),
                )
            )
        transaction = by.get((store, "transaction"))
        if transaction is not None and store == "sqlite":
            targets.append(
                Target(
                    store,
                    f"transaction ingest >= {TARGET_TX_RESOURCES_PER_S:,.0f} resources/s",
                    transaction.resources_per_s >= TARGET_TX_RESOURCES_PER_S
                    and transaction.errors == 0,
                    f"{transaction.resources_per_s:,.0f} resources/s"
                    + (f", {transaction.errors} errors" if transaction.errors else ""),
                )
            )
    return targets


def report(results: list[PhaseResult], targets: list[Target], skipped: dict[str, str]) -> None:
    print()
    print("Results (measured window only; latencies are client-observed)")
    print(_HEADER)
    print("-" * len(_HEADER))
    for r in results:
        print(_row(r))
    for store, reason in skipped.items():
        print(f"{store:<9}{reason}")
    bare = next((r for r in results if r.store == "bare app"), None)
    for r in results:
        if r.op == "read" and r.store != "bare app" and bare is not None and bare.req_per_s:
            print(
                f"gateway_read_rps / bare_read_rps ({r.store}): "
                f"{r.req_per_s:,.0f} / {bare.req_per_s:,.0f} = {r.req_per_s / bare.req_per_s:.3f}"
            )
    print()
    print("Targets")
    for t in targets:
        print(f"  [{'PASS' if t.passed else 'MISS'}] {t.store:<9}{t.name:<48}{t.figure}")
    problems = [
        r
        for r in results
        if r.errors
        or r.server_errors
        or r.server_warnings
        or any(s >= 500 for s in r.server_statuses)
    ]
    print()
    if not problems:
        print(
            "No errors: every response had the expected status; the server logged no "
            "errors or warnings."
        )
        return
    print("Errors and warnings")
    for r in problems:
        print(f"  {r.store} {r.op}: client saw statuses {r.statuses}")
        for name, n in r.client_exceptions.items():
            print(f"    {n} x client exception {name}")
        for status, samples in r.unexpected.items():
            for sample in samples:
                print(f"    HTTP {status}: {sample}")
        if r.server_statuses:
            print(f"    server access log statuses (whole phase): {r.server_statuses}")
        for message, n in r.server_warnings.items():
            print(f"    {n} x server warned: {message}")
        for message, n in r.server_errors.items():
            print(f"    {n} x server logged: {message}")
        for sample in r.server_error_samples:
            print("    " + sample.replace("\n", "\n    "))


# -- main --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rest_core",
        description="Throughput and latency of create, read, update and transaction "
        "against the real gateway server, on SQLite and PostgreSQL, with a bare "
        "Starlette app as the read baseline.",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds per phase")
    parser.add_argument("--clients", type=int, default=16, help="concurrent closed-loop clients")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument(
        "--load-procs", type=int, default=1, help="load-generator processes sharing the clients"
    )
    parser.add_argument(
        "--stores", default="sqlite,postgres", help="comma-separated: sqlite, postgres"
    )
    parser.add_argument(
        "--ops", default=",".join(OPERATIONS), help=f"comma-separated subset of {OPERATIONS}"
    )
    parser.add_argument("--read-ids", type=int, default=1000, help="distinct ids read and updated")
    parser.add_argument("--tx-entries", type=int, default=100, help="entries per transaction")
    parser.add_argument(
        "--no-bare", action="store_true", help="skip the bare Starlette read baseline"
    )
    parser.add_argument(
        "--server-log-level",
        default=os.environ.get("GATEWAY_LOG_LEVEL", "INFO"),
        help="GATEWAY_LOG_LEVEL for the server (INFO, the default, keeps its access log on)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, db)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    ops = tuple(o.strip() for o in args.ops.split(",") if o.strip())
    for name in stores:
        if name not in ("sqlite", "postgres"):
            raise SystemExit(f"unknown store {name!r}")
    for name in ops:
        if name not in OPERATIONS:
            raise SystemExit(f"unknown operation {name!r}")
    options = Options(
        duration=args.duration,
        warmup=args.warmup,
        clients=args.clients,
        workers=args.workers,
        load_procs=max(1, args.load_procs),
        read_ids=args.read_ids,
        tx_entries=args.tx_entries,
        ops=ops,
    )
    env = dict(os.environ)
    env["GATEWAY_LOG_LEVEL"] = args.server_log_level
    env.pop("GATEWAY_BASE_URL", None)
    env["GATEWAY_TOKEN_LIFETIME"] = "86400"  # one token lasts the whole run
    workdir = Path(tempfile.mkdtemp(prefix="bench-rest-core-"))
    print(
        f"bench.rest_core: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{options.workers} server workers, {options.clients} clients in "
        f"{options.load_procs} load process(es), {options.warmup:g} s warm-up + "
        f"{options.duration:g} s per phase, server log level {args.server_log_level}, "
        f"work directory {workdir}",
        flush=True,
    )
    print(_HEADER, flush=True)
    results: list[PhaseResult] = []
    skipped: dict[str, str] = {}
    bare_done = args.no_bare or "read" not in ops
    try:
        for store in stores:
            database = sqlite_database(workdir) if store == "sqlite" else postgres_database()
            try:
                with database as db:
                    print(f"{store}: {db.url}", flush=True)
                    command = gateway_command(free_port(), options.workers, db.url)
                    log = workdir / f"gateway-{store}.log"
                    with running(f"gateway ({store})", command, log, env) as server:
                        rig = Rig(server, db, options.workers, options.load_procs)
                        phase_results, captured = bench_gateway(store, rig, options)
                        results += phase_results
                    if not bare_done:
                        results.append(bench_bare(captured, workdir, options, env))
                        bare_done = True
            except Skipped as exc:
                print(f"{store}: SKIPPED: {exc}", flush=True)
                skipped[store] = f"SKIPPED: {exc}"
            except (RuntimeError, queue.Empty) as exc:
                # A server that will not start, fails its checks or stalls a
                # phase: report it and go on with the next store.
                message = str(exc) or type(exc).__name__
                print(f"{store}: FAILED: {message}", flush=True)
                skipped[store] = f"FAILED: {message.splitlines()[0] if message else ''}"
        targets = evaluate(results, options.clients)
        report(results, targets, skipped)
        if args.json:
            args.json.write_bytes(
                orjson.dumps(
                    {
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "options": asdict(options),
                        "server_log_level": args.server_log_level,
                        "results": [asdict(r) for r in results],
                        "targets": [asdict(t) for t in targets],
                        "skipped": skipped,
                    },
                    option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                )
            )
            print(f"\nfigures written to {args.json}")
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if any(reason.startswith("FAILED") for reason in skipped.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
