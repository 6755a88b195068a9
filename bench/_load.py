"""The load generator: closed-loop HTTP/1.1 clients on raw asyncio streams.

It runs in processes of its own (``multiprocessing`` with ``spawn``), never in
the server's, and speaks just enough HTTP/1.1 over keep-alive connections to
send pre-built request bytes and read the response (``Content-Length`` or
chunked bodies). That costs a few tens of microseconds of client CPU per
request, far less than ``httpx``, so the client is not what is measured.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Coroutine
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from typing import Literal

_SAMPLE_BYTES = 400  # of an unexpected response body kept for the report
_SAMPLES_PER_STATUS = 3
_MAX_IDS = 50_000


@dataclass(frozen=True)
class PhaseSpec:
    """What every client of one phase sends.

    ``requests`` are complete HTTP/1.1 requests. With ``mode="shared"`` every
    client cycles through all of them, each from its own starting point; with
    ``mode="partition"`` client *i* of *n* sends only ``requests[i::n]``, so no
    two clients touch the same resource (updates without write conflicts).
    """

    name: str
    host: str
    port: int
    requests: list[bytes]
    expected_status: int
    warmup: float
    duration: float
    total_clients: int
    mode: Literal["shared", "partition"] = "shared"
    collect_location: bool = False  # keep the ids of Location headers (create)


@dataclass
class LoaderResult:
    latencies_ns: array[int] = field(default_factory=lambda: array("q"))
    statuses: dict[int, int] = field(default_factory=dict)
    unexpected: dict[int, list[str]] = field(default_factory=dict)
    exceptions: dict[str, int] = field(default_factory=dict)
    created_ids: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0  # this process's CPU time during the measured window


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> tuple[int, bytes, bytes]:
        """Send one request; return (status, header block, body)."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        if len(request) > 65_536:
            await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            end = lower.find(b"\r\n", at + 2)
            length = int(lower[at + 17 : end])
            body = await self.reader.readexactly(length) if length else b""
        elif b"\r\ntransfer-encoding: chunked" in lower:
            body = await self._chunked()
        else:
            body = b""
        if b"\r\nconnection: close" in lower:
            self.close()
        return status, head, body

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


def _location_id(head: bytes) -> str | None:
    lower = head.lower()
    at = lower.find(b"\r\nlocation:")
    if at < 0:
        return None
    end = head.find(b"\r\n", at + 2)
    path = head[at + 11 : end].strip().decode("latin-1").split("/_history/")[0]
    return path.rsplit("/", 1)[-1]


async def _client(
    spec: PhaseSpec,
    index: int,
    conn: _Connection,
    measure_from: float,
    until: float,
    result: LoaderResult,
) -> None:
    if spec.mode == "partition":
        mine = spec.requests[index :: spec.total_clients] or spec.requests
        position = 0
    else:
        mine = spec.requests
        position = index * len(mine) // spec.total_clients
    count = len(mine)
    expected = spec.expected_status
    latencies = result.latencies_ns
    statuses = result.statuses
    clock = time.monotonic_ns
    measure_ns, until_ns = int(measure_from * 1e9), int(until * 1e9)
    while True:
        started = clock()
        if started >= until_ns:
            return
        request = mine[position % count]
        position += 1
        try:
            status, head, body = await conn.exchange(request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            if started >= measure_ns:
                name = type(exc).__name__
                result.exceptions[name] = result.exceptions.get(name, 0) + 1
            await asyncio.sleep(0.01)
            continue
        finished = clock()
        if started < measure_ns:
            continue
        latencies.append(finished - started)
        statuses[status] = statuses.get(status, 0) + 1
        if status != expected:
            samples = result.unexpected.setdefault(status, [])
            if len(samples) < _SAMPLES_PER_STATUS:
                samples.append(body[:_SAMPLE_BYTES].decode("utf-8", "replace"))
        elif spec.collect_location and len(result.created_ids) < _MAX_IDS:
            found = _location_id(head)
            if found:
                result.created_ids.append(found)


async def _cpu_window(measure_from: float, until: float, result: LoaderResult) -> None:
    await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
    cpu = time.process_time()
    await asyncio.sleep(max(0.0, until - time.monotonic()))
    result.cpu_seconds = time.process_time() - cpu


async def _run(
    spec: PhaseSpec,
    clients: list[int],
    ready: Queue[str],
    commands: Queue[str],
    start_at: Synchronized[float],
) -> LoaderResult:
    connections = [_Connection(spec.host, spec.port) for _ in clients]
    loop = asyncio.get_running_loop()
    while True:
        for conn in connections:
            # One at a time, so that each accept can wake a different server worker.
            await conn.open()
            await asyncio.sleep(0.002)
        ready.put("ready")
        command = await loop.run_in_executor(None, commands.get)
        if command == "go":
            break
        for conn in connections:  # "reconnect": the server's workers got uneven shares
            conn.close()
        await asyncio.sleep(0.05)
    begin = start_at.value
    measure_from, until = begin + spec.warmup, begin + spec.warmup + spec.duration
    await asyncio.sleep(max(0.0, begin - time.monotonic()))
    result = LoaderResult()
    await asyncio.gather(
        _cpu_window(measure_from, until, result),
        *(
            _client(spec, index, conn, measure_from, until, result)
            for index, conn in zip(clients, connections, strict=True)
        ),
    )
    for conn in connections:
        conn.close()
    return result


def _event_loop_run(coro: Coroutine[None, None, LoaderResult]) -> LoaderResult:
    """Run on uvloop when it is installed (as the server does), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def loader_main(
    spec: PhaseSpec,
    clients: list[int],
    ready: Queue[str],
    commands: Queue[str],
    start_at: Synchronized[float],
    results: Queue[LoaderResult | str],
) -> None:
    """Process entry point: connect ``clients`` and say ready; on ``"reconnect"``
    from ``commands`` connect afresh and say ready again; on ``"go"`` run the
    phase from ``start_at`` and put a ``LoaderResult`` (or an error text) on
    ``results``."""
    try:
        results.put(_event_loop_run(_run(spec, clients, ready, commands, start_at)))
    except BaseException as exc:  # reported by the orchestrator, never swallowed
        results.put(f"load generator failed: {type(exc).__name__}: {exc}")
        ready.put("failed")
