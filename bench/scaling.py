"""Growth on PostgreSQL (issue 29): one store grown step by step, by default
to 100,000, 300,000 and 1,000,000 resources, and at each size the latency of
typical searches, documents, a read and a create through a running
``gateway serve``, with the size of every table and its indexes.

Run ``python -m bench.scaling`` (``make bench-scaling``; ``--help`` for the
options); ``--sizes 5000,20000`` is a quick run.

Store
-----
A throwaway cluster (``tests.support.postgres``, fsync off), or the database
of ``--database-url``: empty, or grown by an earlier run with the same seed,
whose people are kept (the people whose Patient is on file; a unit of work
writes whole people) and the rest written. The population is ``bench.export``'s (its
organisations, then people of 100 to 300 resources each: Patient,
EpisodesOfCare, Conditions, MedicationStatements, Encounters, vital-sign
Observations, with opt-outs and restricted labels), written through the
write path's own steps (``write.prepare``, ``write.create_in``) by
``--loaders`` processes (``bench.export._load_chunk``). Growing is
adding the next people: the store of 300,000 is the store of 100,000 and
the people after them. A size counts whole people, so a step holds up to one
person's resources fewer than asked (the sizes printed are the store's).
After each step the database is ``VACUUM ANALYZE``\\d, as a load followed
by autovacuum would leave it.

Measured at each size
---------------------
``gateway serve --workers 2`` on the database; the community trust's client
(``bench._population.TRUST``, kind ``hospital``, purpose TREAT, scopes
``system/*.cruds``) registered and given a token at ``/auth/token``. It has
an active EpisodeOfCare with every person, so it sees everyone (less what
is labelled restricted; tokens last the whole step). ``--patients`` people
of the first size (or of ``--sample-from``) are the sample, the same people
at every size, so each figure is one person's question asked of a larger
store; creates are about as many other people. Each operation is asked
``--requests`` times, one at a time, rotating over the sample, after
``WARMUP`` unmeasured requests; one that takes seconds a request warms up
with fewer and stops after ``--budget`` seconds once it has ``MIN_SAMPLES``
(the table says how many were measured). Latency is the client's wall
clock per request (HTTP on loopback included), p50 and p99 (nearest rank):

  obs-code     Observation?subject=Patient/<id>&code=<SNOMED heart rate>
  conditions   Condition?subject=Patient/<id>
  nhs-number   Patient?identifier=<NHS number system>|<number>
  obs-dates    Observation?subject=Patient/<id>&date=ge2020-01-01&date=lt2022-01-01
  obs-sorted   Observation?subject=Patient/<id>&_sort=-date&_count=20
  born-month   Patient?birthdate=ge1960-03-01&birthdate=lt1960-04-01&_count=20
               (across people: grows with the store)
  hr-week      Observation?code=<heart rate>&date=ge2024-03-04&date=lt2024-03-11
               &_sort=-date&_count=20 (across people)
  everything   Patient/<id>/$everything?_count=1000 (one page: at most 300)
  summary      Patient/<id>/$summary (the signed document)
  read         Patient/<id>
  create       POST Observation (a heart rate for the person)

Then, from the catalogue, for every table of the public schema:
``pg_total_relation_size`` (all of it), ``pg_relation_size`` (the heap),
``pg_indexes_size`` and the rest (TOAST), rows (``pg_class.reltuples``
after the VACUUM; exact for a vacuumed table), and
``pg_database_size``; bytes per resource (current versions) and per audit
entry. The machine's load average is printed with each step: other work
shares the two cores. A cluster of ``--database-url`` is left running.

It prints one table per size and a growth table (each figure at the last
size divided by at the first), and ``--json`` writes them all.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import _population as population
from bench import export
from bench._clients import load_limits, register_and_ask_token
from bench._synthetic import HEART_RATE, NHS_NUMBER_SYSTEM, SNOMED
from bench.rest_core import free_port, gateway_command, percentile, running
from bench.search import Skipped, gateway_revision
from bench.search_consent import StoreFailed, gateway_migrate

DEFAULT_SIZES = (100_000, 300_000, 1_000_000)
WARMUP = 10
MIN_SAMPLES = 10  # below --requests only when an operation overruns --budget
CLIENT_ID = "bench-scaling-trust"
SCOPES = "system/*.cruds"
# The tables grouped in the summary lines; every table is listed anyway.
RESOURCE_TABLES = ("resource_version", "resource_current")
OPERATIONS = (
    "obs-code",
    "conditions",
    "nhs-number",
    "obs-dates",
    "obs-sorted",
    "born-month",
    "hr-week",
    "everything",
    "summary",
    "read",
    "create",
)


# -- the people --------------------------------------------------------------------------


def people_upto(seed: int, resources: int) -> list[export.Shape]:
    """``bench.export``'s people, whole, while the store (organisations
    included) stays within ``resources``: each size's people are the
    smaller size's and the next ones."""
    people: list[export.Shape] = []
    total = population.ORGANISATIONS
    while True:
        person = export.shape(seed, len(people))
        if total + person.size > resources:
            return people
        people.append(person)
        total += person.size


