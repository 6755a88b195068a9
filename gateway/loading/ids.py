"""The deployment's key for mapped ids.

The ids of mapped resources are keyed with a secret of the deployment
(``mappings.identity``), so that nobody outside can compute a Patient's id
from an NHS number. The secret is 32 random bytes made on first start and
kept in the database (``gateway_secret``), beside the data it keys: every
worker, every node sharing one PostgreSQL and every command (``gateway
load``, ``demo``, ``mllp``) maps with the one key, and a backup of the
database holds it. It is never shown. Lost, the next load of a source
record would write a new resource beside the one on file, so it is never
replaced either.
"""

from __future__ import annotations

import secrets

from gateway.store import Store
from mappings.identity import ID_KEY_BYTES, use_id_key

SECRET_NAME = "mapped-id-key"


def id_key(store: Store) -> bytes:
    """The deployment's key for mapped ids, made and kept on first use (the
    first writer wins when several processes start at once)."""
    sql = "SELECT value FROM gateway_secret WHERE name = ?"
    rows = store.select(sql, [SECRET_NAME])
    if not rows:
        with store.unit_of_work() as uow:
            uow.execute(
                "INSERT INTO gateway_secret (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                [SECRET_NAME, secrets.token_hex(ID_KEY_BYTES)],
            )
        rows = store.select(sql, [SECRET_NAME])
    return bytes.fromhex(str(rows[0][0]))


def use_store_id_key(store: Store) -> bytes:
    """Put ``store``'s key in force for every mapping this process makes."""
    key = id_key(store)
    use_id_key(key)
    return key


def ensure_keyed_ids(store: Store) -> int | None:
    """Put ``store``'s key in force before anything maps. Returns how many
    resources were moved to keyed ids: a store written before ids were keyed
    is not moved yet (``None``)."""
    use_store_id_key(store)
    return None
