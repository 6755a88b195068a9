"""``gateway analytics ...``: the shipped views over a bulk export, written
as Parquet and CSV; the integrated care pilot's cohort."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from gateway.analytics import export, output, shipped
from gateway.analytics.views import ViewDefinitionError, ViewEvaluationError, compile_view


def add_commands(commands: Any) -> Any:
    """Add ``gateway analytics``; its sub-commands (the edge adds the one
    that reaches a gateway, ``export``)."""
    analytics = commands.add_parser(
        "analytics", help="analysis-ready views over a population health bulk export"
    )
    actions = analytics.add_subparsers(dest="action", required=True)
    views = actions.add_parser(
        "views",
        help="run the shipped views (or --view files) over an export: Parquet and CSV per view",
    )
    views.add_argument("--export", type=Path, required=True, help="the export's folder")
    views.add_argument("--out", type=Path, required=True, help="where to write the files")
    views.add_argument(
        "--view",
        type=Path,
        action="append",
        default=[],
        help="a ViewDefinition JSON file to run instead of the shipped views (repeatable)",
    )
    views.add_argument(
        "--database", type=Path, help="keep the DuckDB database here (default: a scratch file)"
    )
    cohort = actions.add_parser(
        "cohort",
        help="people with 2+ emergency admissions in the 12 months before the export "
        "and an open social care case or a current care-home stay, by practice",
    )
    cohort.add_argument("--export", type=Path, required=True, help="the export's folder")
    cohort.add_argument("--csv", type=Path, help="also write the list to this CSV file")
    views.set_defaults(func=run)
    cohort.set_defaults(func=run)
    return actions


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    try:
        if args.action == "views":
            return _views(args, out)
        return _cohort(args, out)
    except (export.ExportError, ViewDefinitionError, ViewEvaluationError, OSError) as exc:
        print(f"gateway analytics {args.action}: {exc}", file=sys.stderr)
        return 1


def _views(args: argparse.Namespace, out: TextIO) -> int:
    started = time.monotonic()
    as_at = export.as_at(args.export)
    with output.database(args.database) as connection:
        if args.view:
            views = [compile_view(json.loads(path.read_text("utf-8"))) for path in args.view]
            output.load_views(connection, args.export, views)
            tables = [f"{output.VIEW_SCHEMA}.{view.name}" for view in views]
        else:
            shipped.analyse(connection, args.export, as_at)
            tables = list(shipped.TABLES)
        counts = output.write_tables(connection, tables, args.out)
    _table(out, ("table", "rows"), [(name, count) for name, count in counts.items()])
    print(
        f"as at {as_at.isoformat()}; written to {args.out} in {time.monotonic() - started:.1f} s",
        file=out,
    )
    return 0


def _cohort(args: argparse.Namespace, out: TextIO) -> int:
    as_at = export.as_at(args.export)
    with output.database() as connection:
        shipped.analyse(connection, args.export, as_at)
        members = shipped.cohort(connection)
    rows = [
        (m.practice_ods, m.pseudonym, m.emergency_admissions, m.latest_admission or "", m.support)
        for m in members
    ]
    _table(out, shipped.COHORT_COLUMNS, rows)
    by_practice: dict[str, int] = {}
    for member in members:
        by_practice[member.practice_ods] = by_practice.get(member.practice_ods, 0) + 1
    print(file=out)
    _table(out, ("practice_ods", "people"), sorted(by_practice.items()))
    print(
        f"{len(members)} people in {len(by_practice)} practices, as at {as_at.isoformat()}",
        file=out,
    )
    if args.csv is not None:
        with args.csv.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(shipped.COHORT_COLUMNS)
            writer.writerows(rows)
    return 0


def _table(out: TextIO, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    cells = [tuple(str(c) for c in header), *(tuple(str(c) for c in row) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for number, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)
        if number == 0:
            print("  ".join("-" * w for w in widths), file=out)