def stored(people: Sequence[export.Shape]) -> int:
    return population.ORGANISATIONS + sum(p.size for p in people)


@dataclass(frozen=True)
class Person:
    res_id: str
    nhs: str


def sample(seed: int, people: Sequence[export.Shape], count: int, offset: int = 0) -> list[Person]:
    """``count`` people spread evenly over ``people``, from ``offset``."""
    numbers = population.nhs_numbers_for(seed, len(people))
    step = max(1, len(people) // max(1, count))
    return [
        Person(export.patient_id(seed, p.number), numbers[p.number])
        for p in people[offset::step][:count]
    ]


# -- growing -----------------------------------------------------------------------------


def grow(
    url: str,
    seed: int,
    people: Sequence[export.Shape],
    everyone: int,
    args: argparse.Namespace,
    log: Callable[[str], None],
) -> float:
    """Write ``people`` (the people after those already written) with
    ``args.loaders`` processes; wall seconds. ``everyone`` is how many
    people the largest size holds (the loaders' NHS numbers)."""
    started = time.perf_counter()
    chunks = [list(people[i : i + args.chunk]) for i in range(0, len(people), args.chunk)]
    total = sum(p.size for p in people)
    written = 0
    next_report = 60.0
    context = multiprocessing.get_context("spawn")
    with context.Pool(
        args.loaders, initializer=export._start_loader, initargs=(url, seed, everyone)
    ) as pool:
        for count, _ in pool.imap_unordered(export._load_chunk, chunks):
            written += count
            elapsed = time.perf_counter() - started
            if elapsed >= next_report:
                next_report = elapsed + 60
                log(
                    f"wrote {written:,} of {total:,} resources in {elapsed:,.0f} s "
                    f"({written / elapsed:,.0f} res/s; load average {load_average()})"
                )
    return time.perf_counter() - started


def written_patients(url: str) -> set[str]:
    """The ids of the Patients in the store: the people already written
    (a unit of work writes whole people)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT res_id FROM resource_current WHERE res_type = 'Patient'"
        ).fetchall()
    return {str(r[0]) for r in rows}


def vacuum_analyze(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# -- latency -----------------------------------------------------------------------------


@dataclass
class Latency:
    operation: str
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    entries: float  # mean entries per answer (searches and documents)


def request_for(operation: str, person: Person, n: int) -> tuple[str, str, bytes | None]:
    """(method, path, body) of one request of ``operation`` about ``person``."""
    subject = f"Patient/{person.res_id}"
    heart_rate = f"{SNOMED}|{HEART_RATE}"
    if operation == "obs-code":
        return "GET", f"/fhir/Observation?subject={subject}&code={heart_rate}", None
    if operation == "conditions":
        return "GET", f"/fhir/Condition?subject={subject}", None
    if operation == "nhs-number":
        return "GET", f"/fhir/Patient?identifier={NHS_NUMBER_SYSTEM}|{person.nhs}", None
    if operation == "obs-dates":
        return (
            "GET",
            f"/fhir/Observation?subject={subject}&date=ge2020-01-01&date=lt2022-01-01",
            None,
        )
    if operation == "obs-sorted":
        return "GET", f"/fhir/Observation?subject={subject}&_sort=-date&_count=20", None
    if operation == "born-month":
        return "GET", "/fhir/Patient?birthdate=ge1960-03-01&birthdate=lt1960-04-01&_count=20", None
    if operation == "hr-week":
        return (
            "GET",
            f"/fhir/Observation?code={heart_rate}&date=ge2024-03-04&date=lt2024-03-11"
            "&_sort=-date&_count=20",
            None,
        )
    if operation == "everything":
        return "GET", f"/fhir/Patient/{person.res_id}/$everything?_count=1000", None
    if operation == "summary":
        return "GET", f"/fhir/Patient/{person.res_id}/$summary", None
    if operation == "read":
        return "GET", f"/fhir/Patient/{person.res_id}", None
    if operation == "create":
        body = {
            "resourceType": "Observation",
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
        return "POST", "/fhir/Observation", orjson.dumps(body)
    raise ValueError(operation)


def measure(
    client: httpx.Client,
    operation: str,
    people: Sequence[Person],
    requests: int,
    budget_s: float = float("inf"),
    min_samples: int = MIN_SAMPLES,
) -> Latency:
    samples: list[float] = []
    entries = 0
    # A slow operation (seconds a request) warms up with fewer requests and
    # stops at ``budget_s`` once it has ``MIN_SAMPLES``: the table says how
    # many were measured.
    begun = time.monotonic()
    warmup = WARMUP
    for n in range(WARMUP + requests):
        now = time.monotonic()
        if n < warmup and n >= 2 and now - begun > budget_s / 4:
            warmup = n
        if n >= warmup + min_samples and now - begun > budget_s:
            break
        if n - warmup >= requests:
            break
        method, path, body = request_for(operation, people[n % len(people)], n)
        started = time.perf_counter()
        answer = client.request(method, path, content=body)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code not in (200, 201):
            raise StoreFailed(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        if n >= warmup:
            samples.append(elapsed)
            if method == "GET" and operation != "read":
                entries += len(orjson.loads(answer.content).get("entry") or [])
    samples.sort()
    return Latency(
        operation,
        len(samples),
        percentile(samples, 50),
        percentile(samples, 99),
        samples[-1],
        entries / len(samples),
    )


# -- sizes -------------------------------------------------------------------------------


@dataclass
class Table:
    name: str
    rows: int
    total: int  # pg_total_relation_size
    heap: int  # pg_relation_size
    indexes: int  # pg_indexes_size

    @property
    def toast(self) -> int:
        return self.total - self.heap - self.indexes


_SIZES = """
SELECT c.relname, GREATEST(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid),
       pg_relation_size(c.oid), pg_indexes_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
ORDER BY pg_total_relation_size(c.oid) DESC, c.relname
"""


def table_sizes(url: str) -> tuple[list[Table], int]:
    """Every table of the public schema, largest first, and the database's size."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = [Table(str(r[0]), *(int(v) for v in r[1:])) for r in conn.execute(_SIZES)]
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return tables, int(row[0]) if row else 0


def exact_rows(url: str, table: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # a known name
    return int(row[0]) if row else 0


# -- a step ------------------------------------------------------------------------------


@dataclass
class Step:
    asked: int
    resources: int  # current resources in the store when measured
    people: int
    grow_s: float
    grow_res_per_s: float
    audit_entries: int
    database_bytes: int
    load_before: str
    load_after: str
    when: str
    latency: list[Latency] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)

    def group_bytes(self, prefix: str) -> int:
        return sum(t.total for t in self.tables if t.name.startswith(prefix))

    def latency_of(self, operation: str) -> Latency | None:
        return next((x for x in self.latency if x.operation == operation), None)


def serve_and_measure(
    url: str,
    people: Sequence[Person],
    writes: Sequence[Person],
    args: argparse.Namespace,
    log: Callable[[str], None],
) -> list[Latency]:
    """Every operation's latency; creates are about ``writes``, other
    people than the sample, so the sample's records stay the same."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-scaling-serve-") as scratch:
        env = {
            **os.environ,
            "GATEWAY_NOTIFY": "false",
            "GATEWAY_EXPORT_DIR": str(Path(scratch) / "exports"),
            "GATEWAY_LOG_LEVEL": "WARNING",
            # One token for the whole step: a slow operation outlasts the
            # default five minutes.
            "GATEWAY_TOKEN_LIFETIME": "86400",
            # What an operation costs as the store grows, however long it
            # takes: in service the work budget would end a minute-long
            # search at 30 s (422 too-costly), which is not what is measured.
            "GATEWAY_WORK_BUDGET_MS": "0",
            "GATEWAY_WORK_BUDGET_ROWS": "0",
        }
        command = gateway_command(port, args.workers, url)
        with running("gateway", command, Path(scratch) / "server.log", env) as server:
            answer = register_and_ask_token(
                server.base,
                url,
                CLIENT_ID,
                population.TRUST,
                "Central London Community Healthcare NHS Trust",
                "hospital",
                SCOPES,
                load_limits(1),  # one request at a time, as fast as answered
            )
            if answer.status_code != 200:
                raise StoreFailed(f"token request: {answer.status_code} {answer.text[:300]}")
            headers = {
                "Authorization": f"Bearer {answer.json()['access_token']}",
                "Accept": "application/fhir+json",
                "Content-Type": "application/fhir+json",
            }
            found = []
            with httpx.Client(base_url=server.base, headers=headers, timeout=300) as client:
                for operation in args.operations:
                    try:
                        targets = writes if operation == "create" else people
                        figures = measure(
                            client, operation, targets, args.requests, args.budget, args.min_samples
                        )
                    except (StoreFailed, httpx.HTTPError) as exc:
                        log(f"  {operation:<11} FAILED: {exc}")
                        continue
                    found.append(figures)
                    log(
                        f"  {operation:<11} p50 {figures.p50_ms:7.1f} ms  p99 "
                        f"{figures.p99_ms:7.1f} ms  ({figures.entries:,.1f} entries; "
                        f"load average {load_average()})"
                    )
    return found


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- report ------------------------------------------------------------------------------


def mib(value: float) -> str:
    return f"{value / 2**20:,.1f}"


def human_bytes(value: float) -> str:
    """A byte count with a binary unit: ``512 B``, ``1.5 KiB``, ``6.2 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def print_step(step: Step) -> None:
    print(
        f"\n== {step.resources:,} resources ({step.people:,} people; asked {step.asked:,}), "
        f"{step.when}; grown in {step.grow_s:,.0f} s ({step.grow_res_per_s:,.0f} res/s); "
        f"load average {step.load_before} before, {step.load_after} after"
    )
    header = (
        f"{'operation':<12}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'entries':>9}"
    )
    print(header)
    print("-" * len(header))
    for x in step.latency:
        print(
            f"{x.operation:<12}{x.requests:>9}{x.p50_ms:>9.1f}{x.p99_ms:>9.1f}{x.max_ms:>9.1f}"
            f"{x.entries:>9.1f}"
        )
    header = (
        f"\n{'table':<28}{'rows':>13}{'total MiB':>11}{'heap MiB':>10}{'index MiB':>10}"
        f"{'toast MiB':>10}{'B/resource':>11}"
    )
    print(header)
    print("-" * (len(header) - 1))
    for t in step.tables:
        if t.total < 256 * 1024:
            continue
        print(
            f"{t.name:<28}{t.rows:>13,}{mib(t.total):>11}{mib(t.heap):>10}{mib(t.indexes):>10}"
            f"{mib(t.toast):>10}{t.total / max(1, step.resources):>11,.0f}"
        )
    small = [t for t in step.tables if t.total < 256 * 1024]
    print(f"({len(small)} tables under 256 KiB: {mib(sum(t.total for t in small))} MiB)")
    audit = step.group_bytes("audit_")
    print(
        f"database {human_bytes(step.database_bytes)}: "
        f"{step.database_bytes / max(1, step.resources):,.0f} B per resource; resources "
        f"{human_bytes(sum(step.group_bytes(n) for n in RESOURCE_TABLES))}, search_* "
        f"{human_bytes(step.group_bytes('search_'))}, audit_* {human_bytes(audit)} for "
        f"{step.audit_entries:,} entries "
        f"({audit / max(1, step.audit_entries):,.0f} B per entry)"
    )


def growth_rows(first: Step, last: Step) -> list[tuple[str, float, float]]:
    """(figure, at the first size, at the last) of everything the growth
    table compares."""
    rows: list[tuple[str, float, float]] = [("resources", first.resources, last.resources)]
    for x in first.latency:
        y = last.latency_of(x.operation)
        if y is not None:
            rows.append((f"{x.operation} p50 ms", x.p50_ms, y.p50_ms))
            rows.append((f"{x.operation} p99 ms", x.p99_ms, y.p99_ms))
    for name in (*RESOURCE_TABLES, "search_*", "audit_*"):
        if name.endswith("*"):
            a, b = first.group_bytes(name[:-1]), last.group_bytes(name[:-1])
        else:
            ta, tb = first.table(name), last.table(name)
            a, b = (ta.total if ta else 0), (tb.total if tb else 0)
        rows.append((f"{name} MiB", a / 2**20, b / 2**20))
    rows.append(("database MiB", first.database_bytes / 2**20, last.database_bytes / 2**20))
    rows.append(
        (
            "database B/resource",
            first.database_bytes / max(1, first.resources),
            last.database_bytes / max(1, last.resources),
        )
    )
    return rows


def print_growth(steps: Sequence[Step]) -> None:
    if len(steps) < 2:
        return
    first, last = steps[0], steps[-1]
    print(f"\nGrowth from {first.resources:,} to {last.resources:,} resources (last / first)")
    header = f"{'figure':<24}{'first':>12}{'last':>12}{'growth':>9}"
    print(header)
    print("-" * len(header))
    for name, a, b in growth_rows(first, last):
        ratio = f"x{b / a:,.2f}" if a else "-"
        print(f"{name:<24}{a:>12,.1f}{b:>12,.1f}{ratio:>9}")


# -- main --------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    least = population.ORGANISATIONS + export.MAX_PER_PERSON
    if not sizes or sizes[0] < least:
        raise argparse.ArgumentTypeError(f"sizes must be at least {least:,}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling",
        description="One PostgreSQL store grown step by step: search, document, read and "
        "create latency and table sizes at each size.",
    )
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(DEFAULT_SIZES),
        help="comma-separated store sizes in resources (default 100000,300000,1000000)",
    )
    parser.add_argument(
        "--database-url",
        help="an existing PostgreSQL database, empty or grown by an earlier run (its people "
        "are kept and the rest written; default: a throwaway cluster)",
    )
    parser.add_argument("--seed", type=int, default=20250630, help="the data's seed")
    parser.add_argument(
        "--sample-from",
        type=int,
        default=0,
        help="draw the people asked about from a store of this size (default: the first "
        "size; to compare with an earlier run that grew the same --database-url)",
    )
    parser.add_argument(
        "--loaders",
        type=int,
        default=os.cpu_count() or 2,
        help="loader processes (default: one per CPU)",
    )
    parser.add_argument(
        "--chunk", type=int, default=25, help="people per unit of work of the load (default 25)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="gateway serve --workers (default 2)"
    )
    parser.add_argument(
        "--requests", type=int, default=300, help="measured requests per operation (default 300)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=120.0,
        help="seconds per operation and size after which it stops, with at least "
        f"{MIN_SAMPLES} samples (default 120)",
    )
    parser.add_argument(
        "--min-samples",
        type=int,
        default=MIN_SAMPLES,
        help=f"requests measured at least, past --budget (default {MIN_SAMPLES})",
    )
    parser.add_argument("--patients", type=int, default=50, help="people asked about (default 50)")
    parser.add_argument(
        "--operations",
        type=lambda text: [s for s in text.split(",") if s],
        default=list(OPERATIONS),
        help=f"comma-separated, of: {', '.join(OPERATIONS)} (default: all)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = [o for o in args.operations if o not in OPERATIONS]
    if unknown:
        raise SystemExit(f"unknown operations: {', '.join(unknown)}")
    if min(args.loaders, args.chunk, args.requests, args.patients, args.min_samples) < 1:
        raise SystemExit(
            "--loaders, --chunk, --requests, --patients and --min-samples must be at least 1"
        )
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {message}", flush=True)

    seed = args.seed
    everyone = people_upto(seed, args.sizes[-1])
    print(
        f"bench.scaling: {os.cpu_count()} CPUs, Python {platform.python_version()}, sizes "
        f"{', '.join(f'{s:,}' for s in args.sizes)}, seed {seed}, generator "
        f"{export.generator_version()}\ngateway at {gateway_revision()}\n"
        f"load average {load_average()}",
        flush=True,
    )
    cluster = None
    url = args.database_url
    if url is None:
        from tests.support.postgres import ClusterUnavailable, start_cluster

        try:
            cluster = start_cluster()
        except (ClusterUnavailable, OSError) as exc:
            raise SystemExit(f"PostgreSQL could not start: {Skipped(str(exc))}") from exc
        url = cluster.create_database("bench_scaling")
    steps: list[Step] = []
    try:
        gateway_migrate(url, log)
        from gateway.store import open_store

        present = written_patients(url)
        if not present:
            store = open_store(url, pool_size=1)
            try:
                export.write_organisations(store, seed)
            finally:
                store.close()
        else:
            log(f"the store holds {len(present):,} people already: growing from there")
        # The people asked about, the same at every size; creates are about
        # the people next to them.
        base = people_upto(seed, args.sample_from or args.sizes[0])
        chosen = sample(seed, base, args.patients)
        writes = sample(seed, base, args.patients, 1) or chosen
        for size in args.sizes:
            people = people_upto(seed, size)
            load_before = load_average()
            missing = [p for p in people if export.patient_id(seed, p.number) not in present]
            log(
                f"growing to {stored(people):,} resources ({len(people):,} people, "
                f"{len(missing):,} to write) with {args.loaders} loader(s); load average "
                f"{load_before}"
            )
            grow_s = grow(url, seed, missing, len(everyone), args, log)
            added = sum(p.size for p in missing)
            present.update(export.patient_id(seed, p.number) for p in missing)
            vacuum_analyze(url)
            log(f"grown in {grow_s:,.0f} s; measuring")
            when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            latency = serve_and_measure(url, chosen, writes, args, log)
            vacuum_analyze(url)
            tables, database_bytes = table_sizes(url)
            step = Step(
                asked=size,
                resources=exact_rows(url, "resource_current"),
                people=len(people),
                grow_s=grow_s,
                grow_res_per_s=added / grow_s if grow_s else 0.0,
                audit_entries=exact_rows(url, "audit_entry"),
                database_bytes=database_bytes,
                load_before=load_before,
                load_after=load_average(),
                when=when,
                latency=latency,
                tables=tables,
            )
            steps.append(step)
            print_step(step)
            if args.json:
                write_json(args.json, steps)
        print_growth(steps)
        if args.json:
            write_json(args.json, steps)
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


def write_json(path: Path, steps: Sequence[Step]) -> None:
    document: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "gateway": gateway_revision(),
        "steps": [asdict(s) for s in steps],
    }
    if len(steps) >= 2:
        document["growth"] = [
            {"figure": name, "first": a, "last": b, "ratio": b / a if a else None}
            for name, a, b in growth_rows(steps[0], steps[-1])
        ]
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    raise SystemExit(main())
