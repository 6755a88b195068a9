"""The console's table: its one-time login links (``gateway/console/sessions.py``).

Written once for both databases (``gateway.store.ddl``). A released
migration is never edited: a change is a new version in ``MIGRATIONS``,
pinned in ``tests/store/test_migrations_pinned.py``.
"""

from __future__ import annotations

from gateway.store.ddl import Migration, migration

MIGRATIONS: tuple[Migration, ...] = (
    migration(
        version=7,
        name="one-time login links to the auditors' console",
        steps=(
            # Only a hash of each link's secret is kept; a link works once.
            """CREATE TABLE console_login (
                token_hash TEXT PRIMARY KEY,
                client_id TEXT NOT NULL,
                expires_at {bigint} NOT NULL,
                used {bool} NOT NULL
            )""",
        ),
    ),
)
