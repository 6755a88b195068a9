"""Waiting for a ``gateway serve`` (or ``gateway demo``) process to answer."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_until_ready(
    process: subprocess.Popen[bytes], base: str, log: Path, deadline: float
) -> None:
    """Return once ``base``'s ``/readyz`` answers 200; fail with the
    server's ``log`` if the process exits first or ``deadline`` (a
    ``time.monotonic()`` instant) passes."""
    while True:
        assert process.poll() is None, f"server exited: {log.read_text()}"
        assert time.monotonic() < deadline, f"server did not become ready: {log.read_text()}"
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
