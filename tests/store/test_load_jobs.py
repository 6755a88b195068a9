"""``gateway load --jobs N``: records mapped in worker processes load to
the very store one job makes, and a worker that dies loses nothing."""

from __future__ import annotations

import collections
import multiprocessing
import os
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.mappings import write_cld, write_hl7
from gateway.cli import main
from gateway.loading import load
from gateway.loading.sources import FORMAT, Format, SourceRecord, Unmapped
from gateway.loading.workers import Mapper, WorkerFailed
from gateway.store import Store, open_store
from gateway.store._sql import INDEX_TABLES
from tests.conftest import keep_test_id_key

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# Written with the clock, so told apart only by when they ran: the gateway's
# own instants (meta.lastUpdated, Provenance.recorded, the ledger's
# loaded_at, the index rows of both, an event's occurred, the audit entry's
# recorded, when a migration was applied). Sources' dates are older.
_INSTANT = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(?:Z|\+00:00)")
# Not data: SQLite's statistics (gathered when it chose to), and the audit
# log's hash tree and entry hashes, which hash those instants.
_LEFT_OUT = {"sqlite_stat1", "sqlite_sequence", "audit_node"}
_HASHED = {("audit_entry", "leaf")}


def _files(root: Path) -> list[tuple[str, str, list[Path]]]:
    """What is loaded, in order: HL7 v2 with rejections (a bad NHS number,
    a broken message) and updates (discharges of earlier admissions, the
    same people again), then a CLD return about the same people (their
    Patients merged element by element) with rows refused as they are read
    and as they are mapped, then the HL7 v2 feed again (nothing changes)."""
    feed = root / "feed.hl7"
    write_hl7(feed, 230)
    council = root / "return.csv"
    write_cld(council, 230)
    rows = council.read_text(encoding="utf-8").splitlines()
    rows.insert(40, rows[40].replace("E09000022", "E09000007", 1))  # another council's
    rows.insert(90, rows[90].replace(",999", ",123", 1))  # an NHS number failing Modulus 11
    council.write_text("\n".join(rows) + "\n", encoding="utf-8")
    hl7 = FIXTURES / "hl7v2"
    return [
        ("hl7v2", "RKE", [feed, hl7 / "admit.hl7", hl7 / "discharge-and-errors.hl7"]),
        ("cld", "713", [council, FIXTURES / "cld" / "return.csv"]),
        ("hl7v2", "RKE", [feed]),
    ]


def _fresh(path: Path) -> str:
    url = f"sqlite:///{path}"
    store = open_store(url)
    store.migrate()
    keep_test_id_key(store)  # both stores map with one key, as one deployment
    store.close()
    return url


def _loaded(
    url: str, jobs: int, files: list[tuple[str, str, list[Path]]], out: Path, capsys: Any
) -> list[Any]:
    """Each load's exit code, summary (its rate aside) and rejection report."""
    told = []
    for n, (fmt, org, paths) in enumerate(files):
        rejections = out / f"rejections-{jobs}-{n}.csv"
        code = main(
            [
                "load",
                *("--database-url", url, "--format", fmt, "--source-org", org),
                *("--jobs", str(jobs), "--rejections", str(rejections)),
                *map(str, paths),
            ]
        )
        summary = re.sub(r"\(\S+/s\)", "", capsys.readouterr().out).replace(str(rejections), "")
        report = rejections.read_text(encoding="utf-8") if rejections.exists() else None
        told.append((code, summary, report))
    return told


def _contents(database: Path, since: bytes) -> dict[str, collections.Counter[tuple[Any, ...]]]:
    """Every table's rows, the gateway's own instants (from ``since`` on)
    and the ids of its Provenances (UUID v7: the moment, and random) made
    alike; each Provenance is named by the order it was written in."""
    db = sqlite3.connect(database)
    provenances = {
        str(res_id): f"provenance-{n}"
        for n, (res_id,) in enumerate(
            db.execute(
                "SELECT res_id FROM resource_version WHERE res_type = 'Provenance' ORDER BY seq"
            )
        )
    }
    ids = re.compile("|".join(map(re.escape, provenances)).encode()) if provenances else None

    def alike(value: Any) -> Any:
        raw = value.encode() if isinstance(value, str) else value
        if not isinstance(raw, bytes):
            return value
        raw = _INSTANT.sub(lambda m: b"<instant>" if m.group() >= since else m.group(), raw)
        if ids is not None:
            raw = ids.sub(lambda m: provenances[m.group().decode()].encode(), raw)
        return raw

    tables: dict[str, collections.Counter[tuple[Any, ...]]] = {}
    for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        if table in _LEFT_OUT:
            continue
        columns = [str(c[1]) for c in db.execute(f"PRAGMA table_info({table})")]
        kept = [c for c in columns if (table, c) not in _HASHED]
        rows = db.execute(f"SELECT {', '.join(kept)} FROM {table}")
        tables[table] = collections.Counter(tuple(alike(v) for v in row) for row in rows)
    db.close()
    return tables


