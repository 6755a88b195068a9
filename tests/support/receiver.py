"""A subscriber's endpoint on loopback: a real HTTP server that keeps what
it is sent and answers as a test tells it to."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def bundle(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed

    @property
    def status(self) -> dict[str, Any]:
        """The SubscriptionStatus parameters, by name (notification-event: a list)."""
        found: dict[str, Any] = {"notification-event": []}
        for parameter in self.bundle["entry"][0]["resource"]["parameter"]:
            name = parameter["name"]
            if name == "notification-event":
                found[name].append({p["name"]: _value(p) for p in parameter["part"]})
            else:
                found[name] = _value(parameter)
        return found


def _value(parameter: dict[str, Any]) -> Any:
    return next(v for k, v in parameter.items() if k.startswith("value"))


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    # Status codes to answer with, in turn; 200 once they run out.
    answers: list[int] = field(default_factory=list)

    def of(self, path: str, kind: str | None = None) -> list[Received]:
        return [
            r
            for r in self.received
            if r.path == path and (kind is None or r.status["type"] == kind)
        ]


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 until the block ends."""
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            listening = holder[0]
            status = listening.answers.pop(0) if listening.answers else 200
            if status < 300:
                listening.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
