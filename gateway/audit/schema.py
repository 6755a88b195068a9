"""The audit log's tables: its entries and the people each touched, the
Merkle tree's nodes and signed checkpoints (``gateway/audit/log.py``), the
reviews of emergency accesses (``reviews.py``) and the entries writes have
staged for the writer (``staging.py``).

Written once for both databases (``gateway.store.ddl``). A released
migration is never edited: a change is a new version in ``MIGRATIONS``,
pinned in ``tests/store/test_migrations_pinned.py``.
"""

from __future__ import annotations

from gateway.store.ddl import Migration, migration

MIGRATIONS: tuple[Migration, ...] = (
    migration(
        version=6,
        name="audit log: entries, Merkle tree nodes, signed checkpoints",
        steps=(
            # One AuditEvent per leaf, in log order; the columns are what
            # auditors filter on, the entry is the canonical JSON hashed.
            """CREATE TABLE audit_entry (
                idx {bigint} PRIMARY KEY,
                recorded TEXT NOT NULL,
                request_id TEXT,
                org_ods TEXT,
                client_id TEXT,
                purpose TEXT,
                subtype TEXT NOT NULL,
                outcome TEXT NOT NULL,
                emergency {bool} NOT NULL,
                alert {bool} NOT NULL,
                entry {bytes} NOT NULL,
                leaf {bytes} NOT NULL
            )""",
            "CREATE INDEX audit_entry_org ON audit_entry (org_ods, idx)",
            "CREATE INDEX audit_entry_emergency ON audit_entry (emergency, idx)",
            # Every person whose record an entry touched (a search, several).
            """CREATE TABLE audit_patient (
                patient_id TEXT NOT NULL,
                idx {bigint} NOT NULL,
                PRIMARY KEY (patient_id, idx)
            ){without_rowid}""",
            # The hash of every complete subtree of two or more leaves
            # (2**level leaves from idx * 2**level, level >= 1); the leaf
            # hashes themselves are audit_entry.leaf.
            """CREATE TABLE audit_node (
                level INTEGER NOT NULL,
                idx {bigint} NOT NULL,
                hash {bytes} NOT NULL,
                PRIMARY KEY (level, idx)
            ){without_rowid}""",
            # Signed tree heads (C2SP checkpoints), one per size signed.
            """CREATE TABLE audit_checkpoint (
                size {bigint} PRIMARY KEY,
                root {bytes} NOT NULL,
                note TEXT NOT NULL,
                created TEXT NOT NULL
            )""",
            # The privacy officer's review of an emergency access (the entry
            # at idx); the review is itself an entry of the log (review_idx).
            """CREATE TABLE audit_review (
                idx {bigint} PRIMARY KEY,
                review_idx {bigint} NOT NULL,
                reviewer TEXT NOT NULL,
                reviewed_at TEXT NOT NULL,
                note TEXT NOT NULL
            )""",
        ),
    ),
    migration(
        version=12,
        name="the people of an audit entry found by the entry",
        # `gateway audit verify` reads each batch of entries' people by index
        # range, and a review reads the reviewed entry's: without this, each
        # a pass over the whole table.
        steps=("CREATE INDEX audit_patient_entry ON audit_patient (idx, patient_id)",),
    ),
    migration(
        version=13,
        name="audit entries staged by the writes they record",
        # A write stages its entry in its own transaction, taking no lock;
        # the audit writer moves staged entries into the log in batches
        # (``gateway.audit.staging``). Appending in the write's transaction
        # instead would hold the log's lock through every write's commit.
        steps=(
            """CREATE TABLE audit_staged (
                seq {serial},
                entry {bytes} NOT NULL
            )""",
        ),
    ),
)
