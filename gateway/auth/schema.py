"""The client registry's tables: the registered clients
(``gateway/auth/clients.py``) and the client assertions seen, so that none
is replayed (``gateway/auth/exchange.py``).

Written once for both databases (``gateway.store.ddl``). A released
migration is never edited: a change is a new version in ``MIGRATIONS``,
pinned in ``tests/store/test_migrations_pinned.py``.
"""

from __future__ import annotations

from gateway.store.ddl import Migration, PerDatabase, Step, migration

# Version 5 made these with the store's gateway_secret: released as one
# version, it stays one, assembled in gateway/store/_schema.py.
# (Indented as released: the pin is of the exact text.)
CLIENT_TABLES: tuple[Step, ...] = (
    # A registered backend client; the registration is JSON
    # (gateway.auth.clients.ClientRegistration).
    """CREATE TABLE auth_client (
                client_id TEXT PRIMARY KEY,
                registration TEXT NOT NULL
            )""",
    # The jti of every client assertion until it expires: a replay
    # finds its row.
    """CREATE TABLE auth_assertion (
                client_id TEXT NOT NULL,
                jti TEXT NOT NULL,
                expires_at {bigint} NOT NULL,
                PRIMARY KEY (client_id, jti)
            )""",
    "CREATE INDEX auth_assertion_expiry ON auth_assertion (expires_at)",
)

MIGRATIONS: tuple[Migration, ...] = (
    migration(
        version=24,
        name="changes to client registrations announced at commit",
        # Every process caches registrations (gateway.auth.registrations)
        # and LISTENs on this channel to drop what changed. In the database,
        # not in the registry, so a change by any path (an operator's own
        # SQL too) is announced; NOTIFY is sent at commit, and never for a
        # change rolled back. The payload is the client id; empty: all of
        # them (TRUNCATE). SQLite has no NOTIFY: its processes let an entry
        # live for less than a second instead.
        steps=(
            PerDatabase(
                postgres="""CREATE FUNCTION auth_client_changed() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'TRUNCATE' THEN
                    PERFORM pg_notify('gateway_auth_client', '');
                ELSIF TG_OP = 'DELETE' THEN
                    PERFORM pg_notify('gateway_auth_client', OLD.client_id);
                ELSE
                    PERFORM pg_notify('gateway_auth_client', NEW.client_id);
                    IF TG_OP = 'UPDATE' AND OLD.client_id <> NEW.client_id THEN
                        PERFORM pg_notify('gateway_auth_client', OLD.client_id);
                    END IF;
                END IF;
                RETURN NULL;
            END
            $$"""
            ),
            PerDatabase(
                postgres="""CREATE TRIGGER auth_client_changed
            AFTER INSERT OR UPDATE OR DELETE ON auth_client
            FOR EACH ROW EXECUTE FUNCTION auth_client_changed()"""
            ),
            PerDatabase(
                postgres="""CREATE TRIGGER auth_client_truncated
            AFTER TRUNCATE ON auth_client
            FOR EACH STATEMENT EXECUTE FUNCTION auth_client_changed()"""
            ),
        ),
    ),
)
