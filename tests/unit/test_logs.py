"""The JSON log lines, the access line's fast path included."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from gateway import logs


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logs.access_log.stream)
    try:
        yield io.StringIO()
    finally:
        root.handlers[:], _, logs.access_log.stream = saved
        root.setLevel(saved[1])


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_access_lines_have_the_shape_of_every_other_record(stderr: io.StringIO) -> None:
    logs.configure("INFO", stderr)
    token = logs.request_id.set("req-1")
    try:
        logs.access_log.write("GET", "/fhir/Patient/p1", 200, 0.125)
        logging.getLogger("gateway.access").info(
            "request", extra={"method": "GET", "path": "/x", "status": 404, "duration_ms": 1.0}
        )
    finally:
        logs.request_id.reset(token)
    fast, slow = _lines(stderr)
    assert fast == {
        "time": fast["time"],
        "level": "info",
        "logger": "gateway.access",
        "message": "request",
        "request_id": "req-1",
        "method": "GET",
        "path": "/fhir/Patient/p1",
        "status": 200,
        "duration_ms": 0.125,
    }
    assert list(fast) == list(slow)  # same keys, same order
    assert isinstance(fast["time"], str) and fast["time"].endswith("Z")
    assert len(fast["time"]) == len("2026-01-01T00:00:00.000Z")


def test_no_access_lines_above_info(stderr: io.StringIO) -> None:
    logs.configure("WARNING", stderr)
    logs.access_log.write("GET", "/fhir/Patient/p1", 200, 0.1)
    assert stderr.getvalue() == ""
