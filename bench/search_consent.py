"""Consent-filtered search latency on a large store, on SQLite and PostgreSQL.

Run ``python -m bench.search_consent`` (``--help`` for the options). The
default store holds 1,000,104 resources for 20,000 people (50 each, and the
104 Organizations caring for them); ``--people 2000`` (100,104 resources) is
a quick run. ``--reuse DIR`` keeps the stores in ``DIR`` and reuses them on
the next run with the same ``--people``, ``--per-person`` and ``--seed``, so
repeated measurements do not load again (``--reload`` loads them afresh);
``--keep`` keeps a fresh run's work directory (its path is printed) for a
later ``--reuse``. ``--stores``, ``--searches`` and ``--requesters`` pick
what to measure.

Targets (the consent-filtered search issue): for each requester (one that
sees 1%, 10% and 100% of the people, and one that sees no one: a search that
matches nothing visible), ``Observation?_count=20&_sort=-date`` and
``Patient?_count=20&_sort=name`` answer in p50 < 20 ms and p99 < 100 ms; no
search the benchmark runs takes 1 s or more; and for the 100% requester the
enforced search takes at most 1.3 times the unenforced one (p50 against
p50).

Data (``bench._population``, seeded: every run has the same resources and
ids): 104 Organizations (100 GP practices, a council, a community trust, two
hospitals), then per person a Patient registered with one of the practices,
an active EpisodeOfCare with the community trust, for ~10% an active
EpisodeOfCare with the council, for ~1% an active privacy Consent refusing
the council, and Conditions, MedicationStatements, Encounters (finished
long ago) and vital-sign Observations (about 40 per person, over ten years)
for the rest. Everything's ``meta.source`` is ``urn:ods:BENCH``: the
requesters see only what their care relationships open to them.

Requesters (``consent.model.Requester``, purpose TREAT):

- ``1%``: GP practice F84007, by ``Patient.generalPractitioner`` (half its
  patients name it by ODS identifier, half by reference to its
  Organization);
- ``10%``: council E09000007, by its active EpisodesOfCare, less the people
  whose Consent refuses it;
- ``100%``: community trust RYX, by an active EpisodeOfCare with everyone;
- ``none``: hospital RRV, related to no one.

Load: loading 1,000,000 resources through the transaction write path takes
45-60 minutes per store (``bench.search``), so the benchmark writes through
the write path's own steps instead, in bulk: each resource is prepared by
``gateway.interactions.write.prepare`` (its ``meta.source``, the
restricted-data labels its codes call for, and every index row the write
path makes for it, whatever function the write path uses for them) and
stored by ``write.create_in`` (which gives ``meta.versionId`` and
``meta.lastUpdated`` and appends the version and its index rows to the
store's unit of work), as a source's load does, but many people per unit of
work, in ``--loaders`` processes (each generates, prepares and writes its
own people: a SQLite writer holds the write lock while the others prepare).
Left out: validation (the generator's resources are valid FHIR R4: see
``tests/unit/test_bench_population.py``), the Provenance of each write and
the audit entry of each unit of work, none of which a search reads. Before
loading, and before measuring a reused store, ``gateway migrate`` brings the
store up to date as the server would at start (schema, and a reindex if the
index rules changed since the store was built). After a load, PostgreSQL
gets ``VACUUM ANALYZE`` (what autovacuum does in time); SQLite has the
sampled ``ANALYZE`` the store runs itself as it is written.

Stores: SQLite, a file in the work directory (WAL, ``synchronous=FULL``, as
the gateway configures it); PostgreSQL 15, a throwaway cluster
(``tests.support.postgres``, fsync off), or with ``--keep``/``--reuse`` a
cluster of the same settings kept in the work directory.

Measurement, in-process, on the path the HTTP API takes minus HTTP: for each
run, ``parse_search``, then ``Repository.search`` (``gateway.repository``:
a repository bound to the requester, with a token's scopes
``system/*.read``, as ``gateway.http.deps`` builds one per request; it
checks the scopes, decides every candidate through ``AccessControl`` and
runs the search in the thread pool), then ``fhirjson.dumps`` of the Bundle.
The unenforced baseline runs ``gateway.interactions.search.search`` with
``visible=None`` through the same thread-pool hop, and ``searchset_bundle``.
Left out: HTTP, the audit entry the HTTP layer writes after the answer, and
the not-found floor an empty answer waits out (``gateway.http.middleware``).
Every search runs ``--warmup`` times unmeasured (fewer once a quarter of
the budget is spent), then up to ``--repeat`` times, each time with a fresh
repository (as each request has); sampling stops once ``--budget`` seconds
are spent (after at least five runs), and any one run is abandoned after
``--budget`` seconds (the store the search reads through raises on its next
statement once the time is up: reported as ``> budget``, with the time it
had run, and no more runs of that search). The worst case counts every run,
the warm-up ones too.
Each answer is checked against what was generated: the page of Observations
must be the 20 latest the requester may see, every Patient one it may see,
and any total the count of what it may see.

Caveats: single-client latencies; the same search repeated (caches warm, as
for a busy server's common searches); the figures depend on how busy the
machine is (the load average is printed with each figure).
"""

