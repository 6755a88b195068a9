"""``gateway load`` (source files into the store, with a progress bar, a
summary and a rejection report) and ``gateway matches`` (the operator's list
of probable matches: list, dismiss, merge)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from gateway.errors import GatewayError
from gateway.interactions.provenance import Author
from gateway.loading.ledger import archived
from gateway.loading.matches import decide, probable_matches
from gateway.loading.records import LoadReport, load, merge_patients, settled
from gateway.loading.source import ForSource
from gateway.loading.sources import FORMATS
from gateway.loading.workers import WorkerFailed
from gateway.store import Store


def add_commands(commands: Any) -> None:
    loader = commands.add_parser("load", help="map and load source files (see mappings/)")
    loader.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    loader.add_argument("--format", required=True, choices=FORMATS)
    loader.add_argument(
        "--source-org", required=True, help="the ODS code of the organisation the files are from"
    )
    loader.add_argument("--rejections", type=Path, help="write the rejected records here (CSV)")
    loader.add_argument(
        "--jobs",
        type=_jobs,
        default=os.cpu_count() or 1,
        help="worker processes that map and validate records for the one writer "
        "(default: the number of cores; 1 maps in the writer's process)",
    )
    loader.add_argument("files", nargs="+", type=Path)

    archived = commands.add_parser(
        "archived", help="a loaded source record as it came (an HL7 message with its Z-segments)"
    )
    archived.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    archived.add_argument("--format", required=True, choices=FORMATS)
    archived.add_argument("--source-org", required=True, help="the ODS code it came from")
    archived.add_argument("key", help="the source's id for it (MSH-10, say), as the summary shows")

    matches = commands.add_parser(
        "matches", help="records that may be one person, for an operator to merge or dismiss"
    )
    matches.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    actions = matches.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the probable matches")
    listing.add_argument("--all", action="store_true", help="decided ones too")
    for action, text in (
        ("dismiss", "they are two people: take the pair off the list"),
        ("merge", "they are one person: the second is merged into the first"),
    ):
        one = actions.add_parser(action, help=text)
        one.add_argument("keep", help="a Patient id")
        one.add_argument("other", help="the other Patient id")
        one.add_argument("--operator", required=True, help="who decided (for the record)")


def _jobs(text: str) -> int:
    jobs = int(text)
    if jobs < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return jobs


class ProgressBar:
    """A progress bar on a terminal; on anything else, a line now and then."""

    def __init__(self, total_bytes: int, out: TextIO = sys.stderr) -> None:
        self.total = max(total_bytes, 1)
        self.out = out
        self.started = self.shown = time.monotonic()
        self.tty = out.isatty()

    def __call__(self, report: LoadReport, position: int) -> None:
        now = time.monotonic()
        if now - self.shown < (0.2 if self.tty else 10.0):
            return
        self.shown = now
        rate = report.records / max(now - self.started, 1e-9)
        share = min(position / self.total, 1.0)
        text = (
            f"{share:6.1%} {report.records:,} records ({rate:,.0f}/s), "
            f"{len(report.rejections):,} rejected"
        )
        if self.tty:
            filled = int(share * 30)
            print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {text}", end="", file=self.out)
        else:
            print(text, file=self.out)
        self.out.flush()

    def done(self) -> None:
        if self.tty:
            print(file=self.out)


def run_load(args: argparse.Namespace, store: Store) -> int:
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        print(f"no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    bar = ProgressBar(sum(path.stat().st_size for path in args.files))
    started = time.monotonic()
    report = LoadReport()
    stopped = None
    try:
        with settled():
            load(
                store, args.format, args.source_org, args.files, bar, jobs=args.jobs, report=report
            )
    except WorkerFailed as exc:
        stopped = exc
    bar.done()
    took = time.monotonic() - started
    print(f"records read      {report.records:>8}   ({report.records / max(took, 1e-9):,.0f}/s)")
    print(f"loaded            {report.loaded:>8}")
    print(f"already loaded    {report.unchanged:>8}")
    if report.superseded:
        print(f"  of them older   {report.superseded:>8}   (than a record of the person on file)")
    print(f"rejected          {len(report.rejections):>8}")
    for res_type, count in sorted(report.written.items()):
        print(f"  {res_type:<26}{count:>6} written")
    if report.probable_matches:
        print(f"probable matches  {report.probable_matches:>8}   (new: see `gateway matches list`)")
    if stopped is not None:
        print(
            f"stopped: {stopped}\n"
            f"the records before {stopped.where} of {stopped.file} are loaded or rejected as "
            "reported, none from it on; "
            "load the files again to load the rest (what is loaded is not written twice)",
            file=sys.stderr,
        )
    if not report.rejections:
        return 0 if stopped is None else 3
    lines = ["file,record,source id,reason"] + [
        ",".join(csv_field(x) for x in (r.file, r.record, r.key, r.reason))
        for r in report.rejections
    ]
    if args.rejections:
        args.rejections.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"rejections written to {args.rejections}")
    else:
        print("\n".join(lines[1:]), file=sys.stderr)
    return 1 if stopped is None else 3


def csv_field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n') else value


def run_archived(args: argparse.Namespace, store: Store) -> int:
    content = archived(store, args.source_org, args.format, args.key)
    if content is None:
        print("no such record was loaded from that source", file=sys.stderr)
        return 1
    sys.stdout.write(content.decode("utf-8", errors="replace").replace("\r", "\n"))
    if not content.endswith((b"\n", b"\r")):
        sys.stdout.write("\n")
    return 0


def run_matches(args: argparse.Namespace, store: Store) -> int:
    if args.action == "list":
        found = probable_matches(store, None if args.all else "open")
        for match in found:
            decided = f"  {match.decided_by} {match.decided_at}" if match.decided_by else ""
            print(
                f"Patient/{match.patient_id}  Patient/{match.candidate_id}  "
                f"{match.status:<9} {match.found_at}  {match.reason}{decided}"
            )
        if not found:
            print("no probable matches to look at")
        return 0
    if args.action == "dismiss":
        if not decide(store, args.keep, args.other, "dismissed", args.operator):
            print("that pair is not on the list", file=sys.stderr)
            return 1
        print("dismissed: they stay two records")
        return 0
    try:
        operator = Author.gateway(f"operator:{args.operator}", "operator")
        merge_patients(store, ForSource(operator), args.keep, args.other)
    except (GatewayError, ValueError) as exc:
        print(f"not merged: {exc}", file=sys.stderr)
        return 1
    decide(store, args.keep, args.other, "merged", args.operator)
    print(f"merged: Patient/{args.other} is replaced by Patient/{args.keep}")
    return 0
