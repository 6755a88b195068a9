"""Events off the outbox, numbered for each subscriber consent lets know of
them.

Every event is put to every Subscription of its topic that is delivering,
as its subscriber: the client that wrote the Subscription, of its
organisation and kind, for direct care (``TREAT``; a subscription is never
an emergency, so ``ETREAT`` never applies). The subscriber is told of the
event only if

- its client is still enabled and its registered scopes let it read the
  resource type,
- the Subscription's filters hold (the person, the encounter class, the
  subscriber's care relationship with the person), and
- the consent engine lets it see the version the event is about, with the
  same rules and facts as a read at that moment (``AccessControl``).

Otherwise it is told nothing: no number is spent on it, so its numbers have
no gaps to give away that something was withheld. Taking events off the
outbox and numbering them is one unit of work: a crash between leaves them
on the outbox, to be numbered once by the next pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from consent.model import Requester
from gateway import fhirjson
from gateway.access.control import AccessControl, SharedFacts
from gateway.auth.clients import ClientRegistration, ClientRegistry
from gateway.auth.scopes import Permission
from gateway.notifications import outbox, state, subscriptions
from gateway.notifications.outbox import Event
from gateway.notifications.subscriptions import RELATIONSHIPS, Subscription
from gateway.store import Querier, Store, StoredVersion

_BATCH = 500  # events taken off the outbox in one unit of work


@dataclass
class Subscriber:
    """A delivering Subscription, its state and its subscriber's client."""

    subscription: Subscription
    state: state.State
    client: ClientRegistration
    access: AccessControl
    events: list[Event]
    version: int = 0  # of the Subscription, as read

    @property
    def requester(self) -> Requester:
        return self.access.requester


@lru_cache(maxsize=4096)
def _read(content: bytes) -> Subscription | None:
    """A stored Subscription as the worker delivers it (its bytes hold its
    id and version, so each is parsed once); ``None`` for one written
    before a rule it breaks, which is not delivered."""
    try:
        return subscriptions.read(fhirjson.loads(content))
    except Exception:
        return None


def subscribers(
    reader: Querier,
    registry: ClientRegistry,
    states: Sequence[state.State],
    shared: SharedFacts | None = None,
    moment: datetime | None = None,
) -> list[Subscriber]:
    """The Subscriptions ``states`` are the states of, each as its client
    would act now; those gone or that cannot be delivered (their client
    disabled) are left out. Read with three statements, however many.
    ``shared``: what the data says of the people and records decided on,
    read once for every subscriber decided at the same ``moment``."""
    found = reader.read_many(("Subscription", s.sub_id) for s in states)
    clients = registry.many(s.client_id for s in states)
    made = []
    for current in states:
        version = found.get(("Subscription", current.sub_id))
        client = clients.get(current.client_id)
        if version is None or version.content is None or client is None or client.disabled:
            continue
        subscription = _read(version.content)
        if subscription is None:
            continue
        requester = Requester(
            org_ods=client.org_ods,
            kind=client.kind.value,
            purpose="TREAT",
            client_id=client.client_id,
            client_name=client.name,
            org_name=client.org_name,
        )
        access = AccessControl(reader, requester, now=moment, shared=shared)
        made.append(Subscriber(subscription, current, client, access, [], version.version))
    return made


def _class_of(resource: dict[str, Any]) -> str | None:
    value = resource.get("class")
    code = value.get("code") if isinstance(value, dict) else None
    return code if isinstance(code, str) else None


def _tells(subscriber: Subscriber, event: Event, version: StoredVersion, klass: str | None) -> bool:
    """Whether ``subscriber`` is told of ``event`` (about ``version``, of
    encounter class ``klass``)."""
    subscription = subscriber.subscription
    if event.occurred < subscriber.state.created:
        return False
    if subscription.end is not None and event.occurred > subscription.end:
        return False
    if not subscriber.client.scopes.allows(event.res_type, Permission.READ):
        return False
    filters = subscription.filters
    if filters.patient is not None and event.patient_id != filters.patient:
        return False
    if filters.classes and klass not in filters.classes:
        return False
    if filters.relationship is not None:
        kind = RELATIONSHIPS[filters.relationship]
        if kind is not None and subscriber.client.kind.value != kind:
            return False
        if event.patient_id is None:
            return False
        person = subscriber.access.person(event.patient_id)
        if subscriber.requester.org_ods not in person.relationships:
            return False
    return subscriber.access.visible(version)


class _TakenMeanwhile(Exception):
    """Another process took these events off the outbox first."""


@dataclass
class Deciding:
    """Every delivering Subscription's subscriber, read at ``as_of``."""

    subscribers: list[Subscriber]
    as_of: str  # a FHIR instant


def deciding(store: Store, registry: ClientRegistry) -> Deciding:
    """Every delivering Subscription's subscriber, as consent decides for it
    now: read once for a pass of the worker, however many batches of events
    it numbers. Each person's facts are read once for them all."""
    as_of = fhirjson.instant()  # before the states: none made since is missed
    shared = SharedFacts()
    found = subscribers(store, registry, state.delivering(store), shared, datetime.now(UTC))
    return Deciding(found, as_of)


def assign(
    store: Store,
    deciding: Deciding,
    holder: str,
    now: float,
    lease_s: float,
) -> int:
    """Number the next events on the outbox for the subscribers
    ``deciding`` holds that are told of them, and take them off it; how
    many events were taken (0: none waiting, or the lease is another
    process's). Events after ``deciding`` was read wait for the next pass,
    which reads the Subscriptions made since.

    Who is told of what is decided first, reading as any request reads;
    only then a short unit of work checks the lease, takes the events off
    the outbox and numbers them, so that writers (on SQLite, every writer)
    wait for the numbering alone, never for the decisions."""
    events = [e for e in outbox.since(store, 0, _BATCH) if e.occurred <= deciding.as_of]
    if not events:
        return 0
    delivering = deciding.subscribers
    by_topic: dict[str, list[Subscriber]] = defaultdict(list)
    for subscriber in delivering:
        subscriber.events = []
        by_topic[subscriber.subscription.topic.url].append(subscriber)
    wanted = [e for e in events if e.topic in by_topic]
    versions = store.vread_many((e.res_type, e.res_id, e.version) for e in wanted)
    if delivering and versions:
        # The people and the labels every subscriber's decisions read, read
        # at once (they are shared by all).
        delivering[0].access.prefetch(list(versions.values()))
    for event in wanted:
        version = versions.get((event.res_type, event.res_id, event.version))
        if version is None or version.content is None:
            continue
        resource = fhirjson.loads(version.content) if event.res_type == "Encounter" else {}
        klass = _class_of(resource)
        for subscriber in by_topic[event.topic]:
            if _tells(subscriber, event, version, klass):
                subscriber.events.append(event)
    try:
        with store.unit_of_work() as uow:
            if not state.hold(uow, holder, now, lease_s):
                return 0
            if outbox.taken(uow, events) != len(events):
                raise _TakenMeanwhile
            told = [s for s in delivering if s.events]
            numbered = state.numbered_now(uow, [s.state.sub_id for s in told])
            for subscriber in told:
                state.number(uow, subscriber.state.sub_id, numbered, subscriber.events)
    except _TakenMeanwhile:
        return 0
    return len(events)
