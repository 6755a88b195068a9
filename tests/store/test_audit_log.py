"""The audit log on both stores: appends, tree heads, proofs, checkpoints,
and verification that names the first entry tampered with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from consent.model import Requester
from gateway.audit import log, merkle, reviews
from gateway.audit.checkpoint import (
    NotTheLogsKey,
    load_or_create_signer,
    open_note,
    signer_of_log,
)
from gateway.audit.columns import AUDIT_ENTRY_SYSTEM, REQUEST_ID_URL, columns_of
from gateway.audit.events import Disclosures, load_event, request_event, token_event
from gateway.identifiers import CLIENT_SYSTEM
from gateway.store import Store

pytestmark = pytest.mark.usefixtures("store")


ASKER = Requester(
    org_ods="A81001",
    kind="gp-practice",
    purpose="TREAT",
    client_id="gp-system",
    client_name="GP system",
    org_name="Riverside Surgery",
)


def record(n: int, asker: Requester = ASKER, **disclosed: Any) -> log.AuditRecord:
    disclosures = Disclosures(patients={f"p{n % 3}"}, **disclosed)
    return request_event(
        recorded=f"2026-01-01T00:00:{n % 60:02d}Z",
        subtype="read",
        status=200,
        asker=asker,
        request_id=f"request-{n}",
        method="GET",
        path=f"/fhir/Patient/p{n % 3}",
        query="",
        disclosures=disclosures,
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


def test_a_signed_log_is_signed_on_only_with_its_own_key(store: Store, tmp_path: Path) -> None:
    """A node given another key (its key file missing when it started, or a
    different one) signs no checkpoint of the log the others sign."""
    own = load_or_create_signer(tmp_path / "audit.pem")
    assert log.latest_checkpoint(store) is None
    fill(store, [3])
    first = log.sign_checkpoint(store, own)
    assert log.latest_checkpoint(store) == first
    fill(store, [2])
    stranger = load_or_create_signer(tmp_path / "another.pem")
    with pytest.raises(NotTheLogsKey):
        log.sign_checkpoint(store, stranger)
    assert log.latest_checkpoint(store) == first  # nothing signed by the stranger
    with pytest.raises(NotTheLogsKey):  # nor made, in place of a missing file
        signer_of_log(tmp_path / "missing.pem", first)
    assert not (tmp_path / "missing.pem").exists()
    second = log.sign_checkpoint(store, signer_of_log(tmp_path / "audit.pem", first))
    assert second is not None and log.latest_checkpoint(store) == second
    assert log.verify(store, own.verifier_key(), held=[first]).intact


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


# -- the columns auditors read are the signed entry's ----------------------------------

_FORGED: dict[str, object] = {
    "recorded": "2020-01-01T00:00:00Z",
    "request_id": "forged",
    "org_ods": "X99999",
    "client_id": "someone-else",
    "purpose": "HCOMPL",
    "subtype": "search-type",
    "outcome": "8",
    "emergency": True,
    "alert": True,
}


@pytest.mark.parametrize("column", sorted(_FORGED))
def test_each_column_is_checked_against_the_signed_entry(
    signed: tuple[Store, str, str], column: str
) -> None:
    store, vkey, _ = signed
    _tamper(store, f"UPDATE audit_entry SET {column} = ? WHERE idx = 5", [_FORGED[column]])
    result = log.verify(store, vkey)
    assert [f.index for f in result.findings] == [5]
    assert f"entry 5: column {column} says " in result.findings[0].problem


def test_an_emergency_access_hidden_from_the_review_queue_is_found(store: Store) -> None:
    """The attack the columns check is for: the ambulance crew's emergency
    access unmarked and its person's row deleted."""
    crew = Requester(
        org_ods="RRU01", kind="ambulance", purpose="ETREAT", client_id="crew", client_name="Crew"
    )
    uninterpretable = Disclosures(patients={"p9"})
    uninterpretable.decisions[("consent-uninterpretable", "c1", None, False)] += 1
    with store.unit_of_work() as uow:
        log.append(uow, [record(n) for n in range(3)])
        log.append(uow, [record(3, crew)])
        log.append(uow, [request_event(**{**_request(4), "disclosures": uninterpretable})])
    assert log.verify(store, "").findings == []  # no checkpoints yet: no key needed
    _tamper(store, "UPDATE audit_entry SET emergency = ? WHERE emergency = ?", [False, True])
    _tamper(store, "UPDATE audit_entry SET alert = ? WHERE idx = 4", [False])
    _tamper(store, "DELETE FROM audit_patient WHERE idx = 3", [])
    problems = [(f.index, f.problem) for f in log.verify(store, "").findings]
    assert problems == [
        (3, "entry 3: column emergency says 0, the signed entry says 1"),
        (
            3,
            "entry 3: the audit_patient row for Patient/p0 is missing (deleted), "
            "though the signed entry names them",
        ),
        (4, "entry 4: column alert says 0, the signed entry says 1"),
    ]


