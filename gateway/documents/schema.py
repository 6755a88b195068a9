"""The documents' table: the public key of every node's document signing
key (``gateway/documents/keys.py``), so that each node publishes them all.

Written once for both databases (``gateway.store.ddl``). A released
migration is never edited: a change is a new version in ``MIGRATIONS``,
pinned in ``tests/store/test_migrations_pinned.py``.
"""

from __future__ import annotations

from gateway.store.ddl import Migration, migration

MIGRATIONS: tuple[Migration, ...] = (
    migration(
        version=25,
        name="the public keys documents are signed with, every node's",
        steps=(
            # A node's key is written when it first starts with it, and kept
            # after the node stops using it: documents it signed still verify.
            # Public halves only: the private key never leaves its node's file.
            """CREATE TABLE document_key (
                kid TEXT PRIMARY KEY,
                jwk TEXT NOT NULL,
                first_used TEXT NOT NULL
            )""",
        ),
    ),
)
