"""Listening to PostgreSQL notifications (gateway.store.listening) and the
trigger that announces changes to client registrations (migration 24): a
change is announced at commit and never when rolled back, and a listener
whose connection goes is not believed until it is back, and then says that
notifications may have been missed."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from gateway.auth.registrations import CHANNEL
from gateway.store import Store
from gateway.store.listening import Listener

pytestmark = pytest.mark.postgres


def _wait(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.01)


class Heard:
    def __init__(self) -> None:
        self.messages: list[str] = []
        self.resets = 0
        self.lock = threading.Lock()

    def message(self, payload: str) -> None:
        with self.lock:
            self.messages.append(payload)

    def reset(self) -> None:
        with self.lock:
            self.resets += 1


@pytest.fixture
def heard(pg_store: Store) -> Iterator[tuple[Listener, Heard]]:
    with psycopg.connect(pg_store.url, autocommit=True) as conn:
        conn.execute("DELETE FROM auth_client")
    record = Heard()
    listener = Listener(pg_store.url, CHANNEL, record.message, record.reset)
    _wait(listener.alive)
    yield listener, record
    listener.close()


def test_changes_to_a_registration_are_announced_at_commit_and_never_rolled_back(
    pg_store: Store, heard: tuple[Listener, Heard]
) -> None:
    _, record = heard
    with psycopg.connect(pg_store.url) as conn:
        conn.execute("INSERT INTO auth_client VALUES ('rolled-back', '{}')")
        conn.rollback()
        conn.execute("INSERT INTO auth_client VALUES ('gp-system', '{}')")
        time.sleep(0.2)
        assert record.messages == []  # not before the commit
        conn.commit()
        _wait(lambda: record.messages == ["gp-system"])
        conn.execute("UPDATE auth_client SET registration = '{\"x\": 1}'")
        conn.commit()
        conn.execute("DELETE FROM auth_client")
        conn.commit()
        conn.execute("TRUNCATE auth_client")
        conn.commit()
    _wait(lambda: record.messages == ["gp-system", "gp-system", "gp-system", ""])


def _listener_pid(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
            (f"gateway listening on {CHANNEL}",),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_listener_is_reset_when_it_starts_and_not_believed_while_its_connection_is_gone(
    pg_store: Store, heard: tuple[Listener, Heard]
) -> None:
    listener, record = heard
    assert record.resets == 1  # on connecting: anything before may be missed
    with psycopg.connect(pg_store.url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (_listener_pid(pg_store.url),))
    _wait(lambda: not listener.alive(), timeout=1.0)
    _wait(listener.alive)
    assert record.resets == 2
    with psycopg.connect(pg_store.url, autocommit=True) as conn:
        conn.execute("INSERT INTO auth_client VALUES ('after', '{}')")
    _wait(lambda: record.messages == ["after"])


def test_a_silent_listener_is_not_believed_past_its_lease(
    pg_store: Store, heard: tuple[Listener, Heard]
) -> None:
    """A connection gone without a word (no reply, no error: a host or a
    network gone) stops being believed within the lease, and when it
    answers again, what it may have missed is reset."""
    listener, record = heard
    backend = _listener_pid(pg_store.url)
    os.kill(backend, signal.SIGSTOP)  # the server side of the connection says nothing
    try:
        stopped = time.monotonic()
        _wait(lambda: not listener.alive(), timeout=1.0)
        assert time.monotonic() - stopped < 1.0
        time.sleep(0.5)
        assert not listener.alive()
    finally:
        os.kill(backend, signal.SIGCONT)
    _wait(listener.alive)
    assert record.resets == 2
