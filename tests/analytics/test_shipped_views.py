"""The shipped views, the SQL step and the pilot's cohort on a small
handwritten pseudonymised export (``export_builder``), as at its manifest's
transactionTime, 2026-12-01."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from gateway.analytics import export, output, shipped
from tests.analytics import export_builder as b

LISTED = "listed"  # two emergency admissions within 12 months, an open service
ONE_ADMISSION = "one admission"
APART = "thirteen months apart"
UNSUPPORTED = "no social care or care home"
CLOSED = "closed episode"
RESIDENT = "care home resident"  # by a home referred to by id
ELECTIVE = "elective admissions"


def _world() -> list[dict[str, Any]]:
    practice = b.organisation("f1a2", "F84001", "The Practice")
    home = b.organisation("c4r3h0m3", "VM1A2", "Sunrise Care Home")
    return [
        practice,
        home,
        b.patient(LISTED, practice=b.by_ods("E83001"), birth="1941-01"),
        b.admission(LISTED, 1, "2026-02-10T08:00:00Z", "2026-02-14T12:00:00Z"),
        b.admission(LISTED, 2, "2026-10-01T22:00:00+01:00", "2026-10-02T10:00:00+01:00"),
        b.social_care(LISTED, 1, "2025-06-01"),
        b.condition(LISTED, 1, "44054006", "Type 2 diabetes mellitus"),
        b.condition(LISTED, 2, "13645005", "Chronic obstructive lung disease"),
        b.patient(ONE_ADMISSION, practice=b.by_ods("E83001"), birth="1961-12"),
        b.admission(ONE_ADMISSION, 1, "2026-09-01T10:00:00Z", "2026-09-03T10:00:00Z"),
        b.admission(ONE_ADMISSION, 2, "2026-09-20T10:00:00Z", method="11"),
        b.social_care(ONE_ADMISSION, 1, "2024-01-01"),
        b.patient(APART, practice=b.by_ods("E83001")),
        b.admission(APART, 1, "2025-10-15T10:00:00Z", "2025-10-20T10:00:00Z"),
        b.admission(APART, 2, "2026-11-15T10:00:00Z", "2026-11-18T10:00:00Z"),
        b.social_care(APART, 1, "2024-01-01"),
        b.patient(UNSUPPORTED, practice=b.by_ods("E83001")),
        b.admission(UNSUPPORTED, 1, "2026-03-01T10:00:00Z", "2026-03-02T10:00:00Z"),
        b.admission(UNSUPPORTED, 2, "2026-04-01T10:00:00Z", "2026-04-02T10:00:00Z"),
        b.patient(CLOSED, practice=b.by_ods("E83001")),
        b.admission(CLOSED, 1, "2026-05-01T10:00:00Z", "2026-05-02T10:00:00Z"),
        b.admission(CLOSED, 2, "2026-06-01T10:00:00Z", "2026-06-09T10:00:00Z"),
        b.social_care(CLOSED, 1, "2024-01-01", "2026-11-01"),
        b.residence(CLOSED, "2023-01-01", "2025-01-01"),
        b.patient(RESIDENT, practice={"reference": "Organization/f1a2"}, birth="1931-06"),
        b.admission(RESIDENT, 1, "2026-07-01T10:00:00Z", "2026-07-05T10:00:00Z", method="2A"),
        b.admission(RESIDENT, 2, "2026-08-01T10:00:00Z", "2026-08-03T10:00:00Z", method="22"),
        b.residence(RESIDENT, "2022-03-01", home={"reference": "Organization/c4r3h0m3"}),
        b.condition(RESIDENT, 1, "26929004", "Alzheimer's disease"),
        b.condition(RESIDENT, 2, "195967001", "Asthma", status="resolved"),
        b.patient(ELECTIVE, practice=b.by_ods("E83001")),
        b.admission(ELECTIVE, 1, "2026-03-01T10:00:00Z", "2026-03-02T10:00:00Z", method="12"),
        b.admission(ELECTIVE, 2, "2026-04-01T10:00:00Z", "2026-04-02T10:00:00Z", method="13"),
        b.social_care(ELECTIVE, 1, "2024-01-01"),
    ]


@pytest.fixture
def analysed(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    folder = b.write_export(tmp_path / "export", _world(), split=3)
    with output.database() as connection:
        shipped.analyse(connection, folder, export.as_at(folder), batch_size=4)
        yield connection


def _rows(connection: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    cursor = connection.execute(query)
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_the_cohort_lists_two_emergency_admissions_with_an_open_case_or_a_home(
    analysed: duckdb.DuckDBPyConnection,
) -> None:
    """Listed: two emergency admissions within the 12 months and an open
    service, or a current care-home stay. Not listed: one emergency
    admission (the other elective), admissions 13 months apart, no social
    care or care home, a closed service and a finished stay, elective
    admissions only."""
    members = shipped.cohort(analysed)
    assert [(m.pseudonym, m.practice_ods, m.emergency_admissions, m.support) for m in members] == [
        (b.pseudonym(LISTED), "E83001", 2, "social care"),
        (b.pseudonym(RESIDENT), "F84001", 2, "care home"),
    ]


def test_people_have_age_bands_and_their_practice_by_ods_code(
    analysed: duckdb.DuckDBPyConnection,
) -> None:
    """Age from the birth month at the transaction time, 1 December 2026:
    January 1941 is 85, December 1961 is 65 (a birthday counts from the
    first of its month), June 1931 is 95; a practice referred to by id is
    named by its ODS code."""
    people = {row["pseudonym"]: row for row in _rows(analysed, "SELECT * FROM people")}
    listed, resident = people[b.pseudonym(LISTED)], people[b.pseudonym(RESIDENT)]
    assert (listed["age"], listed["age_band"], listed["practice_ods"]) == (85, "85+", "E83001")
    assert (resident["age"], resident["practice_ods"]) == (95, "F84001")
    one = people[b.pseudonym(ONE_ADMISSION)]
    assert (one["age"], one["age_band"]) == (65, "65-74")
    assert (listed["sex"], listed["postcode_district"], listed["borough"]) == (
        "female",
        "NW1",
        "Camden",
    )
    assert len(people) == 7


def test_encounters_have_emergency_flags_and_lengths_of_stay(
    analysed: duckdb.DuckDBPyConnection,
) -> None:
    """Length of stay in London days; an open stay has none; the provider
    by ODS code."""
    rows = _rows(
        analysed,
        "SELECT admission_method, emergency_admission, length_of_stay_days, class, provider_ods "
        f"FROM encounters WHERE pseudonym = '{b.pseudonym(ONE_ADMISSION)}' ORDER BY start_at",
    )
    assert rows == [
        {"admission_method": "21", "emergency_admission": True, "length_of_stay_days": 2,
         "class": "IMP", "provider_ods": "RAL"},
        {"admission_method": "11", "emergency_admission": False, "length_of_stay_days": None,
         "class": "IMP", "provider_ods": "RAL"},
    ]  # fmt: skip
    overnight = _rows(
        analysed,
        "SELECT length_of_stay_days FROM encounters "
        f"WHERE pseudonym = '{b.pseudonym(LISTED)}' ORDER BY start_at",
    )
    assert [row["length_of_stay_days"] for row in overnight] == [4, 1]


def test_long_term_condition_flags(analysed: duckdb.DuckDBPyConnection) -> None:
    """Flags from the SNOMED CT list; a resolved condition is not flagged."""
    flags = {row["pseudonym"]: row for row in _rows(analysed, "SELECT * FROM long_term_conditions")}
    listed, resident = flags[b.pseudonym(LISTED)], flags[b.pseudonym(RESIDENT)]
    assert (listed["diabetes"], listed["copd"], listed["long_term_condition_count"]) == (
        True,
        True,
        2,
    )
    assert (resident["dementia"], resident["asthma"]) == (True, False)
    conditions = _rows(analysed, "SELECT count(*) AS n FROM conditions")
    assert conditions == [{"n": 8}]  # four Conditions, two codings each


def test_care_home_and_social_care_rows(analysed: duckdb.DuckDBPyConnection) -> None:
    """Residence episodes are not social care episodes; a home referred to
    by id is named by its ODS code."""
    homes = _rows(
        analysed, "SELECT pseudonym, home_ods, care_type, status FROM care_home_residence"
    )
    assert sorted((r["home_ods"], r["care_type"], r["status"]) for r in homes) == [
        ("VM1A2", None, "active"),  # the kind of care is words, which the export removes
        ("VM1A2", None, "finished"),
    ]
    services = _rows(
        analysed, "SELECT DISTINCT service_type, council_ods FROM social_care_episodes"
    )
    assert services == [{"service_type": "LTS-C", "council_ods": "202"}]


def test_views_are_written_as_parquet_and_csv(
    analysed: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """A Parquet and a CSV file per table, with the view's column types."""
    counts = output.write_tables(analysed, shipped.TABLES, tmp_path / "out")
    assert counts["people"] == 7 and counts["encounters"] == 14
    parquet = tmp_path / "out" / "encounters.parquet"
    types = {row[0]: row[1] for row in analysed.execute(f"DESCRIBE FROM '{parquet}'").fetchall()}
    assert types["emergency_admission"] == "BOOLEAN"
    assert types["start_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["length_of_stay_days"] == "BIGINT"
    with (tmp_path / "out" / "people.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 7


def test_the_documented_cohort_query_is_the_one_run() -> None:
    """docs/analytics.md shows cohort.sql's query as it is, so a team
    running it on the Parquet files gets the command's answer."""
    query = "\n".join(
        line for line in shipped.sql("cohort").splitlines() if not line.startswith("--")
    ).strip()
    docs = (Path(__file__).resolve().parents[2] / "docs" / "analytics.md").read_text("utf-8")
    assert query in docs
