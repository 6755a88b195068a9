"""Population health bulk export (issue 28): ``$export`` of a store of
1,000,000 resources in constant memory; resources written per second per
core, against the same store's ``Patient/[id]/$everything`` throughput.

Run ``python -m bench.export`` (``--help`` for the options);
``--resources 100000`` is a quick run, ``--stores sqlite`` one store.

Store
-----
``--resources`` resources (default 1,000,000): the 104 Organizations of
``bench._population`` (100 GP practices, a council, a community trust, two
hospitals), then people of 100 to 300 resources each (uniformly, seeded): a
Patient registered with one of the practices, an EpisodeOfCare with the
community trust, for ~10% one with the council and for ~1% a privacy
Consent refusing the council, then Conditions, MedicationStatements,
Encounters and vital-sign Observations (``bench._population.records``, cut
to the person's size). About 3% of people have a type 1 opt-out in their
record (an Observation coded SNOMED 827241000000103) and about 5% have
their Conditions and Encounters labelled restricted (``meta.security``
v3-ActCode PSY); some Conditions (depression, anxiety) are labelled PSY by
the write path itself, as the restricted code lists say.

It is written the way ``bench.search_consent`` writes its million: through
the write path's own steps (``write.prepare``: ``meta.source``, labels and
every search and ``_access-*`` index row; ``write.create_in``), many people
per unit of work, in ``--loaders`` processes. SQLite stores are kept in
``--cache`` (default ``var/bench-export``), one folder per size, seed and
version of the generator, and reused by the next run asking for the same
(``gateway migrate`` brings a reused one up to date, reindexing if the index
rules changed); ``--fresh`` builds in a temporary folder instead. PostgreSQL
is a throwaway cluster (``tests.support.postgres``, fsync off), built afresh.

Export
------
An analytics client (an ICB, kind ``analytics``) is registered, and a
system-level export it asks for with purpose POPHLTH (``parse_ask`` with no
parameters: every type but Consent, Provenance, AuditEvent and Subscription)
is accepted (``jobs.accept``) and run in this process by
``ExportWorker.run_once()``: every type scanned page by page, each page
decided by the secondary-use rules, pseudonymised, written as NDJSON, and
the audit entries naming every person staged. Measured: the resources
written (checked against what the generator says the rules must let out:
everyone but the opted-out, nothing restricted, no Consent), wall seconds,
this process's CPU seconds (``time.process_time``) plus, on PostgreSQL, the
database server's (its processes, from /proc), **written per second per
core** (written / CPU seconds), files and bytes, and the **peak RSS growth**
(RSS sampled every 20 ms by a thread, less RSS before the run). The export
runs on the store of ``--resources`` and on one a fifth of its size: the
peak growth of the two shows whether memory grows with the store (SQLite's
page cache, up to 64 MiB a connection, is part of RSS and fills with the
store up to that bound).

$everything
-----------
``gateway serve --workers 1`` on the large store; a GP practice's client
(direct care, TREAT) gets a token at ``/auth/token`` and reads, one request
at a time, ``GET Patient/[id]/$everything?_count=1000`` of every person
registered with ``--practices`` practices (those with most people),
following the ``next`` links. Measured: resources read (entries), wall
seconds, the server's CPU seconds (its processes, from /proc) plus the
database's; resources per second and per core. ``export / $everything``
is the ratio of the two per-core rates.

Caveats: the figures are for a 2-core machine shared with other work (the
load average is printed); ``$everything`` pays HTTP, JSON bundles and an
audit entry per request, the export neither HTTP nor per-request audit;
what the direct-care client reads is its own patients' (restricted data
withheld), the export everyone's but the opted-out.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import multiprocessing
import os
import platform
import pstats
import random
import shutil
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import orjson

from bench import _population as population
from bench._clients import load_limits, register_and_ask_token
from bench._population import Record
from bench.rest_core import Server, free_port, gateway_command, proc_stats, running
from bench.search import Skipped, gateway_revision
from bench.search_consent import LOADER, StoreFailed, gateway_migrate
from consent.model import ACT_CODE, SNOMED, TYPE_1_OPT_OUT, Requester
from gateway.access.facts import facts_of
from gateway.auth.clients import ClientRegistry, new_registration
from gateway.auth.scopes import Permission, Scopes
from gateway.export import jobs, runner
from gateway.export.asking import SYSTEM, parse_ask
from gateway.export.worker import ExportWorker
from gateway.interactions import write
from gateway.store import Store, open_store

DEFAULT_RESOURCES = 1_000_000
SMALL_SHARE = 5  # the small store is a fifth of the large one
MIN_PER_PERSON, MAX_PER_PERSON = 100, 300
OPT_OUT_SHARE = 0.03
RESTRICTED_SHARE = 0.05
# Bump when what a store holds changes (with the population modules' text,
# it names the cache folder).
GENERATOR = 1
ANALYTICS = Requester(
    "QMJ",
    "analytics",
    "POPHLTH",
    client_id="bench-icb",
    client_name="Bench ICB analytics",
    org_name="North Central London ICB",
)
ANALYTICS_SCOPES = "system/*.rs"
GP_SCOPES = "system/*.rs"
_PSY = {"system": ACT_CODE, "code": "PSY", "display": "psychiatry disorder information sensitivity"}
_LABELLED = frozenset({"Condition", "Encounter"})
_NOT_EXPORTED = frozenset({"Consent", "Provenance", "AuditEvent", "Subscription"})


# -- the population --------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """Person ``number``'s size and what sets them apart."""

    number: int
    size: int
    opted_out: bool
    restricted: bool


