"""The outbox: every event a write is (``topics``), recorded in the unit of
work of that write, so that an event is on file exactly when its change is:
a change rolled back leaves no event, and a change committed cannot lose its
event to a crash before delivery. Events are numbered in the order they were
recorded; what is delivered to whom, and when, is decided from here.

On PostgreSQL an event's number is taken when it is inserted, not when its
transaction commits: two writers may commit in the other order, so a reader
that has seen event 12 may later find an 11. Whatever delivers from here must
read only up to a number no transaction still in flight can fall below (for
example, the outbox's numbers taken under a lock, or a read that waits out
the transactions open when it started); SQLite has one writer at a time and
commits in number order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import fhirjson
from gateway.access.facts import person_of
from gateway.notifications import topics
from gateway.store import Querier, StoredVersion, UnitOfWork


@dataclass(frozen=True)
class Event:
    """One recorded event: its number, topic, the version it is about and
    whose record that is."""

    number: int
    topic: str  # the topic's canonical URL
    res_type: str
    res_id: str
    version: int
    patient_id: str | None
    occurred: str


def watches(res_type: str) -> bool:
    """Whether a write of ``res_type`` may be an event (only then is the
    version before it read)."""
    return res_type in topics.WATCHED


def before_of(uow: UnitOfWork, res_type: str, res_id: str) -> dict[str, Any] | None:
    """The live version a write replaces, as a topic compares it."""
    found = uow.read(res_type, res_id)
    if found is None or found.deleted or found.content is None:
        return None
    content: dict[str, Any] = fhirjson.loads(found.content)
    return content


def record(
    uow: UnitOfWork, before: dict[str, Any] | None, after: dict[str, Any], stored: StoredVersion
) -> None:
    """Note every event the write of ``stored`` (whose content is ``after``)
    is, in the write's own unit of work."""
    happened = topics.events(before, after)
    if not happened:
        return
    patient_id = person_of(after) or None
    for topic in happened:
        uow.execute(
            "INSERT INTO notification_event (topic, res_type, res_id, version, patient_id, "
            "occurred) VALUES (?, ?, ?, ?, ?, ?)",
            [topic.url, stored.res_type, stored.res_id, stored.version, patient_id,
             stored.last_updated],
        )  # fmt: skip


def since(reader: Querier, number: int, limit: int = 1000) -> list[Event]:
    """The events recorded after event ``number``, oldest first."""
    rows = reader.select(
        "SELECT seq, topic, res_type, res_id, version, patient_id, occurred "
        "FROM notification_event WHERE seq > ? ORDER BY seq LIMIT ?",
        [number, limit],
    )
    return [
        Event(int(seq), str(topic), str(t), str(i), int(v), str(p) if p else None, str(o))  # type: ignore[call-overload]
        for seq, topic, t, i, v, p, o in rows
    ]


def record_loaded(uow: UnitOfWork, fmt: str, patient_id: str | None) -> None:
    """Note every event that a source record of format ``fmt``, loaded with
    a change, is (a care home's record: a new Red Bag), about the person's
    Patient as it stands, in the load's unit of work."""
    wanted = [topic for topic in topics.TOPICS if fmt in topic.loaded_from]
    person = uow.read("Patient", patient_id) if wanted and patient_id else None
    if person is None or person.deleted:
        return
    for topic in wanted:
        uow.execute(
            "INSERT INTO notification_event (topic, res_type, res_id, version, patient_id, "
            "occurred) VALUES (?, ?, ?, ?, ?, ?)",
            [topic.url, "Patient", person.res_id, person.version, person.res_id,
             fhirjson.instant()],
        )  # fmt: skip


def waiting(reader: Querier) -> bool:
    """Whether any event waits on the outbox."""
    return bool(reader.select("SELECT 1 FROM notification_event LIMIT 1", []))


def taken(uow: UnitOfWork, events: list[Event]) -> int:
    """Take ``events`` off the outbox, the worker having numbered them for
    every subscriber in this unit of work; how many were still there."""
    if not events:
        return 0
    return uow.execute(
        f"DELETE FROM notification_event WHERE seq IN ({', '.join('?' for _ in events)})",
        [event.number for event in events],
    )
