"""``gateway serve`` with tracemalloc in every process, for ``bench.soak
--tracemalloc``: ``python -m bench._soak_trace serve ...`` is ``gateway
serve ...``.

uvicorn starts its workers (and the gateway its background process) with
multiprocessing's ``spawn``, which imports this module again in each child as
``__mp_main__``; so each process, the serve process included, starts a
thread here that starts tracemalloc after ``SOAK_TRACEMALLOC_EVERY`` seconds
(tracing start-up would take minutes) and then every as many seconds
appends to ``SOAK_TRACEMALLOC_DIR/tracemalloc-<pid>.txt`` the process's RSS,
SQLite's heap, the garbage collector's counts, the gateway's larger
functools caches, and the allocation sites that grew most since the
process's first snapshot and since the previous one, with their tracebacks
(``SOAK_TRACEMALLOC_FRAMES``, default 4; 0 leaves tracemalloc off).
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

_FRAMES = int(os.environ.get("SOAK_TRACEMALLOC_FRAMES") or 4)
_TOP = 25
_IGNORED = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


def _sqlite_heap() -> str:
    """SQLite's own heap in this process (its page caches, which
    tracemalloc does not see), where the sqlite3 module uses the shared
    library."""
    try:
        import ctypes
        import ctypes.util

        lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        return f"{lib.sqlite3_memory_used() / 2**20:,.1f} MiB"
    except (OSError, AttributeError):
        return "?"


def _rss() -> str:
    with open(f"/proc/{os.getpid()}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return f"{int(line.split()[1]) / 1024:,.0f} MiB"
    return "?"


def _caches() -> str:
    """The functools caches of the gateway's modules holding more than a
    hundred entries: their sizes and bounds. (Found in the modules: the
    server freezes its start-up objects out of the collector's sight.)"""
    found = []
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in ("gateway", "consent", "conformance", "mappings"):
            continue
        for attribute, value in list(vars(module).items()):
            info = getattr(value, "cache_info", None)
            if callable(info) and getattr(value, "__module__", None) == name:
                size = info()
                if size.currsize > 100:
                    found.append(f"{name}.{attribute} {size.currsize}/{size.maxsize}")
    return ", ".join(sorted(found)) or "none over 100 entries"


def _types() -> Counter[str]:
    return Counter(type(o).__name__ for o in gc.get_objects())


def _report(every: float, out: Path) -> None:
    first: tracemalloc.Snapshot | None = None
    previous: tracemalloc.Snapshot | None = None
    first_types: Counter[str] | None = None
    time.sleep(every)  # the process starts untraced: tracing its start-up takes minutes
    if _FRAMES > 0:
        tracemalloc.start(_FRAMES)
    started = time.monotonic()
    while True:
        time.sleep(every)
        types = _types()
        traced, peak = tracemalloc.get_traced_memory()
        lines = [
            f"== pid {os.getpid()} at {time.monotonic() - started:,.0f} s: traced "
            f"{traced / 2**20:,.1f} MiB (peak {peak / 2**20:,.1f}), RSS {_rss()}, SQLite heap "
            f"{_sqlite_heap()}, gc counts {gc.get_count()}, "
            f"objects {sum(types.values()):,} (frozen {gc.get_freeze_count():,}); caches: "
            + _caches()
        ]
        if _FRAMES <= 0:  # counts and caches only, without tracemalloc's cost
            with out.open("a") as handle:
                handle.write("\n".join(lines) + "\n")
            continue
        snapshot = tracemalloc.take_snapshot().filter_traces(_IGNORED)
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
            for stat in snapshot.compare_to(first, "traceback")[: 5 if _FRAMES > 1 else 0]:
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
    out = Path(os.environ.get("SOAK_TRACEMALLOC_DIR") or ".") / f"tracemalloc-{os.getpid()}.txt"
    threading.Thread(
        target=_report, args=(every, out), name="soak-tracemalloc", daemon=True
    ).start()


_start()

if __name__ == "__main__":
    from gateway.cli import main

    sys.exit(main())
