"""Latency of the documents (issue 8's target): ``$red-bag`` and
``$summary`` for a care-home resident with about 300 resources, p99 under
100 ms on SQLite and on PostgreSQL, consent and audit included.

Run ``python -m bench.documents`` (``--help`` for the options).

Method
------
The resident is the one the end-to-end tests use (``tests.http.
test_documents.Resident``): the care home's export, the council's CLD
return, a hospital admission (with a mental health diagnosis, withheld from
both requesters) and the GP's structured record, each pushed by its own
client through ``$ingest``. The GP then adds ``--records`` more of the
person's records (vital signs, problems, medicines, encounters from
``bench._synthetic``) in one transaction, so the person has about 300
resources, and ``--others`` other people of 100 resources each are loaded
around them, so the store is not only this person.

Each document is then asked for ``--repeat`` times (after 10 unmeasured
warm-up requests) through the whole ASGI application in-process
(Starlette's test client: authentication, routing, consent decisions for
every candidate, the document's build, its signature, JSON serialisation
and the audit entry, written before the response leaves), as:

  red-bag   the ambulance crew under ETREAT (emergency access);
  summary   the registered GP under TREAT.

Before measuring, the process's objects are frozen out of the garbage
collector's sight, as ``gateway serve`` does at start-up (without it, full
collections over the loaded test data added 60-80 ms pauses to about one
request in twenty). Latencies are wall-clock per request on one client, on an otherwise idle
machine; the network and uvicorn's HTTP parsing are left out. SQLite is a
file in a temporary directory; PostgreSQL a throwaway cluster
(``tests.support.postgres``, fsync off).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench._synthetic import nhs_numbers, patient_records
from gateway.store import Store, open_store
from tests.http.test_documents import Resident
from tests.support.postgres import start_cluster

TARGET_MS = 100.0


@contextmanager
def sqlite_store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as directory:
        store = open_store(f"sqlite:///{directory}/documents.db")
        store.migrate()
        try:
            yield store
        finally:
            store.close()


@contextmanager
def postgres_store() -> Iterator[Store]:
    cluster = start_cluster()
    try:
        store = open_store(cluster.create_database("documents"))
        store.migrate()
        try:
            yield store
        finally:
            store.close()
    finally:
        cluster.stop()


def _transaction(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def populate(resident: Resident, records: int, others: int, seed: int) -> None:
    rng = random.Random(seed)
    numbers = nhs_numbers(seed)
    entries, info = patient_records(rng, 0, next(numbers), records + 1)
    subject = f"Patient/{resident.patient}"
    own = []
    for entry in entries[1:]:  # the resident's, not a new person's
        resource = entry["resource"]
        for name in ("subject", "patient"):
            if resource.get(name, {}).get("reference") == info.full_url:
                resource[name] = {"reference": subject}
        own.append(entry)
    answer = resident.api.post("/fhir", json=_transaction(own), headers=resident.headers("gp"))
    assert answer.status_code == 200, answer.text
    for number in range(others):
        entries, _ = patient_records(rng, number + 1, next(numbers), 100)
        answer = resident.api.post(
            "/fhir", json=_transaction(entries), headers=resident.headers("gp")
        )
        assert answer.status_code == 200, answer.text


def measure(resident: Resident, who: str, operation: str, repeat: int) -> dict[str, float]:
    url = f"/fhir/Patient/{resident.patient}/${operation}"
    for _ in range(10):
        assert resident.get(who, url).status_code == 200
    samples = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        answer = resident.get(who, url)
        samples.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text
        size = len(answer.json()["entry"])
    samples.sort()
    return {
        "entries": size,
        "p50": statistics.median(samples),
        "p95": samples[int(0.95 * (len(samples) - 1))],
        "p99": samples[int(0.99 * (len(samples) - 1))],
        "max": samples[-1],
    }


def run(name: str, store: Store, args: argparse.Namespace) -> list[str]:
    resident = Resident(store)
    try:
        started = time.perf_counter()
        populate(resident, args.records, args.others, args.seed)
        loaded = time.perf_counter() - started
        print(f"{name}: the resident and {args.others} others loaded in {loaded:.1f} s")
        # As ``gateway serve`` does once started (gateway.http.app): what
        # exists now is kept out of the collector's full scans.
        gc.collect()
        gc.freeze()
        lines = []
        for who, operation in (("crew", "red-bag"), ("gp", "summary")):
            figures = measure(resident, who, operation, args.repeat)
            verdict = "PASS" if figures["p99"] < TARGET_MS else "MISS"
            lines.append(
                f"{name:<9} {operation:<8} {who:<5} entries {figures['entries']:>4}  "
                f"p50 {figures['p50']:6.1f} ms  p95 {figures['p95']:6.1f} ms  "
                f"p99 {figures['p99']:6.1f} ms  max {figures['max']:6.1f} ms  "
                f"(target p99 < {TARGET_MS:.0f} ms: {verdict})"
            )
            print(lines[-1], flush=True)
        return lines
    finally:
        resident.api.__exit__(None, None, None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=220, help="GP records added (~300 in all)")
    parser.add_argument("--others", type=int, default=50, help="other people, 100 resources each")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    lines = []
    for name in args.stores.split(","):
        with sqlite_store() if name == "sqlite" else postgres_store() as store:
            lines += run(name, store, args)
    print("\n".join(["", "summary", *lines]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
