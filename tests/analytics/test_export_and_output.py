"""Reading an export folder whatever its files are called, and writing
views' rows through DuckDB in batches, typed as the view declares."""

from __future__ import annotations

import argparse
import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from gateway.analytics import commands, export, output
from gateway.analytics.views import compile_view
from tests.analytics import export_builder as b


def test_files_are_read_by_each_lines_resource_type_not_by_name(tmp_path: Path) -> None:
    """Split files, a file named after nothing, a gzipped part and blank
    lines: every resource is found, by its resourceType, parts in order."""
    (tmp_path / "Patient-2.ndjson").write_text(json.dumps(b.patient("b")) + "\n\n")
    (tmp_path / "Patient-10.ndjson").write_text(json.dumps(b.patient("c")) + "\n")
    (tmp_path / "Patient-1.ndjson").write_text(json.dumps(b.patient("a")) + "\n")
    (tmp_path / "mixed.ndjson").write_text(
        json.dumps(b.admission("a", 1, "2026-01-01")) + "\n" + json.dumps(b.patient("d"))
    )
    with gzip.open(tmp_path / "zipped.ndjson.gz", "wt") as f:
        f.write(json.dumps(b.patient("e")) + "\n")
    (tmp_path / "notes.txt").write_text("not part of the export")
    found = [r["id"] for r in export.resources(tmp_path, frozenset({"Patient"}))]
    assert found == [b.pseudonym(n) for n in ("a", "b", "c", "d", "e")]


def test_a_line_that_is_not_a_resource_names_its_file_and_line(tmp_path: Path) -> None:
    """A broken export is refused with where it broke."""
    (tmp_path / "Patient.ndjson").write_text(json.dumps(b.patient("a")) + "\n{not json\n")
    with pytest.raises(export.ExportError, match=r"Patient.ndjson line 2"):
        list(export.resources(tmp_path))


def test_the_moment_is_the_manifests_transaction_time_else_now(tmp_path: Path) -> None:
    """transactionTime from manifest.json; without one, now."""
    b.write_export(tmp_path / "with", [b.patient("a")])
    assert export.as_at(tmp_path / "with") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    b.write_export(tmp_path / "without", [b.patient("a")], transaction_time=None)
    before = datetime.now(UTC)
    assert before <= export.as_at(tmp_path / "without") <= datetime.now(UTC)
    manifest = export.read_manifest(tmp_path / "with")
    assert manifest is not None and manifest.output_counts == {"Patient": 1}


def test_rows_are_written_in_batches_with_the_views_types(tmp_path: Path) -> None:
    """More rows than a batch, lists, booleans, integers and decimals reach
    the Parquet file as the view declares them."""
    people = [b.patient(f"p{n}", birth=f"19{n:02d}-01") for n in range(25)]
    b.write_export(tmp_path / "export", people)
    view = compile_view(
        {
            "name": "typed",
            "resource": "Patient",
            "select": [
                {
                    "column": [
                        {"name": "key", "path": "getResourceKey()", "type": "id"},
                        {"name": "female", "path": "gender = 'female'", "type": "boolean"},
                        {"name": "lines", "path": "address.postalCode", "type": "string",
                         "collection": True},
                        {"name": "count", "path": "address.count()", "type": "integer"},
                        {"name": "half", "path": "1.5 / 3", "type": "decimal"},
                    ]
                }
            ],
        }
    )  # fmt: skip
    with output.database() as connection:
        counts = output.load_views(connection, tmp_path / "export", [view], batch_size=7)
        assert counts == {"typed": 25}
        written = output.write_tables(connection, ["views.typed"], tmp_path / "out")
        assert written == {"typed": 25}
        parquet = tmp_path / "out" / "typed.parquet"
        types = dict(
            (name, kind) for name, kind, *_ in connection.execute(f"DESCRIBE FROM '{parquet}'")
            .fetchall()
        )  # fmt: skip
        assert types == {
            "key": "VARCHAR",
            "female": "BOOLEAN",
            "lines": "VARCHAR[]",
            "count": "INTEGER",
            "half": "VARCHAR",
        }
        row = connection.execute(f"SELECT * FROM '{parquet}' LIMIT 1").fetchone()
        assert row is not None and row[1:] == (True, ["NW1"], 1, "0.5")
    assert (tmp_path / "out" / "typed.csv").read_text().splitlines()[0] == (
        "key,female,lines,count,half"
    )


