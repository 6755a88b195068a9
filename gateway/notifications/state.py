"""Where each Subscription's delivery stands (``subscription_state``), the
events numbered for it (``subscription_notification``), and the lease that
lets one process of a deployment work the outbox at a time.

A Subscription's subscriber is the client that wrote it: noted with the
write, in its unit of work (``noted``), so that the worker decides each
event as that client would be decided for a read, and stops when that
client is disabled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway import fhirjson
from gateway.notifications.outbox import Event
from gateway.store import Querier, StoredVersion, UnitOfWork

# The live statuses a subscriber may ask for; the gateway moves a
# Subscription from requested to active (handshake) and to error.
REQUESTED, ACTIVE, ERROR, OFF = "requested", "active", "error", "off"


@dataclass(frozen=True)
class State:
    sub_id: str
    client_id: str
    created: str
    status: str
    numbered: int  # the last event number given
    acknowledged: int  # the last event number delivered and acknowledged
    failures: int
    next_attempt: float
    last_sent: float
    last_error: str | None


_COLUMNS = (
    "sub_id, client_id, created, status, numbered, acknowledged, failures, "
    "next_attempt, last_sent, last_error"
)


def _state(row: Sequence[object]) -> State:
    sub_id, client_id, created, status, numbered, acked, failures, attempt, sent, error = row
    return State(
        str(sub_id),
        str(client_id),
        str(created),
        str(status),
        int(numbered),  # type: ignore[call-overload]
        int(acked),  # type: ignore[call-overload]
        int(failures),  # type: ignore[call-overload]
        float(attempt),  # type: ignore[arg-type]
        float(sent),  # type: ignore[arg-type]
        str(error) if error is not None else None,
    )


def noted(uow: UnitOfWork, client_id: str, written: Sequence[StoredVersion]) -> None:
    """Note the Subscriptions among ``written`` (by ``client_id``): a new one
    starts ``requested`` (or ``off`` as asked), a changed one starts over
    from the status it asks for with no failures; a deleted one stops."""
    for version in written:
        if version.res_type != "Subscription":
            continue
        if version.content is None:
            uow.execute(
                "UPDATE subscription_state SET status = ? WHERE sub_id = ?", [OFF, version.res_id]
            )
            continue
        asked = fhirjson.loads(version.content).get("status")
        status = OFF if asked in (OFF, ERROR) else REQUESTED
        changed = uow.execute(
            "UPDATE subscription_state SET client_id = ?, status = ?, failures = 0, "
            "next_attempt = 0, last_error = NULL WHERE sub_id = ?",
            [client_id, status, version.res_id],
        )
        if not changed:
            uow.execute(
                "INSERT INTO subscription_state (sub_id, client_id, created, status) "
                "VALUES (?, ?, ?, ?)",
                [version.res_id, client_id, version.last_updated, status],
            )


def of(reader: Querier, sub_id: str) -> State | None:
    rows = reader.select(f"SELECT {_COLUMNS} FROM subscription_state WHERE sub_id = ?", [sub_id])
    return _state(rows[0]) if rows else None


def never_noted(found: StoredVersion) -> State:
    """The state of a Subscription written without its subscriber noted
    (none is, through the API): nothing numbered, nothing delivered."""
    return State(found.res_id, "", found.last_updated, REQUESTED, 0, 0, 0, 0.0, 0.0, None)


def delivering(reader: Querier) -> list[State]:
    """Every Subscription events are numbered for now."""
    rows = reader.select(
        f"SELECT {_COLUMNS} FROM subscription_state WHERE status IN (?, ?) ORDER BY sub_id",
        [REQUESTED, ACTIVE],
    )
    return [_state(row) for row in rows]


def due(reader: Querier, now: float) -> bool:
    """Whether a Subscription waits for its handshake or has events to be
    sent, and may be tried now (heartbeats aside)."""
    return bool(
        reader.select(
            "SELECT 1 FROM subscription_state WHERE next_attempt <= ? AND "
            "(status = ? OR (status = ? AND numbered > acknowledged)) LIMIT 1",
            [now, REQUESTED, ACTIVE],
        )
    )


def every(reader: Querier) -> list[State]:
    rows = reader.select(f"SELECT {_COLUMNS} FROM subscription_state ORDER BY created", [])
    return [_state(row) for row in rows]


def numbered_now(uow: UnitOfWork, sub_ids: Sequence[str]) -> dict[str, int]:
    """The last number each subscription gave, read in the unit of work
    that numbers further."""
    if not sub_ids:
        return {}
    rows = uow.select(
        "SELECT sub_id, numbered FROM subscription_state WHERE sub_id IN "
        f"({', '.join('?' for _ in sub_ids)})",
        list(sub_ids),
    )
    return {str(sub_id): int(n) for sub_id, n in rows}  # type: ignore[call-overload]


def number(uow: UnitOfWork, sub_id: str, numbered: dict[str, int], events: Sequence[Event]) -> None:
    """Give ``events`` the subscription's next numbers, in order, after the
    last it gave (``numbered``, which is brought up to date)."""
    if not events or sub_id not in numbered:
        return
    first = numbered[sub_id] + 1
    uow.execute_many(
        "INSERT INTO subscription_notification (sub_id, number, topic, res_type, res_id, "
        "version, patient_id, occurred) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [sub_id, first + i, e.topic, e.res_type, e.res_id, e.version, e.patient_id,
             e.occurred]
            for i, e in enumerate(events)
        ],
    )  # fmt: skip
    numbered[sub_id] += len(events)
    uow.execute(
        "UPDATE subscription_state SET numbered = ? WHERE sub_id = ?", [numbered[sub_id], sub_id]
    )


@dataclass(frozen=True)
class Numbered:
    """An event as numbered for one subscription."""

    number: int
    topic: str
    res_type: str
    res_id: str
    version: int
    patient_id: str | None
    occurred: str


def numbered_in(
    reader: Querier, windows: Sequence[tuple[str, int, int]]
) -> dict[str, list[Numbered]]:
    """Each window's events (subscription, after, up to), oldest first, by
    subscription: read in one statement, however many subscriptions."""
    if not windows:
        return {}
    rows = reader.select(
        "SELECT sub_id, number, topic, res_type, res_id, version, patient_id, occurred "
        "FROM subscription_notification WHERE "
        + " OR ".join("(sub_id = ? AND number > ? AND number <= ?)" for _ in windows)
        + " ORDER BY sub_id, number",
        [value for window in windows for value in window],
    )
    found: dict[str, list[Numbered]] = {}
    for sub_id, n, t, rt, ri, v, p, o in rows:
        found.setdefault(str(sub_id), []).append(
            Numbered(int(n), str(t), str(rt), str(ri), int(v), str(p) if p else None, str(o))  # type: ignore[call-overload]
        )
    return found


def delivered(uow: UnitOfWork, state: State, last: int, now: float) -> bool:
    """Events up to ``last`` were acknowledged by the subscriber at ``now``;
    ``False`` (nothing recorded) if its status changed since it was read."""
    changed = uow.execute(
        "UPDATE subscription_state SET status = ?, acknowledged = ?, failures = 0, "
        "next_attempt = 0, last_sent = ?, last_error = NULL WHERE sub_id = ? AND status = ?",
        [ACTIVE, max(last, state.acknowledged), now, state.sub_id, state.status],
    )
    if not changed:
        return False
    if last > state.acknowledged:
        uow.execute(
            "UPDATE subscription_notification SET delivered = ? "
            "WHERE sub_id = ? AND number > ? AND number <= ?",
            [fhirjson.instant(), state.sub_id, state.acknowledged, last],
        )
    return True


def failed(
    uow: UnitOfWork, state: State, error: str, now: float, *, retry_in: float, give_up: bool
) -> bool:
    """A delivery failed: try again in ``retry_in`` seconds, or stop (``error``);
    ``False`` (nothing recorded) if its status changed since it was read."""
    changed = uow.execute(
        "UPDATE subscription_state SET status = ?, failures = failures + 1, next_attempt = ?, "
        "last_error = ? WHERE sub_id = ? AND status = ?",
        [ERROR if give_up else state.status, now + retry_in, error[:500], state.sub_id,
         state.status],
    )  # fmt: skip
    return bool(changed)


# -- the lease ------------------------------------------------------------------

_LEASE = "outbox"


def hold(uow: UnitOfWork, holder: str, now: float, seconds: float) -> bool:
    """Take or renew the lease on working the outbox for ``seconds``; whether
    ``holder`` holds it. Run at the start of each unit of work that works the
    outbox: a process that lost the lease (paused past its end) then fails
    here, and writes nothing, rather than working beside its successor."""
    renewed = uow.execute(
        "UPDATE notification_lease SET holder = ?, expires = ? "
        "WHERE name = ? AND (holder = ? OR expires < ?)",
        [holder, now + seconds, _LEASE, holder, now],
    )
    if renewed:
        return True
    if uow.select("SELECT holder FROM notification_lease WHERE name = ?", [_LEASE]):
        return False
    uow.execute(
        "INSERT INTO notification_lease (name, holder, expires) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO NOTHING",
        [_LEASE, holder, now + seconds],
    )
    rows = uow.select("SELECT holder FROM notification_lease WHERE name = ?", [_LEASE])
    return bool(rows) and rows[0][0] == holder
