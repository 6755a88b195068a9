"""The audit log in the store: entries appended as Merkle tree leaves in the
caller's unit of work, signed checkpoints, proofs, and the verification that
recomputes everything.

Appending stores, besides each entry, the hash of every complete subtree the
entry completes (``audit_node``), so a tree head or any proof over millions
of entries reads O(log n) rows (``gateway.audit.merkle``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson

from gateway import fhirjson
from gateway.audit import merkle
from gateway.audit.checkpoint import ORIGIN, BadCheckpoint, Checkpoint, Signer, open_note
from gateway.store import Querier, Store, UnitOfWork, as_bytes

_LOCK = "audit log"  # serialises appenders where the database does not (PostgreSQL)


@dataclass(frozen=True)
class AuditRecord:
    """One AuditEvent, with the columns auditors filter on."""

    event: dict[str, Any]
    request_id: str | None = None
    patients: tuple[str, ...] = ()  # whose records the request touched
    org_ods: str | None = None
    client_id: str | None = None
    purpose: str | None = None
    subtype: str = ""
    outcome: str = "0"
    emergency: bool = False
    # For the privacy officer's attention (a Consent that cannot be applied
    # withheld the record): listed with the emergency accesses to review.
    alert: bool = False

    @cached_property
    def canonical(self) -> bytes:
        """The bytes hashed as the leaf: JSON with sorted keys, no spaces."""
        return orjson.dumps(self.event, option=orjson.OPT_SORT_KEYS)

    @cached_property
    def leaf(self) -> bytes:
        return merkle.leaf_hash(self.canonical)


def _nodes(reader: Querier) -> merkle.NodeSource:
    def node(level: int, index: int) -> bytes:
        if level == 0:
            rows = reader.select("SELECT leaf FROM audit_entry WHERE idx = ?", [index])
        else:
            rows = reader.select(
                "SELECT hash FROM audit_node WHERE level = ? AND idx = ?", [level, index]
            )
        if not rows:
            raise LookupError(f"audit tree node ({level}, {index}) is missing")
        return as_bytes(rows[0][0])

    return node


def _frontier(reader: Querier, tree_size: int) -> dict[tuple[int, int], bytes]:
    """The hashes of ``merkle.frontier(tree_size)``, read in one statement."""
    wanted = merkle.frontier(tree_size)
    parts: list[str] = []
    params: list[object] = []
    leaves = [index for level, index in wanted if level == 0]
    if leaves:
        parts.append("SELECT 0, idx, leaf FROM audit_entry WHERE idx = ?")
        params += leaves
    nodes = [(level, index) for level, index in wanted if level > 0]
    if nodes:
        pairs = " OR ".join("(level = ? AND idx = ?)" for _ in nodes)
        parts.append(f"SELECT level, idx, hash FROM audit_node WHERE {pairs}")
        params += [value for node in nodes for value in node]
    if not parts:
        return {}
    rows = reader.select(" UNION ALL ".join(parts), params)
    return {(int(str(level)), int(str(idx))): as_bytes(digest) for level, idx, digest in rows}


def size(reader: Querier) -> int:
    rows = reader.select("SELECT MAX(idx) FROM audit_entry", [])
    last = rows[0][0] if rows else None
    return int(str(last)) + 1 if last is not None else 0


def append(uow: UnitOfWork, records: Sequence[AuditRecord]) -> list[int]:
    """Append ``records`` in order, in ``uow``; their indexes in the log."""
    if not records:
        return []
    uow.lock_type(_LOCK)
    start = size(uow)
    # Every left sibling an append needs is either one this batch makes or
    # one of the subtrees holding the log so far: read those at once.
    stored = _frontier(uow, start)
    fresh: dict[tuple[int, int], bytes] = {}

    def sibling(level: int, index: int) -> bytes:
        found = fresh.get((level, index)) or stored.get((level, index))
        if found is None:
            raise LookupError(f"audit tree node ({level}, {index}) is missing")
        return found

    entries: list[list[object]] = []
    patients: list[list[object]] = []
    nodes: list[list[object]] = []
    for offset, record in enumerate(records):
        index = start + offset
        entry = record.canonical
        patients.extend([patient_id, index] for patient_id in dict.fromkeys(record.patients))
        entries.append(
            [
                index,
                str(record.event.get("recorded") or fhirjson.instant()),
                record.request_id,
                record.org_ods,
                record.client_id,
                record.purpose,
                record.subtype,
                record.outcome,
                record.emergency,
                record.alert,
                entry,
                leaf := record.leaf,
            ]
        )
        for level, position, digest in merkle.completed_nodes(index, leaf, sibling):
            fresh[(level, position)] = digest
            if level:
                nodes.append([level, position, digest])
    uow.execute_many(
        "INSERT INTO audit_entry (idx, recorded, request_id, org_ods, "
        "client_id, purpose, subtype, outcome, emergency, alert, entry, leaf) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        entries,
    )
    uow.execute_many("INSERT INTO audit_patient (patient_id, idx) VALUES (?, ?)", patients)
    uow.execute_many("INSERT INTO audit_node (level, idx, hash) VALUES (?, ?, ?)", nodes)
    return [start + offset for offset in range(len(records))]


def tree_head(reader: Querier, tree_size: int | None = None) -> tuple[int, bytes]:
    """(size, root hash) of the log now, or of its first ``tree_size`` entries."""
    current = size(reader)
    wanted = current if tree_size is None else tree_size
    if not 0 <= wanted <= current:
        raise ValueError(f"the log has {current} entries, not {wanted}")
    return wanted, merkle.root(_nodes(reader), wanted)


def inclusion_proof(reader: Querier, index: int, tree_size: int) -> list[bytes]:
    if tree_size > size(reader):
        raise ValueError(f"the log has fewer than {tree_size} entries")
    return merkle.inclusion_proof(_nodes(reader), index, tree_size)


def consistency_proof(reader: Querier, old: int, new: int) -> list[bytes]:
    if new > size(reader):
        raise ValueError(f"the log has fewer than {new} entries")
    return merkle.consistency_proof(_nodes(reader), old, new)


def entry(reader: Querier, index: int) -> bytes | None:
    rows = reader.select("SELECT entry FROM audit_entry WHERE idx = ?", [index])
    return as_bytes(rows[0][0]) if rows else None


def sign_checkpoint(store: Store, signer: Signer) -> str | None:
    """Sign the current tree head, unless it is already signed; the note."""
    with store.unit_of_work() as uow:
        uow.lock_type(_LOCK)
        tree_size, root = tree_head(uow)
        if tree_size == 0:
            return None
        done = uow.select("SELECT note FROM audit_checkpoint WHERE size = ?", [tree_size])
        if done:
            return str(done[0][0])
        note = signer.sign(Checkpoint(signer.name, tree_size, root))
        uow.execute(
            "INSERT INTO audit_checkpoint (size, root, note, created) VALUES (?, ?, ?, ?)",
            [tree_size, root, note, fhirjson.instant()],
        )
        return note


def checkpoints(reader: Querier) -> list[tuple[int, bytes, str]]:
    rows = reader.select("SELECT size, root, note FROM audit_checkpoint ORDER BY size", [])
    return [(int(str(s)), as_bytes(r), str(n)) for s, r, n in rows]


# -- verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """What is wrong, and the first entry it concerns."""

    index: int
    problem: str


@dataclass
class Verification:
    entries: int
    checkpoints: int
    findings: list[Finding]

    @property
    def intact(self) -> bool:
        return not self.findings


def _stream(reader: Querier, batch: int = 5000) -> Iterator[tuple[int, bytes, bytes]]:
    """(index, entry, the leaf hash stored for that index) in log order."""
    after = -1
    while True:
        rows = reader.select(
            "SELECT idx, entry, leaf FROM audit_entry WHERE idx > ? ORDER BY idx LIMIT ?",
            [after, batch],
        )
        for index, content, stored in rows:
            yield (
                int(str(index)),
                as_bytes(content),
                as_bytes(stored) if stored is not None else b"",
            )
        if len(rows) < batch:
            return
        after = int(str(rows[-1][0]))


class _Frontier:
    """The roots of the complete subtrees on the right edge of a growing
    tree: enough to give the tree head at any size."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, bytes]] = []  # (level, hash), left to right
        self.size = 0

    def add(self, leaf: bytes) -> None:
        level, digest = 0, leaf
        while self.stack and self.stack[-1][0] == level:
            _, left = self.stack.pop()
            digest = merkle.node_hash(left, digest)
            level += 1
        self.stack.append((level, digest))
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return merkle.EMPTY_ROOT
        digest = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            digest = merkle.node_hash(left, digest)
        return digest


