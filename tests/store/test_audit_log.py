"""The audit log on both stores: appends, tree heads, proofs, checkpoints,
and verification that names the first entry tampered with."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.audit import log, merkle
from gateway.audit.checkpoint import load_or_create_signer, open_note
from gateway.store import Store

pytestmark = pytest.mark.usefixtures("store")


def record(n: int) -> log.AuditRecord:
    return log.AuditRecord(
        event={"resourceType": "AuditEvent", "recorded": f"2026-01-01T00:00:{n % 60:02d}Z", "n": n},
        patients=(f"p{n % 3}",),
        org_ods="A81001",
        subtype="read",
    )


def fill(store: Store, counts: list[int]) -> list[bytes]:
    """Append batches of the given sizes; the entries' canonical bytes."""
    written: list[bytes] = []
    for count in counts:
        batch = [record(len(written) + i) for i in range(count)]
        with store.unit_of_work() as uow:
            log.append(uow, batch)
        written.extend(r.canonical for r in batch)
    return written


def naive_root(entries: list[bytes]) -> bytes:
    nodes: dict[tuple[int, int], bytes] = {}
    for index, entry in enumerate(entries):
        for level, position, digest in merkle.completed_nodes(
            index, merkle.leaf_hash(entry), lambda lv, ix: nodes[(lv, ix)]
        ):
            nodes[(level, position)] = digest
    return merkle.root(lambda lv, ix: nodes[(lv, ix)], len(entries))


def test_appends_grow_one_tree_with_proofs(store: Store) -> None:
    entries = fill(store, [1, 6, 10, 20])
    size, root = log.tree_head(store)
    assert size == 37 and root == naive_root(entries)
    for old in (1, 7, 17, 37):
        old_size, old_root = log.tree_head(store, old)
        assert old_root == naive_root(entries[:old])
        proof = log.consistency_proof(store, old, size)
        assert merkle.verify_consistency(old_size, size, old_root, root, proof)
    for index in (0, 5, 36):
        proof = log.inclusion_proof(store, index, size)
        assert merkle.verify_inclusion(merkle.leaf_hash(entries[index]), index, size, proof, root)
        assert log.entry(store, index) == entries[index]
    with pytest.raises(ValueError):
        log.tree_head(store, 38)


def test_checkpoints_verify_and_an_intact_log_passes(store: Store, tmp_path: Path) -> None:
    signer = load_or_create_signer(tmp_path / "audit.pem")
    fill(store, [5])
    first = log.sign_checkpoint(store, signer)
    assert first is not None and log.sign_checkpoint(store, signer) == first  # once per size
    fill(store, [9])
    log.sign_checkpoint(store, signer)
    opened = open_note(first, signer.verifier_key())
    assert (opened.size, opened.root) == log.tree_head(store, 5)
    result = log.verify(store, signer.verifier_key(), held=[first])
    assert result.intact and result.entries == 14 and result.checkpoints == 3


def _tamper(store: Store, sql: str, params: list[object]) -> None:
    with store.unit_of_work() as uow:
        uow.execute(sql, params)


@pytest.fixture
def signed(store: Store, tmp_path: Path) -> tuple[Store, str, str]:
    signer = load_or_create_signer(tmp_path / "audit.pem")
    fill(store, [8])
    held = log.sign_checkpoint(store, signer)
    fill(store, [8])
    log.sign_checkpoint(store, signer)
    assert held is not None
    return store, signer.verifier_key(), held


def test_a_changed_entry_is_named(signed: tuple[Store, str, str]) -> None:
    store, vkey, _ = signed
    _tamper(store, "UPDATE audit_entry SET entry = ? WHERE idx = 5", [b'{"forged":true}'])
    finding = log.verify(store, vkey).findings[0]
    assert finding.index == 5 and "changed" in finding.problem


def test_a_deleted_entry_is_named(signed: tuple[Store, str, str]) -> None:
    store, vkey, _ = signed
    _tamper(store, "DELETE FROM audit_entry WHERE idx = 3", [])
    finding = log.verify(store, vkey).findings[0]
    assert finding.index == 3 and "missing" in finding.problem


def test_reordered_entries_are_named(signed: tuple[Store, str, str]) -> None:
    store, vkey, _ = signed
    four, five = log.entry(store, 4), log.entry(store, 5)
    _tamper(store, "UPDATE audit_entry SET entry = ? WHERE idx = 4", [five])
    _tamper(store, "UPDATE audit_entry SET entry = ? WHERE idx = 5", [four])
    assert log.verify(store, vkey).findings[0].index == 4


def test_truncation_is_found(signed: tuple[Store, str, str]) -> None:
    store, vkey, _ = signed
    _tamper(store, "DELETE FROM audit_entry WHERE idx >= 12", [])
    finding = log.verify(store, vkey).findings[0]
    assert finding.index == 12 and "truncated" in finding.problem


def test_a_rewritten_history_fails_against_the_checkpoints(signed: tuple[Store, str, str]) -> None:
    """Entries and tree rewritten consistently (and the stored checkpoints
    deleted): the checkpoint a third party held still exposes it."""
    store, vkey, held = signed
    _tamper(store, "DELETE FROM audit_entry", [])
    _tamper(store, "DELETE FROM audit_patient", [])
    _tamper(store, "DELETE FROM audit_node", [])
    _tamper(store, "DELETE FROM audit_checkpoint", [])
    with store.unit_of_work() as uow:
        log.append(uow, [record(100 + n) for n in range(16)])
    result = log.verify(store, vkey, held=[held])
    assert not result.intact
    assert result.findings[0].index == 0 and "held checkpoint" in result.findings[0].problem
    assert log.verify(store, vkey).intact  # without it, nothing to compare with


def test_an_altered_checkpoint_is_found(signed: tuple[Store, str, str]) -> None:
    store, vkey, held = signed
    _tamper(
        store,
        "UPDATE audit_checkpoint SET note = ? WHERE size = 8",
        [held.replace("8\n", "9\n", 1)],
    )
    finding = log.verify(store, vkey).findings[0]
    assert "checkpoint at size 8" in finding.problem
