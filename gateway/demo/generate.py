"""``gateway demo generate``: the demo's people written as their
organisations' source files, with a manifest of what was written, whom the
user stories are about and how many records should be refused.

People stream through every writer one at a time, so memory does not grow
with ``--people``; only the chosen story people and counters are kept.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

from gateway.demo import people as model
from gateway.demo.people import Code, HospitalStay, Person
from gateway.demo.sources import SourceFile, SourceWriter
from gateway.demo.sources.carehome import CareHomeWriter
from gateway.demo.sources.cld import CldWriter
from gateway.demo.sources.gpconnect import GpConnectWriter
from gateway.demo.sources.hl7 import AdtWriter
from gateway.demo.world import AUDITOR, BOROUGHS, HOSPITAL, borough_of, organisations

MANIFEST = "manifest.json"
# The order files are loaded in: the directory of organisations first, so
# every organisation the records name has a name; then the GP's record, so
# the Patient is registered with its practice before others add to it.
LOAD_ORDER = ("organisations", "gp-connect", "hl7v2", "cld", "care-home")
DIRECTORY = Path("organisations.csv")
# The story of a person whose admission and discharge the demo loads once the
# gateway serves (``AdtWriter.write_apart``), so that the care home and the
# council subscribed to them are told of both.
NOTIFIED = "notifications"


@dataclass(frozen=True)
class StoryPerson:
    """Whom one user story is about."""

    nhs_number: str
    name: str
    organisation: str  # the ODS code of the organisation whose story it is
    why: str


@dataclass
class Manifest:
    seed: int
    people: int
    today: str
    files: list[SourceFile] = field(default_factory=list)
    stories: dict[str, StoryPerson] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        for entry in data["files"]:
            entry["path"] = str(entry["path"])
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def read(cls, directory: Path) -> Manifest | None:
        try:
            data: dict[str, Any] = json.loads((directory / MANIFEST).read_text("utf-8"))
            return cls(
                seed=int(data["seed"]),
                people=int(data["people"]),
                today=str(data["today"]),
                files=[SourceFile(**{**f, "path": Path(f["path"])}) for f in data["files"]],
                stories={k: StoryPerson(**v) for k, v in data["stories"].items()},
                counts={str(k): int(v) for k, v in data["counts"].items()},
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def complete(self, directory: Path) -> bool:
        """Every file it lists is there, the directory of organisations among
        them (a demo written before there was one is written again)."""
        return any(f.format == "organisations" for f in self.files) and all(
            (directory / f.path).is_file() for f in self.files
        )


def _clean(person: Person) -> bool:
    return person.nhs_number is not None and not person.defects and person.dissented is None


def _name(person: Person) -> str:
    return " ".join((person.title, *person.given, person.family)).strip()


# Each story wants the first person who shows it well: a clean record
# (no planted defect, no dissent) with what the story is about.
_STORIES: dict[str, tuple[str, Callable[[Person], str | None]]] = {
    "gp-summary": (
        "registered at the practice, with problems, medicines and a hospital stay",
        lambda p: (
            p.practice.ods
            if len(p.problems) >= 2 and p.medicines and p.stays and p.social_care is None
            else None
        ),
    ),
    "council-summary": (
        "an open adult social care case with the council",
        lambda p: (
            p.social_care.council.ods
            if p.social_care and p.social_care.open and p.residence is None and p.problems
            else None
        ),
    ),
    "red-bag": (
        "a care-home resident with a DNACPR decision and falls",
        lambda p: (
            p.residence.home.ods
            if p.residence and p.residence.dnacpr and p.residence.falls
            else None
        ),
    ),
    NOTIFIED: (
        "lives in a care home and has an open social care case: the home and the council "
        "are told when the hospital admits and discharges them",
        # A home of the council's borough, so that the council that
        # subscribes is the home's (``notify.subscribers``); out of hospital now.
        lambda p: (
            p.residence.home.ods
            if p.residence
            and p.residence.permanent
            and p.social_care
            and p.social_care.open
            and p.social_care.council == borough_of(p.residence.home).council
            and all(stay.discharged is not None for stay in p.stays)
            else None
        ),
    ),
    "dissent": (
        "refused the shared record at the GP: it sees only what it recorded itself",
        # Asked by the source whose record of the person was loaded last (the
        # home's export comes after the council's return), so that the person
        # is on file as its record, which a dissent leaves it.
        lambda p: (
            None
            if not (p.dissented and p.nhs_number and not p.defects)
            else p.residence.home.ods
            if p.residence
            else p.social_care.council.ods
            if p.social_care and p.social_care.open
            else None
        ),
    ),
}


def _story(name: str, person: Person) -> StoryPerson | None:
    why, wanted = _STORIES[name]
    if name != "dissent" and not _clean(person):
        return None
    organisation = wanted(person)
    if organisation is None or person.nhs_number is None:
        return None
    return StoryPerson(person.nhs_number, _name(person), organisation, why)


# The stay the demo loads once it serves: a urinary infection, among the
# commonest reasons a care home's resident is admitted, from the evening
# before last to yesterday morning.
_INFECTION = Code("", "Urinary tract infection, site not specified", "N39.0")


def _stay_apart(person: Person, today: date) -> HospitalStay | None:
    """The ``NOTIFIED`` person's next stay, or ``None`` when their last
    stay, or their move into the home, ends too late for it."""
    admitted = datetime.combine(today - timedelta(days=2), clock(21, 40))
    ended = [stay.discharged for stay in person.stays if stay.discharged is not None]
    moved = person.residence.start if person.residence else today
    if moved >= admitted.date() or any(d >= admitted - timedelta(days=7) for d in ended):
        return None
    return HospitalStay(
        visit=f"V{person.index:07d}{len(person.stays)}",
        admitted=admitted,
        discharged=datetime.combine(today - timedelta(days=1), clock(11, 20)),
        ward="Acute Medical Unit",
        diagnoses=(_INFECTION,),
    )


def generate(
    out: Path,
    count: int,
    seed: int,
    today: date,
    progress: Callable[[int], None] = lambda done: None,
) -> Manifest:
    """Write ``count`` people of ``seed`` as source files under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    councils = [borough.council for borough in BOROUGHS]
    practices = [p for borough in BOROUGHS for p in borough.practices]
    homes = [h for borough in BOROUGHS for h in borough.homes]
    adt = AdtWriter(out, HOSPITAL, today)
    writers: list[SourceWriter] = [
        GpConnectWriter(out, practices, today),
        adt,
        CldWriter(out, councils, today),
        CareHomeWriter(out, homes, today),
    ]
    manifest = Manifest(seed=seed, people=count, today=today.isoformat())
    counts = manifest.counts
    for person in model.people(count, seed, today):
        for writer in writers:
            writer.add(person)
        for story in _STORIES:
            if story not in manifest.stories:
                found = _story(story, person)
                if found is not None and story == NOTIFIED:
                    stay = _stay_apart(person, today)
                    if stay is None:
                        continue
                    adt.write_apart(out, person, stay)
                if found is not None:
                    manifest.stories[story] = found
        _count(counts, person)
        if person.index % 1_000 == 999:
            progress(person.index + 1)
    progress(count)
    for writer in writers:
        manifest.files += writer.close()
    manifest.files.append(write_directory(out / DIRECTORY))
    manifest.files.sort(key=lambda f: (LOAD_ORDER.index(f.format), str(f.path)))
    (out / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def write_directory(path: Path) -> SourceFile:
    """The operator's directory of the demo's organisations, as ``gateway
    load --format organisations`` reads it, loaded as the privacy office."""
    written = organisations()
    with path.open("w", encoding="utf-8", newline="") as out:
        rows = csv.writer(out, lineterminator="\n")
        rows.writerow(["ods_code", "name", "kind", "address"])
        for organisation in written:
            where = f"{organisation.borough}, London" if organisation.borough else "London"
            rows.writerow([organisation.ods, organisation.name, organisation.kind, where])
    return SourceFile(path.relative_to(path.parent), "organisations", AUDITOR.ods, len(written))


def _count(counts: dict[str, int], person: Person) -> None:
    def add(key: str, n: int = 1) -> None:
        counts[key] = counts.get(key, 0) + n

    add("people")
    add("care-home residents", person.residence is not None)
    add("with a DNACPR decision", bool(person.residence and person.residence.dnacpr))
    add("open social care cases", bool(person.social_care and person.social_care.open))
    add("hospital stays", len(person.stays))
    add("in hospital now", sum(1 for s in person.stays if s.discharged is None))
    add("dissented from the shared record", person.dissented is not None)
    add("with restricted data", bool(person.restricted_labels))
    add("without an NHS number", person.nhs_number is None)
    add("planted defects", len(person.defects))


def main(out: Path, count: int, seed: int, today: date) -> int:
    """The command: generate, then say what was written and how long it took."""
    started = time.monotonic()

    def progress(done: int) -> None:
        if done % 50_000 == 0 or done == count:
            rate = done / max(time.monotonic() - started, 1e-9)
            print(f"{done:,} people ({rate:,.0f}/s)", flush=True)

    manifest = generate(out, count, seed, today, progress)
    took = time.monotonic() - started
    for source in manifest.files:
        size = (out / source.path).stat().st_size
        print(
            f"{source.path}  {source.format:<10} {source.source_org:<10} "
            f"{source.records:>9,} records  {source.defective:>5} planted defects  "
            f"{size / 1e6:,.1f} MB"
        )
    for what, n in manifest.counts.items():
        print(f"  {what:<34}{n:>10,}")
    print(f"{count:,} people in {took:,.1f} s; manifest: {out / MANIFEST}")
    return 0
