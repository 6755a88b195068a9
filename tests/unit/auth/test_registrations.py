"""The registration cache (gateway.auth.registrations): it answers only
while it can know of every change, and never keeps what a change may have
made stale."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from gateway.auth import registrations
from gateway.auth.clients import ClientRegistration, ClientRegistry, new_registration
from gateway.auth.keys import generate_private_key, to_jwk
from gateway.auth.registrations import EXPIRING_MAX_AGE_S, RegistrationCache
from gateway.store import Store, open_store


def _registration(client_id: str = "gp-system", disabled: bool = False) -> ClientRegistration:
    registration = new_registration(
        client_id,
        org_ods="A81001",
        org_name="Riverside Surgery",
        kind="gp-practice",
        scopes="system/*.rs",
        keys=[to_jwk(generate_private_key().public_key())],
    )
    return replace(registration, disabled=disabled)


class Database:
    """What a read would find, and how many reads were made."""

    def __init__(self, *found: ClientRegistration) -> None:
        self.rows = {r.client_id: r for r in found}
        self.reads = 0
        self.during_read: list[Callable[[], None]] = []  # run inside the next read

    def read(self, client_id: str) -> ClientRegistration | None:
        self.reads += 1
        found = self.rows.get(client_id)
        while self.during_read:
            self.during_read.pop(0)()
        return found


class Switch:
    """A listener's liveness, set by the test."""

    def __init__(self, alive: bool = True) -> None:
        self.alive = alive

    def __call__(self) -> bool:
        return self.alive


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_cached_registration_is_answered_without_a_read() -> None:
    db = Database(_registration())
    cache = RegistrationCache(max_age_s=60, trusted=Switch())
    first = cache.get("gp-system", lambda: db.read("gp-system"))
    again = cache.get("gp-system", lambda: db.read("gp-system"))
    assert first is again is not None
    assert db.reads == 1


def test_while_the_listener_is_down_every_read_goes_to_the_database() -> None:
    """Fail safe: not trusted, the cache neither answers nor keeps."""
    db = Database(_registration())
    listener = Switch(alive=True)
    cache = RegistrationCache(max_age_s=60, trusted=listener)
    cache.get("gp-system", lambda: db.read("gp-system"))
    listener.alive = False
    for _ in range(3):
        cache.get("gp-system", lambda: db.read("gp-system"))
    assert db.reads == 4  # the entry made while alive is not used either


def test_what_was_read_while_the_listener_was_down_is_not_kept() -> None:
    db = Database(_registration())
    listener = Switch(alive=False)
    cache = RegistrationCache(max_age_s=60, trusted=listener)
    cache.get("gp-system", lambda: db.read("gp-system"))
    listener.alive = True
    cache.get("gp-system", lambda: db.read("gp-system"))
    assert db.reads == 2
    cache.get("gp-system", lambda: db.read("gp-system"))
    assert db.reads == 2


def test_a_read_during_which_the_listener_went_down_is_not_kept() -> None:
    db = Database(_registration())
    listener = Switch(alive=True)
    cache = RegistrationCache(max_age_s=60, trusted=listener)

    def drop_and_come_back() -> None:
        listener.alive = False
        cache.clear()  # what the listener does when it is alive again
        listener.alive = True

    db.during_read.append(drop_and_come_back)
    cache.get("gp-system", lambda: db.read("gp-system"))
    cache.get("gp-system", lambda: db.read("gp-system"))
    assert db.reads == 2


def test_a_read_that_overlapped_a_change_is_not_kept() -> None:
    """It may hold the row from before the change: the next request reads."""
    before = _registration()
    db = Database(before)
    cache = RegistrationCache(max_age_s=60, trusted=Switch())
    disabled = _registration(disabled=True)

    def change() -> None:
        db.rows["gp-system"] = disabled
        cache.forget("gp-system")  # its notification arrives while the read runs

    db.during_read.append(change)
    assert cache.get("gp-system", lambda: db.read("gp-system")) is before
    assert cache.get("gp-system", lambda: db.read("gp-system")) is disabled


def test_a_notification_drops_its_client_and_an_empty_one_every_client() -> None:
    db = Database(_registration("a"), _registration("b"))
    cache = RegistrationCache(max_age_s=60, trusted=Switch())
    for client_id in ("a", "b"):
        cache.get(client_id, partial(db.read, client_id))
    cache.forget("a")
    assert len(cache) == 1
    cache.forget("")
    assert len(cache) == 0


def test_an_entry_expires_after_its_age_counted_from_before_its_read() -> None:
    db = Database(_registration())
    clock = Clock()
    cache = RegistrationCache(max_age_s=EXPIRING_MAX_AGE_S, clock=clock)

    def slow_read() -> ClientRegistration | None:
        clock.now += 0.3  # the read itself takes time: its row may be that old
        return db.read("gp-system")

    cache.get("gp-system", slow_read)
    clock.now += 0.1
    cache.get("gp-system", slow_read)
    assert db.reads == 1
    clock.now += 0.1  # 0.5 s since the read began
    cache.get("gp-system", slow_read)
    assert db.reads == 2


def test_absent_clients_are_not_cached() -> None:
    db = Database()
    cache = RegistrationCache(max_age_s=60)
    assert cache.get("nobody", lambda: db.read("nobody")) is None
    db.rows["nobody"] = _registration("nobody")
    assert cache.get("nobody", lambda: db.read("nobody")) is not None


def test_the_cache_is_bounded() -> None:
    db = Database(*(_registration(f"c{n}") for n in range(5)))
    cache = RegistrationCache(max_age_s=60, capacity=3)
    for n in range(5):
        cache.get(f"c{n}", partial(db.read, f"c{n}"))
    assert len(cache) == 3
    cache.get("c4", lambda: db.read("c4"))
    assert db.reads == 5  # the newest kept
    cache.get("c0", lambda: db.read("c0"))
    assert db.reads == 6  # the oldest went


def test_the_event_loop_read_is_cached_alike() -> None:
    db = Database(_registration())
    cache = RegistrationCache(max_age_s=60)

    async def read() -> ClientRegistration | None:
        return db.read("gp-system")

    async def twice() -> None:
        await cache.get_async("gp-system", read)
        await cache.get_async("gp-system", read)

    asyncio.run(twice())
    assert db.reads == 1


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path}/gateway.db")
    store.migrate()
    yield store
    store.close()


def test_on_sqlite_entries_expire_and_the_registry_forgets_its_own_changes_at_once(
    sqlite_store: Store,
) -> None:
    """No notifications: an entry lives half a second; a change through this
    process's registry is seen by its very next read."""
    registry = ClientRegistry(sqlite_store)
    registry.save(_registration())
    cache = registrations.cache_of(sqlite_store)
    assert cache is registrations.cache_of(sqlite_store)
    registered = registry.current("gp-system")
    assert registered is not None and not registered.disabled
    assert len(cache) == 1
    registry.disable("gp-system")
    now = registry.current("gp-system")
    assert now is not None and now.disabled
