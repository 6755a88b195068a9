"""The National Data Opt-out list: the NHS numbers of the people who have
opted out, nationally, of their data being used for research and planning
(https://digital.nhs.uk/services/national-data-opt-out). The national
check service answers a list of NHS numbers with those of them that may be
used; the operator loads what it returns as opted out with
``gateway opt-outs load FILE``, which replaces the whole list: the service
answers the whole question each time, and a number missing from the newest
answer is a person who is no longer opted out.

The store side of it (the ``national_opt_out`` table), and the command.
The consent rules read it as a fact of the person (``Person.opted_out``,
gathered in ``gateway.access.people``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.store import Querier, Store
from mappings.identity import InvalidNhsNumber, nhs_number

_BATCH = 1000  # NHS numbers written, or asked about, per statement


@dataclass(frozen=True)
class Rejected:
    """A line of the file that is not an NHS number, and why."""

    line: int
    reason: str


def parse(text: str) -> tuple[list[str], list[Rejected]]:
    """The NHS numbers in ``text`` (one a line; blank lines skipped), and the
    lines that are not valid ones (Modulus 11), numbered from 1."""
    numbers: list[str] = []
    rejected: list[Rejected] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        raw = line.strip()
        if not raw:
            continue
        try:
            numbers.append(nhs_number(raw))
        except InvalidNhsNumber as exc:
            rejected.append(Rejected(line_number, str(exc)))
    return numbers, rejected


def replace(store: Store, numbers: Iterable[str]) -> int:
    """Make ``numbers`` the whole list, at once: a decision made while it is
    replaced sees the old list or the new, never half of one. How many
    distinct numbers it now holds."""
    distinct = sorted(set(numbers))
    with store.unit_of_work() as uow:
        uow.execute("DELETE FROM national_opt_out", [])
        for start in range(0, len(distinct), _BATCH):
            uow.execute_many(
                "INSERT INTO national_opt_out (nhs_number) VALUES (?)",
                [[number] for number in distinct[start : start + _BATCH]],
            )
    return len(distinct)


def on_list(reader: Querier, numbers: Sequence[str]) -> frozenset[str]:
    """Which of ``numbers`` are on the list."""
    wanted = sorted(set(numbers))
    found: set[str] = set()
    for start in range(0, len(wanted), _BATCH):
        batch = wanted[start : start + _BATCH]
        marks = ", ".join("?" for _ in batch)
        rows = reader.select(
            f"SELECT nhs_number FROM national_opt_out WHERE nhs_number IN ({marks})", batch
        )
        found.update(str(row[0]) for row in rows)
    return frozenset(found)


def add_commands(commands: Any) -> None:
    optouts = commands.add_parser("opt-outs", help="the National Data Opt-out list")
    actions = optouts.add_subparsers(dest="action", required=True)
    load = actions.add_parser(
        "load", help="replace the list with the NHS numbers in FILE (one a line)"
    )
    load.add_argument("file", metavar="FILE")
    load.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")


def run(args: argparse.Namespace, store: Store) -> int:
    """``gateway opt-outs load FILE``: the valid numbers replace the list;
    each rejected line is reported with its number. A file that cannot be
    read changes nothing."""
    try:
        text = Path(args.file).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        print(f"cannot read {args.file}: {reason}; the list is unchanged", file=sys.stderr)
        return 1
    numbers, rejected = parse(text)
    for bad in rejected:
        print(f"{args.file}:{bad.line}: rejected: {bad.reason}", file=sys.stderr)
    held = replace(store, numbers)
    print(f"National Data Opt-out list: {held} NHS numbers loaded, {len(rejected)} lines rejected")
    return 1 if rejected else 0
