"""The audit log in the store: entries appended as Merkle tree leaves in the
caller's unit of work, signed checkpoints, proofs, and the verification that
recomputes everything.

Appending stores, besides each entry, the hash of every complete subtree the
entry completes (``audit_node``), so a tree head or any proof over millions
of entries reads O(log n) rows (``gateway.audit.merkle``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson

from gateway import fhirjson
from gateway.audit import merkle
from gateway.audit.checkpoint import (
    ORIGIN,
    BadCheckpoint,
    Checkpoint,
    Signer,
    check_signs_log,
    open_note,
)
from gateway.audit.columns import NAMES, Columns, NotAnAuditEntry, columns_of, columns_of_event
from gateway.store import Querier, Store, UnitOfWork, as_bytes

_LOCK = "audit log"  # serialises appenders where the database does not (PostgreSQL)


@dataclass(frozen=True)
class AuditRecord:
    """One AuditEvent. The columns auditors filter on are not given beside
    it: they are what the event says (``columns.columns_of``), so that
    ``verify`` can check every stored column against the signed entry."""

    event: dict[str, Any]

    @cached_property
    def canonical(self) -> bytes:
        """The bytes hashed as the leaf: JSON with sorted keys, no spaces."""
        return orjson.dumps(self.event, option=orjson.OPT_SORT_KEYS)

    @cached_property
    def leaf(self) -> bytes:
        return merkle.leaf_hash(self.canonical)

    @cached_property
    def columns(self) -> Columns:
        """The columns and people of the entry: what ``verify`` reads back from
        its canonical bytes, read here from the event those bytes serialise."""
        return columns_of_event(self.event)


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
    batch: dict[int, Columns] = {}
    for offset, record in enumerate(records):
        index = start + offset
        entry = record.canonical
        columns = batch[index] = record.columns
        if not columns.recorded or columns.unstated:
            raise ValueError("an audit entry states when it was recorded and every column")
        people = _people(uow, columns, batch)
        patients.extend([patient_id, index] for patient_id in people)
        entries.append([index, *columns.values(), entry, leaf := record.leaf])
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


def _people(reader: Querier, columns: Columns, pending: dict[int, Columns]) -> tuple[str, ...]:
    """The people an entry names; for an old review naming none, those of
    the entry it reviews (read from that entry's signed bytes)."""
    seen: set[int] = set()
    while columns.patients_of is not None and columns.patients_of not in seen:
        seen.add(columns.patients_of)
        found = pending.get(columns.patients_of)
        if found is None:
            content = entry(reader, columns.patients_of)
            if content is None:
                return ()
            try:
                found = columns_of(content)
            except NotAnAuditEntry:
                return ()
        columns = found
    return columns.patients


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
        # A node given another key than the log's (its key file missing or
        # wrong when two nodes first started together) signs nothing more.
        check_signs_log(signer, latest_checkpoint(uow))
        note = signer.sign(Checkpoint(signer.name, tree_size, root))
        uow.execute(
            "INSERT INTO audit_checkpoint (size, root, note, created) VALUES (?, ?, ?, ?)",
            [tree_size, root, note, fhirjson.instant()],
        )
        return note


def latest_checkpoint(reader: Querier) -> str | None:
    """The note of the largest tree head signed, if any is."""
    rows = reader.select("SELECT note FROM audit_checkpoint ORDER BY size DESC LIMIT 1", [])
    return str(rows[0][0]) if rows else None


def checkpoints(reader: Querier) -> list[tuple[int, bytes, str]]:
    rows = reader.select("SELECT size, root, note FROM audit_checkpoint ORDER BY size", [])
    return [(int(str(s)), as_bytes(r), str(n)) for s, r, n in rows]


# -- verification ---------------------------------------------------------------------

_BATCH = 10_000  # entries read per statement
_MOST = 100  # findings of one kind listed; the rest are counted
_EXPLAIN = 512  # tree nodes that disagree with their entries, explained one by one
_FIRST = -(2**62)  # before any index, negative ones (inserted rows) included
_ENTRIES = (
    "SELECT idx, recorded, request_id, org_ods, client_id, purpose, subtype, outcome, "
    "emergency, alert, entry, leaf FROM audit_entry WHERE idx > ? ORDER BY idx LIMIT ?"
)


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


class _Frontier:
    """The roots of the complete subtrees on the right edge of a growing
    tree, largest first (their levels are the bits set in ``size``): enough
    to give the tree head at any size."""

    def __init__(self) -> None:
        self.stack: list[bytes] = []
        self.size = 0

    def extend(self, leaves: Sequence[bytes], made: dict[tuple[int, int], bytes]) -> None:
        """Add ``leaves`` in order; each complete subtree they complete
        (level >= 1, index) goes into ``made`` with its hash, in the order
        completed."""
        stack, index = self.stack, self.size
        for leaf in leaves:
            digest, level, position = leaf, 0, index
            while position & 1:  # one subtree completed per trailing 1 bit of the index
                digest = merkle.node_hash(stack.pop(), digest)
                level, position = level + 1, position >> 1
                made[(level, position)] = digest
            stack.append(digest)
            index += 1
        self.size = index

    def root(self) -> bytes:
        if not self.stack:
            return merkle.EMPTY_ROOT
        digest = self.stack[-1]
        for left in reversed(self.stack[:-1]):
            digest = merkle.node_hash(left, digest)
        return digest


def _alike(values: Sequence[object], first: int = 1) -> tuple[object, ...]:
    """Column values as compared: no value and an empty one alike in the
    columns that may have none (a token request's empty purpose), 0/1 and
    booleans alike."""
    recorded, request_id, org, client, purpose, subtype, outcome, emergency, alert = values[
        first : first + 9
    ]
    return (
        recorded,
        request_id or None,
        org or None,
        client or None,
        purpose or None,
        subtype,
        outcome,
        None if emergency is None else bool(emergency),
        None if alert is None else bool(alert),
    )


def _show(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "1" if value else "0"
    return f"'{value}'"


def _span(level: int, index: int) -> str:
    first = index << level
    last = first + (1 << level) - 1
    return f"tree node (level {level}, index {index}), over entries {first} to {last}"


_Holds = Callable[[int, "bytes | None", "bytes | None"], bool]


class _Checker:
    """One pass over the log in index order, in batches: each entry's leaf,
    columns and people against its signed bytes, each stored tree node
    against the tree recomputed from the entries, each checkpoint's root.

    An entry, a node or a checkpoint that disagrees is looked at as the
    findings need it; those that agree are compared a batch at a time."""

    def __init__(self, reader: Querier, heads: dict[int, list[tuple[bytes, str]]]) -> None:
        self.reader = reader
        self.heads = heads
        self.sizes = sorted(heads, reverse=True)  # of the heads the pass has not reached
        self.frontier = _Frontier()
        self.found: list[tuple[str, int, Finding]] = []  # (kind, order, finding)
        self.counted: dict[str, int] = {}
        self.last_good = 0  # entries covered by a matching checkpoint
        self.rewritten = False  # a checkpoint's root did not match
        self.broken = False  # the indexes stopped following on: the pass stopped
        # Entries whose bytes do not hash to their stored leaf: (index, hash, stored).
        self.moved: list[tuple[int, bytes, bytes]] = []
        # Stored tree nodes that differ from the recomputed ones (level, index) -> stored.
        self.bad_nodes: dict[tuple[int, int], bytes] = {}
        self.missing_nodes: set[tuple[int, int]] = set()
        self.leaf_at: dict[int, bytes] = {}  # recomputed leaves near disagreeing nodes
        self.previous = b""  # the last leaf

    def finding(self, kind: str, index: int, problem: str) -> None:
        self.counted[kind] = self.counted.get(kind, 0) + 1
        if self.counted[kind] <= _MOST:
            self.found.append((kind, len(self.found), Finding(index, problem)))

    # -- the pass

    def run(self) -> None:
        after: object = _FIRST
        batch = _BATCH
        while not self.broken:
            rows = self.reader.select(_ENTRIES, [after, batch])
            if not rows:
                return
            self.batch(rows)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    def batch(self, rows: list[tuple[object, ...]]) -> None:
        """The entries of ``rows`` (``_ENTRIES``) that follow on from those
        checked before: their leaves, columns, people and tree nodes."""
        start = self.frontier.size
        rows = self.following(rows)
        if not rows:
            return
        last = start + len(rows) - 1
        contents = [as_bytes(row[10]) for row in rows]
        leaves = [merkle.leaf_hash(content) for content in contents]
        self.leaves(start, rows, leaves)
        people = self.stored_people(start, last)
        self.columns(start, rows, contents, people)
        self.tree(start, leaves, self.stored_nodes(start, last))
        if self.broken:
            return
        for index, names in sorted(  # rows for indexes the log lacks
            (int(str(index)), sorted({str(name) for name in names}))
            for index, names in people.items()
        ):
            for patient_id in names:
                self.finding(
                    "patients",
                    index,
                    f"entry {index}: an audit_patient row names Patient/{patient_id}, "
                    f"but there is no entry {index}",
                )

    def following(self, rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        """``rows`` up to the first whose index does not follow on from the
        entries before it, which is a finding that stops the pass."""
        start = self.frontier.size
        indexes = [row[0] for row in rows]
        if indexes == list(range(start, start + len(rows))):
            return rows
        offset = next(n for n, index in enumerate(indexes) if index != start + n)
        index, expected = int(str(indexes[offset])), start + offset
        if index > expected:
            problem = f"entries {expected} to {index - 1} are missing (deleted)"
        else:
            problem = f"an entry was inserted at index {index}, before the log begins"
        self.finding("sequence", expected, problem)
        self.broken = True
        return rows[:offset]

    def leaves(self, start: int, rows: list[tuple[object, ...]], leaves: list[bytes]) -> None:
        """Each entry's bytes against the leaf hash stored with it."""
        if [row[11] for row in rows] == leaves:
            return
        for index, (row, leaf) in enumerate(zip(rows, leaves, strict=True), start):
            stored = as_bytes(row[11]) if row[11] is not None else b""
            if stored != leaf:
                if len(self.moved) < _EXPLAIN:
                    self.moved.append((index, leaf, stored))
                else:
                    self.finding("leaves", index, f"entry {index} was changed or replaced")

    def stored_people(self, first: int, last: int) -> dict[object, tuple[object, ...]]:
        """The people rows of the entries ``first`` to ``last``: by index,
        the people named, in order."""
        rows = self.reader.select(
            "SELECT idx, patient_id FROM audit_patient WHERE idx >= ? AND idx <= ? "
            "ORDER BY idx, patient_id",
            [first, last],
        )
        people: dict[object, tuple[object, ...]] = {
            index: (patient_id,) for index, patient_id in rows
        }
        if len(people) < len(rows):  # entries naming several
            named: dict[object, list[object]] = {}
            for index, patient_id in rows:
                named.setdefault(index, []).append(patient_id)
            people = {index: tuple(names) for index, names in named.items()}
        return people

    def stored_nodes(self, low: int, high: int) -> dict[tuple[object, object], object]:
        """The stored nodes completed by the leaves ``low`` to ``high``."""
        parts: list[str] = []
        params: list[object] = []
        for level in range(1, (high + 1).bit_length() + 1):
            first = -(-(low + 1) >> level) - 1  # ceil((low + 1) / 2**level) - 1
            last = ((high + 1) >> level) - 1
            if first <= last:
                parts.append(
                    "SELECT level, idx, hash FROM audit_node "
                    "WHERE level = ? AND idx BETWEEN ? AND ?"
                )
                params += [level, first, last]
        if not parts:
            return {}
        rows = self.reader.select(" UNION ALL ".join(parts), params)
        return {(level, index): digest for level, index, digest in rows}

    def columns(
        self,
        start: int,
        rows: list[tuple[object, ...]],
        contents: list[bytes],
        people: dict[object, tuple[object, ...]],
    ) -> None:
        """Each entry's columns and people rows against what its signed
        bytes say; the people rows it has are taken out of ``people``."""
        for index, (row, content) in enumerate(zip(rows, contents, strict=True), start):
            stored = people.pop(index, ())
            try:
                signed = columns_of(content)
            except NotAnAuditEntry as exc:
                self.finding("columns", index, f"entry {index} is not an AuditEvent: {exc}")
                continue
            values = signed.values()
            # Columns as stored equal to what the entry says are alike; others
            # may still be (an empty purpose for none, 1 for true).
            if signed.unstated or (row[1:10] != values and _alike(row) != _alike(values, 0)):
                self._differing(index, row, signed, values)
            if signed.patients_of is not None or stored != signed.patients:
                self._people(index, signed, stored)

    def _differing(
        self, index: int, row: tuple[object, ...], signed: Columns, values: tuple[object, ...]
    ) -> None:
        for offset, name in enumerate(NAMES):
            value = row[1 + offset]
            if name in signed.unstated:
                continue
            says = values[offset]
            if isinstance(says, bool):
                same = value is not None and bool(value) == says
                value = None if value is None else bool(value)
            elif name in ("recorded", "subtype", "outcome"):
                same = value == says
            else:  # no value and an empty one are alike (a token's empty purpose)
                same = (value or None) == (says or None)
            if not same:
                self.finding(
                    "columns",
                    index,
                    f"entry {index}: column {name} says {_show(value)}, "
                    f"the signed entry says {_show(says)}",
                )

    def _people(self, index: int, signed: Columns, rows: Sequence[object]) -> None:
        names = set(
            signed.patients if signed.patients_of is None else _people(self.reader, signed, {})
        )
        stored = {str(patient_id) for patient_id in rows}
        for patient_id in sorted(names - stored):
            self.finding(
                "patients",
                index,
                f"entry {index}: the audit_patient row for Patient/{patient_id} is missing "
                "(deleted), though the signed entry names them",
            )
        for patient_id in sorted(stored - names):
            self.finding(
                "patients",
                index,
                f"entry {index}: an audit_patient row names Patient/{patient_id}, "
                "the signed entry does not",
            )

    def tree(
        self, start: int, leaves: list[bytes], stored: dict[tuple[object, object], object]
    ) -> None:
        """The tree grown by ``leaves``: the nodes they complete against the
        ``stored`` ones, the head at each checkpoint's size they reach
        against its root."""
        made: dict[tuple[int, int], bytes] = {}
        done = start
        while self.sizes and self.sizes[-1] <= start + len(leaves):
            size = self.sizes.pop()
            if size > start:  # (a head of no entries is reached by none)
                self.frontier.extend(leaves[done - start : size - start], made)
                self.checkpoint(size)
                done = size
        self.frontier.extend(leaves[done - start :], made)
        if self.bad_nodes or not made.items() <= stored.items():
            self.nodes(start, leaves, made, stored)
        self.previous = leaves[-1]

    def checkpoint(self, size: int) -> None:
        """The heads at ``size`` against the tree of the entries so far."""
        for root, what in self.heads[size]:
            if self.frontier.root() != root and not self.rewritten:
                self.rewritten = True
                self.finding(
                    "checkpoint",
                    self.last_good,
                    f"the {what} does not match the entries: one of entries "
                    f"{self.last_good} to {size - 1} was changed, inserted or reordered",
                )
        if not self.rewritten:
            self.last_good = size

    def nodes(
        self,
        start: int,
        leaves: list[bytes],
        made: dict[tuple[int, int], bytes],
        stored: dict[tuple[object, object], object],
    ) -> None:
        """The nodes ``leaves`` completed (``made``) one by one, as each leaf
        completes them: those stored differently or not at all, and the
        leaves the explanations need (those of each pair whose node, or the
        node before it, differs)."""
        previous = self.previous
        for index, leaf in enumerate(leaves, start):
            level, position = 0, index
            while position & 1:
                level, position = level + 1, position >> 1
                found = stored.get((level, position))
                if found is None:
                    self.missing_nodes.add((level, position))
                elif found != made[(level, position)]:
                    if len(self.bad_nodes) < _EXPLAIN:
                        self.bad_nodes[(level, position)] = as_bytes(found)
                    else:
                        self.finding(
                            "nodes", position << level, f"{_span(level, position)} differs"
                        )
            if index & 1:
                pair = index >> 1
                if (1, pair) in self.bad_nodes or (1, pair - 1) in self.bad_nodes:
                    self.leaf_at[index - 1], self.leaf_at[index] = previous, leaf
            previous = leaf

    # -- after the pass

    def finish(self) -> None:
        size = self.frontier.size
        beyond = [s for s in self.heads if s > size]
        if beyond and not self.broken:
            self.finding(
                "truncated",
                size,
                f"the log ends at {size} entries but a checkpoint covers "
                f"{max(beyond)}: entries from {size} were truncated away",
            )
        if size & 1 and (1, (size >> 1) - 1) in self.bad_nodes:
            self.leaf_at[size - 1] = self.previous
        if not self.broken:
            for index, patient_id in self.reader.select(
                "SELECT idx, patient_id FROM audit_patient WHERE idx < ? OR idx >= ? "
                "ORDER BY idx LIMIT ?",
                [0, size, _MOST],
            ):
                self.finding(
                    "patients",
                    int(str(index)),
                    f"entry {index}: an audit_patient row names Patient/{patient_id}, "
                    f"but there is no entry {index}",
                )
            self.extra_nodes(size)
        explained = self.explain_leaves()
        self.explain_nodes(explained)
        for level, position in sorted(self.missing_nodes, key=lambda n: (n[1] << n[0], n[0])):
            self.finding("nodes", position << level, f"{_span(level, position)} is missing")

    def extra_nodes(self, size: int) -> None:
        """Stored nodes over leaves the log does not have."""
        parts = ["SELECT level, idx FROM audit_node WHERE level < 1 OR level > 62 OR idx < 0"]
        params: list[object] = []
        for level in range(1, 63):
            parts.append("SELECT level, idx FROM audit_node WHERE level = ? AND idx >= ?")
            params += [level, size >> level]
        rows = self.reader.select(" UNION ALL ".join(parts), params)
        for stored_level, stored_index in rows[:_MOST]:
            lv, ix = int(str(stored_level)), int(str(stored_index))
            first = max(ix << lv, size) if 0 <= lv <= 62 and ix >= 0 else size
            self.finding(
                "nodes",
                first,
                f"{_span(lv, ix) if lv >= 0 else f'tree node ({lv}, {ix})'} "
                f"is stored, but the log has only {size} entries",
            )

    def explain_leaves(self) -> set[int]:
        """Entries whose bytes are not the leaf stored with them: exchanged,
        moved, or changed. The indexes explained."""
        at = {stored: index for index, _, stored in self.moved}
        leaf_of = {index: leaf for index, leaf, _ in self.moved}
        stored_of = {index: stored for index, _, stored in self.moved}
        done: set[int] = set()
        for index, leaf, _ in self.moved:
            if index in done:
                continue
            other = at.get(leaf)
            if other is not None and other != index and leaf_of.get(other) == stored_of[index]:
                done |= {index, other}
                self.finding(
                    "leaves",
                    min(index, other),
                    f"entries {min(index, other)} and {max(index, other)} were exchanged "
                    "(each holds the entry signed at the other's place)",
                )
            elif other is not None and other != index:
                done.add(index)
                self.finding("leaves", index, f"entry {index} holds the entry signed as {other}")
            else:
                done.add(index)
                self.finding("leaves", index, f"entry {index} was changed or replaced")
        return done

    def explain_nodes(self, explained: set[int]) -> None:
        """Stored nodes that disagree with the tree recomputed from the
        entries: a node row changed, or entries exchanged, inserted or
        deleted with their leaf hashes (which the nodes above them, stored
        when the entries were appended, still remember)."""
        size = self.frontier.size
        bad = self.bad_nodes
        pairs: list[int] = []
        for level, position in sorted(bad, key=lambda n: (n[1] << n[0], n[0])):
            parent = (level + 1, position >> 1)
            parent_ok = (
                ((position >> 1) + 1) << (level + 1) <= size
                and parent not in bad
                and parent not in self.missing_nodes
            )
            children_ok = (
                level >= 2
                and not {(level - 1, 2 * position), (level - 1, 2 * position + 1)} & bad.keys()
            )
            if parent_ok or children_ok:
                self.finding("nodes", position << level, f"{_span(level, position)} was changed")
            elif level == 1 and not {2 * position, 2 * position + 1} & explained:
                pairs.append(position)
        self._explain_pairs(pairs)

    def _explain_pairs(self, pairs: list[int]) -> None:
        leaf = self.leaf_at.get
        bad = self.bad_nodes

        def holds(pair: int, left: bytes | None, right: bytes | None) -> bool:
            return (
                left is not None
                and right is not None
                and merkle.node_hash(left, right) == bad.get((1, pair))
            )

        done: set[int] = set()
        for n, pair in enumerate(pairs):
            if pair in done:
                continue
            a, b = 2 * pair, 2 * pair + 1
            if holds(pair, leaf(b), leaf(a)):
                done.add(pair)
                self.finding("leaves", a, f"entries {a} and {b} were exchanged")
                continue
            swapped = self._exchange(pair, pairs[n + 1 : n + 1 + 64], done, holds)
            if swapped:
                continue
            if holds(pair, leaf(a), leaf(a + 2)) or holds(pair, leaf(b), leaf(a + 2)):
                at = b if holds(pair, leaf(a), leaf(a + 2)) else a
                shifted = [p for p in pairs if p > pair and holds(p, leaf(2 * p - 1), leaf(2 * p))]
                done |= {pair, *shifted}
                self.finding(
                    "leaves",
                    at,
                    f"an entry was inserted at {at}: the entries signed from {at} on "
                    "stand one place later",
                )
                continue
            if holds(pair + 1, leaf(b), leaf(b + 1)):
                shifted = [
                    p for p in pairs if p > pair and holds(p, leaf(2 * p + 1), leaf(2 * p + 2))
                ]
                done |= {pair, *shifted}
                self.finding(
                    "leaves",
                    a,
                    f"entry {a} or {b} was deleted and the entries after it renumbered: "
                    f"the entries signed from {b + 1} on stand one place earlier",
                )
                continue
            done.add(pair)
            self.finding(
                "leaves",
                a,
                f"entries {a} and {b} do not hash to the {_span(1, pair)}: "
                "one of them was changed or moved together with its leaf hash",
            )

    def _exchange(self, pair: int, others: list[int], done: set[int], holds: _Holds) -> bool:
        leaf = self.leaf_at.get
        for other in others:
            if other in done:
                continue
            for x in (2 * pair, 2 * pair + 1):
                for y in (2 * other, 2 * other + 1):
                    here = [leaf(2 * pair), leaf(2 * pair + 1)]
                    there = [leaf(2 * other), leaf(2 * other + 1)]
                    here[x & 1], there[y & 1] = there[y & 1], here[x & 1]
                    if holds(pair, *here) and holds(other, *there):
                        done |= {pair, other}
                        self.finding("leaves", x, f"entries {x} and {y} were exchanged")
                        return True
        return False

    def findings(self) -> list[Finding]:
        def rank(found: tuple[str, int, Finding]) -> tuple[int, int, int, int]:
            kind, order, finding = found
            # A checkpoint's range is vaguer than what the tree nodes tell:
            # after them. At one entry, what happened to it before its columns.
            return (kind == "checkpoint", finding.index, kind in ("columns", "patients"), order)

        ordered = [finding for _, _, finding in sorted(self.found, key=rank)]
        for kind, count in self.counted.items():
            if count > _MOST:
                ordered.append(
                    Finding(ordered[-1].index, f"and {count - _MOST} more findings of {kind}")
                )
        return ordered


def verify(reader: Querier, verifier_key: str, held: Sequence[str] = ()) -> Verification:
    """Recompute the tree from the entries; check every stored checkpoint's
    signature and root (so each later one is consistent with the earlier
    ones) and any ``held`` checkpoints a third party kept; check every
    entry's stored columns and people (``audit_patient``) against the signed
    entry, and every stored tree node against the recomputed tree. Name the
    first entry that was changed, deleted, inserted, reordered or truncated
    away, and the column, row or node that says otherwise than the entries."""
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
    for number, note in enumerate(held, start=1):
        count += 1
        try:
            opened = open_note(note, verifier_key)
        except BadCheckpoint as exc:
            findings.append(Finding(0, f"held checkpoint {number} cannot be used: {exc}"))
            continue
        heads.setdefault(opened.size, []).append(
            (opened.root, f"held checkpoint at size {opened.size}")
        )
    checker = _Checker(reader, heads)
    checker.run()
    checker.finish()
    return Verification(checker.frontier.size, count, findings + checker.findings())
