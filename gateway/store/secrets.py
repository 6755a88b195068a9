"""The deployment's secrets kept in the database (``gateway_secret``): the
token signing key, the mapped ids' key, the console's session key. Each is
made on first use, and every process of every node ends up with the same
one, however many start at the same moment: the first to write it wins,
and the others read what it wrote."""

from __future__ import annotations

from collections.abc import Callable

from gateway.store.base import Store

_READ = "SELECT value FROM gateway_secret WHERE name = ?"


def kept_secret(store: Store, name: str, make: Callable[[], str]) -> str:
    """The secret ``name``, made with ``make`` and kept if there is none yet."""
    rows = store.select(_READ, [name])
    if not rows:
        with store.unit_of_work() as uow:
            uow.execute(
                "INSERT INTO gateway_secret (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                [name, make()],
            )
        rows = store.select(_READ, [name])
    return str(rows[0][0])
