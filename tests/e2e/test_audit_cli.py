"""The audit log end to end: a real server records requests, `gateway audit`
verifies, exports and catches tampering, and a third party checks the
export with the public key alone."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from gateway.audit import merkle
from gateway.audit.checkpoint import open_note
from tests.e2e.test_server import _start, _stop, register, token_for


def audit(database_url: str, key: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "GATEWAY_DATABASE_URL": database_url, "GATEWAY_AUDIT_KEY": str(key)},
    )


def test_recorded_verified_exported_and_tamper_evident(tmp_path: Path) -> None:
    database = tmp_path / "gateway.db"
    url = f"sqlite:///{database}"
    key = tmp_path / "audit-key.pem"  # where _start tells the server to keep it
    server = _start(url, tmp_path)
    client_key = register(url, tmp_path, "gp-system")
    token = token_for(url, "gp-system", client_key)
    with httpx.Client(
        base_url=server.base, timeout=10, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        created = http.post("/fhir/Patient", json={"resourceType": "Patient"})
        assert created.status_code == 201
        for _ in range(3):
            assert http.get(f"/fhir/Patient/{created.json()['id']}").status_code == 200
    _stop(server)  # signs a last checkpoint

    verified = audit(url, key, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact: 4 entries" in verified.stdout

    vkey = audit(url, key, "public-key").stdout.strip()
    export = tmp_path / "audit.ndjson"
    assert audit(url, key, "export", "--out", str(export)).returncode == 0
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    head = open_note(lines[0]["checkpoint"], vkey)  # the public key alone
    assert head.size == 4 == len(lines) - 1
    for line in lines[1:]:
        entry = base64.b64decode(line["canonical"])
        assert json.loads(entry) == line["entry"]
        proof = [base64.b64decode(p) for p in line["inclusionProof"]]
        assert merkle.verify_inclusion(
            merkle.leaf_hash(entry), line["index"], head.size, proof, head.root
        )
    assert lines[1]["entry"]["subtype"][0]["code"] == "create"

    with sqlite3.connect(database) as db:
        db.execute("UPDATE audit_entry SET entry = ? WHERE idx = 2", [b'{"quiet":"edit"}'])
    caught = audit(url, key, "verify")
    assert caught.returncode == 1
    assert "first bad entry 2" in caught.stdout
