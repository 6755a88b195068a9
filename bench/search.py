"""Search latency as the store grows, on SQLite and PostgreSQL.

Run ``python -m bench.search`` (``--help`` for the options). The default run
loads 1,000,000 resources into each store; at the write path's present rate
with every search parameter indexed (about 300-400 resources/s with one loader
on two cores) that is 45 to 60 minutes of loading per store, plus the
measurements. ``--resources 20000
--checkpoints 10000,20000`` is a quick check. Search under consent, for
requesters who see a share of the people, is ``bench.search_consent``'s.

Method
------
Data (``bench._synthetic``, seeded, so every run loads the same resources):
one Patient per 100 resources (10,000 for 1M), each with an NHS number in the
999 test range (valid modulus-11 check digit), a name, gender, birth date and
address, and 99 records referring to it: 3-7 Conditions (SNOMED CT), 3-7
MedicationStatements (dm+d codes), 3-7 Encounters (a period) and vital-sign
Observations for the rest (SNOMED CT and LOINC codings: heart rate, systolic
blood pressure, body weight, respiratory rate, temperature, SpO2; a
valueQuantity; effectiveDateTime spread over the ten years up to
2025-06-30).

Load: transaction Bundles of ``--batch`` POST entries (100: one patient and its
records per Bundle), with ``urn:uuid:`` full URLs and references to them, are
handed to ``gateway.interactions.bundle.transaction`` in-process, after
``fhirjson.loads`` of the serialised Bundle, with the response serialised
again by ``fhirjson.dumps``: the real write path (validation, reference
resolution, search indexing and storage in one unit of work per Bundle) minus
HTTP, with ``Prefer: return=minimal`` as a bulk loader would send. SQLite
is a fresh file in a temporary directory (WAL, ``synchronous=FULL``, as the
gateway configures it); PostgreSQL 15 is a
throwaway cluster (``tests.support.postgres``, fsync off) with a fresh
database. Bundles are generated ahead of time in windows of
``--window`` resources, so the load rate counts only the write path, and are
loaded by ``--loaders-sqlite`` / ``--loaders-postgres`` threads, one each by
default: SQLite has one writer at a time, and on PostgreSQL a second thread
was measured to lose (20,000 resources, 2 cores: 545 res/s with one thread,
415-510 with two), as the write path is Python-bound (validation and index
extraction under the GIL) and PostgreSQL shares the two cores.

Checkpoints: after ``--checkpoints`` resources are loaded, loading pauses and
each search runs ``--repeat`` times (after up to ten unmeasured warm-up
runs), each time for a random loaded patient, in-process: ``parse_search``,
``gateway.interactions.search.search``, ``searchset_bundle`` and
``fhirjson.dumps`` of the Bundle (so serialisation counts, as it does for a
client). Sampling of one search stops early, after at least five samples,
once it has taken ``--budget`` seconds, so that a pathological search cannot
stall the run (the ``n`` column says how many samples were taken):

  a. ``Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|<nhs>``
  b. ``Observation?patient=Patient/<id>&code=http://snomed.info/sct|364075005
     &date=ge2020-06-30&_sort=-date&_count=50`` (five years before the data's end)
  b0. the same with ``_total=none``
  c. ``Patient?_id=<id>&_revinclude=Condition:patient
     &_revinclude=MedicationStatement:subject``

Searches run with the defaults a client gets (``_total=accurate``: a COUNT
per search). Every answer is checked against what was generated (the
patient found, the number of matches and of included resources). To tell
where the time goes, the COUNT statement and the page statement are also
timed alone on the same targets, and on PostgreSQL the page statement once
more on a connection that never prepares statements (see below). Then each
statement of each search (count, page, and for (c) the two ``_revinclude``
look-ups, as ``gateway.interactions.search._reverse`` builds them) is
explained for one target: ``EXPLAIN QUERY PLAN`` on SQLite; on PostgreSQL
``EXPLAIN (ANALYZE, BUFFERS)`` with the values (the custom plan) and again
as a prepared statement under ``plan_cache_mode = force_generic_plan`` (the
generic plan). Plan steps that read much of a large table are flagged: on
SQLite a ``SCAN`` or a ``SEARCH`` constrained only by ``res_type``/``param``
(every row of a type) or by them and an open range; on PostgreSQL a
``Seq Scan`` or a node that handles more than 10,000 rows.

Targets: p50 under 5 ms for (a), 15 ms for (b), 30 ms for (c).

Caveats: in-process figures leave out HTTP, the thread-pool hop and the
event loop (see ``bench.rest_core`` for those); latencies are single-client,
on an otherwise idle machine. The stores refresh the planner's statistics
themselves on a schedule of commits (``gateway.store._sql.analyze_due``:
sampled ``ANALYZE`` on SQLite, a background ``ANALYZE`` on PostgreSQL, where
autovacuum also runs), so the statistics at a checkpoint depend on when the
last refresh ran (shown with each checkpoint). psycopg prepares a statement on its
fifth execution on a connection; PostgreSQL plans a prepared statement for
its values five times and may then settle on a generic plan, made without
the values, if that looks no dearer: hence the unprepared timing and the
generic plan.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench._synthetic import (
    FIVE_YEARS_BEFORE_ANCHOR,
    HEART_RATE,
    NHS_NUMBER_SYSTEM,
    SNOMED,
    Job,
    PatientInfo,
    plan_jobs,
)
from gateway import fhirjson
from gateway.interactions.bundle import transaction
from gateway.interactions.search import search, searchset_bundle
from gateway.interactions.types import ReturnPreference
from gateway.loading.source import ForSource, author_for
from gateway.search.paging import count_statement, page_statement
from gateway.search.query import SearchQuery, parse_search
from gateway.store import Store, open_store

BASE_URL = "http://gateway.bench/fhir"
# The load is the gateway writing a source's records, as ``gateway load`` does.
LOADER = ForSource(author_for("bench", "BENCH"))
TARGETS_MS = {"a": 5.0, "b": 15.0, "b0": 15.0, "c": 30.0}
QUERY_KINDS = ("a", "b", "b0", "c")
BIG_TABLES = frozenset(
    {
        "resource_version",
        "resource_current",
        "search_token",
        "search_string",
        "search_date",
        "search_reference",
        "search_quantity",
        "search_number",
        "search_uri",
    }
)
_WARMUP = 10
_MIN_SAMPLES = 5


# -- the searches ---------------------------------------------------------------------


def query_params(kind: str, patient: PatientInfo) -> tuple[str, list[tuple[str, str]]]:
    assert patient.res_id is not None
    if kind == "a":
        return "Patient", [("identifier", f"{NHS_NUMBER_SYSTEM}|{patient.nhs}")]
    if kind in ("b", "b0"):
        params = [
            ("patient", f"Patient/{patient.res_id}"),
            ("code", f"{SNOMED}|{HEART_RATE}"),
            ("date", f"ge{FIVE_YEARS_BEFORE_ANCHOR.isoformat()}"),
            ("_sort", "-date"),
            ("_count", "50"),
        ]
        if kind == "b0":
            params.append(("_total", "none"))
        return "Observation", params
    if kind == "c":
        return "Patient", [
            ("_id", patient.res_id),
            ("_revinclude", "Condition:patient"),
            ("_revinclude", "MedicationStatement:subject"),
        ]
    raise ValueError(kind)


def describe(kind: str) -> str:
    res_type, params = query_params(kind, _EXAMPLE)
    return f"{res_type}?" + "&".join(f"{k}={v}" for k, v in params)


_EXAMPLE = PatientInfo(0, "<nhs>", "", 0, 0, 0, 0, res_id="<id>")


def run_search(store: Store, kind: str, patient: PatientInfo) -> tuple[dict[str, Any], bytes]:
    """One search as the HTTP route runs it, minus HTTP: parse, search,
    Bundle, bytes."""
    res_type, params = query_params(kind, patient)
    query = parse_search(res_type, params, base_url=BASE_URL)
    # The gateway's own search: the unenforced baseline.
    result = search(store, query, visible=None, includable=bool)
    bundle = searchset_bundle(result, query, base_url=BASE_URL, path=res_type)
    return bundle, fhirjson.dumps(bundle)


def check_answer(kind: str, patient: PatientInfo, bundle: dict[str, Any]) -> str | None:
    """What is wrong with the answer, if anything."""
    entries = bundle.get("entry", [])
    matches = [e for e in entries if e["search"]["mode"] == "match"]
    included = [e for e in entries if e["search"]["mode"] == "include"]
    expected_id = f"{BASE_URL}/Patient/{patient.res_id}"
    if kind == "a":
        if len(matches) != 1 or matches[0]["fullUrl"] != expected_id or bundle.get("total") != 1:
            return f"expected exactly {expected_id}, got {[m['fullUrl'] for m in matches]}"
    elif kind in ("b", "b0"):
        want = min(patient.recent_heart_rates, 50)
        if len(matches) != want:
            return f"expected {want} heart rates, got {len(matches)}"
        if kind == "b" and bundle.get("total") != patient.recent_heart_rates:
            return f"expected total {patient.recent_heart_rates}, got {bundle.get('total')}"
        if kind == "b0" and "total" in bundle:
            return "_total=none still gave a total"
    elif kind == "c":
        want = patient.conditions + patient.medications
        if len(matches) != 1 or matches[0]["fullUrl"] != expected_id:
            return f"expected the patient {expected_id}, got {[m['fullUrl'] for m in matches]}"
        if len(included) != want:
            return f"expected {want} included resources, got {len(included)}"
    return None


# -- statistics ------------------------------------------------------------------------


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Latency:
    kind: str
    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    count_sql_p50_ms: float | None  # the COUNT statement alone
    page_sql_p50_ms: float | None  # the page statement alone
    # PostgreSQL: the page statement on a connection that never prepares
    # statements, so always planned for its values (a custom plan)
    page_unprepared_p50_ms: float | None
    bytes_p50: int
    first_error: str | None = None

    @property
    def passed(self) -> bool:
        return self.p50_ms < TARGETS_MS[self.kind] and self.errors == 0


@dataclass
class Plan:
    kind: str
    statement: str  # count, page, revinclude Condition:patient, ...
    sql: str
    params: list[Any]
    plan: list[str]
    flags: list[str]


@dataclass
class Checkpoint:
    store: str
    resources: int
    patients: int
    segment_resources: int
    segment_load_s: float
    segment_rate: float  # resources/s over the segment
    overall_rate: float  # resources/s from empty to here
    database_bytes: int
    latencies: dict[str, Latency] = field(default_factory=dict)
    plans: list[Plan] = field(default_factory=list)
    statistics: list[str] = field(default_factory=list)  # planner statistics state


# -- stores ----------------------------------------------------------------------------


@dataclass
class Database:
    name: str
    url: str
    size: Callable[[], int]


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[Database]:
    path = workdir / "search.db"

    def size() -> int:
        return sum(p.stat().st_size for p in workdir.iterdir() if p.name.startswith("search.db"))

    yield Database("sqlite", f"sqlite:///{path}", size)


@contextmanager
def postgres_database() -> Iterator[Database]:
    from tests.support.postgres import ClusterUnavailable, start_cluster

    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        raise Skipped(str(exc)) from exc
    try:
        url = cluster.create_database("bench_search")

        def size() -> int:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else 0

        yield Database("postgres", url, size)
    finally:
        cluster.stop()


class Skipped(Exception):
    """A store that cannot run here (PostgreSQL without its binaries)."""


# -- loading ---------------------------------------------------------------------------


def run_job(store: Store, job: Job) -> None:
    """Load one job's Bundles in order, as the server would: parse the body,
    run the transaction, serialise the response."""
    replacements: list[tuple[bytes, bytes]] = []
    for raw, patient_entries in zip(job.bundles, job.patient_entries, strict=True):
        for old, new in replacements:
            raw = raw.replace(old, new)
        body = fhirjson.loads(raw)
        response = transaction(
            store, LOADER, body, base_url=BASE_URL, prefer=ReturnPreference.MINIMAL
        )
        fhirjson.dumps(response)
        for index, patient in patient_entries:
            location = response["entry"][index]["response"]["location"]
            # .../Patient/<id>/_history/1
            patient.res_id = location.rsplit("/", 3)[-3]
            replacements.append((patient.full_url.encode(), f"Patient/{patient.res_id}".encode()))


class Loader:
    """Loads jobs window by window; only the loading is timed."""

    def __init__(self, store: Store, jobs: Iterator[Job], threads: int, window: int) -> None:
        self.store = store
        self.jobs = jobs
        self.threads = threads
        self.window = window
        self.loaded = 0
        self.load_seconds = 0.0
        self.generate_seconds = 0.0
        self.patients: list[PatientInfo] = []
        self._pending: Job | None = None
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def _next_window(self, limit: int) -> list[Job]:
        started = time.perf_counter()
        window: list[Job] = []
        size = 0
        while size < min(self.window, limit):
            job = self._pending if self._pending is not None else next(self.jobs, None)
            self._pending = None
            if job is None:
                break
            if window and size + job.resources > limit:
                self._pending = job
                break
            window.append(job)
            size += job.resources
        self.generate_seconds += time.perf_counter() - started
        return window

    def load_until(self, target: int, progress: Callable[[str], None]) -> None:
        while self.loaded < target:
            window = self._next_window(target - self.loaded)
            if not window:
                break
            started = time.perf_counter()
            if self._pool is None:
                for job in window:
                    run_job(self.store, job)
            else:
                list(self._pool.map(lambda job: run_job(self.store, job), window))
            elapsed = time.perf_counter() - started
            self.load_seconds += elapsed
            count = sum(job.resources for job in window)
            self.loaded += count
            for job in window:
                self.patients.extend(job.patients)
            progress(
                f"loaded {self.loaded:,} resources ({len(self.patients):,} patients): "
                f"this window {count / elapsed:,.0f} res/s, "
                f"overall {self.loaded / self.load_seconds:,.0f} res/s"
            )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


# -- measuring -------------------------------------------------------------------------


def _timed_select(store: Store, sql: str, params: Sequence[Any]) -> float:
    started = time.perf_counter()
    store.select(sql, params)
    return (time.perf_counter() - started) * 1000


def measure(
    store: Store,
    kind: str,
    targets: Sequence[PatientInfo],
    warmup: Sequence[PatientInfo],
    budget_s: float,
    unprepared: Callable[[str, Sequence[Any]], float] | None = None,
) -> Latency:
    """Latency of ``kind`` over ``targets``, stopping early (after at least
    ``_MIN_SAMPLES``) once ``budget_s`` is spent, so that a pathological
    search cannot stall the run."""
    started = time.perf_counter()
    for patient in warmup:
        run_search(store, kind, patient)
        if time.perf_counter() - started > budget_s / 4:
            break
    started = time.perf_counter()
    times: list[float] = []
    sizes: list[int] = []
    errors = 0
    first_error: str | None = None
    for patient in targets:
        if len(times) >= _MIN_SAMPLES and time.perf_counter() - started > budget_s:
            break
        began = time.perf_counter()
        bundle, body = run_search(store, kind, patient)
        times.append((time.perf_counter() - began) * 1000)
        sizes.append(len(body))
        problem = check_answer(kind, patient, bundle)
        if problem is not None:
            errors += 1
            first_error = first_error or f"{describe(kind)} for {patient.res_id}: {problem}"
    # Where the time goes: the COUNT and the page statement alone, on (up to
    # 50 of) the same targets.
    count_times: list[float] = []
    page_times: list[float] = []
    unprepared_times: list[float] = []
    started = time.perf_counter()
    for patient in targets[: min(50, len(times))]:
        if page_times and time.perf_counter() - started > budget_s / 2:
            break
        query = _query(kind, patient)
        if query.total != "none":
            sql, params = count_statement(query)
            count_times.append(_timed_select(store, sql, params))
        statement = page_statement(query, None, query.count)
        page_times.append(_timed_select(store, statement.sql, statement.params))
        if unprepared is not None:
            unprepared_times.append(unprepared(statement.sql, statement.params))
    return Latency(
        kind=kind,
        samples=len(times),
        p50_ms=percentile(times, 0.50),
        p95_ms=percentile(times, 0.95),
        p99_ms=percentile(times, 0.99),
        max_ms=max(times),
        errors=errors,
        count_sql_p50_ms=statistics.median(count_times) if count_times else None,
        page_sql_p50_ms=statistics.median(page_times) if page_times else None,
        page_unprepared_p50_ms=(statistics.median(unprepared_times) if unprepared_times else None),
        bytes_p50=int(statistics.median(sizes)),
        first_error=first_error,
    )


def _query(kind: str, patient: PatientInfo) -> SearchQuery:
    res_type, params = query_params(kind, patient)
    return parse_search(res_type, params, base_url=BASE_URL)


class PostgresProbe:
    """A connection of its own to time statements without preparing them
    (psycopg prepares a statement on its fifth execution on a connection,
    after which PostgreSQL may switch to a generic plan) and to explain the
    generic plan a prepared statement gets."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._conn = psycopg.connect(url, autocommit=True, prepare_threshold=None)
        self._client = psycopg.ClientCursor(self._conn)

    def time_unprepared(self, sql: str, params: Sequence[Any]) -> float:
        started = time.perf_counter()
        self._conn.execute(sql.replace("?", "%s"), params).fetchall()
        return (time.perf_counter() - started) * 1000

    def generic_plan(self, sql: str, params: Sequence[Any]) -> list[str]:
        numbered = sql
        for n in range(1, len(params) + 1):
            numbered = numbered.replace("?", f"${n}", 1)
        self._conn.execute("DEALLOCATE ALL")
        self._conn.execute("SET plan_cache_mode = force_generic_plan")
        try:
            self._conn.execute(f"PREPARE bench_generic AS {numbered}")
            marks = ", ".join("%s" for _ in params)
            self._client.execute(
                f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_generic({marks})", list(params)
            )
            return [str(row[0]) for row in self._client.fetchall()]
        finally:
            self._conn.execute("RESET plan_cache_mode")
            self._conn.execute("DEALLOCATE ALL")

    def close(self) -> None:
        self._conn.close()


