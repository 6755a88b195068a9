"""The bulk export benchmark (``bench.export``) end to end on a tiny
SQLite store: it builds the store, exports it (writing exactly what the
secondary-use rules let out), reads ``$everything`` through a real server,
and prints and records positive figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import _population as population
from bench import export
from gateway.export import jobs
from gateway.export.asking import SYSTEM, parse_ask
from gateway.store import open_store


def test_the_population_has_its_shape() -> None:
    people = export.people_for(20250630, 50_000)
    sizes = [p.size for p in people]
    assert population.ORGANISATIONS + sum(sizes) <= 50_000
    assert all(population.MIN_PER_PERSON <= s <= export.MAX_PER_PERSON for s in sizes)
    assert 150 < sum(sizes) / len(sizes) < 250
    assert any(p.opted_out for p in people) and any(p.restricted for p in people)
    assert people == export.people_for(20250630, 200_000)[: len(people) - 1] + people[-1:]
    numbers = population.nhs_numbers_for(20250630, len(people))
    opted = next(p for p in people if p.opted_out)
    records = export.person_records(20250630, opted, numbers[opted.number])
    assert len(records) == opted.size
    assert records[0].res_id == export.patient_id(20250630, opted.number)
    assert records[-1].resource["code"]["coding"][0]["code"] == "827241000000103"


def test_the_benchmark_prints_positive_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures_path = tmp_path / "figures.json"
    argv = ["--resources", "2000", "--stores", "sqlite", "--loaders", "1", "--practices", "1"]
    argv += ["--cache", str(tmp_path / "cache"), "--json", str(figures_path)]
    assert export.main(argv) == 0
    printed = capsys.readouterr().out
    assert "Bulk export" in printed and "$everything" in printed
    assert "export / $everything" in printed and "MISMATCH" not in printed
    figures = json.loads(figures_path.read_text())
    assert figures["skipped"] == {}
    assert [e["resources"] for e in figures["export"]] == [400, 2000]
    for run in figures["export"]:
        assert run["written"] == run["expected"] > 0
        assert run["written"] < run["resources"]  # the opted-out, restricted and Consents stay
        for name in ("wall_s", "cpu_s", "per_s", "per_core", "files", "bytes"):
            assert run[name] > 0, name
        assert run["rss_growth"] >= 0
    (everything,) = figures["everything"]
    assert everything["people"] >= 1 and everything["requests"] >= everything["people"]
    assert everything["read"] > 0 and everything["per_s"] > 0
    assert set(everything["statuses"]) == {"200"}

    # Run again: the stores come from the cache, not built afresh, and an
    # export an interrupted run left waiting is not the one measured.
    (cached,) = (tmp_path / "cache").glob("sqlite-2000-*/export.db")
    store = open_store(f"sqlite:///{cached}")
    try:
        ask = parse_ask(SYSTEM, [("_type", "Condition")], searchable={"Condition"})
        jobs.accept(store, export.ANALYTICS, ask, "left over")
    finally:
        store.close()
    assert export.main([*argv, "--no-everything", "--no-small", "--types", "Patient"]) == 0
    printed = capsys.readouterr().out
    assert "reusing" in printed and "1 export(s) an earlier run left unfinished" in printed
    (again,) = json.loads(figures_path.read_text())["export"]
    assert again["expected"] == -1 and 0 < again["written"] < figures["export"][1]["written"]
