"""``gateway serve`` with tracemalloc in every process, for ``bench.soak
--tracemalloc``: ``python -m bench._soak_trace serve ...`` is ``gateway
serve ...``.

uvicorn starts its workers (and the gateway its background process) with
multiprocessing's ``spawn``, which imports this module again in each child as
``__mp_main__``; so each process, the serve process included, starts a
thread here that starts tracemalloc after ``SOAK_TRACEMALLOC_EVERY`` seconds
(tracing start-up would take minutes) and then every as many seconds
appends to ``SOAK_TRACEMALLOC_DIR/tracemalloc-<pid>.txt`` the process's RSS,
SQLite's heap and Python's traced memory (each with its peak since the
previous report: what a moment of the load took, which malloc keeps), each
of the store's SQLite connections' page cache, schema and prepared
statements, malloc's arenas (in use and free, and the free
memory by chunk size), the garbage collector's counts, the gateway's larger
functools caches, and the allocation sites that grew most since the
process's first snapshot and since the previous one, with their tracebacks
(``SOAK_TRACEMALLOC_FRAMES``, default 4; 0 leaves tracemalloc off). With
``SOAK_SQL_TEXTS=1`` it also counts the distinct SQL texts the process runs
(each one a statement its connections prepare and cache), reports the most
varied shapes and writes every text to ``sql-<pid>.txt``.
Without ``SOAK_TRACEMALLOC_EVERY`` it does nothing of its own.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

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
    tracemalloc does not see) and its high-water mark since the last call,
    where the sqlite3 module uses the shared library."""
    try:
        import ctypes
        import ctypes.util

        lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        current, high = ctypes.c_int64(), ctypes.c_int64()
        # SQLITE_STATUS_MEMORY_USED, its high-water mark reset for the next report
        lib.sqlite3_status64(0, ctypes.byref(current), ctypes.byref(high), 1)
        mib = 2**20
        high_mib = high.value / mib
        return f"{current.value / mib:,.1f} MiB (peak since the last report {high_mib:,.1f})"
    except (OSError, AttributeError):
        return "?"


_DBSTATUS = {"cache": 1, "schema": 2, "statements": 3}


def _sqlite_connections() -> str:
    """The store's connections (``gateway.store.sqlite._Held``, one per
    thread that used it: made after start-up, so the collector sees them)
    and each one's memory by ``sqlite3_db_status``: page cache, schema,
    prepared statements, in MiB. The ``sqlite3 *`` is read from the
    ``sqlite3.Connection`` object, where CPython keeps it right after the
    object's header."""
    try:
        import ctypes
        import ctypes.util

        lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
    except OSError:
        return "?"
    found = []
    for obj in gc.get_objects():
        if type(obj).__name__ != "_Held" or type(obj).__module__ != "gateway.store.sqlite":
            continue
        handle = ctypes.c_void_p.from_address(id(obj.conn) + object.__basicsize__).value
        if not handle:
            continue
        sizes = []
        for op in _DBSTATUS.values():
            current, high = ctypes.c_int(), ctypes.c_int()
            lib.sqlite3_db_status(
                ctypes.c_void_p(handle), op, ctypes.byref(current), ctypes.byref(high), 0
            )
            sizes.append(current.value / 2**20)
        found.append("/".join(f"{size:.1f}" for size in sizes))
    return f"{len(found)} ({'/'.join(_DBSTATUS)} MiB: {', '.join(found)})"


def _malloc() -> str:
    """glibc malloc's totals over its arenas (``mallinfo2``): bytes held from
    the system in arenas and in chunks mapped alone, how many of the arenas'
    bytes are in use, how many free. tracemalloc sees only what Python
    allocates; this is every allocation of the process, C and Rust included."""
    try:
        import ctypes

        class _Info(ctypes.Structure):
            _fields_ = [
                (name, ctypes.c_size_t)
                for name in (
                    "arena",
                    "ordblks",
                    "smblks",
                    "hblks",
                    "hblkhd",
                    "usmblks",
                    "fsmblks",
                    "uordblks",
                    "fordblks",
                    "keepcost",
                )
            ]

        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _Info
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return "?"
    mib = 2**20
    return (
        f"arenas {info.arena / mib:,.1f} MiB (in use {info.uordblks / mib:,.1f}, free "
        f"{info.fordblks / mib:,.1f} in {info.ordblks:,} chunks), mapped alone "
        f"{info.hblkhd / mib:,.1f} MiB in {info.hblks:,}"
    )