from __future__ import annotations

import argparse
import heapq
import multiprocessing
import os
import platform
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import orjson

from bench import _population as population
from bench._population import AUDIENCES, Audience, PersonRecords, Record
from bench.search import Skipped, gateway_revision, percentile
from gateway import fhirjson
from gateway.audit.events import Disclosures
from gateway.auth.enforce import includable
from gateway.auth.scopes import Scopes
from gateway.auth.tokens import AccessGrant
from gateway.interactions import write
from gateway.interactions.search import SearchResult, search, searchset_bundle
from gateway.loading.source import ForSource, author_for
from gateway.repository import Repository, RequestLine
from gateway.search.query import SearchQuery, parse_search
from gateway.store import (
    AsyncReader,
    HistoryPage,
    HistoryQuery,
    Listening,
    Store,
    StoredVersion,
    UnitOfWork,
    open_store,
)

BASE_URL = "http://gateway.bench/fhir"
SCOPES = "system/*.read"
P50_TARGET_MS = 20.0
P99_TARGET_MS = 100.0
WORST_TARGET_S = 1.0
RATIO_TARGET = 1.3
UNENFORCED = "unenforced"
# The writer of every record: a source's load, as ``gateway load`` writes it.
LOADER = ForSource(author_for("bench", population.SOURCE_ODS))
_MIN_SAMPLES = 5
_TOP = 20  # the page size of every search


@dataclass(frozen=True)
class Search:
    key: str
    res_type: str
    params: tuple[tuple[str, str], ...]

    @property
    def url(self) -> str:
        return f"{self.res_type}?" + "&".join(f"{k}={v}" for k, v in self.params)


SEARCHES: tuple[Search, ...] = (
    Search("obs", "Observation", (("_count", "20"), ("_sort", "-date"))),
    Search("obs-nt", "Observation", (("_count", "20"), ("_sort", "-date"), ("_total", "none"))),
    Search("pat", "Patient", (("_count", "20"), ("_sort", "name"))),
    Search("pat-nt", "Patient", (("_count", "20"), ("_sort", "name"), ("_total", "none"))),
)


# -- what the load holds ---------------------------------------------------------------


@dataclass
class Expected:
    """What each requester may see of what was loaded (``all``: everything,
    for the unenforced baseline): how many people and Observations, and the
    ids of the latest ``_TOP`` Observations, latest first."""

    people: dict[str, int] = field(default_factory=dict)
    observations: dict[str, int] = field(default_factory=dict)
    latest: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def add(self, other: Expected) -> None:
        for key, count in other.people.items():
            self.people[key] = self.people.get(key, 0) + count
        for key, count in other.observations.items():
            self.observations[key] = self.observations.get(key, 0) + count
        for key, latest in other.latest.items():
            self.latest[key] = _latest([*self.latest.get(key, []), *latest])


