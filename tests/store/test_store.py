"""The storage contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading

import pytest

from gateway import fhirjson
from gateway.errors import Conflict
from gateway.search.matching import matching_ids
from gateway.store import (
    HistoryQuery,
    IndexEntry,
    Store,
    StoredVersion,
    open_store,
)
from gateway.store.values import TokenValue
from tests.support.acting import as_source, stored


def _version(
    res_id: str,
    version: int,
    body: bytes | None = b'{"resourceType":"Patient"}',
    res_type: str = "Patient",
    at: str = "2026-01-01T00:00:00.000000Z",
) -> StoredVersion:
    return StoredVersion(
        res_type=res_type,
        res_id=res_id,
        version=version,
        last_updated=at,
        method="DELETE" if body is None else ("POST" if version == 1 else "PUT"),
        content=body,
    )


def _identifier(system: str | None, value: str) -> IndexEntry:
    return IndexEntry("identifier", TokenValue(system, value))


def _write(store: Store, *versions: StoredVersion, tokens: tuple[IndexEntry, ...] = ()) -> None:
    with store.unit_of_work() as uow:
        for version in versions:
            uow.append(version, tokens)


def test_migrations_are_versioned_and_idempotent(store_url: str) -> None:
    """The first migrate applies every migration; a second applies none."""
    store = open_store(store_url)
    try:
        applied = store.migrate()
        assert applied and applied == sorted(applied)
        assert store.migrate() == []
        store.ping()
    finally:
        store.close()


def test_read_returns_the_latest_version_and_vread_any(store: Store) -> None:
    """Every write appends a version; read sees the newest, vread each one."""
    _write(store, _version("a", 1, b'{"v":1}'))
    _write(store, _version("a", 2, b'{"v":2}'))
    latest = store.read("Patient", "a")
    assert latest is not None and latest.version == 2 and latest.content == b'{"v":2}'
    first = store.vread("Patient", "a", 1)
    assert first is not None and first.content == b'{"v":1}'
    assert store.vread("Patient", "a", 3) is None
    assert store.read("Patient", "missing") is None
    assert store.read("Observation", "a") is None


def test_a_version_says_whether_it_was_read_as_the_latest(store: Store) -> None:
    """What the consent layer relies on to decide an earlier version with
    the labels its resource carries now: reads, batched reads, searches and
    fresh writes give the latest version; vreads and history may not."""
    _write(store, _version("p", 1))
    with store.unit_of_work() as uow:
        written = uow.append(_version("p", 2), ())
        assert written.current
        assert uow.read("Patient", "p").current  # type: ignore[union-attr]
        assert not uow.vread("Patient", "p", 2).current  # type: ignore[union-attr]
    assert store.read("Patient", "p").current  # type: ignore[union-attr]
    assert store.read_many([("Patient", "p")])[("Patient", "p")].current
    assert [v.current for v in store.iter_current("Patient")] == [True]
    assert not store.vread("Patient", "p", 2).current  # type: ignore[union-attr]
    assert not store.vread_many([("Patient", "p", 1)])[("Patient", "p", 1)].current
    page = store.history(HistoryQuery(res_type="Patient", res_id="p", count=10))
    assert [v.current for v in page.entries] == [False, False]
    # The flag says how it was read, not what it is: equal either way.
    assert store.read("Patient", "p") == store.vread("Patient", "p", 2)


def test_a_delete_is_a_new_version_that_keeps_history(store: Store) -> None:
    """Deleting appends an empty version; earlier versions stay readable."""
    _write(store, _version("a", 1))
    _write(store, _version("a", 2, None))
    latest = store.read("Patient", "a")
    assert latest is not None and latest.deleted and latest.version == 2
    kept = store.vread("Patient", "a", 1)
    assert kept is not None and not kept.deleted


def test_writing_an_existing_version_is_a_conflict(store: Store) -> None:
    """Two writers cannot both create version n: the second gets Conflict."""
    _write(store, _version("a", 1))
    with pytest.raises(Conflict):
        _write(store, _version("a", 1, b'{"other":true}'))
    found = store.read("Patient", "a")
    assert found is not None and found.content == b'{"resourceType":"Patient"}'


def test_a_failed_unit_of_work_writes_nothing(store: Store) -> None:
    """An exception inside a unit of work rolls back every write in it."""
    _write(store, _version("keep", 1))
    with pytest.raises(RuntimeError), store.unit_of_work() as uow:
        uow.append(_version("b", 1), ())
        uow.append(_version("keep", 2, b'{"changed":true}'), ())
        raise RuntimeError("crash mid-transaction")
    assert store.read("Patient", "b") is None
    kept = store.read("Patient", "keep")
    assert kept is not None and kept.version == 1
    assert store.history(HistoryQuery()).entries[0].res_id == "keep"


def test_reads_inside_a_unit_of_work_see_its_own_writes(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.append(_version("a", 1), (_identifier("s", "1"),))
        assert uow.read("Patient", "a") is not None
        current = uow.current("Patient", "a")
        assert current is not None and current.version == 1 and not current.deleted
        assert matching_ids(uow, "Patient", "identifier=s|1", visible=None) == ["a"]


def test_read_many_and_vread_many_read_what_read_and_vread_do(store: Store) -> None:
    """Many resources at once, by key, exactly as one read (or vread) each
    would give them: the latest version (a deletion too), each version
    asked for; what does not exist is absent. Inside a unit of work too."""
    _write(store, _version("a", 1, b'{"v":1}'), _version("b", 1, b'{"b":1}'))
    _write(store, _version("a", 2, b'{"v":2}'), _version("b", 2, None))
    _write(store, _version("a", 1, b'{"o":1}', res_type="Observation"))
    keys = [
        ("Patient", "a"),
        ("Patient", "b"),
        ("Observation", "a"),
        ("Patient", "missing"),
        ("Condition", "a"),
        ("Patient", "a"),  # twice: read once
    ]
    expected = {key: store.read(*key) for key in keys if store.read(*key) is not None}
    assert set(expected) == {("Patient", "a"), ("Patient", "b"), ("Observation", "a")}
    assert store.read_many(keys) == expected
    assert store.read_many([]) == {}
    versions = [
        ("Patient", "a", 1),
        ("Patient", "a", 2),
        ("Patient", "b", 2),
        ("Observation", "a", 1),
        ("Patient", "a", 3),
        ("Observation", "b", 1),
    ]
    expected_versions = {key: store.vread(*key) for key in versions if store.vread(*key)}
    assert len(expected_versions) == 4
    assert store.vread_many(versions) == expected_versions
    assert store.vread_many([]) == {}
    with store.unit_of_work() as uow:
        uow.append(_version("c", 1, b'{"c":1}'), ())
        assert uow.read_many([("Patient", "c"), ("Patient", "a")]) == {
            ("Patient", "c"): uow.read("Patient", "c"),
            ("Patient", "a"): uow.read("Patient", "a"),
        }
        assert uow.vread_many([("Patient", "c", 1), ("Patient", "b", 1)]) == {
            ("Patient", "c", 1): uow.vread("Patient", "c", 1),
            ("Patient", "b", 1): uow.vread("Patient", "b", 1),
        }


def test_read_many_reads_any_number_of_resources(store: Store) -> None:
    """More keys than one statement names are read in several."""
    _write(store, *(_version(f"p{n}", 1, b'{"n":%d}' % n) for n in range(700)))
    keys = [("Patient", f"p{n}") for n in range(0, 701)]
    found = store.read_many(keys)
    assert len(found) == 700 and ("Patient", "p700") not in found
    assert found[("Patient", "p699")].content == b'{"n":699}'
    versions = store.vread_many(("Patient", f"p{n}", 1) for n in range(700))
    assert len(versions) == 700
    assert versions[("Patient", "p3", 1)].content == b'{"n":3}'


def test_criteria_match_tokens_by_system_and_code(store: Store) -> None:
    """Token criteria: system|code, code alone, |code (no system); deleted
    resources and other types never match."""
    _write(
        store,
        _version("a", 1),
        tokens=(_identifier("https://nhs", "9990000042"),),
    )
    _write(store, _version("b", 1), tokens=(_identifier(None, "9990000042"),))
    _write(store, _version("c", 1), tokens=(_identifier("https://nhs", "1"),))
    _write(store, _version("c", 2, None))
    _write(
        store,
        _version("o", 1, res_type="Observation"),
        tokens=(_identifier("https://nhs", "9990000042"),),
    )

    def ids(criteria: str) -> list[str]:
        return matching_ids(store, "Patient", criteria, limit=10, visible=None)

    assert ids("identifier=https://nhs|9990000042") == ["a"]
    assert ids("identifier=9990000042") == ["a", "b"]
    assert ids("identifier=|9990000042") == ["b"]
    assert ids("identifier=https://nhs|1") == []
    assert ids("identifier=1,|9990000042") == ["b"]


def test_a_new_version_replaces_the_index_rows(store: Store) -> None:
    _write(store, _version("a", 1), tokens=(_identifier("s", "old"),))
    _write(store, _version("a", 2), tokens=(_identifier("s", "new"),))
    assert matching_ids(store, "Patient", "identifier=s|old", visible=None) == []
    assert matching_ids(store, "Patient", "identifier=s|new", visible=None) == ["a"]


def test_index_rows_within_one_unit_of_work(store: Store) -> None:
    """A unit of work that writes a resource several times, deletes one it
    wrote before, and searches between writes: its searches see its own
    writes, and it leaves each resource the rows of its last version alone
    (PostgreSQL writes index rows at once, when the unit of work next
    searches or commits)."""
    _write(store, _version("gone", 1), _version("kept", 1), tokens=(_identifier("s", "v1"),))
    with store.unit_of_work() as uow:
        uow.append(_version("new", 1), (_identifier("s", "n1"),))
        uow.append(_version("new", 2), (_identifier("s", "n2"),))
        assert matching_ids(uow, "Patient", "identifier=s|n1", visible=None) == []
        assert matching_ids(uow, "Patient", "identifier=s|n2", visible=None) == ["new"]
        uow.append(_version("new", 3), (_identifier("s", "n3"), _identifier("t", "n3")))
        uow.append(_version("kept", 2), (_identifier("s", "v2"),))
        uow.append(_version("gone", 2, body=None), (_identifier("s", "v2"),))
    assert _index_rows(store, "Patient", "gone") == []
    assert _index_rows(store, "Patient", "kept") == [
        ("search_token", "Patient", "kept", "identifier", "s", "v2", "None")
    ]
    assert [row[4:6] for row in _index_rows(store, "Patient", "new")] == [
        ("s", "n3"),
        ("t", "n3"),
    ]
    assert matching_ids(store, "Patient", "identifier=s|v1", visible=None) == []


def test_a_failed_unit_of_work_leaves_no_index_rows(store: Store) -> None:
    with pytest.raises(RuntimeError), store.unit_of_work() as uow:
        uow.append(_version("a", 1), (_identifier("s", "a"),))
        raise RuntimeError("the request failed after its write")
    assert _index_rows(store, "Patient", "a") == []
    assert store.read("Patient", "a") is None


def test_concurrent_async_reads_each_get_their_own_resource(store: Store) -> None:
    """Reads on the event loop at once (PostgreSQL sends those asked for
    while one is in flight together): each gets its resource, or nothing."""
    import asyncio

    _write(store, *(_version(f"p{n}", 1, f'{{"n":{n}}}'.encode()) for n in range(40)))
    _write(store, _version("p3", 2, None))

    async def check() -> None:
        reader = await store.open_async_reader()
        try:
            keys = [f"p{n % 45}" for n in range(200)]
            found = await asyncio.gather(*(reader.read("Patient", key) for key in keys))
        finally:
            await reader.aclose()
        for key, version in zip(keys, found, strict=True):
            n = int(key[1:])
            if n >= 40:
                assert version is None
            elif n == 3:
                assert version is not None and version.deleted and version.version == 2
            else:
                assert version is not None and version.content == f'{{"n":{n}}}'.encode()
                assert (version.res_id, version.current) == (key, True)

    asyncio.run(check())


def test_history_pages_newest_first_by_keyset(store: Store) -> None:
    """Pages follow write order; a page fetched again after more writes holds
    the same entries."""
    for n in range(1, 8):
        _write(store, _version(f"p{n}", 1))
    first = store.history(HistoryQuery(count=3))
    assert [v.res_id for v in first.entries] == ["p7", "p6", "p5"]
    assert first.has_older and not first.has_newer and first.total is None
    second = store.history(HistoryQuery(count=3, before_seq=first.entries[-1].seq))
    assert [v.res_id for v in second.entries] == ["p4", "p3", "p2"]
    _write(store, _version("p8", 1))
    again = store.history(HistoryQuery(count=3, before_seq=first.entries[-1].seq))
    assert [v.res_id for v in again.entries] == ["p4", "p3", "p2"]
    last = store.history(HistoryQuery(count=3, before_seq=second.entries[-1].seq))
    assert [v.res_id for v in last.entries] == ["p1"] and not last.has_older
    back = store.history(HistoryQuery(count=3, after_seq=second.entries[0].seq))
    assert [v.res_id for v in back.entries] == ["p7", "p6", "p5"]
    assert back.has_newer  # p8 arrived meanwhile


def test_history_filters_by_type_instance_and_since(store: Store) -> None:
    _write(store, _version("a", 1, at="2026-01-01T00:00:00.000000Z"))
    _write(store, _version("a", 2, at="2026-02-01T00:00:00.000000Z"))
    _write(store, _version("o", 1, res_type="Observation", at="2026-03-01T00:00:00.000000Z"))
    instance = store.history(HistoryQuery(res_type="Patient", res_id="a"))
    assert [v.version for v in instance.entries] == [2, 1] and instance.total == 2
    by_type = store.history(HistoryQuery(res_type="Observation"))
    assert [v.res_id for v in by_type.entries] == ["o"]
    since = store.history(HistoryQuery(since="2026-01-15T00:00:00.000000Z"))
    assert [(v.res_type, v.version) for v in since.entries] == [("Observation", 1), ("Patient", 2)]


def test_iter_current_yields_live_resources_only(store: Store) -> None:
    _write(store, _version("a", 1), _version("b", 1))
    _write(store, _version("b", 2, None))
    _write(store, _version("a", 2, b'{"v":2}'))
    assert [(v.res_id, v.version) for v in store.iter_current("Patient")] == [("a", 2)]


def test_concurrent_writers_to_one_resource_never_share_a_version(store: Store) -> None:
    """Writers racing on one resource: each version is written exactly once,
    and the current pointer ends on the highest."""
    _write(store, _version("a", 1))
    outcomes: list[str] = []

    def writer(n: int) -> None:
        for _ in range(10):
            try:
                with store.unit_of_work() as uow:
                    current = uow.current("Patient", "a")
                    assert current is not None
                    uow.append(_version("a", current.version + 1, b'{"n":%d}' % n), ())
                outcomes.append("ok")
            except Conflict:
                outcomes.append("conflict")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    written = outcomes.count("ok")
    latest = store.read("Patient", "a")
    assert latest is not None and latest.version == written + 1
    history = store.history(HistoryQuery(res_type="Patient", res_id="a", count=100))
    assert [v.version for v in history.entries] == list(range(written + 1, 0, -1))


def test_the_async_reader_reads_what_the_store_holds(store: Store) -> None:
    """The event-loop reader sees the same versions as the blocking one."""
    import asyncio

    _write(store, _version("a", 1, b'{"v":1}'))
    _write(store, _version("a", 2, None))

    async def check() -> None:
        reader = await store.open_async_reader()
        try:
            latest = await reader.read("Patient", "a")
            assert latest is not None and latest.deleted and latest.version == 2
            first = await reader.vread("Patient", "a", 1)
            assert first is not None and first.content == b'{"v":1}'
            assert await reader.read("Patient", "missing") is None
            assert await reader.vread("Patient", "a", 9) is None
        finally:
            await reader.aclose()

    asyncio.run(check())


def test_an_index_built_with_other_rules_is_rebuilt(store: Store) -> None:
    """After the extraction rules change, ensure_current rebuilds every live
    resource's index rows and records the new rules; then it does nothing."""
    from gateway.search.index import ensure_current, index_version
    from gateway.search.query import parse_search

    ensure_current(store)
    assert store.index_version() == index_version()
    stored(store, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Okafor"}]}, "p1")
    with store.unit_of_work() as uow:
        uow.replace_index("Patient", "p1", [])  # as if built by rules without names
        uow.set_index_version("older rules")
    query = parse_search("Patient", [("family", "okafor")])
    from gateway.interactions.search import search

    def found() -> list[str]:
        return [v.res_id for v in search(store, query, visible=None, includable=bool).matches]

    assert found() == []
    assert ensure_current(store) == 1
    assert found() == ["p1"]
    assert ensure_current(store) is None


def _index_rows(store: Store, res_type: str, res_id: str) -> list[tuple[object, ...]]:
    from gateway.store._sql import INDEX_TABLES

    rows: list[tuple[object, ...]] = []
    for table in INDEX_TABLES:
        found = store.select(
            f"SELECT * FROM {table} WHERE res_type = ? AND res_id = ?", [res_type, res_id]
        )
        rows += [(table, *map(str, row)) for row in found]
    return sorted(rows)


def test_writes_index_what_a_rebuild_would(store: Store) -> None:
    """Writers extract index values before they take the write lock and the
    store stamps ``_lastUpdated``: the rows must be exactly those a rebuild
    from the stored version makes, for creates, updates and transactions."""
    from gateway.access.index import reindex
    from gateway.interactions import bundle, write
    from gateway.interactions.types import ReturnPreference

    created = write.create(
        store,
        as_source(),
        "Patient",
        {
            "resourceType": "Patient",
            "meta": {"tag": [{"system": "urn:t", "code": "demo"}], "versionId": "9"},
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000042"}],
            "name": [{"family": "Ó Briain", "given": ["Siobhán"]}],
            "birthDate": "1950-02",
        },
    )
    patient_id = created.version.res_id
    write.update(
        store,
        as_source(),
        "Patient",
        patient_id,
        {"resourceType": "Patient", "id": patient_id, "name": [{"family": "Okafor"}]},
    )
    answer = bundle.transaction(
        store,
        as_source(),
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:0b0e7bde-cb9c-4b5f-8f4d-3c5b0a6a1d01",
                    "resource": {"resourceType": "Patient", "gender": "female"},
                    "request": {"method": "POST", "url": "Patient"},
                },
                {
                    "resource": {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                        "subject": {"reference": "urn:uuid:0b0e7bde-cb9c-4b5f-8f4d-3c5b0a6a1d01"},
                        "effectiveDateTime": "2024-05-01T10:30:00Z",
                        "valueQuantity": {
                            "value": 61,
                            "system": "http://unitsofmeasure.org",
                            "code": "/min",
                        },
                    },
                    "request": {"method": "POST", "url": "Observation"},
                },
            ],
        },
        base_url="http://gateway.test/fhir",
        prefer=ReturnPreference.MINIMAL,
    )
    written = [("Patient", patient_id)] + [
        tuple(e["response"]["location"].split("/")[-4:-2]) for e in answer["entry"]
    ]
    before = {key: _index_rows(store, *key) for key in written}
    assert all(before.values())
    assert any("_lastUpdated" in row for rows in before.values() for row in rows)
    reindex(store)
    assert {key: _index_rows(store, *key) for key in written} == before


def test_a_rebuild_of_a_large_type_runs_on_one_connection(store_url: str) -> None:
    """``gateway migrate`` opens the store with one connection: a rebuild
    reads a page at a time, holding none between pages, so its writes can
    have it (PostgreSQL waited for a second connection past 500 resources)."""
    from gateway.access.index import entries, reindex

    store = open_store(store_url, pool_size=1)
    try:
        store.migrate()
        with store.unit_of_work() as uow:
            for n in range(1201):
                patient = {"resourceType": "Patient", "id": f"p{n:05d}", "gender": "other"}
                uow.append(
                    StoredVersion(
                        "Patient",
                        patient["id"],
                        1,
                        "2026-01-01T00:00:00.000000Z",
                        "PUT",
                        fhirjson.dumps(patient),
                    ),
                    entries(patient),
                )
        assert reindex(store) == 1201
        assert [v.res_id for v in store.iter_current("Patient")] == [
            f"p{n:05d}" for n in range(1201)
        ]
    finally:
        store.close()
