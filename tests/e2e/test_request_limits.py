"""Requests too long, or not HTTP at all, against ``gateway serve`` itself:
each is answered with an OperationOutcome, whether the gateway refuses it
(a URL or headers over its limits) or the HTTP parser beneath it cannot read
it, where uvicorn alone would answer in plain text."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from tests.e2e.test_server import Server, _start, _stop


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("limits")
    running = _start(f"sqlite:///{tmp_path}/gateway.db", tmp_path)
    yield running
    _stop(running)


def _exchange(server: Server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as raw bytes; the status, headers and body of the
    answer (read until the server closes, or the body is whole)."""
    address = urlsplit(server.base)
    assert address.hostname is not None and address.port is not None
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        # The server may answer and close before it has taken all of it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(request)
        received = b""
        while True:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            length = [
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if length and len(body) >= length[0]:
                break
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, value in (line.split(":", 1) for line in lines)
    }
    return int(status_line.split()[1]), headers, body


def _outcome(answer: tuple[int, dict[str, str], bytes], status: int, *named: str) -> Any:
    got, headers, body = answer
    assert got == status, (got, body[:300])
    assert headers["content-type"].startswith("application/fhir+json")
    outcome = orjson.loads(body)
    assert outcome["resourceType"] == "OperationOutcome"
    for text in named:
        assert text in outcome["issue"][0]["diagnostics"], outcome
    return outcome


def _get(target: bytes, *headers: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: gateway\r\n" + b"".join(headers) + b"\r\n"


def test_a_url_over_the_gateway_limit_is_414(server: Server) -> None:
    answer = _exchange(server, _get(b"/fhir/Patient?name=" + b"a" * 9000))
    _outcome(answer, 414, "GW-0304", "this server takes at most 8192")
    assert answer[1]["x-request-id"]


def test_a_url_longer_than_the_parser_reads_is_414(server: Server) -> None:
    for length in (70_000, 2_000_000):
        answer = _exchange(server, _get(b"/fhir/Patient?name=" + b"a" * length))
        _outcome(answer, 414, "GW-0304", "over 65535 bytes")


def test_headers_over_the_limit_are_431(server: Server) -> None:
    padding = b"X-Padding: " + b"a" * 100_000 + b"\r\n"
    _outcome(_exchange(server, _get(b"/fhir/metadata", padding)), 431, "GW-0305")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /fhir/ metadata HTTP/1.1\r\nHost: gateway\r\n\r\n",
        b"GET /fhir/Patient?\x01 HTTP/1.1\r\nHost: gateway\r\n\r\n",
        b"GET /fhir/metadata HTTP/1.1\r\nHost: gateway\r\nBad Header: x\r\n\r\n",
        b"HELLO\r\n\r\n",
    ],
)
def test_what_the_parser_cannot_read_is_400(server: Server, request_bytes: bytes) -> None:
    _outcome(_exchange(server, request_bytes), 400, "GW-0307", "not valid HTTP/1.1")


def test_the_server_still_answers_after_refusing(server: Server) -> None:
    _exchange(server, b"HELLO\r\n\r\n")
    status, _, body = _exchange(server, _get(b"/fhir/metadata"))
    assert status == 200
    assert orjson.loads(body)["resourceType"] == "CapabilityStatement"