# -- plans -----------------------------------------------------------------------------


def statements(kind: str, patient: PatientInfo) -> list[tuple[str, str, list[Any]]]:
    """(name, sql, params) of every statement the search runs, but point reads."""
    query = _query(kind, patient)
    found: list[tuple[str, str, list[Any]]] = []
    if query.total != "none":
        sql, params = count_statement(query)
        found.append(("count", sql, params))
    page = page_statement(query, None, query.count)
    found.append(("page", page.sql, page.params))
    for include in query.revincludes:
        # As gateway.interactions.search._reverse builds it, for one target.
        sql = (
            "SELECT DISTINCT r.res_type, r.res_id FROM search_reference r "
            "WHERE r.res_type = ? AND r.param = ? AND r.target_type = ? "
            "AND r.target_id IN (?)"
        )
        params = [include.source_type, include.param.code, query.res_type, patient.res_id]
        found.append((f"_revinclude {include.source_type}:{include.param.code}", sql, params))
    return found


_ALIAS = re.compile(r"\b(?:FROM|JOIN)\s+(\w+)\s+(\w+)\b")


def _aliases(sql: str) -> dict[str, str]:
    aliases = {alias: table for table, alias in _ALIAS.findall(sql) if table in BIG_TABLES}
    aliases.update({t: t for t in BIG_TABLES})
    return aliases


