"""Versioned schema migrations, one entry per version, for both databases.

A migration is never edited once released: add a new one. Each backend runs the
pending ones at start-up, under a lock, and records them in
``schema_migration``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="versioned resources and token index",
        sqlite=(
            # Every version ever written; seq gives the global order of writes.
            """CREATE TABLE resource_version (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                last_updated TEXT NOT NULL,
                method TEXT NOT NULL,
                content BLOB,
                UNIQUE (res_type, res_id, version)
            )""",
            "CREATE INDEX resource_version_type_seq ON resource_version (res_type, seq)",
            # The latest version of each resource: the row writers lock.
            """CREATE TABLE resource_current (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                deleted INTEGER NOT NULL,
                PRIMARY KEY (res_type, res_id)
            ) WITHOUT ROWID""",
            # Token search values of live resources only.
            """CREATE TABLE search_token (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                system TEXT,
                code TEXT NOT NULL
            )""",
            "CREATE INDEX search_token_lookup ON search_token (res_type, param, code, system)",
            "CREATE INDEX search_token_owner ON search_token (res_type, res_id)",
        ),
        postgres=(
            """CREATE TABLE resource_version (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                last_updated TEXT NOT NULL,
                method TEXT NOT NULL,
                content BYTEA,
                UNIQUE (res_type, res_id, version)
            )""",
            "CREATE INDEX resource_version_type_seq ON resource_version (res_type, seq)",
            """CREATE TABLE resource_current (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                seq BIGINT NOT NULL,
                deleted BOOLEAN NOT NULL,
                PRIMARY KEY (res_type, res_id)
            )""",
            """CREATE TABLE search_token (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                system TEXT,
                code TEXT NOT NULL
            )""",
            "CREATE INDEX search_token_lookup ON search_token (res_type, param, code, system)",
            "CREATE INDEX search_token_owner ON search_token (res_type, res_id)",
        ),
    ),
)

SCHEMA_MIGRATION_TABLE = """CREATE TABLE IF NOT EXISTS schema_migration (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""
