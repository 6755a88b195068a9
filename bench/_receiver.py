"""The subscribers' endpoints for ``bench.notifications``: one HTTP server
on loopback, in a process of its own (``python -m bench._receiver``), that
answers every POST with 200 at once and keeps a tally of what it was sent.

A process of its own so that what the subscribers do costs the gateway's
process nothing: the benchmark measures the gateway's CPU, and a receiver
in its threads would take the GIL from the loader it is measuring. It
speaks HTTP/1.1 with keep-alive, as a subscriber's server would, so a
client that keeps its connection open can.

It prints its port on the first line of its output. ``GET /stats`` answers
the tally since the last ``GET /stats?reset=1`` as JSON: the Bundles by
notification type, the events they carried, the distinct endpoint paths,
the time of the last receipt, and each event's latency in seconds (its
receipt less the notification-event's ``timestamp``, the instant the
gateway wrote the change).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


class _Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.bundles: Counter[str] = Counter()
        self.events = 0
        self.paths: set[str] = set()
        self.latencies: list[float] = []
        self.last = 0.0

    def snapshot(self) -> dict[str, Any]:
        return {
            "bundles": dict(self.bundles),
            "events": self.events,
            "paths": len(self.paths),
            "last": self.last,
            "latencies": self.latencies,
        }


_TALLY = _Tally()


def _instant(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _read(body: bytes, received: float) -> tuple[str, list[float]]:
    """The notification's type, and the latency of each event it carries."""
    status = orjson.loads(body)["entry"][0]["resource"]
    kind = "?"
    latencies = []
    for parameter in status["parameter"]:
        if parameter["name"] == "type":
            kind = parameter["valueCode"]
        elif parameter["name"] == "notification-event":
            for part in parameter["part"]:
                if part["name"] == "timestamp":
                    latencies.append(received - _instant(part["valueInstant"]))
    return kind, latencies


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a subscriber's server would

    def do_POST(self) -> None:
        received = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        kind, latencies = _read(body, received)  # after answering: the worker is not kept
        with _TALLY.lock:
            _TALLY.bundles[kind] += 1
            _TALLY.events += len(latencies)
            _TALLY.paths.add(self.path)
            _TALLY.latencies += latencies
            _TALLY.last = max(_TALLY.last, received)

    def do_GET(self) -> None:
        with _TALLY.lock:
            body = orjson.dumps(_TALLY.snapshot())
            if self.path.endswith("reset=1"):
                _TALLY.reset()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
