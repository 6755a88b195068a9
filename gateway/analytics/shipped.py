"""The views the gateway ships for population health analysts, the SQL step
after them, and the pilot's cohort query.

``views/*.json`` are SQL on FHIR ViewDefinitions over the pseudonymised
export; ``sql/derive.sql`` turns their tables (schema ``views``) into the
analysis tables (age bands, typed dates, emergency admissions, lengths of
stay, long-term condition flags); ``sql/cohort.sql`` is the North West
London integrated care pilot's first risk stratification step.
``docs/analytics.md`` documents every column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from importlib.resources import files
from pathlib import Path

import duckdb

from gateway.analytics import output
from gateway.analytics.views import View, compile_view

VIEWS = (
    "people",
    "organisations",
    "encounters",
    "conditions",
    "social_care_episodes",
    "care_home_residence",
)
# The analysis tables derive.sql writes, in the order they are written out.
TABLES = (
    "people",
    "organisations",
    "encounters",
    "conditions",
    "long_term_conditions",
    "social_care_episodes",
    "care_home_residence",
)


@cache
def shipped_views() -> tuple[View, ...]:
    """The shipped ViewDefinitions, compiled."""
    folder = files("gateway.analytics").joinpath("views")
    return tuple(
        compile_view(json.loads(folder.joinpath(f"{name}.json").read_text("utf-8")))
        for name in VIEWS
    )


def sql(name: str) -> str:
    """One of the shipped SQL files (``derive``, ``cohort``)."""
    return files("gateway.analytics").joinpath("sql", f"{name}.sql").read_text("utf-8")


def set_as_at(connection: duckdb.DuckDBPyConnection, as_at: datetime) -> None:
    """The moment the queries stand at (``getvariable('as_at')``)."""
    connection.execute(f"SET VARIABLE as_at = TIMESTAMPTZ '{as_at.isoformat()}'")


def analyse(
    connection: duckdb.DuckDBPyConnection,
    folder: Path,
    as_at: datetime,
    *,
    batch_size: int = output.BATCH_SIZE,
) -> dict[str, int]:
    """The shipped views over the export, then the SQL step: the analysis
    tables in the main schema. The rows each view gave."""
    counts = output.load_views(connection, folder, shipped_views(), batch_size=batch_size)
    set_as_at(connection, as_at)
    connection.execute(sql("derive"))
    return counts


@dataclass(frozen=True)
class CohortMember:
    """One person the cohort step lists."""

    practice_ods: str
    pseudonym: str
    emergency_admissions: int
    latest_admission: date | None
    support: str


COHORT_COLUMNS = (
    "practice_ods",
    "pseudonym",
    "emergency_admissions",
    "latest_admission",
    "support",
)


def cohort(connection: duckdb.DuckDBPyConnection) -> list[CohortMember]:
    """The pilot's cohort from the analysis tables, by practice."""
    return [CohortMember(*row) for row in connection.execute(sql("cohort")).fetchall()]
