"""The loading package's tables: every source record loaded
(``gateway/loading/ledger.py``), the probable matches an operator decides
(``matches.py``) and which source gave each element of a person
(``person.py``).

Written once for both databases (``gateway.store.ddl``). A released
migration is never edited: a change is a new version in ``MIGRATIONS``,
pinned in ``tests/store/test_migrations_pinned.py``.
"""

from __future__ import annotations

from gateway.store.ddl import Migration, migration

MIGRATIONS: tuple[Migration, ...] = (
    migration(
        version=8,
        name="source records already loaded",
        steps=(
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
    ),
    migration(
        version=9,
        name="probable matches for an operator; loaded records archived as they came",
        steps=(
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
            "ALTER TABLE mapping_record ADD COLUMN content {bytes}",
            # Whom a record was about and what it stated (Type/id, JSON): a
            # source's next whole record of the person retires what it
            # leaves out.
            "ALTER TABLE mapping_record ADD COLUMN patient_id TEXT",
            "ALTER TABLE mapping_record ADD COLUMN resources TEXT",
            "CREATE INDEX mapping_record_person "
            "ON mapping_record (source_org, format, patient_id, loaded_at)",
        ),
    ),
    migration(
        version=10,
        name="the moment a loaded record stands as at",
        # A care home's export is its whole record of the resident as at the
        # export: one older than the latest, loaded after it, changes nothing.
        steps=("ALTER TABLE mapping_record ADD COLUMN as_at TEXT",),
    ),
    migration(
        version=11,
        name="loaded records found by person and format",
        # Whether a practice's own record or a hospital's has been loaded for
        # a person, whatever the organisation: who says the registered GP.
        steps=("CREATE INDEX mapping_record_patient ON mapping_record (patient_id, format)",),
    ),
    migration(
        version=19,
        name="which source gave each element of a person",
        # Every source's record of a person lands on one Patient, merged
        # element by element with a precedence (``gateway.loading.person``):
        # the source (organisation, format, record and its moment) whose
        # value of each element is on file, and a digest of that value, so a
        # value written since by anyone else is not taken for the source's.
        # Kept beside the Patient, never in it: which organisations hold a
        # record of a person is not for every reader.
        steps=(
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
            ){without_rowid}""",
        ),
    ),
)