def verify(reader: Querier, verifier_key: str, held: Sequence[str] = ()) -> Verification:
    """Recompute the tree from the entries; check every stored checkpoint's
    signature and root (so each later one is consistent with the earlier
    ones) and any ``held`` checkpoints a third party kept; name the first
    entry that was changed, deleted, inserted, reordered or truncated away."""
    findings: list[Finding] = []
    heads: dict[int, list[tuple[bytes, str]]] = {}
    count = 0
    for tree_size, root, note in checkpoints(reader):
        count += 1
        try:
            opened = open_note(note, verifier_key)
        except BadCheckpoint as exc:
            findings.append(Finding(tree_size - 1, f"checkpoint at size {tree_size}: {exc}"))
            continue
        if opened.size != tree_size or opened.root != root or opened.origin != ORIGIN:
            findings.append(Finding(tree_size - 1, f"checkpoint at size {tree_size} was altered"))
            continue
        heads.setdefault(tree_size, []).append((root, f"stored checkpoint at size {tree_size}"))
    for note in held:
        count += 1
        opened = open_note(note, verifier_key)
        heads.setdefault(opened.size, []).append(
            (opened.root, f"held checkpoint at size {opened.size}")
        )
    frontier = _Frontier()
    last_good = 0  # entries covered by a matching checkpoint
    for index, content, recorded_leaf in _stream(reader):
        if index != frontier.size:
            problem = (
                f"entries {frontier.size} to {index - 1} are missing (deleted)"
                if index > frontier.size
                else "an entry is out of order"
            )
            findings.append(Finding(frontier.size, problem))
            break
        leaf = merkle.leaf_hash(content)
        if recorded_leaf != leaf:
            findings.append(Finding(index, f"entry {index} was changed or replaced"))
            break
        frontier.add(leaf)
        for root, what in heads.get(frontier.size, ()):
            if frontier.root() != root:
                findings.append(
                    Finding(
                        last_good,
                        f"the {what} does not match the entries: one of entries "
                        f"{last_good} to {frontier.size - 1} was changed, inserted or reordered",
                    )
                )
                return Verification(frontier.size, count, findings)
        if frontier.size in heads:
            last_good = frontier.size
    beyond = [s for s in heads if s > frontier.size]
    if beyond and not findings:
        findings.append(
            Finding(
                frontier.size,
                f"the log ends at {frontier.size} entries but a checkpoint covers "
                f"{max(beyond)}: entries from {frontier.size} were truncated away",
            )
        )
    return Verification(frontier.size, count, findings)
