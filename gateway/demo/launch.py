"""``gateway demo``: make the synthetic London once (generate its source
files, load them through the real mappings, register a client per
organisation with its key under the demo's directory), then say, for each
user's story, one command that works against the running gateway.

A later run finds the files, the loaded records and the clients in place
and only checks them, so it starts in seconds. What was loaded into which
database is kept in ``loaded.json`` beside the files (by file digest, per
digest of the database URL) and trusted only while that database still
holds Patients.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from gateway import keyfiles
from gateway.auth import keys
from gateway.auth.clients import ClientRegistry, new_registration
from gateway.demo.generate import NOTIFIED, Manifest, StoryPerson, generate
from gateway.demo.world import (
    AMBULANCE,
    AUDITOR,
    POPULATION_HEALTH,
    Organisation,
    borough_of,
    organisations,
)
from gateway.loading.commands import ProgressBar
from gateway.loading.records import LoadReport, load
from gateway.store import Store
from mappings.identity import mapped_id

LOADED = "loaded.json"
_ANY_PATIENT = "SELECT 1 FROM resource_current WHERE res_type = 'Patient' AND NOT deleted LIMIT 1"
# What each kind of organisation may be granted: those that send records
# may write them; the crew and the privacy office only read.
_SCOPES = {
    "gp-practice": "system/*.cruds",
    "council": "system/*.cruds",
    "care-home": "system/*.cruds",
    "hospital": "system/*.cruds",
    "ambulance": "system/*.rs",
    "auditor": "system/*.rs",
    # Reads for bulk export, and its own cohorts (Group) to export by.
    "analytics": "system/*.rs system/Group.cruds",
}


@dataclass(frozen=True)
class Prepared:
    directory: Path
    manifest: Manifest
    generated: bool  # this run wrote the source files
    reports: dict[str, LoadReport]  # this run's loads, by file
    registered: list[str]  # clients this run registered or re-keyed


def key_file(directory: Path, organisation: Organisation) -> Path:
    return directory / "keys" / f"{organisation.client_id}.pem"


def prepare(
    store: Store,
    database_url: str,
    directory: Path,
    people: int,
    seed: int,
    today: date,
    say: Callable[[str], None] = print,
) -> Prepared:
    """Everything ``gateway demo`` needs before serving, made once."""
    manifest = Manifest.read(directory)
    generated = False
    if (
        manifest is None
        or (manifest.people, manifest.seed) != (people, seed)
        or not manifest.complete(directory)
    ):
        if manifest is not None and store.select(_ANY_PATIENT, []):
            say(
                f"note: the database already holds the demo of {manifest.people:,} people "
                f"(seed {manifest.seed}); the new people join them (`make clean`, or "
                "another --database-url, for a London of their own)"
            )
        say(f"generating {people:,} people (seed {seed}) under {directory}/ ...")
        manifest = generate(directory, people, seed, today)
        generated = True
    reports = _load(store, database_url, directory, manifest, say)
    registered = _register(store, directory)
    return Prepared(directory, manifest, generated, reports, registered)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _load(
    store: Store,
    database_url: str,
    directory: Path,
    manifest: Manifest,
    say: Callable[[str], None],
) -> dict[str, LoadReport]:
    record = directory / LOADED
    try:
        loaded: dict[str, dict[str, str]] = json.loads(record.read_text("utf-8"))
    except (OSError, ValueError):
        loaded = {}
    # Keyed by a digest of the URL, which may hold a password.
    database = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    done = loaded.get(database, {})
    if done and not store.select(_ANY_PATIENT, []):
        done = {}  # the database was emptied or replaced since
    reports: dict[str, LoadReport] = {}
    for source in manifest.files:
        path = directory / source.path
        digest = _digest(path)
        if done.get(str(source.path)) == digest:
            continue
        say(f"loading {source.path} ({source.format}, from {source.source_org}) ...")
        bar = ProgressBar(path.stat().st_size)
        started = time.monotonic()
        report = load(store, source.format, source.source_org, [path], bar)
        bar.done()
        took = time.monotonic() - started
        say(
            f"  {report.records:,} records in {took:,.1f} s: {report.loaded:,} loaded, "
            f"{report.unchanged:,} already loaded, {len(report.rejections):,} rejected "
            f"({source.defective:,} planted)"
        )
        for rejection in report.rejections:
            say(f"    rejected {rejection.record}: {rejection.reason}")
        reports[str(source.path)] = report
        done[str(source.path)] = digest
        loaded[database] = done
        record.write_text(json.dumps(loaded, indent=2) + "\n", encoding="utf-8")
    return reports


def _register(store: Store, directory: Path) -> list[str]:
    """A client per organisation, keyed by a private key under ``keys/``:
    kept when both are there, re-keyed when the key file was lost."""
    registry = ClientRegistry(store)
    keyfiles.secret_dir(directory / "keys")
    changed: list[str] = []
    for organisation in organisations():
        path = key_file(directory, organisation)
        current = registry.get(organisation.client_id)
        if current is not None and path.is_file():
            private = keys.load_private_key(path.read_bytes())
            public = keys.to_jwk(private.public_key())
            if any(keys.thumbprint(k) == keys.thumbprint(public) for k in current.keys):
                continue
        elif path.is_file():
            private = keys.load_private_key(path.read_bytes())
        else:
            private = keys.generate_private_key()
            keyfiles.write_secret(path, keys.private_pem(private))
        registry.save(
            new_registration(
                organisation.client_id,
                org_ods=organisation.ods,
                org_name=organisation.name,
                kind=organisation.kind,
                scopes=_SCOPES[organisation.kind],
                keys=[keys.to_jwk(private.public_key())],
                name=f"{organisation.name} system",
            )
        )
        changed.append(organisation.client_id)
    return changed


@dataclass(frozen=True)
class Story:
    title: str
    about: str
    command: str


def _gateway_command() -> str:
    """How to call this gateway from the directory the demo runs in."""
    beside = Path(sys.executable).parent / "gateway"
    if not beside.exists():
        return "gateway"
    try:
        return str(beside.relative_to(Path.cwd()))
    except ValueError:
        return str(beside)


def stories(
    prepared: Prepared,
    base_url: str,
    database_url: str | None,
    notifications: Path | None = None,
) -> list[Story]:
    """One command per user story, to copy and paste while the gateway runs;
    with ``notifications``, the file the demo's receiver writes what its
    subscribers are told to (``gateway.demo.notify``)."""
    by_ods = {o.ods: o for o in organisations()}
    gateway = _gateway_command()
    directory = prepared.directory
    base = base_url.rstrip("/")
    pretty = f"{shlex.quote(sys.executable)} -m json.tool"

    def token(organisation: Organisation, *extra: str) -> str:
        words = [
            gateway,
            "token",
            "--client",
            organisation.client_id,
            "--key",
            str(key_file(directory, organisation)),
            *extra,
            "--url",
            base,
        ]
        return " ".join(shlex.quote(w) for w in words)

    def fetch(organisation: Organisation, path: str, *extra: str) -> str:
        url = shlex.quote(f"{base}{path}")
        bearer = f'"Authorization: Bearer $({token(organisation, *extra)})"'
        return f"curl -s -H {bearer} {url} | {pretty}"

    found: list[Story] = []
    chosen = prepared.manifest.stories

    def person(story: str) -> tuple[StoryPerson, Organisation] | None:
        if story not in chosen:
            return None
        who = chosen[story]
        return who, by_ods[who.organisation]

    def summary(story: str, title: str) -> None:
        if (chosen_person := person(story)) is None:
            return
        who, org = chosen_person
        found.append(
            Story(
                title.format(org=org.name, who=who.name),
                f"NHS number {who.nhs_number}: {who.why}",
                fetch(org, f"/fhir/Patient/$summary?identifier={who.nhs_number}"),
            )
        )

    summary("gp-summary", "GP: {org} reads {who}'s summary")
    summary("council-summary", "Council: {org} reads {who}'s summary")
    if (red_bag := person("red-bag")) is not None:
        who, _ = red_bag
        found.append(
            Story(
                f"Ambulance: a crew fetches {who.name}'s Red Bag in an emergency (ETREAT)",
                f"NHS number {who.nhs_number}: {who.why}; no prior relationship, break glass",
                fetch(
                    AMBULANCE,
                    f"/fhir/Patient/$red-bag?identifier={who.nhs_number}",
                    "--purpose",
                    "ETREAT",
                    "--reason",
                    "999 call: resident fallen at the care home",
                ),
            )
        )
        patient = mapped_id("NHS", "Patient", who.nhs_number)
        found.append(
            Story(
                f"Auditor: who saw {who.name}'s record, and why",
                "the person's access report; run the Red Bag story first to see the "
                "emergency access marked",
                fetch(AUDITOR, f"/fhir/Patient/{patient}/$access-report", "--purpose", "HCOMPL"),
            )
        )
        found.append(
            Story(
                "Auditor: the emergency-access reviews waiting for the privacy officer",
                "every ETREAT access, with its reason, until someone reviews it",
                fetch(AUDITOR, "/audit/reviews", "--purpose", "HCOMPL"),
            )
        )
    summary("dissent", "Consent: {org} reads the summary of {who}, who dissented")
    database = ["--database-url", database_url] if database_url is not None else []
    if notifications is not None and (told := person(NOTIFIED)) is not None:
        who, home = told
        found.append(
            Story(
                f"Notifications: what {home.name} and {borough_of(home).council.name} were "
                f"told of {who.name}'s admission and discharge",
                f"NHS number {who.nhs_number}: {who.why}; loaded a minute or so after the "
                "gateway starts, a line per notification the demo's receiver took, "
                "its signature checked",
                f"tail -n 20 {shlex.quote(str(notifications))}",
            )
        )
        found.append(
            Story(
                "Operator: every Subscription and where its delivery stands",
                "subscriber, topic, channel, status, events numbered and acknowledged; "
                "`subscriptions show ID` for one, `subscriptions disable ID` stops it",
                " ".join(shlex.quote(w) for w in [gateway, "subscriptions", "list", *database]),
            )
        )
    folder = shlex.quote(str(directory / "export"))
    export = [
        gateway,
        "analytics",
        "export",
        "--client",
        POPULATION_HEALTH.client_id,
        "--key",
        str(key_file(directory, POPULATION_HEALTH)),
        "--url",
        base,
        "--out",
    ]
    found.append(
        Story(
            "Population health: an ICB exports London's records, pseudonymised, and finds "
            "the people to bring to a multidisciplinary group",
            "bulk export (opted-out people and restricted records left out), then the "
            "integrated care pilot's first step: two or more emergency admissions in 12 "
            "months and an open social care case or a care-home place, by practice",
            " ".join(shlex.quote(w) for w in export)
            + f" {folder} && "
            + " ".join(shlex.quote(w) for w in [gateway, "analytics", "cohort", "--export"])
            + f" {folder}",
        )
    )
    link = [gateway, "console", "login-link", "--client", AUDITOR.client_id, "--url", base]
    link += database
    found.append(
        Story(
            "Auditor: the web console (a one-time login link; open it in a browser)",
            "the audit timeline, the emergency-access review list and log verification",
            " ".join(shlex.quote(w) for w in link),
        )
    )
    return found
