"""The consent-filtered search benchmark's data (``bench._population``) and
bulk loader (``bench.search_consent``): deterministic, valid FHIR, written
as a load writes it, and seen by each requester as the benchmark's answer
checks assume."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from bench import _population as population
from bench._population import AUDIENCES, PersonPlan
from bench.search_consent import (
    BASE_URL,
    LOADER,
    SEARCHES,
    Budgeted,
    Checker,
    Runner,
    expected_of,
    write_records,
)
from gateway import fhirjson
from gateway.auth.scopes import Scopes
from gateway.interactions import bundle
from gateway.interactions.types import ReturnPreference
from gateway.store import Store, open_store

SEED = 20250630
PER_PERSON = 24


def _store(path: Path) -> Store:
    store = open_store(f"sqlite:///{path}")
    store.migrate()
    return store


def _chosen_people() -> list[int]:
    """A few people of each kind: registered with the 1% practice, with the
    council, refusing the council while it supports them, and others."""
    plans = [population.plan_person(SEED, n) for n in range(2000)]
    chosen = {0, 1, 2, 3}
    kinds: list[Callable[[PersonPlan], bool]] = [
        lambda p: population.sees("1%", p),
        lambda p: population.sees("10%", p),
        lambda p: p.council and p.dissent,
        lambda p: p.dissent and not p.council,
    ]
    for wanted in kinds:
        chosen.update([p.number for p in plans if wanted(p)][:2])
    return sorted(chosen)


def test_a_person_is_the_same_whatever_the_load() -> None:
    numbers = population.nhs_numbers_for(SEED, 50)
    assert numbers == population.nhs_numbers_for(SEED, 100)[:50]
    first = population.records(SEED, 7, numbers[7], PER_PERSON)
    again = population.records(SEED, 7, numbers[7], PER_PERSON)
    assert first == again
    assert len(first.records) == PER_PERSON
    assert first.records[0].res_type == "Patient"
    assert first.patient_id == population.patient_id(SEED, 7, PER_PERSON)
    ids = [r.res_id for n in range(10) for r in population.records(SEED, n, numbers[n], 30).records]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # growing with the load, as the server's ids grow with time


def test_each_requester_sees_its_share() -> None:
    plans = [population.plan_person(SEED, n) for n in range(5000)]
    shares = {a.key: sum(population.sees(a.key, p) for p in plans) / len(plans) for a in AUDIENCES}
    assert 0.006 < shares["1%"] < 0.014
    assert 0.085 < shares["10%"] < 0.115
    assert shares["100%"] == 1.0
    assert shares["none"] == 0.0


def _rows(store: Store, res_type: str, res_id: str) -> dict[str, list[str]]:
    """Every index row of a resource but its ``_lastUpdated``, by table."""
    tables = [
        str(name)
        for (name,) in store.select(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'search_%'", []
        )
    ]
    found = {}
    for table in tables:
        rows = store.select(
            f"SELECT * FROM {table} WHERE res_type = ? AND res_id = ? AND param != '_lastUpdated'",
            [res_type, res_id],
        )
        found[table] = sorted(repr(row) for row in rows)
    return found


def _content(store: Store, res_type: str, res_id: str) -> dict[str, Any]:
    version = store.read(res_type, res_id)
    assert version is not None and version.content is not None
    content: dict[str, Any] = fhirjson.loads(version.content)
    for element in ("versionId", "lastUpdated"):
        content["meta"].pop(element)
    return content


def test_the_bulk_loader_writes_what_a_load_writes(tmp_path: Path) -> None:
    """A person written by the bulk loader, and the same person sent as a
    transaction Bundle by the same source (validated on the way): the same
    resources, the same index rows."""
    number = next(
        n for n in range(2000) if (p := population.plan_person(SEED, n)).council and p.dissent
    )
    numbers = population.nhs_numbers_for(SEED, number + 1)
    person = population.records(SEED, number, numbers[number], PER_PERSON)
    organisations = population.organisations(SEED)
    kinds = {r.res_type for r in person.records}
    assert {"Patient", "EpisodeOfCare", "Consent", "Observation", "Condition"} <= kinds

    bulk = _store(tmp_path / "bulk.db")
    write_records(bulk, organisations)
    write_records(bulk, person.records)

    loaded = _store(tmp_path / "load.db")
    for records in (organisations, person.records):
        body = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"{BASE_URL}/{r.res_type}/{r.res_id}",
                    "resource": {**r.resource, "id": r.res_id},
                    "request": {"method": "PUT", "url": f"{r.res_type}/{r.res_id}"},
                }
                for r in records
            ],
        }
        bundle.transaction(
            loaded,
            LOADER,
            fhirjson.loads(fhirjson.dumps(body)),
            base_url=BASE_URL,
            prefer=ReturnPreference.MINIMAL,
        )
    for record in [*organisations, *person.records]:
        written = _content(bulk, record.res_type, record.res_id)
        assert written == _content(loaded, record.res_type, record.res_id)
        assert written["meta"]["source"] == "urn:ods:BENCH"
        rows = _rows(bulk, record.res_type, record.res_id)
        assert rows == _rows(loaded, record.res_type, record.res_id)
        assert rows["search_token"]
    bulk.close()
    loaded.close()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Checker]]:
    """A few people of each kind, bulk-loaded, and what each requester may see of them."""
    chosen = _chosen_people()
    numbers = population.nhs_numbers_for(SEED, chosen[-1] + 1)
    people = [population.records(SEED, n, numbers[n], PER_PERSON) for n in chosen]
    store = _store(tmp_path_factory.mktemp("consent") / "g.db")
    write_records(store, population.organisations(SEED))
    write_records(store, [r for p in people for r in p.records])
    expected = expected_of(people)
    assert expected.people["1%"] >= 1
    assert 0 < expected.people["10%"] < expected.people["100%"] == len(chosen)
    assert expected.latest["1%"] != expected.latest["100%"]  # the checks can tell them apart
    yield store, Checker(SEED, PER_PERSON, chosen, expected)
    store.close()


@pytest.mark.parametrize("search_key", [s.key for s in SEARCHES])
def test_each_requester_gets_the_answer_the_benchmark_expects(
    loaded: tuple[Store, Checker], search_key: str
) -> None:
    """The benchmark's answer checks agree with the consent decisions of the
    gateway itself, through the repository, for each requester."""
    store, checker = loaded
    search = next(s for s in SEARCHES if s.key == search_key)

    async def answers() -> list[str]:
        reader = await store.open_async_reader()
        runner = Runner(Budgeted(store), reader, Scopes.parse("system/*.read"))
        problems = []
        try:
            plain, _ = await runner.unenforced(search)
            problems.append(f"unenforced: {checker.problem(search, 'all', plain)}")
            for audience in AUDIENCES:
                answer, _ = await runner.enforced(audience, search)
                problems.append(f"{audience.key}: {checker.problem(search, audience.key, answer)}")
        finally:
            await reader.aclose()
        return problems

    problems = anyio.run(answers)
    assert problems == [f"{key}: None" for key in ["unenforced", *(a.key for a in AUDIENCES)]]
