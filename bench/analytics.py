"""The shipped analytics views over a generated pseudonymised bulk export.

Writes an export of ``--people`` synthetic people in the contract's shape
(each with a Patient, a few Encounters and Conditions, some with a social
care service or a care-home stay; Encounters split over files of 50,000
lines), then times ``gateway analytics views`` on it: the views' pass over
the NDJSON into DuckDB, the SQL step, the Parquet and CSV files, and the
cohort query. Prints resources a second and the process's peak memory,
which should not grow with ``--people``.

    python -m bench.analytics --people 50000
"""

from __future__ import annotations

import argparse
import hashlib
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from gateway.analytics import export, output, shipped

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
ADMISSION_METHOD = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AdmissionMethod"
SERVICE_CATEGORY = (
    "https://fhir.interweavedigital.nhs.uk/CodeSystem/Interweave-SocialCareServiceCategory"
)
CONDITIONS = ("44054006", "13645005", "195967001", "84114007", "26929004", "38341003", "35489007")
METHODS = ("11", "12", "21", "21", "22", "23", "2A", "28", "31")
PRACTICES = [f"E8{n:04d}" for n in range(60)]
PART = 50_000


def _key(*parts: object) -> str:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).hexdigest()


def _person(n: int, rng: random.Random) -> list[dict[str, Any]]:
    key = _key("person", n)
    subject = {"reference": f"Patient/{key}"}
    found: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": key,
            "identifier": [{"system": "urn:london-care-gateway:pseudonym", "value": key}],
            "gender": rng.choice(("male", "female")),
            "birthDate": f"{rng.randint(1925, 2024)}-{rng.randint(1, 12):02d}",
            "address": [{"postalCode": f"NW{rng.randint(1, 11)}", "district": "Brent"}],
            "generalPractitioner": [
                {"identifier": {"system": ODS, "value": rng.choice(PRACTICES)}}
            ],
        }
    ]
    for e in range(rng.choice((0, 1, 1, 2, 3, 5))):
        start = f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}T10:00:00Z"
        found.append(
            {
                "resourceType": "Encounter",
                "id": _key("encounter", n, e),
                "status": "finished",
                "class": {"code": "IMP"},
                "subject": subject,
                "period": {"start": start, "end": start[:8] + "28T12:00:00Z"},
                "hospitalization": {
                    "extension": [
                        {
                            "url": ADMISSION_METHOD,
                            "valueCodeableConcept": {"coding": [{"code": rng.choice(METHODS)}]},
                        }
                    ]
                },
            }
        )
    for c in range(rng.choice((0, 1, 2, 3))):
        found.append(
            {
                "resourceType": "Condition",
                "id": _key("condition", n, c),
                "clinicalStatus": {"coding": [{"code": "active"}]},
                "code": {
                    "coding": [{"system": "http://snomed.info/sct", "code": rng.choice(CONDITIONS)}]
                },
                "subject": subject,
            }
        )
    if rng.random() < 0.08:
        found.append(
            {
                "resourceType": "EpisodeOfCare",
                "id": _key("service", n),
                "status": "active",
                "type": [{"coding": [{"system": SERVICE_CATEGORY, "code": "LTS-C"}]}],
                "patient": subject,
                "managingOrganization": {"identifier": {"system": ODS, "value": "202"}},
                "period": {"start": "2025-01-01"},
            }
        )
    return found


def generate(folder: Path, people: int, seed: int = 7) -> int:
    """The export; the number of resources written."""
    rng = random.Random(seed)
    files: dict[str, Any] = {}
    lines: dict[str, int] = {}
    total = 0
    try:
        for n in range(people):
            for item in _person(n, rng):
                kind = item["resourceType"]
                count = lines.get(kind, 0)
                if count % PART == 0:
                    if kind in files:
                        files[kind].close()
                    files[kind] = (folder / f"{kind}-{count // PART + 1}.ndjson").open("wb")
                files[kind].write(orjson.dumps(item) + b"\n")
                lines[kind] = count + 1
                total += 1
    finally:
        for file in files.values():
            file.close()
    manifest = {
        "transactionTime": "2026-12-01T00:00:00Z",
        "request": "https://gateway.example/fhir/$export",
        "requiresAccessToken": True,
        "output": [{"type": k, "url": f"{k}.ndjson", "count": v} for k, v in lines.items()],
        "error": [],
    }
    (folder / export.MANIFEST).write_bytes(orjson.dumps(manifest))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-analytics-") as scratch:
        folder = Path(scratch) / "export"
        folder.mkdir()
        started = time.perf_counter()
        total = generate(folder, args.people)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        took = time.perf_counter() - started
        print(f"generated {total:,} resources ({size:.0f} MB) in {took:.1f} s")
        with output.database() as connection:
            started = time.perf_counter()
            counts = output.load_views(connection, folder, shipped.shipped_views())
            views_took = time.perf_counter() - started
            print(
                f"views: {sum(counts.values()):,} rows in {views_took:.1f} s "
                f"({total / views_took:,.0f} resources/s)  {counts}"
            )
            started = time.perf_counter()
            shipped.set_as_at(connection, export.as_at(folder))
            connection.execute(shipped.sql("derive"))
            print(f"SQL step: {time.perf_counter() - started:.2f} s")
            started = time.perf_counter()
            output.write_tables(connection, shipped.TABLES, Path(scratch) / "out")
            print(f"Parquet and CSV: {time.perf_counter() - started:.2f} s")
            started = time.perf_counter()
            members = shipped.cohort(connection)
            print(f"cohort: {len(members):,} people in {time.perf_counter() - started:.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MB")


if __name__ == "__main__":
    main()
