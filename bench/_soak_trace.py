"""``gateway serve`` with tracemalloc in every process, for ``bench.soak
--tracemalloc``: ``python -m bench._soak_trace serve ...`` is ``gateway
serve ...``.

uvicorn starts its workers (and the gateway its background process) with
multiprocessing's ``spawn``, which imports this module again in each child as
``__mp_main__``; so each process, the serve process included, starts
tracemalloc here and a thread that every ``SOAK_TRACEMALLOC_EVERY`` seconds
appends to ``SOAK_TRACEMALLOC_DIR/tracemalloc-<pid>.txt``: the allocation
sites that grew most since the process's first snapshot and since the
previous one, with their tracebacks, and the garbage collector's counts.
Without ``SOAK_TRACEMALLOC_EVERY`` it does nothing of its own.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path

_FRAMES = 8
_TOP = 25
_IGNORED = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


def _types() -> Counter[str]:
    return Counter(type(o).__name__ for o in gc.get_objects())


def _report(every: float, out: Path) -> None:
    first: tracemalloc.Snapshot | None = None
    previous: tracemalloc.Snapshot | None = None
    first_types: Counter[str] | None = None
    started = time.monotonic()
    while True:
        time.sleep(every)
        snapshot = tracemalloc.take_snapshot().filter_traces(_IGNORED)
        types = _types()
        traced, peak = tracemalloc.get_traced_memory()
        lines = [
            f"== pid {os.getpid()} at {time.monotonic() - started:,.0f} s: traced "
            f"{traced / 2**20:,.1f} MiB (peak {peak / 2**20:,.1f}), gc counts {gc.get_count()}, "
            f"objects {sum(types.values()):,} (frozen {gc.get_freeze_count():,})"
        ]
        if first is None:
            first, first_types = snapshot, types
        else:
            assert first_types is not None
            lines.append("-- growth since the first snapshot, by line")
            for stat in snapshot.compare_to(first, "lineno")[:_TOP]:
                lines.append(f"   {stat}")
            lines.append("-- growth since the previous snapshot, by line")
            assert previous is not None
            for stat in snapshot.compare_to(previous, "lineno")[:10]:
                lines.append(f"   {stat}")
            lines.append("-- growth since the first snapshot, by traceback (top 5)")
            for stat in snapshot.compare_to(first, "traceback")[:5]:
                lines.append(f"   {stat.size_diff / 1024:+,.1f} KiB in {stat.count_diff:+,} blocks")
                lines += [f"      {line}" for line in stat.traceback.format()]
            grown = types.copy()
            grown.subtract(first_types)
            lines.append(
                "-- object counts grown since the first snapshot: "
                + ", ".join(f"{name} {n:+,}" for name, n in grown.most_common(15) if n > 0)
            )
        previous = snapshot
        with out.open("a") as handle:
            handle.write("\n".join(lines) + "\n")


def _start() -> None:
    every = float(os.environ.get("SOAK_TRACEMALLOC_EVERY") or 0)
    if every <= 0 or tracemalloc.is_tracing():
        return
    tracemalloc.start(_FRAMES)
    out = Path(os.environ.get("SOAK_TRACEMALLOC_DIR") or ".") / f"tracemalloc-{os.getpid()}.txt"
    threading.Thread(
        target=_report, args=(every, out), name="soak-tracemalloc", daemon=True
    ).start()


_start()

if __name__ == "__main__":
    from gateway.cli import main

    sys.exit(main())
