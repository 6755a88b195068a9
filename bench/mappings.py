"""Speed of loading source records (issue 7's targets).

Run ``python -m bench.mappings`` (``--messages`` and ``--rows`` to change the
sizes). Each run writes a synthetic file, then loads it into a fresh SQLite
store exactly as ``gateway load`` does (read, parse, map, validate, label,
index, store, Provenance: one transaction per record) and prints:

1. HL7 v2 ADT messages per second (target: at least 1,000);
2. CLD rows per second (target: at least 5,000);
3. the peak memory of reading and mapping a file and one ten times its size
   (target: flat as the file grows), each in a child process; the store's
   own memory is bounded by its page cache whatever the file.

``--jobs 1 2`` loads each file with each number of worker processes
(``gateway load --jobs``; issue 29's target: two at least 1.7 times the
resources per second of one on a two-core machine), ``--repeat 3`` times
each, interleaved, and prints the medians, their ratio to the first, the
CPU time a record takes in the writer's process and in the workers (steadier
than the rate on a shared machine), and the machine's load average before
and after (a shared machine's other work slows any run).

Synthetic people are numbered in the 999 test range; every fifth message
is a discharge of an earlier admission, so updates are timed as well as
creates.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from itertools import islice
from pathlib import Path

from bench._synthetic import nhs_numbers


def _nhs_numbers(count: int) -> list[str]:
    return list(islice(nhs_numbers(seed=7), count))


def write_hl7(path: Path, messages: int) -> None:
    people = _nhs_numbers(max(messages // 4, 1))
    with path.open("w", encoding="latin-1", newline="") as out:
        for n in range(messages):
            person = people[n % len(people)]
            visit = f"V{n // 5 * 5:07d}"
            event = "A03" if n % 5 == 4 else "A01"
            day = 1 + n % 28
            segments = [
                f"MSH|^~\\&|PAS|RKE|GATEWAY|LONDON|202603{day:02d}101500||ADT^{event}|M{n:08d}|P|2.4",
                f"EVN|{event}|202603{day:02d}101500",
                f"PID|1||{person}^^^NHS^NH~H{n % 9000:05d}^^^RKE^MR||Person{n % 97}^Alex||"
                f"19{40 + n % 50}0{1 + n % 9}1{n % 9}|{1 + n % 2}|||{n} High St^^London^^ZZ9 9ZZ",
                f"PD1|||Practice^^F8400{n % 10}",
                "PV1|1|I|W1^B2^3|21||||||||||19|||||"
                + visit
                + "|||||||||||||||||||||||||"
                + f"202603{day:02d}101500"
                + (f"|202603{day:02d}160000" if event == "A03" else ""),
                f"DG1|1||J18.9^Pneumonia^I10|||A|202603{day:02d}",
                f"OBX|1|NM|8867-4^Heart rate^LN||{60 + n % 40}|/min|||||F|||202603{day:02d}101500",
            ]
            out.write("\r".join(segments) + "\r\n")


_CLD_HEADER = (
    "LA_Code,LA_Person_Unique_Identifier,NHS_Number,GP_Practice_Code,Gender,Ethnicity,"
    "Date_of_Birth,Postcode,Client_Type,Primary_Support_Reason,Accommodation_Status,"
    "Has_Unpaid_Carer,Event_Type,Event_Reference,Event_Start_Date,Event_End_Date,"
    "Event_Outcome,Request_Route_of_Access,Service_Type,Service_Component,"
    "Provider_CQC_Location_ID,Unit_Cost"
)
_EVENTS = ["Request", "Assessment", "Service", "Review"]


def write_cld(path: Path, rows: int) -> None:
    people = _nhs_numbers(max(rows // 4, 1))
    with path.open("w", encoding="utf-8") as out:
        out.write(_CLD_HEADER + "\n")
        for n in range(rows):
            person = n % len(people)
            event = _EVENTS[n // len(people) % 4]
            ended = "" if event == "Service" else f"2026-0{1 + n % 9}-2{n % 8}"
            route = "Discharge from Hospital" if event == "Request" else ""
            service = "Long Term Support: Community" if event == "Service" else ""
            out.write(
                f"E09000022,LA{person:06d},{people[person]},F8400{person % 10},"
                f"{'Female' if person % 2 else 'Male'},A,19{40 + person % 50}-01-1{person % 9},"
                f"ZZ9 {person % 9}AA,Service User,Physical Support: Personal care support,"
                f"Owner occupier or shared ownership scheme,No,{event},EV{n:08d},"
                f"2026-0{1 + n % 9}-0{1 + n % 9},{ended},Done,{route},{service},"
                f"{'Home Support' if service else ''},{'1-1000' if service else ''},12.50\n"
            )


_SOURCES = {"hl7v2": "RKE", "cld": "713"}


def _child(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the benchmark's child process failed:\n{done.stderr[-2000:]}")
    return done.stdout.split()


Run = tuple[int, int, float, float, float]


def _load(fmt: str, path: Path, warmup: Path, database: Path, jobs: int) -> Run:
    """Records loaded, resources written, seconds taken and the CPU seconds
    of the writer's process and of its worker processes, in a child
    process, once warm (the worker processes ``jobs`` above 1 starts are
    started inside the time: ``gateway load`` starts them too). The
    writer's CPU is the steadier figure on a shared machine."""
    warm = database.with_suffix(".warm.db")
    loaded, written, took, writer, workers = _child(
        "import resource, time\n"
        "from pathlib import Path\n"
        "from gateway.loading import load\n"
        "from gateway.loading.ids import use_store_id_key\n"
        "from gateway.store import open_store\n"
        # Imports and the models' first use, once per process, in a store of
        # their own: what follows is the rate a large file loads at.
        f"warm = open_store('sqlite:///{warm}', pool_size=1, bulk=True)\n"
        "warm.migrate()\n"
        "use_store_id_key(warm)\n"
        f"load(warm, {fmt!r}, {_SOURCES[fmt]!r}, [Path({str(warmup)!r})])\n"
        f"store = open_store('sqlite:///{database}', pool_size=1, bulk=True)\n"
        "store.migrate()\n"
        "use_store_id_key(store)\n"
        # As ``gateway load`` loads (its one full collection before is not timed).
        "from gateway.loading.records import settled\n"
        "with settled():\n"
        "    cpu = time.process_time()\n"
        "    started = time.perf_counter()\n"
        f"    report = load(store, {fmt!r}, {_SOURCES[fmt]!r}, [Path({str(path)!r})],"
        f" jobs={jobs})\n"
        "    took = time.perf_counter() - started\n"
        "    writer = time.process_time() - cpu\n"
        # The workers, stopped: they take a moment to end, and count once reaped.
        "import multiprocessing\n"
        "for _ in range(300):\n"
        "    if not multiprocessing.active_children():\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "children = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "assert not report.rejections, report.rejections[:3]\n"
        "print(report.loaded, sum(report.written.values()), took, writer,"
        " children.ru_utime + children.ru_stime)\n"
    )
    return int(loaded), int(written), float(took), float(writer), float(workers)