def _latest(observations: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The first ``_TOP`` in the order ``_sort=-date`` gives: latest first,
    then by id."""
    by_id = sorted(observations, key=lambda o: o[1])
    return heapq.nlargest(_TOP, by_id, key=lambda o: o[0])


def _audience_keys() -> list[str]:
    return [a.key for a in AUDIENCES]


def expected_of(people: Sequence[PersonRecords]) -> Expected:
    expected = Expected()
    for key in [*_audience_keys(), "all"]:
        mine = [p for p in people if key == "all" or population.sees(key, p.plan)]
        expected.people[key] = len(mine)
        expected.observations[key] = sum(len(p.observations) for p in mine)
        expected.latest[key] = _latest(o for p in mine for o in p.observations)
    return expected


@dataclass
class Manifest:
    """A store loaded to the end, as recorded in its directory: reused by a
    later run asking for the same load."""

    store: str
    people: int
    per_person: int
    seed: int
    resources: int
    load_s: float
    loaders: int
    gateway: str  # the code that loaded it
    expected: Expected

    def matches(self, args: argparse.Namespace) -> bool:
        return (self.people, self.per_person, self.seed) == (
            args.people,
            args.per_person,
            args.seed,
        )

    def save(self, path: Path) -> None:
        path.write_bytes(orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2))

    @classmethod
    def load(cls, path: Path) -> Manifest | None:
        try:
            raw = orjson.loads(path.read_bytes())
            raw["expected"] = Expected(
                people=raw["expected"]["people"],
                observations=raw["expected"]["observations"],
                latest={
                    k: [(str(d), str(i)) for d, i in v]
                    for k, v in raw["expected"]["latest"].items()
                },
            )
            return cls(**raw)
        except (OSError, ValueError, KeyError, TypeError):
            return None


# -- the bulk loader -------------------------------------------------------------------


def write_records(store: Store, records: Sequence[Record]) -> None:
    """Write ``records`` as new resources in one unit of work, through the
    write path's own steps (see the module's docstring)."""
    source = LOADER.author.source
    prepared = [write.prepare(r.res_type, r.res_id, r.resource, source) for r in records]
    with store.unit_of_work() as uow:
        access = LOADER.access(uow)
        for item in prepared:
            write.create_in(uow, item, access=access, fresh_id=True)


@dataclass
class ChunkDone:
    people: int
    resources: int
    expected: Expected
    cpu_s: float  # generation, preparation and writing, in the loader process


@dataclass
class _LoaderState:
    store: Store
    seed: int
    per_person: int
    numbers: list[str]


_LOADER_STATE: list[_LoaderState] = []


def _start_loader(url: str, seed: int, per_person: int, people: int) -> None:
    _LOADER_STATE.append(
        _LoaderState(
            open_store(url, pool_size=1),
            seed,
            per_person,
            population.nhs_numbers_for(seed, people),
        )
    )


def _load_chunk(span: tuple[int, int]) -> ChunkDone:
    """Load people ``span[0]`` to ``span[1] - 1`` (in a loader process)."""
    state = _LOADER_STATE[0]
    started = time.process_time()
    people = [
        population.records(state.seed, n, state.numbers[n], state.per_person) for n in range(*span)
    ]
    write_records(state.store, [r for p in people for r in p.records])
    return ChunkDone(
        people=len(people),
        resources=sum(len(p.records) for p in people),
        expected=expected_of(people),
        cpu_s=time.process_time() - started,
    )


def bulk_load(
    url: str, args: argparse.Namespace, log: Callable[[str], None]
) -> tuple[Expected, int, float]:
    """Load the population into the (migrated, empty) store at ``url``:
    what it holds, how many resources, and the seconds it took."""
    started = time.perf_counter()
    store = open_store(url, pool_size=1)
    try:
        write_records(store, population.organisations(args.seed))
    finally:
        store.close()
    resources = population.ORGANISATIONS
    expected = Expected()
    spans = [
        (first, min(first + args.chunk, args.people)) for first in range(0, args.people, args.chunk)
    ]
    context = multiprocessing.get_context("spawn")
    loaded_people = 0
    cpu = 0.0
    next_report = 0.0
    with context.Pool(
        args.loaders,
        initializer=_start_loader,
        initargs=(url, args.seed, args.per_person, args.people),
    ) as pool:
        for done in pool.imap_unordered(_load_chunk, spans):
            expected.add(done.expected)
            loaded_people += done.people
            resources += done.resources
            cpu += done.cpu_s
            elapsed = time.perf_counter() - started
            if elapsed >= next_report or loaded_people == args.people:
                next_report = elapsed + 30
                log(
                    f"loaded {resources:,} resources ({loaded_people:,} people) in "
                    f"{elapsed:,.0f} s: {resources / elapsed:,.0f} res/s; loader CPU "
                    f"{cpu / max(1, resources) * 1e6:,.0f} us/resource; load average "
                    + _load_average()
                )
    return expected, resources, time.perf_counter() - started


def gateway_migrate(url: str, log: Callable[[str], None]) -> None:
    """``gateway migrate`` on the store, as an operator runs it (and as the
    server does at start): schema migrations, and a reindex if the index
    rules changed since the store was written."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "GATEWAY_DATABASE_URL": url}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "migrate"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    said = " ".join((result.stdout + " " + result.stderr).split())
    if result.returncode != 0:
        raise StoreFailed(
            f"gateway migrate failed ({result.returncode}): {said} (--reload loads the store "
            "afresh)"
        )
    log(f"gateway migrate ({time.perf_counter() - started:,.1f} s): {said or 'nothing to do'}")


# -- stores ----------------------------------------------------------------------------


class StoreFailed(Exception):
    """A store that could not be made ready: the others still run."""


@dataclass
class Database:
    name: str
    url: str
    directory: Path  # where its manifest is kept


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[Database]:
    directory = workdir / "sqlite"
    directory.mkdir(parents=True, exist_ok=True)
    yield Database("sqlite", f"sqlite:///{directory / 'consent.db'}", directory)


@contextmanager
def postgres_database(workdir: Path, keep: bool) -> Iterator[Database]:
    """A throwaway cluster, or with ``keep`` one kept in ``workdir``."""
    if not keep:
        from tests.support.postgres import ClusterUnavailable, start_cluster

        try:
            cluster = start_cluster()
        except ClusterUnavailable as exc:
            raise Skipped(str(exc)) from exc
        directory = workdir / "postgres"
        directory.mkdir(parents=True, exist_ok=True)
        try:
            yield Database("postgres", cluster.create_database("bench_consent"), directory)
        finally:
            cluster.stop()
        return
    with KeptCluster(workdir / "postgres") as url:
        yield Database("postgres", url, workdir / "postgres")


def _pg_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    import glob

    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise Skipped(f"{name} not found: install PostgreSQL's server package")
    return candidates[0]