def _request(n: int) -> dict[str, Any]:
    return {
        "recorded": "2026-01-01T00:00:00Z",
        "subtype": "read",
        "status": 200,
        "asker": ASKER,
        "request_id": f"request-{n}",
        "method": "GET",
        "path": "/fhir/Patient",
        "query": "",
        "disclosures": Disclosures(),
    }


def test_audit_patient_rows_are_checked_both_ways(signed: tuple[Store, str, str]) -> None:
    store, vkey, _ = signed
    _tamper(store, "DELETE FROM audit_patient WHERE idx = 2", [])  # names p2
    _tamper(store, "INSERT INTO audit_patient (patient_id, idx) VALUES (?, ?)", ["p9", 6])
    _tamper(store, "UPDATE audit_patient SET idx = 11 WHERE idx = 9", [])  # p1 moved to 11
    _tamper(store, "INSERT INTO audit_patient (patient_id, idx) VALUES (?, ?)", ["p1", 99])
    problems = [(f.index, f.problem) for f in log.verify(store, vkey).findings]
    assert problems == [
        (
            2,
            "entry 2: the audit_patient row for Patient/p2 is missing (deleted), "
            "though the signed entry names them",
        ),
        (6, "entry 6: an audit_patient row names Patient/p9, the signed entry does not"),
        (
            9,
            "entry 9: the audit_patient row for Patient/p1 is missing (deleted), "
            "though the signed entry names them",
        ),
        (11, "entry 11: an audit_patient row names Patient/p1, the signed entry does not"),
        (99, "entry 99: an audit_patient row names Patient/p1, but there is no entry 99"),
    ]


@pytest.mark.parametrize(("level", "index", "first"), [(1, 3, 6), (2, 1, 4), (4, 0, 0)])
def test_a_changed_tree_node_is_named(
    signed: tuple[Store, str, str], level: int, index: int, first: int
) -> None:
    store, vkey, _ = signed
    _tamper(
        store,
        "UPDATE audit_node SET hash = ? WHERE level = ? AND idx = ?",
        [b"\0" * 32, level, index],
    )
    findings = log.verify(store, vkey).findings
    assert [(f.index, f.problem) for f in findings] == [
        (
            first,
            f"tree node (level {level}, index {index}), over entries {first} to "
            f"{first + 2**level - 1} was changed",
        )
    ]


def test_a_deleted_or_added_tree_node_is_named(signed: tuple[Store, str, str]) -> None:
    store, vkey, _ = signed
    _tamper(store, "DELETE FROM audit_node WHERE level = 2 AND idx = 2", [])
    _tamper(store, "INSERT INTO audit_node (level, idx, hash) VALUES (1, 8, ?)", [b"\0" * 32])
    problems = [(f.index, f.problem) for f in log.verify(store, vkey).findings]
    assert problems == [
        (8, "tree node (level 2, index 2), over entries 8 to 11 is missing"),
        (
            16,
            "tree node (level 1, index 8), over entries 16 to 17 is stored, "
            "but the log has only 16 entries",
        ),
    ]


def _move(store: Store, table: str, old: int, new: int) -> None:
    _tamper(store, f"UPDATE {table} SET idx = ? WHERE idx = ?", [new, old])


def _swap_rows(store: Store, i: int, j: int) -> None:
    """Exchange two entries whole: bytes, leaf hash, columns and people."""
    for table in ("audit_entry", "audit_patient"):
        _move(store, table, i, -1)
        _move(store, table, j, i)
        _move(store, table, -1, j)


