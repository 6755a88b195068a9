"""Starting ``gateway serve`` nodes, and waiting for a ``gateway serve`` (or
``gateway demo``) process to answer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.postgres import free_port


def start_node(
    database_url: str, shared: Path, log: Path, workers: int
) -> tuple[subprocess.Popen[bytes], str]:
    """A ``gateway serve`` node of ``workers`` workers on a port of its own,
    on ``database_url``, with the key files and export folder every node
    of one deployment shares (under ``shared``); its process and base URL.
    Its connection pools are small, so that several nodes and their
    background processes fit the test cluster's connections."""
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_AUDIT_KEY": str(shared / "audit-key.pem"),
        "GATEWAY_DOCUMENT_KEY": str(shared / "document-key.pem"),
        "GATEWAY_EXPORT_DIR": str(shared / "exports"),
        "GATEWAY_DB_POOL_SIZE": "4",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


# How long a server may take to answer /readyz before it is taken for hung:
# far beyond any start seen, loaded machine or not. It bounds a hung server
# only; a server that exits is reported at once.
HUNG_S = 300.0


def wait_until_ready(
    process: subprocess.Popen[bytes], base: str, log: Path, *, hung_s: float = HUNG_S
) -> None:
    """Return once ``base``'s ``/readyz`` answers 200, the server's own
    signal that it serves. Fail with the server's ``log`` as soon as the
    process exits, or if it has not answered after ``hung_s`` seconds (a
    hung server: not a guess at how long a start takes, which depends on
    how loaded the machine is)."""
    hung_at = time.monotonic() + hung_s
    while True:
        assert process.poll() is None, f"server exited: {log.read_text()}"
        assert time.monotonic() < hung_at, (
            f"server hung: no ready answer in {hung_s:.0f} s: {log.read_text()}"
        )
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
