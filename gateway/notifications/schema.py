"""The notifications' tables: the outbox of care-pathway events
(``gateway/notifications/outbox.py``) and where each Subscription's delivery
stands, its numbered events and the worker's lease (``state.py``; read and
written by ``gateway/delivery`` through it).

Written once for both databases (``gateway.store.ddl``). A released
migration is never edited: a change is a new version in ``MIGRATIONS``,
pinned in ``tests/store/test_migrations_pinned.py``.
"""

from __future__ import annotations

from gateway.store.ddl import Migration, Step, migration

_SUBSCRIBER_TABLES: tuple[Step, ...] = (
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
    migration(
        version=20,
        name="the outbox of care-pathway events",
        # One row per event a write is (``gateway.notifications``), written
        # in the write's own unit of work: on file exactly when its change is.
        steps=(
            """CREATE TABLE notification_event (
                seq {serial},
                topic TEXT NOT NULL,
                res_type TEXT NOT NULL,
                res_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                patient_id TEXT,
                occurred TEXT NOT NULL
            )""",
        ),
    ),
    migration(
        version=21,
        name="subscriptions' deliveries",
        # The worker (``gateway.delivery.worker``) takes each event off
        # the outbox, numbers it for every subscriber consent lets know of
        # it, and delivers in number order.
        steps=_SUBSCRIBER_TABLES,
    ),
)
