"""Every versioned schema migration, in order, gathered from the subsystems
that own the tables.

Each subsystem writes the DDL of the tables it queries once, for both
databases, in its own ``schema`` module (``gateway.store.ddl`` says how);
this module puts their migrations in one list by version, the list each
backend runs at start-up, under a lock, recording each in
``schema_migration``. Versions are global: a new migration takes the next
number, in the module of the subsystem whose table it changes, and is listed
here if that module is new, then pinned in
``tests/store/test_migrations_pinned.py``. A released migration is never
edited: add a new one.

The store imports the ``schema`` modules, which import nothing but
``gateway.store.ddl``; ``gateway/store/_sql.py`` imports this module only
when it migrates, since importing a ``schema`` module imports its package.
"""

from __future__ import annotations

from gateway.access import schema as access
from gateway.audit import schema as audit
from gateway.auth import schema as auth
from gateway.console import schema as console
from gateway.documents import schema as documents
from gateway.export import schema as export
from gateway.loading import schema as loading
from gateway.notifications import schema as notifications
from gateway.store import schema as store
from gateway.store.ddl import Migration, migration, ordered

__all__ = ["MIGRATIONS", "SCHEMA_MIGRATION_TABLE", "Migration"]

# Version 5 made the client registry's tables and the store's gateway_secret
# together. Released as one version, it stays one: its statements are each
# owner's, in the order they were released.
_CLIENTS_AND_SECRETS = migration(
    version=5,
    name="client registry, client assertions seen, gateway secrets",
    steps=(*auth.CLIENT_TABLES, *store.SECRETS_TABLE),
)

MIGRATIONS: tuple[Migration, ...] = ordered(
    store.MIGRATIONS,
    (_CLIENTS_AND_SECRETS,),
    auth.MIGRATIONS,
    audit.MIGRATIONS,
    console.MIGRATIONS,
    loading.MIGRATIONS,
    notifications.MIGRATIONS,
    access.MIGRATIONS,
    export.MIGRATIONS,
    documents.MIGRATIONS,
)

SCHEMA_MIGRATION_TABLE = """CREATE TABLE IF NOT EXISTS schema_migration (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""
