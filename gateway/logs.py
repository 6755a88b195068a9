"""Structured JSON logs, one object a line, each carrying the request id of the
request being served (from a context variable set by the HTTP layer)."""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_RESERVED = set(vars(logging.makeLogRecord({})))
_DROPPED = {"color_message"}  # uvicorn's terminal-coloured copy of the message


class JsonFormatter(logging.Formatter):
    """One JSON object per record. It formats an access line per request, so
    the second's timestamp text is reused rather than rebuilt every time."""

    _second: int = -1
    _second_text: str = ""

    def _time(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            event["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in _DROPPED and not key.startswith("_"):
                event[key] = value
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(event, default=str).decode()


def configure(level: str = "INFO") -> None:
    """Send every log record, uvicorn's included, to stderr as JSON."""
    # The logging HOWTO's optimisations: every request writes an access line,
    # and nobody reads the caller's file/line, thread or process names in
    # them (the request id ties lines together).
    logging._srcfile = None  # documented in the HOWTO's "Optimization" section
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own access log carries the request id; uvicorn's would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