_SQLITE_STEP = re.compile(r"(SCAN|SEARCH) (\w+)(?: AS (\w+))?(?: USING .*?\((.*)\))?")
_BROAD_COLUMNS = frozenset({"res_type", "param"})
_PG_ACTUAL = re.compile(r"\(actual time=[\d.]+\.\.[\d.]+ rows=(\d+) loops=(\d+)\)")
_PG_LARGE = 10_000  # rows a node handles (rows x loops) above which it is flagged


def _sqlite_flag(detail: str, aliases: dict[str, str]) -> str | None:
    """Why this plan step reads much of a large table, if it does: a scan
    without an index, or an index search constrained only by the resource
    type and parameter (every row of the type), or by them and an open range."""
    match = _SQLITE_STEP.match(detail)
    if not match:
        return None
    step, name, alias, constraints = match.groups()
    table = aliases.get(alias or name)
    if table is None:
        return None
    if step == "SCAN":
        if "USING" in detail:
            return f"full index scan of {table}: {detail}"
        return f"full table scan of {table}: {detail}"
    if constraints is None:
        return None
    terms = [t.strip() for t in constraints.split(" AND ")]
    equal = {t.split("=")[0] for t in terms if t.endswith("=?") and t[-3] not in "<>"}
    others = [t for t in terms if t.split("=")[0] not in equal]
    if equal <= _BROAD_COLUMNS:
        if not others:
            return f"reads every {'/'.join(sorted(equal))} row of {table}: {detail}"
        return f"open range over a whole type of {table}: {detail}"
    return None