def shape(seed: int, number: int) -> Shape:
    rng = random.Random(f"{seed}-export-{number}")
    size = rng.randint(MIN_PER_PERSON, MAX_PER_PERSON)
    return Shape(number, size, rng.random() < OPT_OUT_SHARE, rng.random() < RESTRICTED_SHARE)


def people_for(seed: int, resources: int) -> list[Shape]:
    """The people of a store of ``resources`` (Organizations included): the
    last one cut to what is left (at least ``population.MIN_PER_PERSON``)."""
    left = resources - population.ORGANISATIONS
    people: list[Shape] = []
    while left >= population.MIN_PER_PERSON:
        person = shape(seed, len(people))
        if person.size > left:
            person = Shape(person.number, left, person.opted_out, person.restricted)
        people.append(person)
        left -= person.size
    return people


def patient_id(seed: int, number: int) -> str:
    return population.patient_id(seed, number, MAX_PER_PERSON)


def person_records(seed: int, person: Shape, nhs: str) -> list[Record]:
    """The person's resources, the Patient first: ``bench._population``'s
    person of ``MAX_PER_PERSON`` (ids spaced as for it), cut to their size,
    with an opt-out and restricted labels as their shape says."""
    made = population.records(seed, person.number, nhs, MAX_PER_PERSON).records[: person.size]
    subject = {"reference": f"Patient/{made[0].res_id}"}
    out: list[Record] = []
    for record in made:
        resource = record.resource
        if person.restricted and record.res_type in _LABELLED:
            meta = dict(resource.get("meta") or {})
            meta["security"] = [*(meta.get("security") or []), _PSY]
            resource = {**resource, "meta": meta}
        out.append(Record(record.res_type, record.res_id, resource))
    if person.opted_out:
        last = out[-1]
        opt_out = {
            "resourceType": "Observation",
            "status": "final",
            "code": {
                "coding": [
                    {
                        "system": SNOMED,
                        "code": TYPE_1_OPT_OUT[1],
                        "display": "Dissent from secondary use of general practitioner "
                        "patient identifiable data",
                    }
                ]
            },
            "subject": subject,
            "effectiveDateTime": "2023-03-01",
        }
        out[-1] = Record("Observation", last.res_id, opt_out)
    return out


