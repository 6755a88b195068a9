"""The bulk export's tables: its jobs, the people each has written a record
of, and the analytics organisations' projects (``gateway/export/jobs.py``,
``runner.py``).

Written once for both databases (``gateway.store.ddl``). A released
migration is never edited: a change is a new version in ``MIGRATIONS``,
pinned in ``tests/store/test_migrations_pinned.py``.
"""

from __future__ import annotations

from gateway.store.ddl import Migration, Step, migration

_EXPORT_TABLES: tuple[Step, ...] = (
    # Each bulk export (``gateway.export``): who asked, as whom it is decided
    # (the requester, as JSON), what was asked, where it stands, and, once
    # complete, its files. ``claimed`` is the epoch second a worker last
    # said it was still at it: a job no worker speaks for is taken again.
    """CREATE TABLE export_job (
        id TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        requester TEXT NOT NULL,
        project TEXT NOT NULL,
        request TEXT NOT NULL,
        asked TEXT NOT NULL,
        status TEXT NOT NULL,
        progress TEXT NOT NULL DEFAULT '',
        transaction_time TEXT NOT NULL,
        worker TEXT,
        claimed DOUBLE PRECISION,
        expires DOUBLE PRECISION,
        output TEXT,
        error TEXT
    )""",
    "CREATE INDEX export_job_status ON export_job (status)",
    # The people an export has written a record of, gathered as it runs, so
    # its audit entries name each once whatever the export's size.
    """CREATE TABLE export_person (
        job_id TEXT NOT NULL,
        patient_id TEXT NOT NULL,
        PRIMARY KEY (job_id, patient_id)
    )""",
    # Each analytics organisation's projects and the secret keying their
    # pseudonyms (hex): one person links across one project's exports only.
    """CREATE TABLE export_project (
        org_ods TEXT NOT NULL,
        name TEXT NOT NULL,
        secret TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (org_ods, name)
    )""",
)

MIGRATIONS: tuple[Migration, ...] = (
    migration(
        version=23,
        name="bulk exports for population health",
        steps=_EXPORT_TABLES,
    ),
)