def _args(**values: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands.add_commands(parser.add_subparsers(dest="command"))
    arguments = ["analytics"]
    for key, value in values.items():
        if key == "action":
            arguments.append(str(value))
        else:
            arguments += [f"--{key}", str(value)]
    return parser.parse_args(arguments)


def test_the_views_command_prints_row_counts(tmp_path: Path) -> None:
    """``gateway analytics views`` writes a Parquet and a CSV per table."""
    resources = [b.patient("a"), b.admission("a", 1, "2026-01-01")]
    folder = b.write_export(tmp_path / "export", resources)
    printed = io.StringIO()
    assert commands.run(_args(action="views", export=folder, out=tmp_path / "out"), printed) == 0
    assert "people                1" in printed.getvalue()
    assert (tmp_path / "out" / "encounters.parquet").is_file()
    assert (tmp_path / "out" / "long_term_conditions.csv").is_file()


def test_the_cohort_command_prints_and_writes_csv(tmp_path: Path) -> None:
    """``gateway analytics cohort`` lists by practice, and writes --csv."""
    folder = b.write_export(
        tmp_path / "export",
        [
            b.patient("a", practice=b.by_ods("E1")),
            b.admission("a", 1, "2026-06-01", "2026-06-02"),
            b.admission("a", 2, "2026-07-01", "2026-07-02"),
            b.residence("a", "2020-01-01"),
        ],
    )
    printed = io.StringIO()
    args = _args(action="cohort", export=folder, csv=tmp_path / "cohort.csv")
    assert commands.run(args, printed) == 0
    assert "1 people in 1 practices" in printed.getvalue()
    assert (tmp_path / "cohort.csv").read_text().splitlines() == [
        "practice_ods,pseudonym,emergency_admissions,latest_admission,support",
        f"E1,{b.pseudonym('a')},2,2026-07-01,care home",
    ]


def test_a_missing_export_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    """A folder that is not there: exit 1 with the reason."""
    args = _args(action="views", export=tmp_path / "nothing", out=tmp_path / "out")
    assert commands.run(args, io.StringIO()) == 1


def test_the_views_command_runs_your_own_view_files(tmp_path: Path) -> None:
    """``--view FILE`` runs that ViewDefinition instead of the shipped
    ones; ``--database`` keeps its table for querying afterwards."""
    folder = b.write_export(tmp_path / "export", [b.patient("a"), b.patient("b", gender="male")])
    view = tmp_path / "sexes.json"
    view.write_text(
        json.dumps(
            {
                "name": "sexes",
                "resource": "Patient",
                "select": [{"column": [{"name": "sex", "path": "gender", "type": "code"}]}],
            }
        )
    )
    parser = argparse.ArgumentParser()
    commands.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["analytics", "views", "--export", str(folder), "--out", str(tmp_path / "out"),
         "--view", str(view), "--database", str(tmp_path / "kept.duckdb")]
    )  # fmt: skip
    assert commands.run(args, io.StringIO()) == 0
    assert sorted((tmp_path / "out").iterdir()) == [
        tmp_path / "out" / "sexes.csv",
        tmp_path / "out" / "sexes.parquet",
    ]
    with duckdb.connect(str(tmp_path / "kept.duckdb")) as kept:
        assert kept.execute("SELECT sex FROM views.sexes ORDER BY sex").fetchall() == [
            ("female",),
            ("male",),
        ]
