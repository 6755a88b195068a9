"""Killed mid-write, the gateway loses nothing it acknowledged and stores
nothing unaudited (PRODUCT.md section 5): the server is killed with SIGKILL
at moments drawn at random (from a fixed seed) while clients write, then
started again, ten times on each store. Afterwards every write acknowledged
before a kill is there, every stored version is named by an audit entry,
and ``gateway audit verify`` finds the log intact."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import httpx

from gateway.store import open_store
from tests.e2e.test_audit_cli import audit
from tests.e2e.test_server import _start, register, token_for

_KILLS = 10


def _writer(base: str, token: str, acknowledged: list[str], stop: threading.Event) -> None:
    """Creates Patients and small transactions until told to stop or the
    server dies; what it was answered 2xx for goes into ``acknowledged``
    (``Type/id/_history/n``)."""
    headers = {"Authorization": f"Bearer {token}"}
    n = 0
    with httpx.Client(base_url=base, headers=headers, timeout=5) as http:
        while not stop.is_set():
            n += 1
            try:
                if n % 4:
                    answer = http.post(
                        "/fhir/Patient",
                        json={"resourceType": "Patient", "name": [{"family": f"Crash{n}"}]},
                    )
                    if answer.status_code == 201:
                        created = answer.json()
                        acknowledged.append(
                            f"Patient/{created['id']}/_history/{created['meta']['versionId']}"
                        )
                else:
                    entries = [
                        {
                            "resource": {"resourceType": "Patient", "gender": "unknown"},
                            "request": {"method": "POST", "url": "Patient"},
                        }
                        for _ in range(5)
                    ]
                    answer = http.post(
                        "/fhir",
                        json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                    )
                    if answer.status_code == 200:
                        for entry in answer.json()["entry"]:
                            location = entry["response"]["location"]
                            acknowledged.append(location.split("/fhir/", 1)[1])
            except httpx.TransportError:
                return  # the server is gone


def _audited_versions(database_url: str) -> set[str]:
    store = open_store(database_url)
    try:
        rows = store.select("SELECT entry FROM audit_entry", [])
        named: set[str] = set()
        for (entry,) in rows:
            event = json.loads(bytes(entry))  # type: ignore[arg-type]
            for entity in event.get("entity", []):
                reference = entity.get("what", {}).get("reference", "")
                if "/_history/" in reference:
                    named.add(reference)
        return named
    finally:
        store.close()


def _stored_versions(database_url: str) -> set[str]:
    store = open_store(database_url)
    try:
        rows = store.select(
            "SELECT res_type, res_id, version FROM resource_version WHERE res_type <> 'Provenance'",
            [],
        )
        return {f"{t}/{i}/_history/{v}" for t, i, v in rows}
    finally:
        store.close()


def test_killed_mid_write_nothing_acknowledged_is_lost_and_nothing_stored_is_unaudited(
    store_url: str, tmp_path: Path
) -> None:
    key = register(store_url, tmp_path, "gp-system")
    token = token_for(store_url, "gp-system", key)
    draw = random.Random(20261206)
    acknowledged: list[str] = []
    for _ in range(_KILLS):
        server = _start(store_url, tmp_path)
        stop = threading.Event()
        writers = [
            threading.Thread(target=_writer, args=(server.base, token, acknowledged, stop))
            for _ in range(3)
        ]
        for writer in writers:
            writer.start()
        time.sleep(draw.uniform(0.05, 0.6))
        server.process.kill()  # SIGKILL: no shutdown of any kind
        server.process.wait(timeout=10)
        stop.set()
        for writer in writers:
            writer.join(timeout=10)
    assert acknowledged, "the writers got nothing done between kills"
    server = _start(store_url, tmp_path)  # recovers on start, as after any crash
    server.process.terminate()
    server.process.wait(timeout=15)
    stored = _stored_versions(store_url)
    assert set(acknowledged) <= stored, "an acknowledged write was lost"
    unaudited = stored - _audited_versions(store_url)
    assert unaudited == set(), f"{len(unaudited)} stored versions have no audit entry"
    verified = audit(store_url, tmp_path / "audit-key.pem", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