def exported(prepared: write.Prepared, opted_out: bool) -> bool:
    """Whether the secondary-use rules let the prepared resource out."""
    if prepared.res_type in _NOT_EXPORTED:
        return False
    facts = facts_of(prepared.content)
    if facts.restricted or facts.legally_restricted:
        return False
    return prepared.res_type == "Organization" or not opted_out


def write_people(store: Store, seed: int, people: Sequence[Shape], numbers: Sequence[str]) -> int:
    """Write ``people`` in one unit of work as a source's load writes them
    (``bench.search_consent.write_records``'s steps); how many of their
    resources an export must write."""
    source = LOADER.author.source
    prepared: list[tuple[write.Prepared, bool]] = []
    for person in people:
        for r in person_records(seed, person, numbers[person.number]):
            prepared.append(
                (write.prepare(r.res_type, r.res_id, r.resource, source), person.opted_out)
            )
    with store.unit_of_work() as uow:
        access = LOADER.access(uow)
        for item, _ in prepared:
            write.create_in(uow, item, access=access, fresh_id=True)
    return sum(exported(item, opted) for item, opted in prepared)


def write_organisations(store: Store, seed: int) -> int:
    source = LOADER.author.source
    prepared = [
        write.prepare(r.res_type, r.res_id, r.resource, source)
        for r in population.organisations(seed)
    ]
    with store.unit_of_work() as uow:
        access = LOADER.access(uow)
        for item in prepared:
            write.create_in(uow, item, access=access, fresh_id=True)
    return sum(exported(item, False) for item in prepared)


_LOADER_STATE: list[tuple[Store, int, list[str]]] = []


def _start_loader(url: str, seed: int, people: int) -> None:
    _LOADER_STATE.append(
        (open_store(url, pool_size=1), seed, population.nhs_numbers_for(seed, people))
    )


def _load_chunk(people: list[Shape]) -> tuple[int, int]:
    """(resources written, of which exportable), in a loader process."""
    store, seed, numbers = _LOADER_STATE[0]
    return sum(p.size for p in people), write_people(store, seed, people, numbers)


@dataclass
class Built:
    """A store as loaded, as its folder's manifest records it."""

    resources: int
    people: int
    exportable: int
    seed: int
    generator: str
    load_s: float
    gateway: str  # the code that loaded it


def generator_version() -> str:
    """The population's version: ``GENERATOR`` and the text of the modules
    that make it."""
    digest = hashlib.sha256(str(GENERATOR).encode())
    here = Path(__file__).resolve().parent
    for name in ("_population.py", "_synthetic.py"):
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:12]


def build(url: str, resources: int, args: argparse.Namespace, log: Callable[[str], None]) -> Built:
    """Load a store of ``resources`` into the (migrated, empty) store at ``url``."""
    started = time.perf_counter()
    people = people_for(args.seed, resources)
    store = open_store(url, pool_size=1)
    try:
        exportable = write_organisations(store, args.seed)
    finally:
        store.close()
    chunks = [people[i : i + args.chunk] for i in range(0, len(people), args.chunk)]
    written = population.ORGANISATIONS
    next_report = 30.0
    if args.loaders <= 1:
        _LOADER_STATE.clear()
        _start_loader(url, args.seed, len(people))
        try:
            done: Iterator[tuple[int, int]] = map(_load_chunk, chunks)
            for count, out in done:
                written += count
                exportable += out
        finally:
            _LOADER_STATE.pop()[0].close()
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(
            args.loaders, initializer=_start_loader, initargs=(url, args.seed, len(people))
        ) as pool:
            for count, out in pool.imap_unordered(_load_chunk, chunks):
                written += count
                exportable += out
                elapsed = time.perf_counter() - started
                if elapsed >= next_report:
                    next_report = elapsed + 30
                    log(
                        f"loaded {written:,} of {resources:,} resources in {elapsed:,.0f} s "
                        f"({written / elapsed:,.0f} res/s; load average {_load_average()})"
                    )
    return Built(
        resources=written,
        people=len(people),
        exportable=exportable,
        seed=args.seed,
        generator=generator_version(),
        load_s=time.perf_counter() - started,
        gateway=gateway_revision(),
    )