def _peak_reading(fmt: str, path: Path) -> int:
    """Peak memory (KiB) of reading and mapping every record of ``path``,
    in a child process: what grows with the file, if anything does. (The
    store's share is bounded by its page cache, 64 MiB a connection.)"""
    (peak,) = _child(
        "import resource, secrets\n"
        "from gateway.loading.sources import READERS\n"
        "from mappings.identity import use_id_key\n"
        "use_id_key(secrets.token_bytes(32))\n"
        f"with open({str(path)!r}, 'rb') as stream:\n"
        f"    for record in READERS[{fmt!r}](stream, {_SOURCES[fmt]!r}):\n"
        "        assert record.resources, record.problem\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    return int(peak)


def _load_average() -> str:
    return "/".join(f"{figure:.2f}" for figure in os.getloadavg())


def run(messages: int, rows: int, jobs: list[int], repeat: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for fmt, size, writer, target in (
            ("hl7v2", messages, write_hl7, 1000),
            ("cld", rows, write_cld, 5000),
        ):
            source = root / f"{fmt}.dat"
            writer(source, size)
            warmup = root / f"{fmt}-warm.dat"
            writer(warmup, 20)
            print(f"{fmt:<6} load average before: {_load_average()} ({os.cpu_count()} cores)")
            runs: dict[int, list[Run]] = {n: [] for n in jobs}
            for attempt in range(repeat):
                for n in jobs:  # interleaved: a busy spell slows each alike
                    database = root / f"{fmt}-{n}-{attempt}.db"
                    runs[n].append(_load(fmt, source, warmup, database, n))
            print(f"{fmt:<6} load average after:  {_load_average()}")
            first = None
            for n in jobs:
                loaded, written = runs[n][0][:2]
                took = statistics.median(run[2] for run in runs[n])
                rate = loaded / took
                first = first or written / took
                ratio = written / took / first
                print(
                    f"{fmt:<6} --jobs {n}: {loaded:>7,} records ({written:,} resources) loaded "
                    f"in {took:6.1f} s (median of {repeat}: "
                    + ", ".join(f"{run[2]:.1f}" for run in runs[n])
                    + f"): {rate:7,.0f} records/s (target {target:,}) "
                    f"{'PASS' if rate >= target else 'MISS'}, {written / took:7,.0f} resources/s"
                    + (
                        f", {ratio:.2f}x --jobs {jobs[0]}"
                        + (f" (target 1.7x) {'PASS' if ratio >= 1.7 else 'MISS'}" if n == 2 else "")
                        if n != jobs[0]
                        else ""
                    )
                )
            for n in jobs:
                writer_ms = statistics.median(run[3] for run in runs[n]) / runs[n][0][0] * 1000
                workers_ms = statistics.median(run[4] for run in runs[n]) / runs[n][0][0] * 1000
                print(
                    f"{fmt:<6} --jobs {n}: CPU a record (medians): writer's process "
                    f"{writer_ms:.2f} ms" + (f", workers {workers_ms:.2f} ms" if n > 1 else "")
                )
            large = root / f"{fmt}-large.dat"
            writer(large, size * 10)
            small_peak, large_peak = _peak_reading(fmt, source), _peak_reading(fmt, large)
            # Flat: bounded caches (times, ids) may fill, nothing grows per record.
            growth = (large_peak - small_peak) / 1024
            print(
                f"{fmt:<6} reading and mapping: peak {small_peak / 1024:5.1f} MiB for "
                f"{source.stat().st_size / 1e6:.1f} MB, {large_peak / 1024:5.1f} MiB for "
                f"{large.stat().st_size / 1e6:.1f} MB (+{growth:.1f} MiB) "
                f"{'PASS' if growth < 8 else 'MISS'}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument(
        "--jobs", type=int, nargs="+", default=[1], help="worker processes: one or more numbers"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, for the median")
    args = parser.parse_args()
    run(args.messages, args.rows, args.jobs, args.repeat)


if __name__ == "__main__":
    main()
