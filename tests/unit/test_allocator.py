"""Free memory the C allocator holds is given back (``gateway.allocator``;
issue 30: a worker's malloc held a third of its heap free after a quarter
of an hour of mixed load, and its resident memory kept growing)."""

from __future__ import annotations

import pytest

from gateway import allocator


def _rss_mib() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def test_free_pages_between_live_blocks_go_back_to_the_system() -> None:
    if allocator.release_free_memory() is None:
        pytest.skip("this C library has no malloc_trim")
    blocks = [bytearray(3000) for _ in range(60_000)]  # 180 MB from malloc
    kept = blocks[::10]  # one live block in ten: the rest freed between them
    del blocks
    before = _rss_mib()
    assert allocator.release_free_memory() is not None
    assert _rss_mib() < before - 60
    assert len(kept) == 6000