class KeptCluster(AbstractContextManager[str]):
    """A PostgreSQL cluster in ``directory``, made on first use and started
    for the run (fsync off and loopback only, as ``tests.support.postgres``
    starts one), stopped cleanly after it; its database ``bench_consent``
    outlives the run. As root, the cluster belongs to the ``postgres``
    user, which must be able to reach ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.run_as: list[str] = []
        self.port = 0

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.run_as, *command], capture_output=True, text=True, check=False)

    def __enter__(self) -> str:
        import psycopg

        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise Skipped("running as root and there is no postgres user") from exc
            for parent in (self.directory.parent, self.directory):
                parent.chmod(parent.stat().st_mode | 0o711)
            os.chown(self.directory, user.pw_uid, user.pw_gid)
            self.directory.chmod(0o700)
            self.run_as = ["runuser", "-u", "postgres", "--"]
        pg_ctl = _pg_binary("pg_ctl")
        if not (self.data / "PG_VERSION").exists():
            made = self._run(
                _pg_binary("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--no-instructions",
            )  # fmt: skip
            if made.returncode != 0:
                raise Skipped(f"initdb failed: {made.stderr.strip()}")
        self._run(pg_ctl, "stop", "-D", str(self.data), "-m", "fast", "-w")  # left running
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        options = (
            f"-F -p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200"
        )
        started = self._run(
            pg_ctl, "start", "-D", str(self.data), "-w", "-t", "120",
            "-l", str(self.directory / "log"), "-o", options,
        )  # fmt: skip
        if started.returncode != 0:
            raise Skipped(f"pg_ctl start failed: {started.stderr.strip()}")
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = 'bench_consent'"
            ).fetchone()
            if found is None:
                conn.execute('CREATE DATABASE "bench_consent"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/bench_consent"

    def __exit__(self, *exc: object) -> None:
        self._run(_pg_binary("pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w")


def forget(database: Database) -> None:
    """Empty a store that holds something other than the load asked for."""
    (database.directory / "manifest.json").unlink(missing_ok=True)
    if database.name == "sqlite":
        for path in database.directory.iterdir():
            if path.name.startswith("consent.db"):
                path.unlink()
        return
    import psycopg

    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def vacuum_analyze(database: Database) -> None:
    if database.name != "postgres":
        return
    import psycopg

    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def database_bytes(database: Database) -> int:
    if database.name == "sqlite":
        return sum(
            p.stat().st_size
            for p in database.directory.iterdir()
            if p.name.startswith("consent.db")
        )
    import psycopg

    with psycopg.connect(database.url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


# -- a store with a deadline -----------------------------------------------------------


class OverBudget(Exception):
    """A search ran past its time: abandoned."""


class Budgeted:
    """The store, for a search that must end by ``deadline``
    (``time.perf_counter()``): every read after it raises ``OverBudget``.
    Search reaches the database through ``select`` and the point reads
    alone, so a search overrunning stops at its next statement."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.url = store.url
        self.dialect = store.dialect
        self.deadline = float("inf")

    def _check(self) -> None:
        if time.perf_counter() > self.deadline:
            raise OverBudget

    def read(self, res_type: str, res_id: str) -> StoredVersion | None:
        self._check()
        return self._store.read(res_type, res_id)

    def vread(self, res_type: str, res_id: str, version: int) -> StoredVersion | None:
        self._check()
        return self._store.vread(res_type, res_id, version)

    def read_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], StoredVersion]:
        self._check()
        return self._store.read_many(keys)

    def vread_many(
        self, keys: Iterable[tuple[str, str, int]]
    ) -> dict[tuple[str, str, int], StoredVersion]:
        self._check()
        return self._store.vread_many(keys)

    def select(self, sql: str, params: Sequence[object]) -> list[tuple[object, ...]]:
        self._check()
        return self._store.select(sql, params)

    async def open_async_reader(self) -> AsyncReader:
        return await self._store.open_async_reader()

    def migrate(self) -> list[int]:
        return self._store.migrate()

    def unit_of_work(self) -> AbstractContextManager[UnitOfWork]:
        return self._store.unit_of_work()

    def history(self, query: HistoryQuery) -> HistoryPage:
        self._check()
        return self._store.history(query)

    def index_version(self, name: str = "search") -> str | None:
        return self._store.index_version(name)

    def iter_current(self, res_type: str) -> Iterator[StoredVersion]:
        return self._store.iter_current(res_type)

    def listen(
        self, channel: str, on_message: Callable[[str], None], on_reset: Callable[[], None]
    ) -> Listening | None:
        return self._store.listen(channel, on_message, on_reset)

    def ping(self) -> None:
        self._store.ping()

    def check_writable(self) -> None:
        self._store.check_writable()

    def pool_stats(self) -> dict[str, int]:
        return self._store.pool_stats()

    def close(self) -> None:
        self._store.close()


# -- measuring -------------------------------------------------------------------------


@dataclass
class Cell:
    """One search for one requester (or unenforced) on one store."""

    store: str
    search: str
    url: str
    audience: str  # an Audience key, or UNENFORCED
    sees_people: int
    samples_ms: list[float] = field(default_factory=list)
    warmup_ms: list[float] = field(default_factory=list)
    aborted_after_s: float | None = None  # a run abandoned at the budget
    errors: int = 0
    first_error: str | None = None
    matches: int | None = None
    total: int | None = None  # as the last answer gave it (None: no total)
    bytes: int | None = None
    load_average: str = ""

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    def p(self, fraction: float) -> float | None:
        return percentile(self.samples_ms, fraction) if self.samples_ms else None

    @property
    def worst_ms(self) -> float | None:
        runs = [*self.samples_ms, *self.warmup_ms]
        if self.aborted_after_s is not None:
            runs.append(self.aborted_after_s * 1000)
        return max(runs) if runs else None

    @property
    def passed(self) -> bool:
        p50, p99 = self.p(0.5), self.p(0.99)
        return (
            self.aborted_after_s is None
            and self.errors == 0
            and p50 is not None
            and p99 is not None
            and p50 < P50_TARGET_MS
            and p99 < P99_TARGET_MS
        )