@pytest.mark.parametrize(("i", "j"), [(4, 5), (3, 10), (0, 15)])
def test_exchanged_entries_are_named_exactly(
    signed: tuple[Store, str, str], i: int, j: int
) -> None:
    """Whole rows exchanged, leaf hashes and all: the tree nodes stored when
    they were appended still say which stood where."""
    store, vkey, _ = signed
    _swap_rows(store, i, j)
    findings = log.verify(store, vkey).findings
    assert (findings[0].index, findings[0].problem) == (i, f"entries {i} and {j} were exchanged")
    # Only the checkpoint's root besides, listed after what the nodes tell.
    assert all("checkpoint" in f.problem for f in findings[1:])


def test_reordered_entry_bytes_are_named_exactly(signed: tuple[Store, str, str]) -> None:
    store, vkey, _ = signed
    two, nine = log.entry(store, 2), log.entry(store, 9)
    _tamper(store, "UPDATE audit_entry SET entry = ? WHERE idx = 2", [nine])
    _tamper(store, "UPDATE audit_entry SET entry = ? WHERE idx = 9", [two])
    findings = log.verify(store, vkey).findings
    assert findings[0].problem.startswith("entries 2 and 9 were exchanged")


def _insert_forged(store: Store, at: int) -> None:
    for table in ("audit_entry", "audit_patient"):
        _tamper(store, f"UPDATE {table} SET idx = idx + 1000 WHERE idx >= ?", [at])
        _tamper(store, f"UPDATE {table} SET idx = idx - 999 WHERE idx >= 1000", [])
    forged = record(500)
    _tamper(
        store,
        "INSERT INTO audit_entry (idx, recorded, request_id, org_ods, client_id, purpose, "
        "subtype, outcome, emergency, alert, entry, leaf) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [at, *forged.columns.values(), forged.canonical, forged.leaf],
    )


@pytest.mark.parametrize("at", [6, 7])
def test_an_inserted_entry_is_named(signed: tuple[Store, str, str], at: int) -> None:
    """A forged entry slipped in at ``at``, the later ones renumbered."""
    store, vkey, _ = signed
    _insert_forged(store, at)
    _tamper(store, "INSERT INTO audit_patient (patient_id, idx) VALUES (?, ?)", ["p2", at])
    findings = log.verify(store, vkey).findings
    assert (findings[0].index, findings[0].problem) == (
        at,
        f"an entry was inserted at {at}: the entries signed from {at} on stand one place later",
    )


def _many_kinds(store: Store) -> None:
    """Entries exchanged, a node changed and one deleted, a column and a
    person's row changed: findings about pairs, nodes and checkpoints
    whose entries lie on both sides of a batch's end."""
    _swap_rows(store, 3, 10)
    _tamper(store, "UPDATE audit_node SET hash = ? WHERE level = 2 AND idx = 3", [b"\0" * 32])
    _tamper(store, "DELETE FROM audit_node WHERE level = 1 AND idx = 6", [])
    _tamper(store, "UPDATE audit_entry SET purpose = ? WHERE idx = 7", ["HCOMPL"])
    _tamper(store, "UPDATE audit_patient SET patient_id = ? WHERE idx = 8", ["p9"])


@pytest.mark.parametrize(
    "tamper",
    [
        _many_kinds,
        lambda store: _insert_forged(store, 7),
        lambda store: _move(store, "audit_entry", 9, 30),
    ],
    ids=["many-kinds", "inserted", "deleted"],
)
def test_the_findings_do_not_depend_on_the_batches_read(
    signed: tuple[Store, str, str],
    monkeypatch: pytest.MonkeyPatch,
    tamper: Callable[[Store], None],
) -> None:
    """Verify reads the log a batch of entries at a time: a batch of one,
    two, three, five, eight or all of them finds the same, in the same
    order."""
    store, vkey, _ = signed
    tamper(store)
    whole = log.verify(store, vkey).findings
    assert whole
    for batch in (1, 2, 3, 5, 8):
        monkeypatch.setattr(log, "_BATCH", batch)
        assert log.verify(store, vkey).findings == whole, batch


