"""A hospital's interface engine sends ADT over MLLP and reads each ACK."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import open_store
from mappings.hl7v2.parser import parse_message, split_messages
from tests.support.postgres import free_port

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7v2"


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[int, str]]:
    url = f"sqlite:///{tmp_path}/gateway.db"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "mllp", "--source-org", "RKE", "--port", str(port)],
        env={**os.environ, "GATEWAY_DATABASE_URL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield port, url
    process.terminate()
    process.wait(timeout=10)


def send(port: int, *payloads: bytes) -> list[tuple[str, str, str]]:
    """(MSA-1, MSA-2, MSA-3) of the ACK to each framed payload."""
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for payload in payloads:
            conn.sendall(b"\x0b" + payload + b"\x1c\r")
            data = b""
            while not data.endswith(b"\x1c\r"):
                data += conn.recv(65536)
            ack = parse_message(data.strip(b"\x0b\x1c\r").decode("latin-1"))
            msa = ack.segment("MSA")
            assert msa is not None and ack.segments[0].value(9, 1) == "ACK"
            answers.append((msa.value(1), msa.value(2), msa.value(3)))
    return answers


def test_each_message_is_acknowledged_as_it_fared(listener: tuple[int, str]) -> None:
    port, url = listener
    admit = (FIXTURES / "admit.hl7").read_bytes()
    discharge, wrong, _ = [
        text.encode("latin-1")
        for _, text in split_messages((FIXTURES / "discharge-and-errors.hl7").read_bytes())
    ]
    elsewhere = admit.replace(b"|PAS|RKE|", b"|PAS|RRV|", 1)
    answers = send(port, admit, admit, discharge, wrong, elsewhere, b"not hl7 at all")
    assert [a[:2] for a in answers] == [
        ("AA", "MSG0001"),
        ("AA", "MSG0001"),  # sent again: accepted, nothing written twice
        ("AA", "MSG0002"),
        ("AE", "MSG0003"),
        ("AR", "MSG0001"),
        ("AR", ""),
    ]
    assert "Modulus 11" in answers[3][2] and "RRV" in answers[4][2]
    store = open_store(url)
    try:
        encounters = store.select(
            "SELECT version FROM resource_current WHERE res_type = 'Encounter'", []
        )
        assert [int(str(row[0])) for row in encounters] == [2]  # admitted, then discharged
    finally:
        store.close()