# -- stores ----------------------------------------------------------------------------


@dataclass
class Database:
    name: str
    url: str
    postmaster: int | None  # PostgreSQL's, to count its CPU apart

    def cpu_seconds(self) -> float:
        """CPU time used so far by the database server (none for SQLite,
        which runs in the process that reads it)."""
        if self.postmaster is None:
            return 0.0
        ticks = sum(
            int(f[11]) + int(f[12])
            for pid, f in proc_stats()
            if self.postmaster in (pid, int(f[1]))
        )
        return ticks / os.sysconf("SC_CLK_TCK")


def _postmaster(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    stat = Path(f"/proc/{row[0]}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


@contextmanager
def store_of(
    name: str, resources: int, args: argparse.Namespace, log: Callable[[str], None]
) -> Iterator[tuple[Database, Built, bool]]:
    """A store of ``resources``: (its database, what it holds, whether it
    was built now). SQLite's is reused from the cache when there is one."""
    if name == "sqlite":
        folder = args.cache / f"sqlite-{resources}-s{args.seed}-g{generator_version()}"
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / 'export.db'}"
        manifest = folder / "manifest.json"
        database = Database(name, url, None)
        built: Built | None = None
        if manifest.exists() and not args.rebuild:
            try:
                built = Built(**orjson.loads(manifest.read_bytes()))
            except (ValueError, TypeError):
                built = None
        if built is not None:
            log(f"sqlite: reusing {folder} ({built.resources:,} resources, by {built.gateway})")
            gateway_migrate(url, lambda m: log(f"sqlite: {m}"))
            yield database, built, False
            return
        for path in folder.iterdir():
            path.unlink()
        gateway_migrate(url, lambda m: log(f"sqlite: {m}"))
        log(f"sqlite: building {resources:,} resources with {args.loaders} loader(s)")
        built = build(url, resources, args, log)
        manifest.write_bytes(orjson.dumps(asdict(built)))
        yield database, built, True
        return
    from tests.support.postgres import ClusterUnavailable, start_cluster

    try:
        cluster = start_cluster()
    except (ClusterUnavailable, OSError) as exc:
        raise Skipped(f"PostgreSQL could not start: {exc}") from exc
    try:
        url = cluster.create_database(f"bench_export_{resources}")
        database = Database(name, url, _postmaster(url))
        gateway_migrate(url, lambda m: log(f"postgres: {m}"))
        log(f"postgres: building {resources:,} resources with {args.loaders} loader(s)")
        built = build(url, resources, args, log)
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        yield database, built, True
    finally:
        cluster.stop()


# -- measuring -------------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssPeak:
    """The process's peak RSS while it runs, sampled by a thread."""

    def __init__(self, every_s: float = 0.02) -> None:
        self._every = every_s
        self._stop = threading.Event()
        self.before = _rss()
        self.peak = self.before
        self._thread = threading.Thread(target=self._sample, name="rss-peak", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> RssPeak:
        self.before = self.peak = _rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def growth(self) -> int:
        return self.peak - self.before


@dataclass
class ExportFigures:
    store: str
    resources: int  # in the store
    people: int
    expected: int  # what the rules must let out
    written: int
    wall_s: float
    cpu_s: float  # this process
    db_cpu_s: float
    files: int
    bytes: int
    rss_before: int
    rss_growth: int
    load_average: str
    heap_peak: int = -1  # Python's allocations at their peak (tracemalloc), if traced

    @property
    def per_s(self) -> float:
        return self.written / self.wall_s if self.wall_s else 0.0

    @property
    def per_core(self) -> float:
        cpu = self.cpu_s + self.db_cpu_s
        return self.written / cpu if cpu else 0.0


def register_analytics(store: Store) -> Requester:
    from gateway.auth.keys import generate_private_key, to_jwk

    ClientRegistry(store).save(
        new_registration(
            ANALYTICS.client_id,
            org_ods=ANALYTICS.org_ods,
            org_name=ANALYTICS.org_name,
            kind=ANALYTICS.kind,
            scopes=ANALYTICS_SCOPES,
            keys=[to_jwk(generate_private_key().public_key())],
        )
    )
    return ANALYTICS


def forget_unfinished(store: Store) -> int:
    """Cancel and forget the exports an interrupted run left waiting or
    running in a reused store (the worker would take the oldest first)."""
    rows = store.select(
        "SELECT id FROM export_job WHERE status IN (?, ?)", [jobs.ACCEPTED, jobs.RUNNING]
    )
    for (job_id,) in rows:
        job = jobs.find(store, str(job_id))
        if job is not None:
            jobs.cancel(store, job)
            jobs.forget(store, job)
    return len(rows)


def measure_export(
    database: Database, built: Built, args: argparse.Namespace, log: Callable[[str], None]
) -> ExportFigures:
    store = open_store(database.url)
    directory = Path(tempfile.mkdtemp(prefix="bench-export-files-", dir=args.files_dir))
    try:
        if left := forget_unfinished(store):
            log(f"{database.name}: {left} export(s) an earlier run left unfinished forgotten")
        requester = register_analytics(store)
        searchable = Scopes.parse(ANALYTICS_SCOPES).types_allowing(Permission.SEARCH)
        asked = [("_type", args.types)] if args.types else []
        ask = parse_ask(SYSTEM, asked, searchable=searchable)
        job = jobs.accept(store, requester, ask, "http://gateway.bench/fhir/$export")
        worker = ExportWorker(store, directory, expiry_s=3600)
        profile = cProfile.Profile() if args.profile else None
        db_cpu = database.cpu_seconds()
        if args.tracemalloc:
            tracemalloc.start()
        with RssPeak() as memory:
            cpu = time.process_time()
            wall = time.perf_counter()
            if profile is not None:
                profile.enable()
            ran = worker.run_once()
            if profile is not None:
                profile.disable()
            wall = time.perf_counter() - wall
            cpu = time.process_time() - cpu
        heap_peak = -1
        if args.tracemalloc:
            heap_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        db_cpu = database.cpu_seconds() - db_cpu
        finished = jobs.find(store, job.id)
        if ran is None or ran.id != job.id or finished is None:
            raise StoreFailed(f"the export {job.id} was not run")
        if finished.status != jobs.COMPLETED:
            raise StoreFailed(f"the export ended {finished.status}: {finished.error}")
        folder = runner.folder_of(directory, job.id)
        sizes = [p.stat().st_size for p in folder.iterdir()]
        figures = ExportFigures(
            store=database.name,
            resources=built.resources,
            people=built.people,
            expected=-1 if args.types else built.exportable,
            written=sum(f.count for f in finished.output),
            wall_s=wall,
            cpu_s=cpu,
            db_cpu_s=db_cpu,
            files=len(sizes),
            bytes=sum(sizes),
            rss_before=memory.before,
            rss_growth=memory.growth,
            load_average=_load_average(),
            heap_peak=heap_peak,
        )
        if profile is not None:
            text = io.StringIO()
            pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(args.profile)
            print(
                f"\ncProfile of the export, {built.resources:,} resources, {database.name}, "
                f"by own time:\n{text.getvalue()}",
                flush=True,
            )
        runner.remove_files(directory, job.id)
        jobs.forget(store, finished)  # its people, not kept in a reused store
        return figures
    finally:
        store.close()
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class EverythingFigures:
    store: str
    resources: int  # in the store
    practices: list[str]
    people: int
    read: int  # entries
    requests: int
    wall_s: float
    server_cpu_s: float
    db_cpu_s: float
    load_average: str
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.read / self.wall_s if self.wall_s else 0.0

    @property
    def per_core(self) -> float:
        cpu = self.server_cpu_s + self.db_cpu_s
        return self.read / cpu if cpu else 0.0


def busiest_practices(seed: int, people: Sequence[Shape], count: int) -> list[int]:
    """The ``count`` practices with most people registered (then by number)."""
    tally = Counter(population.plan_person(seed, p.number).practice for p in people)
    return [n for n, _ in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))[:count]]


