"""The growth benchmark's pure parts (``bench.scaling``): each size's people
are the smaller size's and the next ones, the sizes it is given are
checked, and its byte counts and growth table read as they should. The
benchmark itself needs PostgreSQL and takes a long time: it is not run here."""

from __future__ import annotations

import argparse

import pytest

from bench import _population as population
from bench import export, scaling


def test_a_larger_store_holds_the_smaller_ones_people_and_more() -> None:
    small = scaling.people_upto(20250630, 20_000)
    large = scaling.people_upto(20250630, 60_000)
    assert large[: len(small)] == small
    assert scaling.stored(small) <= 20_000 < scaling.stored(small) + export.MAX_PER_PERSON + 1
    assert all(p.size == export.shape(20250630, p.number).size for p in large)


def test_the_sample_and_the_people_written_to_are_different_people() -> None:
    people = scaling.people_upto(20250630, 40_000)
    asked = scaling.sample(20250630, people, 10)
    written = scaling.sample(20250630, people, 10, 1)
    assert len(asked) == len(written) == 10
    assert not {p.res_id for p in asked} & {p.res_id for p in written}
    assert asked[0].res_id == export.patient_id(20250630, 0)


def test_sizes_are_sorted_and_at_least_one_person() -> None:
    assert scaling.parse_sizes("300000,100_000, 1000000") == [100_000, 300_000, 1_000_000]
    with pytest.raises(argparse.ArgumentTypeError):
        scaling.parse_sizes(str(population.ORGANISATIONS + 10))


def test_bytes_are_shown_with_a_binary_unit() -> None:
    assert scaling.human_bytes(512) == "512 B"
    assert scaling.human_bytes(1536) == "1.5 KiB"
    assert scaling.human_bytes(6.2 * 2**30) == "6.2 GiB"
    assert scaling.human_bytes(3 * 2**50) == "3.0 PiB"


def test_the_growth_table_compares_the_last_size_with_the_first() -> None:
    def step(resources: int, p50: float, heap: int) -> scaling.Step:
        return scaling.Step(
            asked=resources,
            resources=resources,
            people=resources // 200,
            grow_s=1.0,
            grow_res_per_s=float(resources),
            audit_entries=100,
            database_bytes=resources * 10_000,
            load_before="1.00 1.00 1.00",
            load_after="1.00 1.00 1.00",
            when="2026-12-07 16:00 UTC",
            latency=[scaling.Latency("read", 300, p50, p50 * 2, p50 * 3, 0.0)],
            tables=[scaling.Table("resource_current", resources, heap * 2, heap, heap // 2)],
        )

    rows = {
        name: (a, b)
        for name, a, b in scaling.growth_rows(step(1000, 2.0, 2**20), step(10_000, 3.0, 2**23))
    }
    assert rows["resources"] == (1000, 10_000)
    assert rows["read p50 ms"] == (2.0, 3.0)
    assert rows["resource_current MiB"] == (2.0, 16.0)
    assert rows["database B/resource"] == (10_000, 10_000)
    assert rows["audit_* MiB"] == (0.0, 0.0)
