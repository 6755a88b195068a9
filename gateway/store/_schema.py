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


# The index tables, each keyed by a resource's type and a parameter.
_PARAMETER_TABLES = (
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

_NATIONAL_OPT_OUT = ("CREATE TABLE national_opt_out (nhs_number TEXT PRIMARY KEY)",)
_EXPORT_TABLES = (
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
_SUBSCRIBER_TABLES = (
    # Each Subscription's delivery: its subscriber (the client that wrote it),
    # where its events stand (the last numbered, the last acknowledged), and
    # its failures and next attempt.
    """CREATE TABLE subscription_state (
        sub_id TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        created TEXT NOT NULL,
        status TEXT NOT NULL,
        numbered BIGINT NOT NULL DEFAULT 0,
        acknowledged BIGINT NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0,
        last_sent DOUBLE PRECISION NOT NULL DEFAULT 0,
        last_error TEXT
    )""",
    # The events consent let each subscriber be told of, numbered per
    # subscription with no gaps.
    """CREATE TABLE subscription_notification (
        sub_id TEXT NOT NULL,
        number BIGINT NOT NULL,
        topic TEXT NOT NULL,
        res_type TEXT NOT NULL,
        res_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        patient_id TEXT,
        occurred TEXT NOT NULL,
        delivered TEXT,
        PRIMARY KEY (sub_id, number)
    )""",
    # Who works the outbox now: one process of a deployment at a time.
    """CREATE TABLE notification_lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires DOUBLE PRECISION NOT NULL
    )""",
)


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
    Migration(
        version=2,
        name="search index tables per parameter type",
        sqlite=(
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
                value REAL NOT NULL,
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
                value REAL NOT NULL
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
        postgres=(
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
                value NUMERIC NOT NULL,
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
                value NUMERIC NOT NULL
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
    Migration(
        version=3,
        name="composite search values",
        sqlite=(
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
                b_value REAL,
                b_low TEXT,
                b_high TEXT,
                b_string TEXT
            )""",
            "CREATE INDEX search_composite_lookup ON search_composite (res_type, param, a_code)",
            "CREATE INDEX search_composite_owner ON search_composite (res_type, res_id)",
        ),
        postgres=(
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
                b_value NUMERIC,
                b_low TEXT,
                b_high TEXT,
                b_string TEXT
            )""",
            "CREATE INDEX search_composite_lookup ON search_composite (res_type, param, a_code)",
            "CREATE INDEX search_composite_owner ON search_composite (res_type, res_id)",
        ),
    ),
    Migration(
        version=4,
        name="index rows found by resource and parameter",
        # A search tests its further conditions, and computes sort keys, on
        # the candidates its first condition found: by resource and parameter.
        sqlite=(
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
        postgres=(
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
    Migration(
        version=5,
        name="client registry, client assertions seen, gateway secrets",
        sqlite=(
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
                expires_at INTEGER NOT NULL,
                PRIMARY KEY (client_id, jti)
            )""",
            "CREATE INDEX auth_assertion_expiry ON auth_assertion (expires_at)",
            # Keys the gateway makes for itself (the access-token signing key),
            # shared by every worker process.
            """CREATE TABLE gateway_secret (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )""",
        ),
        postgres=(
            """CREATE TABLE auth_client (
                client_id TEXT PRIMARY KEY,
                registration TEXT NOT NULL
            )""",
            """CREATE TABLE auth_assertion (
                client_id TEXT NOT NULL,
                jti TEXT NOT NULL,
                expires_at BIGINT NOT NULL,
                PRIMARY KEY (client_id, jti)
            )""",
            "CREATE INDEX auth_assertion_expiry ON auth_assertion (expires_at)",
            """CREATE TABLE gateway_secret (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        version=6,
        name="audit log: entries, Merkle tree nodes, signed checkpoints",
        sqlite=(
            # One AuditEvent per leaf, in log order; the columns are what
            # auditors filter on, the entry is the canonical JSON hashed.
            """CREATE TABLE audit_entry (
                idx INTEGER PRIMARY KEY,
                recorded TEXT NOT NULL,
                request_id TEXT,
                org_ods TEXT,
                client_id TEXT,
                purpose TEXT,
                subtype TEXT NOT NULL,
                outcome TEXT NOT NULL,
                emergency INTEGER NOT NULL,
                alert INTEGER NOT NULL,
                entry BLOB NOT NULL,
                leaf BLOB NOT NULL
            )""",
            "CREATE INDEX audit_entry_org ON audit_entry (org_ods, idx)",
            "CREATE INDEX audit_entry_emergency ON audit_entry (emergency, idx)",
            # Every person whose record an entry touched (a search, several).
            """CREATE TABLE audit_patient (
                patient_id TEXT NOT NULL,
                idx INTEGER NOT NULL,
                PRIMARY KEY (patient_id, idx)
            ) WITHOUT ROWID""",
            # The hash of every complete subtree of two or more leaves
            # (2**level leaves from idx * 2**level, level >= 1); the leaf
            # hashes themselves are audit_entry.leaf.
            """CREATE TABLE audit_node (
                level INTEGER NOT NULL,
                idx INTEGER NOT NULL,
                hash BLOB NOT NULL,
                PRIMARY KEY (level, idx)
            ) WITHOUT ROWID""",
            # Signed tree heads (C2SP checkpoints), one per size signed.
            """CREATE TABLE audit_checkpoint (
                size INTEGER PRIMARY KEY,
                root BLOB NOT NULL,
                note TEXT NOT NULL,
                created TEXT NOT NULL
            )""",
            # The privacy officer's review of an emergency access (the entry
            # at idx); the review is itself an entry of the log (review_idx).
            """CREATE TABLE audit_review (
                idx INTEGER PRIMARY KEY,
                review_idx INTEGER NOT NULL,
                reviewer TEXT NOT NULL,
                reviewed_at TEXT NOT NULL,
                note TEXT NOT NULL
            )""",
        ),
        postgres=(
            """CREATE TABLE audit_entry (
                idx BIGINT PRIMARY KEY,
                recorded TEXT NOT NULL,
                request_id TEXT,
                org_ods TEXT,
                client_id TEXT,
                purpose TEXT,
                subtype TEXT NOT NULL,
                outcome TEXT NOT NULL,
                emergency BOOLEAN NOT NULL,
                alert BOOLEAN NOT NULL,
                entry BYTEA NOT NULL,
                leaf BYTEA NOT NULL
            )""",
            "CREATE INDEX audit_entry_org ON audit_entry (org_ods, idx)",
            "CREATE INDEX audit_entry_emergency ON audit_entry (emergency, idx)",
            """CREATE TABLE audit_patient (
                patient_id TEXT NOT NULL,
                idx BIGINT NOT NULL,
                PRIMARY KEY (patient_id, idx)
            )""",
            """CREATE TABLE audit_node (
                level INTEGER NOT NULL,
                idx BIGINT NOT NULL,
                hash BYTEA NOT NULL,
                PRIMARY KEY (level, idx)
            )""",
            """CREATE TABLE audit_checkpoint (
                size BIGINT PRIMARY KEY,
                root BYTEA NOT NULL,
                note TEXT NOT NULL,
                created TEXT NOT NULL
            )""",
            """CREATE TABLE audit_review (
                idx BIGINT PRIMARY KEY,
                review_idx BIGINT NOT NULL,
                reviewer TEXT NOT NULL,
                reviewed_at TEXT NOT NULL,
                note TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        version=7,
        name="one-time login links to the auditors' console",
        sqlite=(
            # Only a hash of each link's secret is kept; a link works once.
            """CREATE TABLE console_login (
                token_hash TEXT PRIMARY KEY,
                client_id TEXT NOT NULL,
                expires_at INTEGER NOT NULL,
                used INTEGER NOT NULL
            )""",
        ),
        postgres=(
            """CREATE TABLE console_login (
                token_hash TEXT PRIMARY KEY,
                client_id TEXT NOT NULL,
                expires_at BIGINT NOT NULL,
                used BOOLEAN NOT NULL
            )""",
        ),
    ),
    Migration(
        version=8,
        name="source records already loaded",
        sqlite=(
            # A source record (an HL7 message by its MSH-10, say) once loaded:
            # sent again, it changes nothing.
            """CREATE TABLE mapping_record (
                source_org TEXT NOT NULL,
                format TEXT NOT NULL,
                record_key TEXT NOT NULL,
                loaded_at TEXT NOT NULL,
                PRIMARY KEY (source_org, format, record_key)
            )""",
        ),
        postgres=(
            """CREATE TABLE mapping_record (
                source_org TEXT NOT NULL,
                format TEXT NOT NULL,
                record_key TEXT NOT NULL,
                loaded_at TEXT NOT NULL,
                PRIMARY KEY (source_org, format, record_key)
            )""",
        ),
    ),
    Migration(
        version=9,
        name="probable matches for an operator; loaded records archived as they came",
        sqlite=(
            # A Patient loaded without an NHS number that looks like another
            # (same birth date and family name or postcode): listed for an
            # operator to confirm or dismiss, never merged silently.
            """CREATE TABLE patient_match (
                patient_id TEXT NOT NULL,
                candidate_id TEXT NOT NULL,
                reason TEXT NOT NULL,
                found_at TEXT NOT NULL,
                status TEXT NOT NULL,
                decided_by TEXT,
                decided_at TEXT,
                PRIMARY KEY (patient_id, candidate_id)
            )""",
            "CREATE INDEX patient_match_status ON patient_match (status, found_at)",
            # Each loaded record as it arrived (an HL7 message with its
            # Z-segments, a CLD row, a JSON record): the source's own words.
            "ALTER TABLE mapping_record ADD COLUMN content BLOB",
            # Whom a record was about and what it stated (Type/id, JSON): a
            # source's next whole record of the person retires what it
            # leaves out.
            "ALTER TABLE mapping_record ADD COLUMN patient_id TEXT",
            "ALTER TABLE mapping_record ADD COLUMN resources TEXT",
            "CREATE INDEX mapping_record_person "
            "ON mapping_record (source_org, format, patient_id, loaded_at)",
        ),
        postgres=(
            """CREATE TABLE patient_match (
                patient_id TEXT NOT NULL,
                candidate_id TEXT NOT NULL,
                reason TEXT NOT NULL,
                found_at TEXT NOT NULL,
                status TEXT NOT NULL,
                decided_by TEXT,
                decided_at TEXT,
                PRIMARY KEY (patient_id, candidate_id)
            )""",
            "CREATE INDEX patient_match_status ON patient_match (status, found_at)",
            "ALTER TABLE mapping_record ADD COLUMN content BYTEA",
            "ALTER TABLE mapping_record ADD COLUMN patient_id TEXT",
            "ALTER TABLE mapping_record ADD COLUMN resources TEXT",
            "CREATE INDEX mapping_record_person "
            "ON mapping_record (source_org, format, patient_id, loaded_at)",
        ),
    ),
    Migration(
        version=10,
        name="the moment a loaded record stands as at",
        # A care home's export is its whole record of the resident as at the
        # export: one older than the latest, loaded after it, changes nothing.
        sqlite=("ALTER TABLE mapping_record ADD COLUMN as_at TEXT",),
        postgres=("ALTER TABLE mapping_record ADD COLUMN as_at TEXT",),
    ),
    Migration(
        version=11,
        name="loaded records found by person and format",
        # Whether a practice's own record or a hospital's has been loaded for
        # a person, whatever the organisation: who says the registered GP.
        sqlite=("CREATE INDEX mapping_record_patient ON mapping_record (patient_id, format)",),
        postgres=("CREATE INDEX mapping_record_patient ON mapping_record (patient_id, format)",),
    ),
    Migration(
        version=12,
        name="the people of an audit entry found by the entry",
        # `gateway audit verify` reads each batch of entries' people by index
        # range, and a review reads the reviewed entry's: without this, each
        # a pass over the whole table.
        sqlite=("CREATE INDEX audit_patient_entry ON audit_patient (idx, patient_id)",),
        postgres=("CREATE INDEX audit_patient_entry ON audit_patient (idx, patient_id)",),
    ),
    Migration(
        version=13,
        name="audit entries staged by the writes they record",
        # A write stages its entry in its own transaction, taking no lock;
        # the audit writer moves staged entries into the log in batches
        # (``gateway.audit.staging``). Appending in the write's transaction
        # instead would hold the log's lock through every write's commit.
        sqlite=(
            """CREATE TABLE audit_staged (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                entry BLOB NOT NULL
            )""",
        ),
        postgres=(
            """CREATE TABLE audit_staged (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                entry BYTEA NOT NULL
            )""",
        ),
    ),
    Migration(
        version=14,
        name="sort keys read in index order",
        # One row per resource and sortable parameter: the least and the
        # greatest of its values, so that ``_sort`` reads an index in order
        # and stops at the page. Filled as resources are (re)indexed.
        sqlite=(
            """CREATE TABLE search_sort (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                asc_key TEXT,
                desc_key TEXT,
                PRIMARY KEY (res_type, res_id, param)
            ) WITHOUT ROWID""",
            "CREATE INDEX search_sort_asc ON search_sort (res_type, param, asc_key, res_id)",
            "CREATE INDEX search_sort_desc ON search_sort (res_type, param, desc_key, res_id)",
        ),
        postgres=(
            """CREATE TABLE search_sort (
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                param TEXT NOT NULL,
                asc_key TEXT,
                desc_key TEXT,
                PRIMARY KEY (res_type, res_id, param)
            )""",
            "CREATE INDEX search_sort_asc ON search_sort (res_type, param, asc_key, res_id)",
            "CREATE INDEX search_sort_desc ON search_sort (res_type, param, desc_key, res_id)",
        ),
    ),
    Migration(
        version=15,
        name="resources without a sort key, by id",
        # A sort's resources without a key come last, by id: read from an
        # index of them alone. PostgreSQL read them from the primary key
        # instead, filtering out every resource that has a key (a whole type)
        # to find none. Both keys are empty together (``SortValue``).
        sqlite=(
            "CREATE INDEX search_sort_missing ON search_sort (res_type, param, res_id) "
            "WHERE asc_key IS NULL",
        ),
        postgres=(
            "CREATE INDEX search_sort_missing ON search_sort (res_type, param, res_id) "
            "WHERE asc_key IS NULL",
        ),
    ),
    Migration(
        version=16,
        name="sort keys by the person whose record it is",
        # A requester that cares for few people reads their records' sort
        # keys person by person from this index alone, and sorts those,
        # where it read every record of theirs to find its key. Filled as
        # resources are (re)indexed: the index rules changed with it.
        sqlite=(
            "ALTER TABLE search_sort ADD COLUMN person TEXT",
            "CREATE INDEX search_sort_person "
            "ON search_sort (res_type, param, person, asc_key, desc_key, res_id)",
        ),
        postgres=(
            "ALTER TABLE search_sort ADD COLUMN person TEXT",
            "CREATE INDEX search_sort_person "
            "ON search_sort (res_type, param, person, asc_key, desc_key, res_id)",
        ),
    ),
    Migration(
        version=17,
        name="statistics of the parameters each type has",
        # PostgreSQL took a type and a parameter as independent, so it
        # expected a few hundred Patients' name rows among millions where
        # there are tens of thousands, and sorted them all to show twenty
        # rather than reading the sort index in order (0.6 s, not 15 ms).
        # SQLite's sampled statistics already count them together.
        sqlite=(),
        postgres=tuple(
            statement
            for table in _PARAMETER_TABLES
            for statement in (
                f"CREATE STATISTICS {table}_kinds (mcv, dependencies) "
                f"ON res_type, param FROM {table}",
                f"ANALYZE {table}",
            )
        ),
    ),
    Migration(
        version=18,
        name="live resources by type",
        # Whether a search has more than so many candidates (before deciding
        # to withhold a total) counts a type's live resources up to a bound.
        # PostgreSQL read the table from its start to find them: 11 ms to
        # count a thousand Patients among a million resources, 0.3 ms from
        # this index alone. SQLite reads its primary key, which holds
        # ``deleted`` already.
        sqlite=(),
        postgres=(
            "CREATE INDEX resource_current_live ON resource_current (res_type, res_id) "
            "WHERE NOT deleted",
        ),
    ),
    Migration(
        version=19,
        name="which source gave each element of a person",
        # Every source's record of a person lands on one Patient, merged
        # element by element with a precedence (``gateway.loading.person``):
        # the source (organisation, format, record and its moment) whose
        # value of each element is on file, and a digest of that value, so a
        # value written since by anyone else is not taken for the source's.
        # Kept beside the Patient, never in it: which organisations hold a
        # record of a person is not for every reader.
        sqlite=(
            """CREATE TABLE patient_element_source (
                patient_id TEXT NOT NULL,
                element TEXT NOT NULL,
                source_org TEXT NOT NULL,
                format TEXT NOT NULL,
                record_key TEXT NOT NULL,
                as_at TEXT,
                loaded_at TEXT NOT NULL,
                digest TEXT NOT NULL,
                PRIMARY KEY (patient_id, element)
            ) WITHOUT ROWID""",
        ),
        postgres=(
            """CREATE TABLE patient_element_source (
                patient_id TEXT NOT NULL,
                element TEXT NOT NULL,
                source_org TEXT NOT NULL,
                format TEXT NOT NULL,
                record_key TEXT NOT NULL,
                as_at TEXT,
                loaded_at TEXT NOT NULL,
                digest TEXT NOT NULL,
                PRIMARY KEY (patient_id, element)
            )""",
        ),
    ),
    Migration(
        version=20,
        name="the outbox of care-pathway events",
        # One row per event a write is (``gateway.notifications``), written
        # in the write's own unit of work: on file exactly when its change is.
        sqlite=(
            """CREATE TABLE notification_event (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                topic TEXT NOT NULL,
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                patient_id TEXT,
                occurred TEXT NOT NULL
            )""",
        ),
        postgres=(
            """CREATE TABLE notification_event (
                seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                topic TEXT NOT NULL,
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                patient_id TEXT,
                occurred TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        version=21,
        name="subscriptions' deliveries",
        # The worker (``gateway.delivery.worker``) takes each event off
        # the outbox, numbers it for every subscriber consent lets know of
        # it, and delivers in number order.
        sqlite=_SUBSCRIBER_TABLES,
        postgres=_SUBSCRIBER_TABLES,
    ),
    Migration(
        version=22,
        name="the National Data Opt-out list",
        # The NHS numbers of the people who opted out of secondary use
        # nationally, as the national check service returns them; replaced
        # whole by ``gateway opt-outs load`` (gateway.access.optouts).
        sqlite=_NATIONAL_OPT_OUT,
        postgres=_NATIONAL_OPT_OUT,
    ),
    Migration(
        version=23,
        name="bulk exports for population health",
        sqlite=_EXPORT_TABLES,
        postgres=_EXPORT_TABLES,
    ),
    Migration(
        version=24,
        name="changes to client registrations announced at commit",
        # Every process caches registrations (gateway.auth.registrations)
        # and LISTENs on this channel to drop what changed. In the database,
        # not in the registry, so a change by any path (an operator's own
        # SQL too) is announced; NOTIFY is sent at commit, and never for a
        # change rolled back. The payload is the client id; empty: all of
        # them (TRUNCATE). SQLite has no NOTIFY: its processes let an entry
        # live for less than a second instead.
        sqlite=(),
        postgres=(
            """CREATE FUNCTION auth_client_changed() RETURNS trigger
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
            $$""",
            """CREATE TRIGGER auth_client_changed
            AFTER INSERT OR UPDATE OR DELETE ON auth_client
            FOR EACH ROW EXECUTE FUNCTION auth_client_changed()""",
            """CREATE TRIGGER auth_client_truncated
            AFTER TRUNCATE ON auth_client
            FOR EACH STATEMENT EXECUTE FUNCTION auth_client_changed()""",
        ),
    ),
)

SCHEMA_MIGRATION_TABLE = """CREATE TABLE IF NOT EXISTS schema_migration (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""
