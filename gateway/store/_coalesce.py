"""Reads by id on the event loop, gathered while one is in flight.

Under load a worker's requests each read one resource, and each read was a
statement of its own: a pool checkout, a round trip, a wake-up of a
PostgreSQL backend. Here the first read goes at once; reads asked for while
it is out wait for it to come back and then go together, as one statement,
so a busy worker sends one statement for several requests and an idle one
adds no delay to any.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Keys one statement names at most; more wait for the next.
MAX_BATCH = 64


class Coalescer(Generic[K, V]):
    """``get`` through ``fetch_many`` (keys to the values found; a key not
    found is absent), one batch at a time."""

    def __init__(self, fetch_many: Callable[[Sequence[K]], Awaitable[dict[K, V]]]) -> None:
        self._fetch_many = fetch_many
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._draining = False

    async def get(self, key: K) -> V | None:
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                keys = list(self._waiting)[:MAX_BATCH]
                batch = {key: self._waiting.pop(key) for key in keys}
                try:
                    found = await self._fetch_many(keys)
                except Exception as exc:  # each waiter gets the failure as its own
                    _fail(batch, exc)
                    continue
                except BaseException as exc:  # cancelled (shutting down): no one waits on
                    _fail(batch, exc)
                    _fail(self._waiting, exc)
                    self._waiting = {}
                    raise
                for key, futures in batch.items():
                    value = found.get(key)
                    for future in futures:
                        if not future.done():  # its request may have been cancelled
                            future.set_result(value)
        finally:
            self._draining = False


def _fail(waiting: dict[K, list[asyncio.Future[V | None]]], exc: BaseException) -> None:
    for futures in waiting.values():
        for future in futures:
            if not future.done():
                future.set_exception(exc)