def test_entries_written_before_columns_were_derived_still_verify(store: Store) -> None:
    """What the code before this check stored beside each kind of entry is
    what the entry says: logs written then verify."""
    crew = Requester(
        org_ods="RRU01", kind="ambulance", purpose="ETREAT", client_id="crew", client_name="Crew"
    )
    uninterpretable = Disclosures(patients={"p1", "p2"})
    uninterpretable.decisions[("consent-uninterpretable", "c1", None, False)] += 1
    uninterpretable.decisions[("gp-own-patients", None, None, True)] += 2
    token = {"recorded": "2026-01-01T00:00:00Z", "request_id": "t", "reason": None}
    old_review = {
        "resourceType": "AuditEvent",
        "extension": [{"url": REQUEST_ID_URL, "valueString": "review-1"}],
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110100"},
        "subtype": [{"system": "urn:london-care-gateway:audit", "code": "review"}],
        "action": "U",
        "recorded": "2026-01-02T00:00:00Z",
        "outcome": "0",
        "outcomeDesc": "called the crew",
        "agent": [
            {
                "who": {"identifier": {"system": CLIENT_SYSTEM, "value": "officer"}},
                "requestor": True,
                "purposeOfUse": [{"coding": [{"system": "x", "code": "HCOMPL"}]}],
            }
        ],
        "source": {"site": "london-care-gateway"},
        "entity": [{"what": {"identifier": {"system": AUDIT_ENTRY_SYSTEM, "value": "1"}}}],
    }
    # (the entry, the columns and people the code before stored with it)
    written: list[tuple[log.AuditRecord, tuple[object, ...], set[str]]] = [
        (
            request_event(**{**_request(0), "status": 404}),
            ("request-0", "A81001", "gp-system", "TREAT", "read", "4", False, False),
            set(),
        ),
        (
            request_event(**{**_request(1), "asker": crew, "disclosures": uninterpretable}),
            ("request-1", "RRU01", "crew", "ETREAT", "read", "0", True, True),
            {"p1", "p2"},
        ),
        (
            token_event(**token, client_id="crew", purpose="ETREAT", granted="x", error=None),
            ("t", None, "crew", "ETREAT", "token", "0", True, False),
            set(),
        ),
        (
            token_event(**token, client_id="crew", purpose="ETREAT", granted=None, error="no"),
            ("t", None, "crew", "ETREAT", "token", "4", False, False),
            set(),
        ),
        (
            token_event(**token, client_id=None, purpose="", granted=None, error="no"),
            ("t", None, None, "", "token", "4", False, False),
            set(),
        ),
        (
            load_event(
                recorded="2026-01-01T00:00:00Z",
                org_ods="RRU01",
                org_name="Ambulance",
                client_id="loader",
                client_name="Loader",
                written=[("Patient/p3/_history/1", "p3"), ("Observation/o/_history/1", "p3")],
            ),
            (None, "RRU01", "loader", None, "load", "0", False, False),
            {"p3"},
        ),
        (
            log.AuditRecord(old_review),
            ("review-1", "X26", "officer", "HCOMPL", "review", "0", False, False),
            {"p1", "p2"},
        ),
    ]
    for entry, _, _ in written:  # appending reads the event; verify, its bytes: alike
        assert entry.columns == columns_of(entry.canonical)
    with store.unit_of_work() as uow:
        # Appended as the code before did: the columns it was given, not derived.
        for index, (entry, columns, people) in enumerate(written):
            uow.execute(
                "INSERT INTO audit_entry (idx, recorded, request_id, org_ods, client_id, "
                "purpose, subtype, outcome, emergency, alert, entry, leaf) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [index, entry.event["recorded"], *columns, entry.canonical, entry.leaf],
            )
            for patient_id in people:
                uow.execute(
                    "INSERT INTO audit_patient (patient_id, idx) VALUES (?, ?)", [patient_id, index]
                )
        nodes: dict[tuple[int, int], bytes] = {}
        for index, (entry, _, _) in enumerate(written):
            for level, position, digest in merkle.completed_nodes(
                index, entry.leaf, lambda lv, ix: nodes[(lv, ix)]
            ):
                nodes[(level, position)] = digest
                if level:
                    uow.execute(
                        "INSERT INTO audit_node (level, idx, hash) VALUES (?, ?, ?)",
                        [level, position, digest],
                    )
    assert log.verify(store, "").findings == []
    # And a review written now names its organisation and people itself.
    officer = Requester(
        org_ods="X26", kind="auditor", purpose="HCOMPL", client_id="officer", client_name="O"
    )
    review_index = reviews.review(store, 1, officer, "called the crew", "review-2")
    written_now = log.entry(store, review_index)
    assert written_now is not None
    now = columns_of(written_now)
    assert (now.org_ods, now.patients, now.patients_of) == ("X26", ("p1", "p2"), None)
    assert log.verify(store, "").findings == []
