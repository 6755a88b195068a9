"""Listening to a PostgreSQL channel (LISTEN/NOTIFY) from a thread, for
``PostgresStore.listen``.

A notification is delivered at its transaction's commit, and never for one
rolled back; but only to a connection listening at that moment. A connection
can go without a word (a host or network gone: TCP may say so minutes
later), so the listener is believed only for a short lease after its
connection last answered, and every (re)start says that notifications may
have been missed. https://www.postgresql.org/docs/15/sql-notify.html
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

log = logging.getLogger("gateway.store")

# A listener asks its connection for a reply this often, and is believed
# alive for this long after it last asked and was answered: a connection gone
# without a word (a dropped host, a network cut) stops being trusted within
# the lease, long before TCP would say so.
_HEARTBEAT_S = 0.2
_LEASE_S = 0.8
# Connection settings for a listener, so a dead peer also ends the connection
# (and so a reconnection) within seconds; the TCP ones are ignored over a
# Unix socket.
_CONNECTION = {
    "connect_timeout": 2,
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 2,
    "tcp_user_timeout": 3000,  # ms
}
_RETRY_S = (0.1, 0.2, 0.5, 1.0, 2.0)


class Listener:
    """LISTEN on one channel, on a connection of its own, in a thread of its
    own; made again whenever it fails, for as long as the store is open.

    Alive (``alive()``) while a heartbeat (``SELECT 1``) sent less than
    ``lease_s`` ago was answered: the server sends a notification to an idle
    connection as its transaction commits, so one committed before the
    heartbeat came before the reply, or right behind it.
    Each time it becomes alive after not being so (the first connection, a
    new one, a stall of the thread) it calls ``on_reset`` first: what was
    sent meanwhile may be lost."""

    def __init__(
        self,
        url: str,
        channel: str,
        on_message: Callable[[str], None],
        on_reset: Callable[[], None],
        *,
        heartbeat_s: float = _HEARTBEAT_S,
        lease_s: float = _LEASE_S,
    ) -> None:
        self._url = url
        self._channel = channel
        self._on_message = on_message
        self._on_reset = on_reset
        self._heartbeat_s = heartbeat_s
        self._lease_s = lease_s
        self._alive_until = 0.0  # time.monotonic()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"gateway-listen-{channel}", daemon=True
        )
        self._thread.start()

    def alive(self) -> bool:
        return time.monotonic() < self._alive_until

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=self._heartbeat_s + 3)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                conninfo = make_conninfo(
                    self._url,
                    application_name=f"gateway listening on {self._channel}",
                    **_CONNECTION,
                )
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    if failures:
                        log.warning("listening on %s again", self._channel)
                    failures = 0
                    self._listen(conn)
            except Exception:  # any failure: not alive, and a new connection
                self._alive_until = 0.0
                if not failures:
                    log.warning(
                        "stopped listening on %s; trying again", self._channel, exc_info=True
                    )
                self._stopping.wait(_RETRY_S[min(failures, len(_RETRY_S) - 1)])
                failures += 1
        self._alive_until = 0.0

    def _listen(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        while not self._stopping.is_set():
            sent = time.monotonic()
            conn.execute("SELECT 1")
            self._deliver(conn, 0.0)  # those that came in before the reply
            if sent >= self._alive_until:  # not alive until now: anything may be missed
                self._on_reset()
            self._alive_until = sent + self._lease_s
            self._deliver(conn, self._heartbeat_s)
        self._alive_until = 0.0

    def _deliver(self, conn: psycopg.Connection[tuple[object, ...]], wait_s: float) -> None:
        for notification in conn.notifies(timeout=wait_s):
            self._on_message(notification.payload)
