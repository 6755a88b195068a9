"""Audit entries staged by the writes they record, then sequenced into the log.

A write's entry must commit with the write or not at all (PRODUCT.md
section 5). Appending it to the log in the write's own transaction does
that, but the log is one sequence: every appender must hold its lock from
reading the tree's frontier until commit, so concurrent writes would commit
one at a time, each waiting out the others' flushes to disk. Instead a
write *stages* its entry (``stage``): one insert, in its own transaction,
taking no lock. The audit writer moves what is staged into the log in
batches (``sequence``), under the lock, in one transaction that also
deletes what it moved; a server starting sequences whatever a crash left.

So an entry is, at every moment, either staged or in the log, never lost
and never in both, and the write it records is stored exactly when it is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from gateway.audit import log
from gateway.audit.columns import NotAnAuditEntry, columns_of
from gateway.store import Querier, Store, UnitOfWork, as_bytes

_log = logging.getLogger("gateway.audit")
_BATCH = 5000  # staged entries moved in one statement's worth
# Staged entries deleted by one statement: its placeholders stay well below
# either database's limit.
_DELETE_AT_ONCE = 500


def stage(uow: UnitOfWork, records: Sequence[log.AuditRecord]) -> None:
    """Stage ``records`` in ``uow``: they reach the log when it commits."""
    uow.execute_many(
        "INSERT INTO audit_staged (entry) VALUES (?)", [[record.canonical] for record in records]
    )


def sequence(uow: UnitOfWork) -> int:
    """Move every staged entry into the log, in the order staged; how many.

    An entry that is not an AuditEvent (only a hand on the database could
    stage one) is left where it is, for ``gateway audit verify`` to report:
    the log takes only entries whose every column it can derive."""
    moved = 0
    after = 0
    while True:
        rows = uow.select(
            "SELECT seq, entry FROM audit_staged WHERE seq > ? ORDER BY seq LIMIT ?",
            [after, _BATCH],
        )
        if not rows:
            return moved
        records: list[log.AuditRecord] = []
        done: list[object] = []
        for seq, entry in rows:
            content = as_bytes(entry)
            try:
                columns_of(content)
            except NotAnAuditEntry as exc:
                _log.error("staged audit entry %s is not an AuditEvent: %s", seq, exc)
                continue
            records.append(log.AuditRecord(orjson.loads(content)))
            done.append(seq)
        log.append(uow, records)
        # By the seqs read: a staging transaction committing meanwhile
        # leaves its entries for the next pass, not deleted unmoved.
        for start in range(0, len(done), _DELETE_AT_ONCE):
            seqs = done[start : start + _DELETE_AT_ONCE]
            uow.execute(
                f"DELETE FROM audit_staged WHERE seq IN ({', '.join('?' for _ in seqs)})", seqs
            )
        moved += len(records)
        if len(rows) < _BATCH:
            return moved
        after = int(str(rows[-1][0]))


def sequence_now(store: Store) -> int:
    """``sequence`` in a unit of work of its own (a command's, a start's)."""
    with store.unit_of_work() as uow:
        return sequence(uow)


@dataclass(frozen=True)
class Staged:
    """What waits in the staging table: how many entries, and those that
    are not AuditEvents (seq, why), which the log will never take."""

    waiting: int
    unusable: list[tuple[int, str]]


def staged(reader: Querier) -> Staged:
    """The staging table as ``gateway audit verify`` reports it."""
    waiting = 0
    unusable: list[tuple[int, str]] = []
    for seq, entry in reader.select("SELECT seq, entry FROM audit_staged ORDER BY seq", []):
        waiting += 1
        try:
            columns_of(as_bytes(entry))
        except NotAnAuditEntry as exc:
            unusable.append((int(str(seq)), str(exc)))
    return Staged(waiting, unusable)
