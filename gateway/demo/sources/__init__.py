"""Writers of the demo's source files, one module per format: each turns
people (``gateway.demo.people``) into the files a real system of that kind
would send, a record at a time, so a million people stream in constant
memory. None of them writes FHIR except as GP Connect itself is FHIR STU3."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from gateway.demo.people import Person


@dataclass
class SourceFile:
    """One file written: where (relative to the demo's directory), in which
    of ``gateway load``'s formats, sent by which organisation, how many
    source records it holds and how many of them carry a planted defect
    (and should be refused)."""

    path: Path
    format: str  # hl7v2, cld, gp-connect, care-home
    source_org: str
    records: int = 0
    defective: int = 0


class SourceWriter(Protocol):
    def add(self, person: Person) -> None:
        """Write what this kind of source knows of ``person`` (maybe nothing)."""

    def close(self) -> list[SourceFile]:
        """Finish and close every file; the files written, in load order."""


LONDON = ZoneInfo("Europe/London")


def london_moment(when: datetime) -> str:
    """A naive London time (the model's) with its offset, GMT or BST."""
    return when.replace(tzinfo=LONDON).isoformat(timespec="seconds")


def london_at(day: date, hour: int, minute: int = 0) -> str:
    return london_moment(datetime.combine(day, time(hour, minute)))


def wrong_check_digit(number: str) -> str:
    """``number`` with another last digit: it fails the Modulus 11 check,
    since only one check digit passes."""
    return number[:9] + str((int(number[9]) + 1) % 10)
