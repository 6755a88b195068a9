"""Client registrations as authentication reads them: from a cache in each
process, invalidated within a second of any change on every node.

Every request checks its client's registration (a disabled client's tokens
stop at once), and every token request its keys. Read from the database,
that was a statement on every request for a row that changes a few times a
year. The cache answers instead, but only while it can know of every change:

- **PostgreSQL** (several processes on several hosts): a trigger on
  ``auth_client`` (migration 24) NOTIFYs ``gateway_auth_client`` with the
  client id, delivered at commit; each process LISTENs on a connection of
  its own (``Store.listen``) and drops that entry, or every entry on an
  empty payload. Nothing else can tell a process on another host in time,
  and a trigger catches every path, an operator's own SQL too. **Fail
  safe**: while the listener is not alive (starting, reconnecting, or its
  connection silent past its lease) the cache is not trusted: every read
  goes to the database and none is kept, and it is emptied whenever the
  listener comes back, since a notification may have been missed.
- **SQLite** (one host, no NOTIFY): an entry lives for half a second. The
  alternatives each cost a statement per request, which is what there was
  to save: a generation counter bumped by a trigger must be read on every
  request, and ``PRAGMA data_version`` changes with every commit by another
  connection, which the audit log makes on every request, so it would send
  each request to that counter anyway. At most two reads a second per
  client per process are nothing, and the expiry also covers changes made
  outside the gateway.

Within one process a change made through ``ClientRegistry`` is forgotten
at once (``forget``), not when its notification or expiry comes: the
console's or a test's next request sees it.

A read that overlapped an invalidation is not kept (it may have read the
row from before the change), so an entry is never older than the last
invalidation of its client. Absent clients are not cached.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from gateway.store import Store

if TYPE_CHECKING:
    from gateway.auth.clients import ClientRegistration

# The channel migration 24's trigger notifies: payload the client id, or
# empty for every client.
CHANNEL = "gateway_auth_client"
# How long an entry may be used. Listened to, a change comes as a
# notification: the age is only a backstop. Not listened to (SQLite), the
# age is the bound on how late a change applies.
LISTENED_MAX_AGE_S = 60.0
EXPIRING_MAX_AGE_S = 0.5
# Clients one process keeps: a region's systems, with room to spare.
CAPACITY = 4096


class RegistrationCache:
    """Registrations by client id, trusted while ``trusted()`` says so and
    for ``max_age_s`` after their read began. Thread-safe: requests use it
    on the event loop, token requests on threads, the listener on its own."""

    def __init__(
        self,
        *,
        max_age_s: float,
        trusted: Callable[[], bool] = lambda: True,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age_s = max_age_s
        self._trusted = trusted
        self._capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        # Oldest first (insertion order), each with when its read began.
        self._entries: dict[str, tuple[ClientRegistration, float]] = {}
        # Counts invalidations: a read that saw it change is not kept.
        self._invalidations = 0

    def trust_while(self, trusted: Callable[[], bool]) -> None:
        """Trust entries only while ``trusted()`` (a listener is alive)."""
        self._trusted = trusted

    def get(
        self, client_id: str, read: Callable[[], ClientRegistration | None]
    ) -> ClientRegistration | None:
        """The registration of ``client_id``: cached, or ``read()`` (and kept)."""
        found = self._cached(client_id)
        if found is not None:
            return found
        ticket = self._ticket()
        found = read()
        self._keep(client_id, found, ticket)
        return found

    async def get_async(
        self, client_id: str, read: Callable[[], Awaitable[ClientRegistration | None]]
    ) -> ClientRegistration | None:
        """As ``get``, with a read on the event loop."""
        found = self._cached(client_id)
        if found is not None:
            return found
        ticket = self._ticket()
        found = await read()
        self._keep(client_id, found, ticket)
        return found

    def forget(self, client_id: str) -> None:
        """Drop one client's entry; an empty id drops every entry (a
        notification's payload, as migration 24 sends it)."""
        with self._lock:
            self._invalidations += 1
            if client_id:
                self._entries.pop(client_id, None)
            else:
                self._entries.clear()

    def clear(self) -> None:
        self.forget("")

    def __len__(self) -> int:
        return len(self._entries)

    def _cached(self, client_id: str) -> ClientRegistration | None:
        entry = self._entries.get(client_id)  # one dict read: atomic
        if entry is None or not self._trusted():
            return None
        registration, read_at = entry
        return registration if self._clock() - read_at < self._max_age_s else None

    def _ticket(self) -> tuple[int, float] | None:
        """Taken before a read: what ``_keep`` checks nothing changed since."""
        if not self._trusted():
            return None
        with self._lock:
            return self._invalidations, self._clock()

    def _keep(
        self,
        client_id: str,
        registration: ClientRegistration | None,
        ticket: tuple[int, float] | None,
    ) -> None:
        if registration is None or ticket is None:
            return
        invalidations, read_at = ticket
        with self._lock:
            # Still trusted (so no reset is pending) and nothing forgotten
            # since the read began (so it cannot predate a change).
            if invalidations != self._invalidations or not self._trusted():
                return
            self._entries.pop(client_id, None)
            while len(self._entries) >= self._capacity:
                del self._entries[next(iter(self._entries))]
            self._entries[client_id] = (registration, read_at)


# One cache per store object in this process, found from the store so that
# a ClientRegistry over it can forget what it changes.
_CACHES: weakref.WeakKeyDictionary[Store, RegistrationCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def cache_of(store: Store) -> RegistrationCache:
    """This process's cache of ``store``'s registrations, made (and, where
    the store can, listened for) on first use. Refers to nothing of the
    store's, so it goes when the store does; the store's ``close`` stops its
    listener."""
    with _CACHES_LOCK:
        cache = _CACHES.get(store)
        if cache is None:
            cache = RegistrationCache(max_age_s=LISTENED_MAX_AGE_S, trusted=lambda: False)
            listening = store.listen(CHANNEL, cache.forget, cache.clear)
            if listening is None:
                cache = RegistrationCache(max_age_s=EXPIRING_MAX_AGE_S)
            else:
                cache.trust_while(listening.alive)
            _CACHES[store] = cache
        return cache


def forget(store: Store, client_id: str) -> None:
    """A change to ``client_id`` through ``store`` has committed: this
    process's cache of it, if it has one, drops the entry now."""
    cache = _CACHES.get(store)
    if cache is not None:
        cache.forget(client_id)