def gp_token(base: str, url: str, ods: str) -> str:
    """Register a client for GP practice ``ods`` with a fresh key and get a
    token at the running gateway's token endpoint (purpose TREAT)."""
    answer = register_and_ask_token(
        base,
        url,
        f"bench-gp-{ods.lower()}",
        ods,
        f"Practice {ods}",
        "gp-practice",
        GP_SCOPES,
        load_limits(1),  # one request at a time, as fast as answered
    )
    if answer.status_code != 200:
        raise StoreFailed(f"token request: {answer.status_code} {answer.text[:300]}")
    return str(answer.json()["access_token"])


def read_everything(client: httpx.Client, patient: str, statuses: Counter[int]) -> tuple[int, int]:
    """(entries, requests) of one person's ``$everything``, every page."""
    url: str | None = f"/fhir/Patient/{patient}/$everything?_count=1000"
    entries = requests = 0
    while url is not None:
        answer = client.get(url)
        requests += 1
        statuses[answer.status_code] += 1
        if answer.status_code != 200:
            raise StoreFailed(f"GET {url}: {answer.status_code} {answer.text[:300]}")
        bundle = orjson.loads(answer.content)
        entries += len(bundle.get("entry") or [])
        url = next(
            (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
        )
    return entries, requests


def measure_everything(
    database: Database, built: Built, args: argparse.Namespace, log: Callable[[str], None]
) -> EverythingFigures:
    people = people_for(args.seed, built.resources)
    chosen = busiest_practices(args.seed, people, args.practices)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-export-serve-") as scratch:
        env = {
            **os.environ,
            "GATEWAY_NOTIFY": "false",
            "GATEWAY_EXPORT_DIR": str(Path(scratch) / "exports"),
            "GATEWAY_LOG_LEVEL": "WARNING",
        }
        command = gateway_command(port, 1, database.url)
        server: Server
        with running("gateway", command, Path(scratch) / "server.log", env) as server:
            statuses: Counter[int] = Counter()
            read = requests = 0
            patients = 0
            wall = cpu = db_cpu = 0.0
            for number in chosen:
                ods = population.practice_ods(number)
                token = gp_token(server.base, database.url, ods)
                mine = [
                    patient_id(args.seed, p.number)
                    for p in people
                    if population.plan_person(args.seed, p.number).practice == number
                ]
                headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
                with httpx.Client(base_url=server.base, headers=headers, timeout=300) as client:
                    read_everything(client, mine[0], Counter())  # warm the worker
                    started_cpu, started_db = server.cpu_seconds(), database.cpu_seconds()
                    started = time.perf_counter()
                    for patient in mine:
                        entries, asked = read_everything(client, patient, statuses)
                        read += entries
                        requests += asked
                    wall += time.perf_counter() - started
                    cpu += server.cpu_seconds() - started_cpu
                    db_cpu += database.cpu_seconds() - started_db
                patients += len(mine)
                log(
                    f"{database.name}: $everything of {len(mine)} people of {ods}: {read:,} "
                    f"resources so far"
                )
    return EverythingFigures(
        store=database.name,
        resources=built.resources,
        practices=[population.practice_ods(n) for n in chosen],
        people=patients,
        read=read,
        requests=requests,
        wall_s=wall,
        server_cpu_s=cpu,
        db_cpu_s=db_cpu,
        load_average=_load_average(),
        statuses=dict(statuses),
    )


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- report ----------------------------------------------------------------------------


def _mib(value: int) -> str:
    return f"{value / 2**20:,.1f}"


def report(
    exports: list[ExportFigures], everything: list[EverythingFigures], skipped: dict[str, str]
) -> None:
    print("\nBulk export ($export, system level, analytics POPHLTH; in process)")
    header = (
        f"{'store':<9}{'resources':>11}{'people':>8}{'written':>11}{'expected':>11}"
        f"{'wall s':>9}{'CPU s':>8}{'db CPU s':>9}{'res/s':>9}{'res/s/core':>11}"
        f"{'files':>7}{'MiB':>9}{'RSS MiB':>9}{'peak MiB':>9}{'peak +MiB':>10}  load average"
    )
    print(header)
    print("-" * len(header))
    for e in exports:
        check = "" if e.written == e.expected or e.expected < 0 else "  MISMATCH"
        expected = f"{e.expected:,}" if e.expected >= 0 else "-"
        print(
            f"{e.store:<9}{e.resources:>11,}{e.people:>8,}{e.written:>11,}{expected:>11}"
            f"{e.wall_s:>9,.1f}{e.cpu_s:>8,.1f}{e.db_cpu_s:>9,.1f}{e.per_s:>9,.0f}"
            f"{e.per_core:>11,.0f}{e.files:>7}{_mib(e.bytes):>9}{_mib(e.rss_before):>9}"
            f"{_mib(e.rss_before + e.rss_growth):>9}"
            f"{_mib(e.rss_growth):>10}  {e.load_average}{check}"
        )
    print("\n$everything (HTTP, gateway serve --workers 1; a GP practice, TREAT; _count=1000)")
    header = (
        f"{'store':<9}{'resources':>11}{'practices':>20}{'people':>8}{'read':>9}{'requests':>9}"
        f"{'wall s':>9}{'srv CPU s':>10}{'db CPU s':>9}{'res/s':>9}{'res/s/core':>11}"
        "  load average"
    )
    print(header)
    print("-" * len(header))
    for v in everything:
        print(
            f"{v.store:<9}{v.resources:>11,}{','.join(v.practices):>20}{v.people:>8,}"
            f"{v.read:>9,}{v.requests:>9,}{v.wall_s:>9,.1f}{v.server_cpu_s:>10,.1f}"
            f"{v.db_cpu_s:>9,.1f}{v.per_s:>9,.0f}{v.per_core:>11,.0f}  {v.load_average}"
        )
    print("\nexport / $everything (resources per second per core, on the same store)")
    for v in everything:
        same = [e for e in exports if e.store == v.store and e.resources == v.resources]
        if same and v.per_core:
            e = same[0]
            print(
                f"  {v.store:<9}{e.per_core:,.0f} / {v.per_core:,.0f} = "
                f"x{e.per_core / v.per_core:,.2f}"
            )
    print("\nMemory (peak RSS during the export, and its growth over RSS before it)")
    for name in dict.fromkeys(e.store for e in exports):
        mine = sorted((e for e in exports if e.store == name), key=lambda e: e.resources)
        print(
            f"  {name:<9}"
            + "; ".join(
                f"{e.resources:,} resources: {_mib(e.rss_before + e.rss_growth)} MiB "
                f"(+{_mib(e.rss_growth)})"
                + (f" (Python heap peak {_mib(e.heap_peak)} MiB)" if e.heap_peak >= 0 else "")
                for e in mine
            )
        )
    for name, reason in skipped.items():
        print(f"{name}: {reason}")


# -- main ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.export",
        description="Bulk export of a large store: resources written per second per core, "
        "memory by store size, against $everything on the same store.",
    )
    parser.add_argument(
        "--resources",
        type=int,
        default=DEFAULT_RESOURCES,
        help=f"resources in the large store (default {DEFAULT_RESOURCES:,}); the small one "
        f"holds a {SMALL_SHARE}th of it",
    )
    parser.add_argument(
        "--no-small", dest="small", action="store_false", help="export the large store only"
    )
    parser.add_argument(
        "--stores", default="sqlite,postgres", help="comma-separated: sqlite, postgres"
    )
    parser.add_argument("--seed", type=int, default=20250630, help="the data's seed")
    parser.add_argument(
        "--loaders",
        type=int,
        default=os.cpu_count() or 2,
        help="loader processes (default: one per CPU; 1: in this process)",
    )
    parser.add_argument(
        "--chunk", type=int, default=25, help="people per unit of work of the load (default 25)"
    )
    parser.add_argument(
        "--practices",
        type=int,
        default=2,
        help="GP practices whose people $everything reads (default 2)",
    )
    parser.add_argument(
        "--no-everything", dest="everything", action="store_false", help="measure the export only"
    )
    parser.add_argument(
        "--no-export", dest="export", action="store_false", help="measure $everything only"
    )
    parser.add_argument(
        "--types",
        default="",
        help="export these types only (_type, comma-separated; default: every type); the "
        "written figure is then not checked",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("var/bench-export"),
        help="where SQLite stores are kept for the next run (default var/bench-export)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="build the SQLite stores in a temporary folder, not the cache",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="build the cached SQLite stores afresh"
    )
    parser.add_argument(
        "--files-dir",
        type=Path,
        default=None,
        help="where the export's files are written (default: a temporary folder)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="profile the export (cProfile) and print its top N functions",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also trace Python's allocations during the export (their peak; slows it down)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    for name in stores:
        if name not in ("sqlite", "postgres"):
            raise SystemExit(f"unknown store {name!r}")
    if args.resources < population.ORGANISATIONS + population.MIN_PER_PERSON:
        raise SystemExit(
            f"--resources must be at least {population.ORGANISATIONS + population.MIN_PER_PERSON}"
        )
    if args.loaders < 1 or args.chunk < 1 or args.practices < 1:
        raise SystemExit("--loaders, --chunk and --practices must be at least 1")
    scratch = Path(tempfile.mkdtemp(prefix="bench-export-")) if args.fresh else None
    args.cache = (scratch or args.cache).resolve()
    sizes = [args.resources // SMALL_SHARE] if args.small else []
    sizes = [s for s in sizes if s >= population.ORGANISATIONS + population.MIN_PER_PERSON]
    sizes.append(args.resources)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {message}", flush=True)

    print(
        f"bench.export: {os.cpu_count()} CPUs, Python {platform.python_version()}, stores of "
        f"{' and '.join(f'{s:,}' for s in sizes)} resources, seed {args.seed}, "
        f"generator {generator_version()}\ngateway at {gateway_revision()}",
        flush=True,
    )
    exports: list[ExportFigures] = []
    everything: list[EverythingFigures] = []
    skipped: dict[str, str] = {}
    try:
        for name in stores:
            try:
                for size in sizes:
                    with store_of(name, size, args, log) as (database, built, now):
                        if now:
                            log(
                                f"{name}: built {built.resources:,} resources for "
                                f"{built.people:,} people in {built.load_s:,.0f} s "
                                f"({built.resources / built.load_s:,.0f} res/s)"
                            )
                        if args.export:
                            figures = measure_export(database, built, args, log)
                            exports.append(figures)
                            log(
                                f"{name}: exported {figures.written:,} of {built.resources:,} "
                                f"in {figures.wall_s:,.1f} s: {figures.per_core:,.0f} "
                                f"res/s/core, peak RSS +{_mib(figures.rss_growth)} MiB"
                            )
                        if args.everything and size == args.resources:
                            everything.append(measure_everything(database, built, args, log))
            except (Skipped, StoreFailed) as exc:
                log(f"{name}: SKIPPED: {exc}")
                skipped[name] = f"SKIPPED: {exc}"
        report(exports, everything, skipped)
        if args.json:
            args.json.write_bytes(
                orjson.dumps(
                    {
                        "cpus": os.cpu_count(),
                        "gateway": gateway_revision(),
                        "export": [
                            {**asdict(e), "per_s": e.per_s, "per_core": e.per_core} for e in exports
                        ],
                        "everything": [
                            {**asdict(v), "per_s": v.per_s, "per_core": v.per_core}
                            for v in everything
                        ],
                        "skipped": skipped,
                    },
                    option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                )
            )
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
