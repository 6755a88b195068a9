"""Memory the C allocator holds free, given back to the system.

glibc's malloc keeps what a process frees in its heaps for the next
allocation, and returns it to the system only from the top of a heap. A
worker's allocations come and go in every size (request bodies, stored
versions, SQLite pages, documents), so free memory gathers between live
blocks: in the soak (``bench/soak.py``, issue 30), 15 minutes into a mixed
load, a worker's malloc held 37 MB free of the 110 MB it had from the
system, and its resident memory grew by about 3 MiB a minute while Python's
own allocations (tracemalloc) and SQLite's heap stayed flat.
``malloc_trim(0)`` gives back every whole free page of every arena; each
worker calls it now and then (``TRIM_EVERY_S``), off its event loop.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

TRIM_EVERY_S = 60.0


def _find_trim() -> Callable[[], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc: its allocator, its own rules
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


_TRIM = _find_trim()


def release_free_memory() -> bool | None:
    """Give the allocator's free pages back to the system: whether any were
    (``None`` where the C library has no ``malloc_trim``). Takes the
    allocator's locks for a few milliseconds; ctypes lets go of the GIL."""
    if _TRIM is None:
        return None
    return _TRIM() == 1
