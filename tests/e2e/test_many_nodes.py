"""Three gateway nodes (``gateway serve`` processes on their own ports, two
workers each), started together on one empty PostgreSQL database, behave as
one server: every node comes up (migrations and the keys made once, whoever
gets there first), writes through all three at once land, one audit log
records them all and verifies intact, and a bulk export asked for through
one node is run once, by whichever node takes it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_server import register, token_for
from tests.support.postgres import Cluster
from tests.support.serving import start_node, wait_until_ready

pytestmark = pytest.mark.postgres

NHS = "https://fhir.nhs.uk/Id/nhs-number"
_VALID_NHS = ["9990000018", "9990000026", "9990000034", "9990000042", "9990000050"]


Node = tuple[subprocess.Popen[bytes], str, Path]


def _start_together(database_url: str, tmp_path: Path, count: int) -> list[Node]:
    """``count`` nodes started at once, none waiting for another (six
    workers and three background processes share the test cluster's
    connections)."""
    nodes = []
    for n in range(count):
        log = tmp_path / f"node-{n}.log"
        process, base = start_node(database_url, tmp_path, log, workers=2)
        nodes.append((process, base, log))
    for process, base, log in nodes:
        wait_until_ready(process, base, log)
    return nodes


def _stop(nodes: list[Node]) -> None:
    for process, _, _ in nodes:
        process.terminate()
    for process, _, _ in nodes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def test_three_nodes_started_together_on_an_empty_database_are_one_server(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    url = pg_cluster.create_database(f"nodes_{os.getpid()}")
    nodes = _start_together(url, tmp_path, 3)
    try:
        for _, _, log in nodes:
            failed = [
                line
                for line in log.read_text().splitlines()
                if "Traceback" in line or "Violation" in line or '"level":"error"' in line
            ]
            assert not failed, failed
        key = register(url, tmp_path, "gp-system")
        gp = {"Authorization": f"Bearer {token_for(url, 'gp-system', key)}"}

        def write(n: int) -> int:
            _, base, _ = nodes[n % 3]
            patient = {
                "resourceType": "Patient",
                "identifier": [{"system": NHS, "value": _VALID_NHS[n % 5]}],
                "birthDate": f"19{40 + n}-01-01",
            }
            return httpx.post(
                f"{base}/fhir/Patient", json=patient, headers=gp, timeout=30
            ).status_code

        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(write, range(30)))
        assert statuses == [201] * 30
        for _, base, _ in nodes:  # each node reads what the others wrote
            found = httpx.get(f"{base}/fhir/Patient?_summary=count", headers=gp, timeout=30)
            assert found.json()["total"] == 30

        # An export asked for through one node is run once, by any of them.
        analytics_key = register(
            url, tmp_path, "icb", "--org", "QMJ", "--kind", "analytics", "--scope", "system/*.rs"
        )
        icb = {
            "Authorization": "Bearer "
            + token_for(url, "icb", analytics_key, "--purpose", "POPHLTH")
        }
        started = httpx.get(
            f"{nodes[1][1]}/fhir/$export?_type=Patient",
            headers={**icb, "Prefer": "respond-async"},
            timeout=30,
        )
        assert started.status_code == 202, started.text
        status_path = started.headers["Content-Location"].split("/fhir", 1)[1]
        deadline = time.monotonic() + 60
        while True:
            answer = httpx.get(f"{nodes[2][1]}/fhir{status_path}", headers=icb, timeout=30)
            if answer.status_code == 200:
                break
            assert answer.status_code == 202, answer.text
            assert time.monotonic() < deadline, answer.headers
            time.sleep(0.5)
        assert [o["count"] for o in answer.json()["output"]] == [30], [
            line for _, _, log in nodes for line in log.read_text().splitlines() if "export" in line
        ]
        runs = sum(log.read_text().count("complete: ") for _, _, log in nodes)
        assert runs == 1
    finally:
        _stop(nodes)
    verified = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "GATEWAY_DATABASE_URL": url,
            "GATEWAY_AUDIT_KEY": str(tmp_path / "audit-key.pem"),
        },
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