def test_two_jobs_load_what_one_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every table (resources and their versions, index rows, Provenance,
    the ledger, the person's element sources, events, the audit entries)
    and every summary and rejection report are the same with two jobs as
    with one, but for the gateway's clock and its Provenances' ids."""
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").encode()
    files = _files(tmp_path)
    one, two = tmp_path / "one.db", tmp_path / "two.db"
    told_one = _loaded(_fresh(one), 1, files, tmp_path, capsys)
    told_two = _loaded(_fresh(two), 2, files, tmp_path, capsys)

    assert told_two == told_one
    assert [code for code, _, _ in told_one] == [1, 1, 0]
    first, council, again = (report for _, _, report in told_one)
    assert again is None  # nothing refused: no report written
    assert first is not None and "Modulus 11" in first and "starts with an MSH" in first
    assert council is not None and "not the return's council" in council
    assert "Modulus 11" in council
    assert "loaded                   0" in told_one[2][1]  # the feed again changes nothing

    contents_one, contents_two = _contents(one, since), _contents(two, since)
    assert contents_two.keys() == contents_one.keys()
    for table, rows in contents_one.items():
        assert contents_two[table] == rows, table
    versions = contents_one["resource_version"]
    assert sum(versions.values()) > 1000 and any(row[3] > 1 for row in versions)  # updates too
    assert sum(contents_one["mapping_record"].values()) > 400


_HL7V2 = FORMAT["hl7v2"]


def _crash_split(stream: Any, source: str) -> Any:
    return _HL7V2.split(stream, source)


def _crash_map(item: Unmapped, source: str) -> SourceRecord:
    """Maps as HL7 v2 does, but a worker process dies at message 120."""
    if item.where.startswith("message 120 ") and multiprocessing.parent_process() is not None:
        os._exit(9)
    return _HL7V2.map(item, source)


def test_a_worker_that_dies_stops_the_load_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records before the first one not mapped are loaded, none after
    it; loading the file again loads the rest, to the store one load of it
    makes."""
    feed = tmp_path / "feed.hl7"
    write_hl7(feed, 230)
    store = open_store(_fresh(tmp_path / "gateway.db"))
    monkeypatch.setitem(FORMAT, "crashing", Format(_crash_split, _crash_map))
    monkeypatch.setattr(Mapper, "map_when_waiting", False)  # message 120 is a worker's
    try:
        with pytest.raises(WorkerFailed) as failed:
            load(store, "crashing", "RKE", [feed], jobs=2)
        stopped = int(failed.value.where.split()[1])
        assert stopped <= 120 and failed.value.file == str(feed)
        (done,) = store.select("SELECT COUNT(*) FROM mapping_record", [])[0]
        assert int(str(done)) == stopped - 1  # each record before it, none from it on

        monkeypatch.setitem(FORMAT, "crashing", _HL7V2)  # the worker that died is fixed
        again = load(store, "crashing", "RKE", [feed], jobs=2)
        assert (again.unchanged, again.loaded) == (stopped - 1, 230 - stopped + 1)
    finally:
        store.close()


def test_the_command_says_a_worker_died_and_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = tmp_path / "feed.hl7"
    write_hl7(feed, 130)
    url = _fresh(tmp_path / "gateway.db")
    monkeypatch.setitem(FORMAT, "hl7v2", Format(_crash_split, _crash_map))
    monkeypatch.setattr(Mapper, "map_when_waiting", False)
    code = main(["load", "--database-url", url, "--format", "hl7v2", "--source-org", "RKE",
                 "--jobs", "2", str(feed)])  # fmt: skip
    assert code == 3
    err = capsys.readouterr().err
    assert "stopped: mapping" in err and "load the files again" in err


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two empty, migrated stores of each kind, mapping with one key."""
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path}/{name}.db" for name in ("one", "two")]
    else:
        cluster = request.getfixturevalue("pg_cluster")
        name = f"t_{os.getpid()}_{abs(hash(request.node.nodeid))}"
        urls = [cluster.create_database(f"{name}_{n}") for n in (1, 2)]
    stores = [open_store(url) for url in urls]
    for store in stores:
        store.migrate()
        keep_test_id_key(store)
    try:
        yield stores[0], stores[1]
    finally:
        for store in stores:
            store.close()


def _index(store: Store) -> dict[str, collections.Counter[tuple[Any, ...]]]:
    """Each index table's rows of what was loaded (its Provenances aside:
    their ids and contents name the clock), the gateway's instants alike."""
    tables = {}
    for table in INDEX_TABLES:
        rows = store.select(f"SELECT * FROM {table} WHERE res_type <> 'Provenance'", [])
        tables[table] = collections.Counter(
            tuple(_INSTANT.sub(b"<instant>", v.encode()) if isinstance(v, str) else v for v in row)
            for row in rows
        )
    return tables


def test_rows_the_workers_make_are_those_the_writer_makes(
    two_stores: tuple[Store, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On either database: every record mapped, and its index rows made, in a
    worker (the writer waits for them), the index is the one a load with one
    job writes."""
    one, two = two_stores
    files = _files(tmp_path)
    monkeypatch.setattr(Mapper, "map_when_waiting", False)
    for store, jobs in ((one, 1), (two, 2)):
        for fmt, org, paths in files:
            load(store, fmt, org, paths, jobs=jobs)
    index_one, index_two = _index(one), _index(two)
    assert sum(index_one["search_token"].values()) > 1000
    for table, rows in index_one.items():
        assert index_two[table] == rows, table