class Checker:
    """Whether an answer is the one the load says it must be."""

    def __init__(
        self, seed: int, per_person: int, numbers: Iterable[int], expected: Expected
    ) -> None:
        """``numbers``: the people loaded."""
        self.expected = expected
        self.visible: dict[str, set[str]] = {key: set() for key in [*_audience_keys(), "all"]}
        for number in numbers:
            plan = population.plan_person(seed, number)
            patient = population.patient_id(seed, number, per_person)
            self.visible["all"].add(patient)
            for key in _audience_keys():
                if population.sees(key, plan):
                    self.visible[key].add(patient)

    def problem(self, search: Search, key: str, bundle: dict[str, Any]) -> str | None:
        entries = bundle.get("entry", [])
        ids = [e["fullUrl"].rsplit("/", 1)[-1] for e in entries if e["search"]["mode"] == "match"]
        total = bundle.get("total")
        if search.res_type == "Observation":
            want = [i for _, i in self.expected.latest[key]]
            if ids != want:
                return f"expected the latest {len(want)} it may see {want[:3]}..., got {ids[:3]}..."
            visible_count = self.expected.observations[key]
        else:
            visible = self.visible[key]
            hidden = [i for i in ids if i not in visible]
            if hidden:
                return f"{len(hidden)} Patients it may not see, e.g. Patient/{hidden[0]}"
            if len(ids) != min(_TOP, len(visible)):
                return f"expected {min(_TOP, len(visible))} Patients, got {len(ids)}"
            visible_count = len(visible)
        if total is not None and total != visible_count:
            return f"total {total}, but it may see {visible_count}"
        if "total" in bundle and dict(search.params).get("_total") == "none":
            return "_total=none, yet a total"
        return None


@dataclass
class Runner:
    """Runs searches as the HTTP API would, minus HTTP."""

    store: Budgeted
    reader: AsyncReader
    scopes: Scopes

    async def enforced(self, audience: Audience, search: Search) -> tuple[dict[str, Any], bytes]:
        grant = AccessGrant(audience.requester, self.scopes, "bench-token", 2**62)
        line = RequestLine("bench", "GET", f"/fhir/{search.res_type}", "", "search-type")
        repository = Repository(self.store, self.reader, grant, Disclosures(), BASE_URL, line)
        query = parse_search(search.res_type, list(search.params), base_url=BASE_URL)
        bundle = await repository.search(query, search.res_type)
        return bundle, fhirjson.dumps(bundle)

    async def unenforced(self, search: Search) -> tuple[dict[str, Any], bytes]:
        query = parse_search(search.res_type, list(search.params), base_url=BASE_URL)
        result = await anyio.to_thread.run_sync(
            partial(
                search_without_consent,
                self.store,
                query,
                includable(self.scopes).__contains__,
            )
        )
        bundle = searchset_bundle(result, query, base_url=BASE_URL, path=search.res_type)
        return bundle, fhirjson.dumps(bundle)


def search_without_consent(
    store: Store, query: SearchQuery, allowed: Callable[[str], bool]
) -> SearchResult:
    """The gateway's own search, which sees every match: the baseline."""
    return search(store, query, visible=None, includable=allowed)


async def measure_cell(
    runner: Runner,
    checker: Checker,
    search: Search,
    audience: Audience | None,
    args: argparse.Namespace,
    cell: Cell,
) -> None:
    key = audience.key if audience is not None else "all"
    began = [0.0]  # when the run under way began

    async def run() -> float:
        began[0] = time.perf_counter()
        runner.store.deadline = began[0] + args.budget
        try:
            if audience is None:
                bundle, body = await runner.unenforced(search)
            else:
                bundle, body = await runner.enforced(audience, search)
        finally:
            runner.store.deadline = float("inf")
        elapsed = (time.perf_counter() - began[0]) * 1000
        problem = checker.problem(search, key, bundle)
        if problem is not None:
            cell.errors += 1
            cell.first_error = cell.first_error or problem
        cell.matches = sum(1 for e in bundle.get("entry", []) if e["search"]["mode"] == "match")
        cell.total = bundle.get("total")
        cell.bytes = len(body)
        return elapsed

    started = time.perf_counter()
    try:
        for _ in range(args.warmup):
            cell.warmup_ms.append(await run())
            if time.perf_counter() - started > args.budget / 4:
                break
        started = time.perf_counter()
        while cell.n < args.repeat:
            if cell.n >= _MIN_SAMPLES and time.perf_counter() - started > args.budget:
                break
            cell.samples_ms.append(await run())
            if time.perf_counter() - started > 2 * args.budget:
                break  # runs of nearly the budget each: enough
    except OverBudget:
        cell.aborted_after_s = time.perf_counter() - began[0]
    cell.load_average = _load_average()


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def measure_store(
    store: Store, args: argparse.Namespace, checker: Checker, name: str, log: Callable[[str], None]
) -> list[Cell]:
    budgeted = Budgeted(store)
    reader = await store.open_async_reader()
    runner = Runner(budgeted, reader, Scopes.parse(SCOPES))
    cells: list[Cell] = []
    searches = [s for s in SEARCHES if s.key in args.searches]
    audiences = [a for a in AUDIENCES if a.key in args.requesters]
    try:
        for search_ in searches:
            for audience in [None, *audiences]:
                if audience is None and not args.unenforced:
                    continue
                key = audience.key if audience is not None else UNENFORCED
                sees = checker.expected.people[audience.key if audience else "all"]
                cell = Cell(name, search_.key, search_.url, key, sees)
                began = time.perf_counter()
                await measure_cell(runner, checker, search_, audience, args, cell)
                cells.append(cell)
                log(f"{name}: {describe(cell)} ({time.perf_counter() - began:,.1f} s)")
    finally:
        await reader.aclose()
    return cells