def _free_sizes() -> str:
    """How the free memory of malloc's arenas is split by chunk size
    (``malloc_info``'s bins, every arena): fragmentation is many small
    free chunks between chunks in use."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.open_memstream.restype = ctypes.c_void_p
        libc.open_memstream.argtypes = [
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.POINTER(ctypes.c_size_t),
        ]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
        stream = libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        text = (buffer.value or b"").decode()
        libc.free(buffer)
    except (OSError, AttributeError):
        return "?"
    bounds = (1024, 4096, 8192, 65536)
    totals = [0] * (len(bounds) + 1)
    # per-arena <size from= to= total= count=/> lines; the process-wide
    # summary follows the last </heap>
    per_heap = text.rsplit("</heap>", 1)[0]
    for start, total in re.findall(r'<size from="(\d+)" to="\d+" total="(\d+)"', per_heap):
        slot = sum(int(start) >= b for b in bounds)
        totals[slot] += int(total)
    names = ("<1K", "1-4K", "4-8K", "8-64K", ">64K")
    return (
        "free by chunk size "
        + ", ".join(f"{name} {t / 2**20:,.1f}" for name, t in zip(names, totals, strict=True))
        + " MiB"
    )


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
    seen: set[str] = set()
    time.sleep(every)  # the process starts untraced: tracing its start-up takes minutes
    if _FRAMES > 0:
        tracemalloc.start(_FRAMES)
    started = time.monotonic()
    while True:
        time.sleep(every)
        types = _types()
        traced, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()  # each report's peak is its own interval's
        lines = [
            f"== pid {os.getpid()} at {time.monotonic() - started:,.0f} s: traced "
            f"{traced / 2**20:,.1f} MiB (peak since the last report {peak / 2**20:,.1f}), "
            f"RSS {_rss()}, SQLite heap "
            f"{_sqlite_heap()}, connections {_sqlite_connections()}, malloc {_malloc()}, "
            f"{_free_sizes()}, "
            f"gc counts {gc.get_count()}, "
            f"objects {sum(types.values()):,} (frozen {gc.get_freeze_count():,}); caches: "
            + _caches()
        ]
        if _SQL_TEXTS:
            lines += _sql_texts(seen, out.with_name(f"sql-{os.getpid()}.txt"))
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


_SQL_TEXTS: Counter[str] = Counter()


def _count_sql_texts() -> None:
    """Count the distinct SQL texts the process's SQLite connections run
    (``SOAK_SQL_TEXTS=1``): each distinct text is a prepared statement in the
    connection's statement cache."""
    import sqlite3

    class _Cursor(sqlite3.Cursor):
        def execute(self, sql: str, *args: Any) -> Any:
            _SQL_TEXTS[sql] += 1
            return super().execute(sql, *args)

        def executemany(self, sql: str, *args: Any) -> Any:
            _SQL_TEXTS[sql] += 1
            return super().executemany(sql, *args)

    class _Connection(sqlite3.Connection):
        def cursor(self, factory: Any = _Cursor) -> Any:
            return super().cursor(factory)

        def execute(self, sql: str, *args: Any) -> Any:
            return self.cursor().execute(sql, *args)

        def executemany(self, sql: str, *args: Any) -> Any:
            return self.cursor().executemany(sql, *args)

    connect = sqlite3.connect

    def counting(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("factory", _Connection)
        return connect(*args, **kwargs)

    sqlite3.connect = counting


def _sql_texts(seen: set[str], out: Path) -> list[str]:
    """The report's lines on SQL texts; every text, with its count, to ``out``."""
    texts = dict(_SQL_TEXTS)
    out.write_text("".join(f"{n}\t{' '.join(text.split())}\n" for text, n in texts.items()))
    shapes = Counter(re.sub(r"\?(\s*,\s*\?)+", "?...", text) for text in texts)
    new = [text for text in texts if text not in seen]
    seen.update(new)
    lines = [
        f"-- SQL: {len(texts):,} distinct texts ({len(new):,} new), {len(shapes):,} shapes "
        "once lists of placeholders are folded; the most varied shapes:"
    ]
    for shape, n in shapes.most_common(5):
        if n > 1:
            lines.append(f"   {n:,} texts: {' '.join(shape.split())[:300]}")
    for text in new[:5]:
        lines.append(f"   new: {' '.join(text.split())[:300]}")
    return lines


def _start() -> None:
    every = float(os.environ.get("SOAK_TRACEMALLOC_EVERY") or 0)
    if every <= 0 or tracemalloc.is_tracing():
        return
    if os.environ.get("SOAK_SQL_TEXTS") == "1":
        _count_sql_texts()
    out = Path(os.environ.get("SOAK_TRACEMALLOC_DIR") or ".") / f"tracemalloc-{os.getpid()}.txt"
    threading.Thread(
        target=_report, args=(every, out), name="soak-tracemalloc", daemon=True
    ).start()


_start()

if __name__ == "__main__":
    from gateway.cli import main

    sys.exit(main())