def explain(
    store_name: str, store: Store, sql: str, params: list[Any]
) -> tuple[list[str], list[str]]:
    """The plan's lines, and its steps that read much of a large table:
    full scans and type-wide index ranges (SQLite), sequential scans and
    nodes handling more than ``_PG_LARGE`` rows (PostgreSQL)."""
    flags: list[str] = []
    if store_name == "sqlite":
        rows = store.select("EXPLAIN QUERY PLAN " + sql, params)
        depth: dict[int, int] = {0: -1}
        lines = []
        aliases = _aliases(sql)
        for row in rows:
            node, parent, detail = int(str(row[0])), int(str(row[1])), str(row[3])
            level = depth.get(parent, -1) + 1
            depth[node] = level
            lines.append("  " * level + detail)
            flag = _sqlite_flag(detail, aliases)
            if flag is not None:
                flags.append(flag)
        return lines, flags
    rows = store.select("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
    lines = [str(row[0]) for row in rows]
    return lines, pg_flags(lines)


def pg_flags(lines: Sequence[str]) -> list[str]:
    flags: list[str] = []
    for line in lines:
        match = re.search(r"Seq Scan on (\w+)", line)
        if match and match.group(1) in BIG_TABLES:
            flags.append(f"sequential scan: {line.strip()}")
            continue
        actual = _PG_ACTUAL.search(line)
        if actual and int(actual.group(1)) * int(actual.group(2)) > _PG_LARGE:
            flags.append(
                f"large node ({int(actual.group(1)) * int(actual.group(2)):,} rows): "
                + line.strip()
            )
    return flags


def planner_statistics(store_name: str, store: Store) -> list[str]:
    if store_name == "sqlite":
        rows = store.select(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'",
            [],
        )
        has = int(rows[0][0]) > 0  # type: ignore[call-overload]
        return [
            "sqlite_stat1 present (ANALYZE has run)"
            if has
            else "no sqlite_stat1: ANALYZE has never run, the planner uses its defaults"
        ]
    rows = store.select(
        "SELECT relname, n_live_tup, last_autoanalyze IS NOT NULL OR last_analyze IS NOT NULL, "
        "n_mod_since_analyze FROM pg_stat_user_tables ORDER BY n_live_tup DESC",
        [],
    )
    return [
        f"{name}: {int(live):,} live rows, "  # type: ignore[call-overload]
        f"{'analyzed' if analyzed else 'NEVER analyzed'}, "
        f"{int(modified):,} rows changed since"  # type: ignore[call-overload]
        for name, live, analyzed, modified in rows
        if name in BIG_TABLES
    ]


# -- one store -------------------------------------------------------------------------


def bench_store(
    database: Database, args: argparse.Namespace, checkpoints: list[int], log: Callable[[str], None]
) -> list[Checkpoint]:
    store = open_store(database.url, pool_size=max(4, args.loaders_postgres + 2))
    results: list[Checkpoint] = []
    probe = PostgresProbe(database.url) if database.name == "postgres" else None
    threads = args.loaders_sqlite if database.name == "sqlite" else args.loaders_postgres
    try:
        store.migrate()
        jobs = plan_jobs(args.resources, args.batch, args.seed)
        loader = Loader(store, jobs, threads, args.window)
        log(f"{database.name}: {database.url}, {threads} loader thread(s)")
        previous_loaded, previous_seconds = 0, 0.0
        try:
            for checkpoint in checkpoints:
                loader.load_until(checkpoint, lambda m: log(f"{database.name}: {m}"))
                segment = loader.loaded - previous_loaded
                segment_s = loader.load_seconds - previous_seconds
                result = Checkpoint(
                    store=database.name,
                    resources=loader.loaded,
                    patients=len(loader.patients),
                    segment_resources=segment,
                    segment_load_s=segment_s,
                    segment_rate=segment / segment_s if segment_s else 0.0,
                    overall_rate=loader.loaded / loader.load_seconds if loader.load_seconds else 0,
                    database_bytes=database.size(),
                )
                previous_loaded, previous_seconds = loader.loaded, loader.load_seconds
                log(
                    f"{database.name}: checkpoint {loader.loaded:,} resources, "
                    f"{result.database_bytes / 2**20:,.0f} MiB; load {result.segment_rate:,.0f} "
                    f"res/s this segment (generation, not counted: "
                    f"{loader.generate_seconds:,.0f} s so far); load average "
                    + " ".join(f"{x:.2f}" for x in os.getloadavg())
                )
                result.statistics = planner_statistics(database.name, store)
                rng = random.Random(f"{args.seed}-{database.name}-{checkpoint}")
                targets = [rng.choice(loader.patients) for _ in range(args.repeat)]
                warmup = [rng.choice(loader.patients) for _ in range(_WARMUP)]
                for kind in QUERY_KINDS:
                    latency = measure(
                        store,
                        kind,
                        targets,
                        warmup,
                        args.budget,
                        probe.time_unprepared if probe is not None else None,
                    )
                    result.latencies[kind] = latency
                    log(
                        f"{database.name}: {kind}: n {latency.samples} p50 {latency.p50_ms:.2f} "
                        f"p95 {latency.p95_ms:.2f} p99 {latency.p99_ms:.2f} ms; load average "
                        + " ".join(f"{x:.2f}" for x in os.getloadavg())
                        + (f", {latency.errors} wrong answers" if latency.errors else "")
                    )
                sample = targets[0]
                for kind in QUERY_KINDS:
                    for name, sql, params in statements(kind, sample):
                        lines, scans = explain(database.name, store, sql, params)
                        result.plans.append(Plan(kind, name, sql, params, lines, scans))
                        if probe is not None:
                            lines = probe.generic_plan(sql, params)
                            result.plans.append(
                                Plan(
                                    kind,
                                    f"{name}, GENERIC plan (what a prepared statement may get)",
                                    sql,
                                    params,
                                    lines,
                                    pg_flags(lines),
                                )
                            )
                results.append(result)
                print_checkpoint(result)
                if loader.loaded < checkpoint:
                    break  # the data ran out before this checkpoint
        finally:
            loader.close()
    finally:
        if probe is not None:
            probe.close()
        store.close()
    return results


# -- report ----------------------------------------------------------------------------


def print_checkpoint(result: Checkpoint) -> None:
    print(f"\n=== {result.store} at {result.resources:,} resources: plans ===")
    print("Planner statistics:")
    for line in result.statistics:
        print(f"  {line}")
    for plan in result.plans:
        print(f"\n--- ({plan.kind}) {plan.statement}: {describe(plan.kind)}")
        print(f"SQL: {plan.sql}")
        print(f"params: {plan.params}")
        for line in plan.plan:
            print(f"  {line}")
        for scan in plan.flags:
            print(f"  !!! READS MUCH OF A LARGE TABLE: {scan}")
    print(flush=True)


_COLUMNS = (
    ("store", "<9"),
    ("resources", ">10"),
    ("load res/s", ">12"),
    ("  search", "<10"),
    ("n", ">5"),
    ("p50 ms", ">10"),
    ("p95 ms", ">10"),
    ("p99 ms", ">10"),
    ("max ms", ">10"),
    ("COUNT p50", ">11"),
    ("page p50", ">10"),
    ("unprep p50", ">12"),
    ("bytes", ">8"),
    ("target", ">9"),
    ("", "<2"),
    ("result", "<6"),
)
_HEADER = "".join(f"{name:{spec}}" for name, spec in _COLUMNS)


def report(results: list[Checkpoint], skipped: dict[str, str]) -> None:
    print("\nSearches:")
    for kind in QUERY_KINDS:
        print(f"  ({kind}) {describe(kind)}")
    print(
        "\nResults (latency in ms, in-process: parse + search + Bundle + JSON bytes; "
        "COUNT p50 and page p50: that statement alone through store.select; unprep p50: "
        "the page statement on a PostgreSQL connection that never prepares it)"
    )
    print(_HEADER)
    print("-" * len(_HEADER))
    for r in results:
        for i, kind in enumerate(QUERY_KINDS):
            lat = r.latencies[kind]
            values = (
                r.store if i == 0 else "",
                f"{r.resources:,}" if i == 0 else "",
                f"{r.segment_rate:,.0f}" if i == 0 else "",
                f"  {kind}",
                lat.samples,
                f"{lat.p50_ms:.2f}",
                f"{lat.p95_ms:.2f}",
                f"{lat.p99_ms:.2f}",
                f"{lat.max_ms:.2f}",
                "-" if lat.count_sql_p50_ms is None else f"{lat.count_sql_p50_ms:.2f}",
                "-" if lat.page_sql_p50_ms is None else f"{lat.page_sql_p50_ms:.2f}",
                "-" if lat.page_unprepared_p50_ms is None else f"{lat.page_unprepared_p50_ms:.2f}",
                f"{lat.bytes_p50:,}",
                f"<{TARGETS_MS[kind]:g}",
                "",
                ("PASS" if lat.passed else "MISS") + (f" {lat.errors} wrong" if lat.errors else ""),
            )
            print("".join(f"{v:{spec}}" for v, (_, spec) in zip(values, _COLUMNS, strict=True)))
    for store, reason in skipped.items():
        print(f"{store:<9}{reason}")
    print("\nLoad rate (resources/s through the write path; generation not counted)")
    for r in results:
        print(
            f"  {r.store:<9}{r.resources:>10,}  segment of {r.segment_resources:,} in "
            f"{r.segment_load_s:,.1f} s: {r.segment_rate:,.0f} res/s; overall "
            f"{r.overall_rate:,.0f} res/s; database {r.database_bytes / 2**20:,.0f} MiB"
        )
    print("\nGrowth of p50 (and p99) from the first to the last checkpoint")
    for store in dict.fromkeys(r.store for r in results):
        mine = [r for r in results if r.store == store]
        if len(mine) < 2:
            continue
        first, last = mine[0], mine[-1]
        scale = last.resources / first.resources
        parts = []
        for kind in QUERY_KINDS:
            a, b = first.latencies[kind], last.latencies[kind]
            parts.append(
                f"{kind}: {a.p50_ms:.2f} -> {b.p50_ms:.2f} ms (x{b.p50_ms / a.p50_ms:.2f}; "
                f"p99 x{b.p99_ms / a.p99_ms:.2f})"
            )
        print(f"  {store} ({first.resources:,} -> {last.resources:,}, data x{scale:g}):")
        for part in parts:
            print(f"    {part}")
    scans = [(r, p) for r in results for p in r.plans if p.flags]
    print("\nPlan steps that read much of a large table:")
    if not scans:
        print("  none")
    for r, p in scans:
        for scan in p.flags:
            print(f"  {r.store} at {r.resources:,}: ({p.kind}) {p.statement}: {scan}")
    wrong = [(r, lat) for r in results for lat in r.latencies.values() if lat.errors]
    if wrong:
        print("\nWrong answers:")
        for r, lat in wrong:
            print(f"  {r.store} at {r.resources:,}: ({lat.kind}) {lat.errors}: {lat.first_error}")


# -- main ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search",
        description="Load synthetic patient records through the transaction write path and "
        "measure search latency at checkpoints, on SQLite and PostgreSQL.",
    )
    parser.add_argument("--resources", type=int, default=1_000_000, help="resources to load")
    parser.add_argument(
        "--checkpoints",
        default="100000,1000000",
        help="comma-separated resource counts at which to measure",
    )
    parser.add_argument(
        "--stores", default="sqlite,postgres", help="comma-separated: sqlite, postgres"
    )
    parser.add_argument("--batch", type=int, default=100, help="entries per transaction Bundle")
    parser.add_argument("--repeat", type=int, default=200, help="latency samples per search")
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="seconds per search per checkpoint, after which sampling stops (at least "
        f"{_MIN_SAMPLES} samples)",
    )
    parser.add_argument("--seed", type=int, default=20250630, help="data and target seed")
    parser.add_argument(
        "--window", type=int, default=20_000, help="resources generated ahead, then loaded"
    )
    parser.add_argument("--loaders-sqlite", type=int, default=1, help="loader threads, SQLite")
    parser.add_argument(
        "--loaders-postgres", type=int, default=1, help="loader threads, PostgreSQL"
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite work directory")
    return parser


def gateway_revision() -> str:
    """The commit the gateway code was at, and whether gateway/ had local changes."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "gateway"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" (with uncommitted changes in gateway/)" if dirty else "")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    for name in stores:
        if name not in ("sqlite", "postgres"):
            raise SystemExit(f"unknown store {name!r}")
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if c.strip()})
    checkpoints = [c for c in checkpoints if 0 < c <= args.resources] or [args.resources]
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    workdir = Path(tempfile.mkdtemp(prefix="bench-search-"))
    revision = gateway_revision()
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {message}", flush=True)

    print(
        f"bench.search: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{args.resources:,} resources in Bundles of {args.batch}, checkpoints "
        f"{', '.join(f'{c:,}' for c in checkpoints)}, {args.repeat} samples per search, "
        f"seed {args.seed}, work directory {workdir}\ngateway at {revision}",
        flush=True,
    )
    results: list[Checkpoint] = []
    skipped: dict[str, str] = {}
    try:
        for name in stores:
            database = sqlite_database(workdir) if name == "sqlite" else postgres_database()
            try:
                with database as db:
                    results += bench_store(db, args, checkpoints, log)
            except Skipped as exc:
                log(f"{name}: SKIPPED: {exc}")
                skipped[name] = f"SKIPPED: {exc}"
            if name == "sqlite" and not args.keep:
                for path in workdir.iterdir():
                    path.unlink()
        report(results, skipped)
        if args.json:
            args.json.write_bytes(
                orjson.dumps(
                    {
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "gateway": revision,
                        "options": {k: str(v) for k, v in vars(args).items()},
                        "searches": {kind: describe(kind) for kind in QUERY_KINDS},
                        "targets_ms": TARGETS_MS,
                        "checkpoints": [
                            {
                                **asdict(r),
                                "latencies": {k: asdict(v) for k, v in r.latencies.items()},
                            }
                            for r in results
                        ],
                        "skipped": skipped,
                    },
                    option=orjson.OPT_INDENT_2,
                )
            )
            print(f"\nfigures written to {args.json}")
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