def describe(cell: Cell) -> str:
    if cell.aborted_after_s is not None and cell.n == 0:
        figures = f"> budget: a run abandoned after {cell.aborted_after_s:,.1f} s"
    else:
        figures = (
            f"n {cell.n} p50 {_ms(cell.p(0.5))} p99 {_ms(cell.p(0.99))} "
            f"max {_ms(max(cell.samples_ms) if cell.samples_ms else None)} ms"
        )
        if cell.aborted_after_s is not None:
            figures += f", then a run abandoned after {cell.aborted_after_s:,.1f} s"
    wrong = f", {cell.errors} WRONG: {cell.first_error}" if cell.errors else ""
    return f"{cell.url} as {cell.audience}: {figures}{wrong}; load average {cell.load_average}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


# -- one store -------------------------------------------------------------------------


@dataclass
class StoreResult:
    store: str
    resources: int
    people: int
    loaded_now: bool
    load_s: float
    load_rate: float
    loaders: int
    database_bytes: int
    loaded_by: str
    cells: list[Cell] = field(default_factory=list)


def bench_store(
    database: Database, args: argparse.Namespace, log: Callable[[str], None]
) -> StoreResult:
    manifest_path = database.directory / "manifest.json"
    manifest = Manifest.load(manifest_path) if args.reuse and not args.reload else None
    if manifest is not None and manifest.matches(args):
        log(
            f"{database.name}: reusing the store in {database.directory} "
            f"({manifest.resources:,} resources, loaded by {manifest.gateway})"
        )
        gateway_migrate(database.url, lambda m: log(f"{database.name}: {m}"))
        loaded_now = False
    else:
        forget(database)  # what an interrupted load, or another, left there
        gateway_migrate(database.url, lambda m: log(f"{database.name}: {m}"))
        log(
            f"{database.name}: loading {args.people:,} people x {args.per_person} resources "
            f"with {args.loaders} loader processes, {args.chunk} people per unit of work"
        )
        expected, resources, seconds = bulk_load(
            database.url, args, lambda m: log(f"{database.name}: {m}")
        )
        started = time.perf_counter()
        vacuum_analyze(database)
        if database.name == "postgres":
            log(f"{database.name}: VACUUM ANALYZE {time.perf_counter() - started:,.1f} s")
        manifest = Manifest(
            store=database.name,
            people=args.people,
            per_person=args.per_person,
            seed=args.seed,
            resources=resources,
            load_s=seconds,
            loaders=args.loaders,
            gateway=gateway_revision(),
            expected=expected,
        )
        if args.keep or args.reuse:
            manifest.save(manifest_path)
        loaded_now = True
    size = database_bytes(database)
    log(f"{database.name}: {manifest.resources:,} resources, {size / 2**20:,.0f} MiB")
    checker = Checker(args.seed, args.per_person, range(args.people), manifest.expected)
    store = open_store(database.url, pool_size=8)
    try:
        cells = anyio.run(measure_store, store, args, checker, database.name, log)
    finally:
        store.close()
    return StoreResult(
        store=database.name,
        resources=manifest.resources,
        people=manifest.people,
        loaded_now=loaded_now,
        load_s=manifest.load_s,
        load_rate=manifest.resources / manifest.load_s if manifest.load_s else 0.0,
        loaders=manifest.loaders,
        database_bytes=size,
        loaded_by=manifest.gateway,
        cells=cells,
    )


# -- report ----------------------------------------------------------------------------


_COLUMNS = (
    ("store", "<9"),
    ("search", "<50"),
    ("requester", "<11"),
    ("people", ">8"),
    ("n", ">5"),
    ("p50 ms", ">10"),
    ("p99 ms", ">10"),
    ("max ms", ">11"),
    ("matches", ">8"),
    ("total", ">8"),
    ("", "<2"),
    ("result", "<8"),
)
_HEADER = "".join(f"{name:{spec}}" for name, spec in _COLUMNS)


