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

from gateway.audit import log, merkle, staging
from gateway.audit.checkpoint import ORIGIN, Checkpoint, load_or_create_signer, open_note
from gateway.store import open_store
from tests.e2e.test_server import _start, _stop, register, token_for
from tests.store.test_audit_log import record


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


def _small_log(tmp_path: Path) -> tuple[str, Path, str]:
    """A log of five entries with a checkpoint; (database url, key, the note)."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    key = tmp_path / "audit-key.pem"
    store = open_store(url)
    try:
        store.migrate()
        with store.unit_of_work() as uow:
            log.append(uow, [record(n) for n in range(5)])
        note = log.sign_checkpoint(store, load_or_create_signer(key))
    finally:
        store.close()
    assert note is not None
    return url, key, note


def _refused(run: subprocess.CompletedProcess[str], *words: str) -> None:
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "Traceback" not in out, out
    for word in words:
        assert word in out, out


def test_unusable_checkpoints_and_keys_are_findings_not_tracebacks(tmp_path: Path) -> None:
    url, key, note = _small_log(tmp_path)
    assert audit(url, key, "verify").returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    foreign = load_or_create_signer(other / "key.pem").sign(
        Checkpoint(ORIGIN, 5, open_note(note, audit(url, key, "public-key").stdout).root)
    )
    (tmp_path / "foreign.note").write_text(foreign)
    (tmp_path / "malformed.note").write_text("london-care-gateway/audit\nfive\n")
    (tmp_path / "binary.note").write_bytes(b"\xff\xfe\x00")

    _refused(
        audit(url, key, "verify", "--checkpoint", str(tmp_path / "foreign.note")),
        "foreign.note cannot be used: no signature by london-care-gateway/audit",
    )
    _refused(
        audit(url, key, "verify", "--checkpoint", str(tmp_path / "malformed.note")),
        "malformed.note cannot be used: a checkpoint has its text, a blank line",
    )
    _refused(
        audit(url, key, "verify", "--checkpoint", str(tmp_path / "binary.note")),
        "binary.note cannot be read",
    )
    _refused(
        audit(url, key, "verify", "--checkpoint", str(tmp_path / "absent.note")),
        "absent.note cannot be read: No such file or directory",
    )
    _refused(audit(url, key, "verify", "--key", "not-a-key"), "the key given with --key")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    _refused(audit(url, garbage, "verify"), "garbage.pem cannot be read", "--key")
    _refused(audit(url, tmp_path / "other", "verify"), "cannot be read", "Is a directory")
    # Signed by another key: the stored checkpoint itself is a finding.
    _refused(audit(url, other / "key.pem", "verify"), "checkpoint at size 5: no signature by")


def test_a_tampered_column_is_named_by_the_command(tmp_path: Path) -> None:
    url, key, _ = _small_log(tmp_path)
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        db.execute("UPDATE audit_entry SET emergency = 1 WHERE idx = 3")
    _refused(
        audit(url, key, "verify"),
        "first bad entry 3: entry 3: column emergency says 1, the signed entry says 0",
    )


def test_staged_entries_are_reported_and_a_forged_one_is_a_finding(tmp_path: Path) -> None:
    url, key, _ = _small_log(tmp_path)
    store = open_store(url)
    try:
        with store.unit_of_work() as uow:
            staging.stage(uow, [record(5)])
    finally:
        store.close()
    waiting = audit(url, key, "verify")
    assert waiting.returncode == 0, waiting.stdout
    assert "1 entries staged by writes, not yet in the log" in waiting.stdout
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        db.execute("INSERT INTO audit_staged (entry) VALUES (?)", [b"[1, 2]"])
    _refused(audit(url, key, "verify"), "is not an AuditEvent, so the log can never take it")


def test_a_node_without_the_logs_key_does_not_start_or_make_one(tmp_path: Path) -> None:
    """Nodes share one log: a node whose key file is missing, or another
    key, would sign checkpoints no one can verify with the published key."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    store = open_store(url)
    store.migrate()
    with store.unit_of_work() as uow:
        log.append(uow, [record(n) for n in range(3)])
    log.sign_checkpoint(store, load_or_create_signer(tmp_path / "shared.pem"))
    store.close()
    missing, other = tmp_path / "missing.pem", tmp_path / "other.pem"
    load_or_create_signer(other)
    for key, reason in ((missing, "does not exist"), (other, "not the key that signed")):
        served = subprocess.run(
            [sys.executable, "-m", "gateway", "serve", "--port", "0", "--database-url", url],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "GATEWAY_AUDIT_KEY": str(key)},
        )
        assert served.returncode == 2, served.stdout + served.stderr
        assert "not started" in served.stderr and reason in served.stderr
        public = audit(url, key, "public-key")
        assert public.returncode == 1 and reason in public.stderr
    verified = audit(url, missing, "verify")
    assert verified.returncode == 1 and "no audit signing key" in verified.stdout
    assert not missing.exists()
    assert audit(url, tmp_path / "shared.pem", "verify").returncode == 0
