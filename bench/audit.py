"""Speed of the audit log (issue 6's targets).

Run ``python -m bench.audit`` (``--proof-size`` to change the 10,000,000-entry
tree the proof is timed on). In-process, on SQLite, durable commits:

1. appends through the group-commit writer from 64 concurrent requests
   (tasks on one event loop, as a server worker runs them), each waiting for
   its entry to be durable (fail closed), in entries/s (target: at least
   5,000);
2. what the audit adds to one request: the wait for its entry to be
   durable, p50 and p99, alone and among the concurrent ones (target: under
   1 ms at p50 alone);
3. ``audit verify`` over the log just written, in entries/s (target: at
   least 50,000);
4. an inclusion proof and tree head over a log of ``--proof-size`` entries
   (its complete-subtree hashes written directly, as a log that size would
   hold them), p50 (target: under 10 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
from pathlib import Path

from consent.model import Requester
from gateway.audit import log, merkle
from gateway.audit.checkpoint import load_or_create_signer
from gateway.audit.events import Disclosures, request_event
from gateway.audit.writer import AuditWriter
from gateway.store import Store, UnitOfWork, open_store

ASKER = Requester(
    org_ods="A81001",
    kind="gp-practice",
    purpose="TREAT",
    client_id="gp-system",
    client_name="GP system",
    org_name="Riverside Surgery",
)


def record(n: int) -> log.AuditRecord:
    disclosures = Disclosures()
    disclosures.patients.add(f"patient-{n % 1000}")
    return request_event(
        recorded="2026-11-24T12:00:00.000000Z",
        subtype="read",
        status=200,
        asker=ASKER,
        request_id=f"{n:032x}",
        method="GET",
        path=f"/fhir/Patient/patient-{n % 1000}",
        query="",
        disclosures=disclosures,
    )


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]


def bench_appends(writer: AuditWriter, requesters: int, each: int) -> list[float]:
    """Requests as the server runs them: tasks on one event loop, each
    awaiting its entry's commit before it may answer."""
    waits: list[float] = []

    async def requester(offset: int) -> None:
        for n in range(each):
            started = time.perf_counter()
            await asyncio.wrap_future(writer.submit([record(offset * each + n)]))
            waits.append(time.perf_counter() - started)

    async def everyone() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(requester(i) for i in range(requesters)))
        return time.perf_counter() - started

    elapsed = asyncio.run(everyone())
    total = requesters * each
    verdict = "PASS" if total / elapsed >= 5000 else "MISS"
    print(
        f"1. appends, {requesters} concurrent requests each waiting for durability: {total} "
        f"entries in {elapsed:.2f} s = {total / elapsed:,.0f} entries/s  [{verdict} >= 5,000]"
    )
    return waits


def bench_added_latency(writer: AuditWriter, waits_under_load: list[float]) -> None:
    alone = []
    for n in range(500):
        started = time.perf_counter()
        writer.record([record(10**7 + n)])
        alone.append(time.perf_counter() - started)
    p50, p99 = percentiles(alone)
    load50, load99 = percentiles(waits_under_load)
    verdict = "PASS" if p50 < 1e-3 else "MISS"
    print(
        f"2. added to a request: alone p50 {p50 * 1e3:.2f} ms p99 {p99 * 1e3:.2f} ms; "
        f"among the concurrent ones p50 {load50 * 1e3:.2f} ms p99 {load99 * 1e3:.2f} ms  "
        f"[{verdict} < 1 ms p50 alone]"
    )


def bench_verify(store: Store, vkey: str) -> None:
    started = time.perf_counter()
    result = log.verify(store, vkey)
    elapsed = time.perf_counter() - started
    rate = result.entries / elapsed
    verdict = "PASS" if rate >= 50_000 and result.intact else "MISS"
    print(
        f"3. verify: {result.entries} entries, {result.checkpoints} checkpoints in "
        f"{elapsed:.2f} s = {rate:,.0f} entries/s, intact={result.intact}  [{verdict} >= 50,000]"
    )


def bench_proofs(directory: Path, size: int) -> None:
    store = open_store(f"sqlite:///{directory}/proofs.db")
    store.migrate()
    started = time.perf_counter()
    nodes: list[tuple[int, int, bytes]] = []
    frontier: list[tuple[int, bytes]] = []
    with store.unit_of_work() as uow:
        entries: list[list[object]] = []
        for index in range(size):
            leaf = hashlib.sha256(b"\x00" + index.to_bytes(8, "big")).digest()
            # As log.append does, with the right edge of the tree in memory.
            level, position, digest = 0, index, leaf
            entries.append([index, "", "read", "0", False, False, b"{}", leaf])
            while position & 1:
                _, left = frontier.pop()
                digest = merkle.node_hash(left, digest)
                level, position = level + 1, position >> 1
                nodes.append((level, position, digest))
            frontier.append((level, digest))
            if len(entries) >= 100_000:
                _insert(uow, entries, nodes)
        _insert(uow, entries, nodes)
    built = time.perf_counter() - started
    samples = []
    for index in range(0, size, max(1, size // 500)):
        begun = time.perf_counter()
        proof = log.inclusion_proof(store, index, size)
        _, root = log.tree_head(store, size)
        samples.append(time.perf_counter() - begun)
        leaf = hashlib.sha256(b"\x00" + index.to_bytes(8, "big")).digest()
        assert merkle.verify_inclusion(leaf, index, size, proof, root)
    p50, p99 = percentiles(samples)
    verdict = "PASS" if p50 < 0.010 else "MISS"
    print(
        f"4. inclusion proof + tree head over {size:,} entries (built in {built:.0f} s): "
        f"p50 {p50 * 1e3:.2f} ms p99 {p99 * 1e3:.2f} ms  [{verdict} < 10 ms]"
    )
    store.close()


def _insert(
    uow: UnitOfWork, entries: list[list[object]], nodes: list[tuple[int, int, bytes]]
) -> None:
    uow.execute_many(
        "INSERT INTO audit_entry (idx, recorded, subtype, outcome, emergency, alert, entry, leaf) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        entries,
    )
    uow.execute_many("INSERT INTO audit_node (level, idx, hash) VALUES (?, ?, ?)", nodes)
    entries.clear()
    nodes.clear()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requesters", type=int, default=64)
    parser.add_argument("--each", type=int, default=500)
    parser.add_argument("--proof-size", type=int, default=10_000_000)
    options = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    store = open_store(f"sqlite:///{directory}/gateway.db")
    store.migrate()
    signer = load_or_create_signer(directory / "audit-key.pem")
    writer = AuditWriter(store, signer, checkpoint_every=1.0)
    print("bench.audit: in-process, SQLite (synchronous=FULL)")
    waits = bench_appends(writer, options.requesters, options.each)
    bench_added_latency(writer, waits)
    writer.close()
    bench_verify(store, signer.verifier_key())
    store.close()
    bench_proofs(directory, options.proof_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
