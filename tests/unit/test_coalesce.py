"""Reads asked for while one is in flight go together in the next batch;
each waiter gets its own answer, or the batch's failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.store._coalesce import MAX_BATCH, Coalescer


class _Source:
    """Values by key, each batch held until the test releases it."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.failure: Exception | None = None

    async def fetch_many(self, keys: Sequence[str]) -> dict[str, str]:
        self.batches.append(list(keys))
        await self.release.wait()
        if self.failure is not None:
            raise self.failure
        return {key: key.upper() for key in keys if not key.startswith("missing")}


def test_an_idle_read_goes_at_once_and_those_asked_meanwhile_go_together() -> None:
    async def run() -> None:
        source = _Source()
        reads = Coalescer(source.fetch_many)
        first = asyncio.create_task(reads.get("a"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert source.batches == [["a"]]  # not waiting for company
        later = [asyncio.create_task(reads.get(key)) for key in ("b", "c", "b", "missing")]
        await asyncio.sleep(0)
        source.release.set()
        assert await first == "A"
        assert [await task for task in later] == ["B", "C", "B", None]
        assert source.batches == [["a"], ["b", "c", "missing"]]  # one key asked twice, read once

    asyncio.run(run())


def test_a_failed_batch_fails_its_waiters_and_the_next_batch_still_runs() -> None:
    async def run() -> None:
        source = _Source()
        reads = Coalescer(source.fetch_many)
        source.failure = RuntimeError("database gone")
        doomed = [asyncio.create_task(reads.get(key)) for key in ("a", "b")]
        source.release.set()
        for task in doomed:
            with pytest.raises(RuntimeError, match="database gone"):
                await task
        source.failure = None
        assert await reads.get("c") == "C"

    asyncio.run(run())


def test_a_cancelled_waiter_leaves_the_others_their_answers() -> None:
    async def run() -> None:
        source = _Source()
        reads = Coalescer(source.fetch_many)
        gone = asyncio.create_task(reads.get("a"))
        kept = asyncio.create_task(reads.get("a"))
        await asyncio.sleep(0)
        gone.cancel()
        source.release.set()
        assert await kept == "A"
        with pytest.raises(asyncio.CancelledError):
            await gone

    asyncio.run(run())


def test_a_batch_names_at_most_max_batch_keys() -> None:
    async def run() -> None:
        source = _Source()
        source.release.set()
        reads = Coalescer(source.fetch_many)
        keys = [f"k{n}" for n in range(MAX_BATCH * 2 + 1)]
        assert await asyncio.gather(*(reads.get(key) for key in keys)) == [k.upper() for k in keys]
        assert all(len(batch) <= MAX_BATCH for batch in source.batches)

    asyncio.run(run())