def _row(cell: Cell) -> str:
    over = cell.aborted_after_s is not None
    worst = cell.worst_ms
    values: tuple[object, ...] = (
        cell.store,
        cell.url,
        cell.audience,
        f"{cell.sees_people:,}",
        cell.n,
        "> budget" if over and cell.n == 0 else _ms(cell.p(0.5)),
        "> budget" if over and cell.n == 0 else _ms(cell.p(0.99)),
        "> budget" if over else _ms(worst),
        "-" if cell.matches is None else cell.matches,
        "-" if cell.total is None else f"{cell.total:,}",
        "",
        ("" if cell.audience == UNENFORCED else ("PASS" if cell.passed else "MISS"))
        + (f" {cell.errors} WRONG" if cell.errors else ""),
    )
    return "".join(f"{v!s:{spec}}" for v, (_, spec) in zip(values, _COLUMNS, strict=True))


def report(results: list[StoreResult], skipped: dict[str, str], budget: float) -> dict[str, Any]:
    print(
        f"\nConsent-filtered search (in-process: parse + Repository.search + JSON bytes; "
        f"targets p50 < {P50_TARGET_MS:g} ms, p99 < {P99_TARGET_MS:g} ms per requester; "
        f"max: the slowest run, warm-up included; > budget: a run abandoned after {budget:g} s)"
    )
    print(_HEADER)
    print("-" * len(_HEADER))
    summary: dict[str, Any] = {}
    for result in results:
        for cell in result.cells:
            print(_row(cell))
    for store, reason in skipped.items():
        print(f"{store:<9}{reason}")
    print("\nLoad")
    for result in results:
        how = "loaded now" if result.loaded_now else "reused, loaded earlier"
        print(
            f"  {result.store:<9}{result.resources:,} resources for {result.people:,} people "
            f"({how}, by {result.loaded_by}): {result.load_s:,.0f} s with {result.loaders} "
            f"loader processes, {result.load_rate:,.0f} res/s; "
            f"database {result.database_bytes / 2**20:,.0f} MiB"
        )
    print("\nTargets")
    for result in results:
        enforced = [c for c in result.cells if c.audience != UNENFORCED]
        missed = [c for c in enforced if not c.passed]
        worst = max(enforced, key=lambda c: c.worst_ms or 0.0, default=None)
        worst_s = (worst.worst_ms or 0.0) / 1000 if worst else None
        over = any(c.aborted_after_s is not None for c in enforced)
        ratios = {key: ratio_100(result.cells, key) for key in {c.search for c in enforced}}
        print(f"  {result.store}:")
        print(
            f"    p50 < {P50_TARGET_MS:g} ms and p99 < {P99_TARGET_MS:g} ms: "
            f"{len(enforced) - len(missed)} of {len(enforced)} searches and requesters pass"
            + (" (MISS in the table: the others)" if missed else "")
        )
        if worst is not None:
            if over:
                worst_text = f"> {worst_s:,.1f} s (budget; a run was abandoned)"
            else:
                worst_text = f"{worst_s:,.3f} s"
            verdict = (
                "PASS" if not over and worst_s is not None and worst_s < WORST_TARGET_S else "MISS"
            )
            print(
                f"    worst run: {worst_text}, {_name(worst)}  [{verdict} < {WORST_TARGET_S:g} s]"
            )
        for search_ in SEARCHES:
            if search_.key not in ratios:
                continue
            ratio, note = ratios[search_.key]
            if ratio is None and "over budget" not in note:
                verdict = ""  # not measured: no verdict
            else:
                ok = ratio is not None and ratio <= RATIO_TARGET
                verdict = f"  [{'PASS' if ok else 'MISS'} <= {RATIO_TARGET:g}]"
            print(f"    100% enforced / unenforced (p50), {search_.url}: {note}{verdict}")
        summary[result.store] = {
            "passed": len(enforced) - len(missed),
            "cells": len(enforced),
            "worst_s": worst_s,
            "worst_over_budget": over,
            "ratio_100": {key: ratio for key, (ratio, _) in ratios.items()},
        }
    wrong = [c for r in results for c in r.cells if c.errors]
    if wrong:
        print("\nWrong answers:")
        for cell in wrong:
            print(f"  {_name(cell)}: {cell.errors}: {cell.first_error}")
    return summary


def ratio_100(cells: Sequence[Cell], search_key: str) -> tuple[float | None, str]:
    """The 100% requester's p50 over the unenforced p50, for one search,
    and how to say it."""
    full = _cell(cells, search_key, "100%")
    plain = _cell(cells, search_key, UNENFORCED)
    if full is None or plain is None:
        return None, "- (not measured)"
    full_p50, plain_p50 = full.p(0.5), plain.p(0.5)
    if full.aborted_after_s is not None or full_p50 is None:
        return None, "- (enforced over budget)"
    if plain.aborted_after_s is not None or plain_p50 is None:
        return None, "- (unenforced over budget)"
    ratio = full_p50 / plain_p50
    return ratio, f"x{ratio:.2f} ({full_p50:,.1f} / {plain_p50:,.1f} ms)"


def _cell(cells: Sequence[Cell], search_key: str, audience: str) -> Cell | None:
    return next((c for c in cells if c.search == search_key and c.audience == audience), None)


def _name(cell: Cell) -> str:
    return f"{cell.url} as {cell.audience}"


