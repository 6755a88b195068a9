"""The access package's table: the National Data Opt-out list
(``gateway/access/optouts.py``).

Written once for both databases (``gateway.store.ddl``). A released
migration is never edited: a change is a new version in ``MIGRATIONS``,
pinned in ``tests/store/test_migrations_pinned.py``.
"""

from __future__ import annotations

from gateway.store.ddl import Migration, migration

MIGRATIONS: tuple[Migration, ...] = (
    migration(
        version=22,
        name="the National Data Opt-out list",
        # The NHS numbers of the people who opted out of secondary use
        # nationally, as the national check service returns them; replaced
        # whole by ``gateway opt-outs load`` (gateway.access.optouts).
        steps=("CREATE TABLE national_opt_out (nhs_number TEXT PRIMARY KEY)",),
    ),
)
