"""The store's tables: every version of every resource, the latest of each,
the search index's values (``gateway/store/_sql.py`` and ``gateway/search``
query them), and the gateway's own secrets (``gateway/store/secrets.py``).

Written once for both databases (``gateway.store.ddl``). A released
migration is never edited: a change is a new version here, pinned in
``tests/store/test_migrations_pinned.py``.
"""

from __future__ import annotations

from gateway.store.ddl import Migration, PerDatabase, Step, migration

# The index tables, each keyed by a resource's type and a parameter.
PARAMETER_TABLES = (
    "search_token",
    "search_string",
    "search_date",
    "search_reference",
    "search_quantity",
    "search_number",
    "search_uri",
    "search_composite",
    "search_sort",
)

# Keys the gateway makes for itself (the access-token signing key),
# shared by every worker process. Made by version 5 together with the
# client registry's tables: gateway/store/_schema.py assembles it.
# (Indented as released: the pin is of the exact text.)
SECRETS_TABLE: tuple[Step, ...] = (
    """CREATE TABLE gateway_secret (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )""",
)

MIGRATIONS: tuple[Migration, ...] = (
    migration(
        version=1,
        name="versioned resources and token index",
        steps=(
            # Every version ever written; seq gives the global order of writes.
            """CREATE TABLE resource_version (
                seq {serial},
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                last_updated TEXT NOT NULL,
                method TEXT NOT NULL,
                content {bytes},
                UNIQUE (res_type, res_id, version)
            )""",
            "CREATE INDEX resource_version_type_seq ON resource_version (res_type, seq)",
            # The latest version of each resource: the row writers lock.
            """CREATE TABLE resource_current (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                seq {bigint} NOT NULL,
                deleted {bool} NOT NULL,
                PRIMARY KEY (res_type, res_id)
            ){without_rowid}""",
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
    ),
    migration(
        version=2,
        name="search index tables per parameter type",
        steps=(
            # Index values by parameter type (gateway.store.values), for live
            # resources only; replaced with each version, in its unit of work.
            # Text columns hold normalised (case- and accent-folded) forms.
            "DROP TABLE search_token",
            """CREATE TABLE search_token (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                system TEXT,
                code TEXT,
                text TEXT
            )""",
            "CREATE INDEX search_token_lookup ON search_token (res_type, param, code, system)",
            "CREATE INDEX search_token_owner ON search_token (res_type, res_id)",
            """CREATE TABLE search_string (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                value TEXT NOT NULL,
                exact TEXT NOT NULL
            )""",
            "CREATE INDEX search_string_lookup ON search_string (res_type, param, value)",
            "CREATE INDEX search_string_owner ON search_string (res_type, res_id)",
            """CREATE TABLE search_date (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                low TEXT NOT NULL,
                high TEXT NOT NULL
            )""",
            "CREATE INDEX search_date_low ON search_date (res_type, param, low)",
            "CREATE INDEX search_date_high ON search_date (res_type, param, high)",
            "CREATE INDEX search_date_owner ON search_date (res_type, res_id)",
            """CREATE TABLE search_reference (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                target_type TEXT,
                target_id TEXT,
                url TEXT,
                id_system TEXT,
                id_value TEXT
            )""",
            "CREATE INDEX search_reference_lookup ON search_reference "
            "(res_type, param, target_id, target_type)",
            "CREATE INDEX search_reference_target ON search_reference (target_type, target_id)",
            "CREATE INDEX search_reference_owner ON search_reference (res_type, res_id)",
            """CREATE TABLE search_quantity (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                value {number} NOT NULL,
                system TEXT,
                code TEXT,
                unit TEXT
            )""",
            "CREATE INDEX search_quantity_lookup ON search_quantity (res_type, param, value)",
            "CREATE INDEX search_quantity_owner ON search_quantity (res_type, res_id)",
            """CREATE TABLE search_number (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                value {number} NOT NULL
            )""",
            "CREATE INDEX search_number_lookup ON search_number (res_type, param, value)",
            "CREATE INDEX search_number_owner ON search_number (res_type, res_id)",
            """CREATE TABLE search_uri (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                value TEXT NOT NULL
            )""",
            "CREATE INDEX search_uri_lookup ON search_uri (res_type, param, value)",
            "CREATE INDEX search_uri_owner ON search_uri (res_type, res_id)",
            # Which extraction rules the index was built with; a change of rules
            # (new parameters, new definitions) makes the store reindex on start.
            """CREATE TABLE index_state (
                name TEXT PRIMARY KEY,
                version TEXT NOT NULL
            )""",
        ),
    ),
    migration(
        version=3,
        name="composite search values",
        steps=(
            # Composite values: the first component (a token's system and
            # code, or a reference's type and id) and the second (a token, a
            # quantity, a date range or a folded string) from one element.
            """CREATE TABLE search_composite (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                a_system TEXT,
                a_code TEXT,
                b_system TEXT,
                b_code TEXT,
                b_value {number},
                b_low TEXT,
                b_high TEXT,
                b_string TEXT
            )""",
            "CREATE INDEX search_composite_lookup ON search_composite (res_type, param, a_code)",
            "CREATE INDEX search_composite_owner ON search_composite (res_type, res_id)",
        ),
    ),
    migration(
        version=4,
        name="index rows found by resource and parameter",
        # A search tests its further conditions, and computes sort keys, on
        # the candidates its first condition found: by resource and parameter.
        steps=(
            "DROP INDEX search_token_owner",
            "CREATE INDEX search_token_owner ON search_token (res_type, res_id, param)",
            "DROP INDEX search_string_owner",
            "CREATE INDEX search_string_owner ON search_string (res_type, res_id, param)",
            "DROP INDEX search_date_owner",
            "CREATE INDEX search_date_owner ON search_date (res_type, res_id, param)",
            "DROP INDEX search_reference_owner",
            "CREATE INDEX search_reference_owner ON search_reference (res_type, res_id, param)",
            "DROP INDEX search_quantity_owner",
            "CREATE INDEX search_quantity_owner ON search_quantity (res_type, res_id, param)",
            "DROP INDEX search_number_owner",
            "CREATE INDEX search_number_owner ON search_number (res_type, res_id, param)",
            "DROP INDEX search_uri_owner",
            "CREATE INDEX search_uri_owner ON search_uri (res_type, res_id, param)",
            "DROP INDEX search_composite_owner",
            "CREATE INDEX search_composite_owner ON search_composite (res_type, res_id, param)",
        ),
    ),
    # Version 5 (the client registry, and gateway_secret above) is assembled
    # in gateway/store/_schema.py.
    migration(
        version=14,
        name="sort keys read in index order",
        # One row per resource and sortable parameter: the least and the
        # greatest of its values, so that ``_sort`` reads an index in order
        # and stops at the page. Filled as resources are (re)indexed.
        steps=(
            """CREATE TABLE search_sort (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                asc_key TEXT,
                desc_key TEXT,
                PRIMARY KEY (res_type, res_id, param)
            ){without_rowid}""",
            "CREATE INDEX search_sort_asc ON search_sort (res_type, param, asc_key, res_id)",
            "CREATE INDEX search_sort_desc ON search_sort (res_type, param, desc_key, res_id)",
        ),
    ),
    migration(
        version=15,
        name="resources without a sort key, by id",
        # A sort's resources without a key come last, by id: read from an
        # index of them alone. PostgreSQL read them from the primary key
        # instead, filtering out every resource that has a key (a whole type)
        # to find none. Both keys are empty together (``SortValue``).
        steps=(
            "CREATE INDEX search_sort_missing ON search_sort (res_type, param, res_id) "
            "WHERE asc_key IS NULL",
        ),
    ),
    migration(
        version=16,
        name="sort keys by the person whose record it is",
        # A requester that cares for few people reads their records' sort
        # keys person by person from this index alone, and sorts those,
        # where it read every record of theirs to find its key. Filled as
        # resources are (re)indexed: the index rules changed with it.
        steps=(
            "ALTER TABLE search_sort ADD COLUMN person TEXT",
            "CREATE INDEX search_sort_person "
            "ON search_sort (res_type, param, person, asc_key, desc_key, res_id)",
        ),
    ),
    migration(
        version=17,
        name="statistics of the parameters each type has",
        # PostgreSQL took a type and a parameter as independent, so it
        # expected a few hundred Patients' name rows among millions where
        # there are tens of thousands, and sorted them all to show twenty
        # rather than reading the sort index in order (0.6 s, not 15 ms).
        # SQLite's sampled statistics already count them together.
        steps=tuple(
            PerDatabase(postgres=statement)
            for table in PARAMETER_TABLES
            for statement in (
                f"CREATE STATISTICS {table}_kinds (mcv, dependencies) "
                f"ON res_type, param FROM {table}",
                f"ANALYZE {table}",
            )
        ),
    ),
    migration(
        version=18,
        name="live resources by type",
        # Whether a search has more than so many candidates (before deciding
        # to withhold a total) counts a type's live resources up to a bound.
        # PostgreSQL read the table from its start to find them: 11 ms to
        # count a thousand Patients among a million resources, 0.3 ms from
        # this index alone. SQLite reads its primary key, which holds
        # ``deleted`` already.
        steps=(
            PerDatabase(
                postgres="CREATE INDEX resource_current_live ON resource_current "
                "(res_type, res_id) WHERE NOT deleted"
            ),
        ),
    ),
)