# -- main ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search_consent",
        description="Bulk-load a synthetic population and measure consent-filtered search "
        "for requesters that see 1%, 10%, 100% and none of the people, on SQLite and "
        "PostgreSQL.",
    )
    parser.add_argument("--people", type=int, default=20_000, help="people (default 20,000)")
    parser.add_argument(
        "--per-person",
        type=int,
        default=50,
        help="resources per person, their Patient included (default 50: 1,000,000 in all)",
    )
    parser.add_argument("--seed", type=int, default=20250630, help="the data's seed")
    parser.add_argument(
        "--stores", default="sqlite,postgres", help="comma-separated: sqlite, postgres"
    )
    parser.add_argument(
        "--loaders",
        type=int,
        default=os.cpu_count() or 2,
        help="loader processes (default: one per CPU)",
    )
    parser.add_argument(
        "--chunk", type=int, default=100, help="people per unit of work of the load (default 100)"
    )
    parser.add_argument("--repeat", type=int, default=200, help="measured runs per search")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured runs per search first")
    parser.add_argument(
        "--budget",
        type=float,
        default=20.0,
        help="seconds per search and requester, after which sampling stops (at least "
        f"{_MIN_SAMPLES} runs); a single run is abandoned after as long (default 20)",
    )
    parser.add_argument(
        "--searches",
        default=",".join(s.key for s in SEARCHES),
        help="comma-separated, of: " + ", ".join(f"{s.key} ({s.url})" for s in SEARCHES),
    )
    parser.add_argument(
        "--requesters",
        default=",".join(a.key for a in AUDIENCES),
        # argparse %-formats help text, and the requesters' keys are percentages.
        help="comma-separated, of: "
        + ", ".join(f"{a.key} ({a.about})" for a in AUDIENCES).replace("%", "%%"),
    )
    parser.add_argument(
        "--no-unenforced",
        dest="unenforced",
        action="store_false",
        help="skip the unenforced baseline",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (stores included)"
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="with --reuse: load the stores afresh, whatever DIR holds",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        metavar="DIR",
        help="work in DIR, reusing the stores loaded there before with the same --people, "
        "--per-person and --seed (loading those that are not), and keep it",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    for name in stores:
        if name not in ("sqlite", "postgres"):
            raise SystemExit(f"unknown store {name!r}")
    args.searches = {s.strip() for s in args.searches.split(",") if s.strip()}
    args.requesters = {s.strip() for s in args.requesters.split(",") if s.strip()}
    if unknown := args.searches - {s.key for s in SEARCHES}:
        raise SystemExit(f"unknown searches {sorted(unknown)}")
    if unknown := args.requesters - {a.key for a in AUDIENCES}:
        raise SystemExit(f"unknown requesters {sorted(unknown)}")
    if args.per_person < population.MIN_PER_PERSON:
        raise SystemExit(f"--per-person must be at least {population.MIN_PER_PERSON}")
    if args.people < 1 or args.repeat < 1 or args.loaders < 1 or args.chunk < 1:
        raise SystemExit("--people, --repeat, --loaders and --chunk must be at least 1")
    if args.reuse is not None:
        workdir = args.reuse.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="bench-consent-"))
    kept = args.keep or args.reuse is not None
    revision = gateway_revision()
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {message}", flush=True)

    print(
        f"bench.search_consent: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{args.people:,} people x {args.per_person} resources "
        f"(+{population.ORGANISATIONS} Organizations), seed {args.seed}, {args.repeat} runs "
        f"per search, budget {args.budget:g} s, work directory {workdir}"
        f"{' (kept)' if kept else ''}\ngateway at {revision}",
        flush=True,
    )
    results: list[StoreResult] = []
    skipped: dict[str, str] = {}
    try:
        for name in stores:
            database = (
                sqlite_database(workdir)
                if name == "sqlite"
                else postgres_database(workdir, keep=kept)
            )
            try:
                with database as db:
                    results.append(bench_store(db, args, log))
            except Skipped as exc:
                log(f"{name}: SKIPPED: {exc}")
                skipped[name] = f"SKIPPED: {exc}"
            except StoreFailed as exc:
                log(f"{name}: FAILED: {exc}")
                skipped[name] = f"FAILED: {exc}"
        summary = report(results, skipped, args.budget)
        if args.json:
            args.json.write_bytes(
                orjson.dumps(
                    {
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "gateway": revision,
                        "options": {k: str(v) for k, v in vars(args).items()},
                        "targets": {
                            "p50_ms": P50_TARGET_MS,
                            "p99_ms": P99_TARGET_MS,
                            "worst_s": WORST_TARGET_S,
                            "ratio": RATIO_TARGET,
                        },
                        "summary": summary,
                        "stores": [
                            {
                                **{k: v for k, v in asdict(r).items() if k != "cells"},
                                "cells": [
                                    {
                                        **asdict(c),
                                        "n": c.n,
                                        "p50_ms": c.p(0.5),
                                        "p99_ms": c.p(0.99),
                                        "worst_ms": c.worst_ms,
                                        "passed": c.passed,
                                    }
                                    for c in r.cells
                                ],
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
        if kept:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
