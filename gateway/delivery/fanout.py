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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consent.model import Person, Requester
from gateway import fhirjson
from gateway.access.control import AccessControl
from gateway.auth.clients import ClientRegistration, ClientRegistry
from gateway.auth.scopes import Permission
from gateway.notifications import outbox, state, subscriptions
from gateway.notifications.outbox import Event
from gateway.notifications.subscriptions import RELATIONSHIPS, Subscription
from gateway.store import Store, StoredVersion, UnitOfWork

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


def subscriber_of(
    uow: UnitOfWork,
    registry: ClientRegistry,
    current: state.State,
    people: dict[str, Person | None] | None = None,
    moment: datetime | None = None,
) -> Subscriber | None:
    """The Subscription ``current`` is the state of, as its client would
    act now; ``None`` when it is gone or cannot be delivered (its client
    disabled). ``people``: the facts of the people decided on, shared with
    the other subscribers decided at the same ``moment``."""
    found = uow.read("Subscription", current.sub_id)
    client = registry.get(current.client_id)
    if found is None or found.content is None or client is None or client.disabled:
        return None
    try:
        subscription = subscriptions.read(fhirjson.loads(found.content))
    except Exception:  # written before a rule it breaks: not delivered
        return None
    requester = Requester(
        org_ods=client.org_ods,
        kind=client.kind.value,
        purpose="TREAT",
        client_id=client.client_id,
        client_name=client.name,
        org_name=client.org_name,
    )
    access = AccessControl(uow, requester, now=moment, people=people)
    return Subscriber(subscription, current, client, access, [], found.version)


def _class_of(resource: dict[str, Any]) -> str | None:
    value = resource.get("class")
    code = value.get("code") if isinstance(value, dict) else None
    return code if isinstance(code, str) else None


def _tells(subscriber: Subscriber, event: Event, version: StoredVersion | None) -> bool:
    """Whether ``subscriber`` is told of ``event`` (about ``version``)."""
    subscription = subscriber.subscription
    if subscription.topic.url != event.topic or event.occurred < subscriber.state.created:
        return False
    if subscription.end is not None and event.occurred > subscription.end:
        return False
    if version is None or version.content is None:
        return False
    if not subscriber.client.scopes.allows(event.res_type, Permission.READ):
        return False
    filters = subscription.filters
    if filters.patient is not None and event.patient_id != filters.patient:
        return False
    if filters.classes and _class_of(fhirjson.loads(version.content)) not in filters.classes:
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


def assign(store: Store, registry: ClientRegistry, holder: str, now: float, lease_s: float) -> int:
    """Number the next events on the outbox for their subscribers and take
    them off it; how many events were taken (0: none waiting, or the lease
    is another process's)."""
    with store.unit_of_work() as uow:
        if not state.hold(uow, holder, now, lease_s):
            return 0
        events = outbox.since(uow, 0, _BATCH)
        if not events:
            return 0
        # Each person's facts read once for every subscriber, at one moment.
        people: dict[str, Person | None] = {}
        moment = datetime.now(UTC)
        subscribers = [
            s
            for current in state.delivering(uow)
            if (s := subscriber_of(uow, registry, current, people, moment)) is not None
        ]
        by_topic: dict[str, list[Subscriber]] = defaultdict(list)
        for subscriber in subscribers:
            by_topic[subscriber.subscription.topic.url].append(subscriber)
        for event in events:
            interested = by_topic.get(event.topic)
            if not interested:
                continue
            version = uow.vread(event.res_type, event.res_id, event.version)
            for subscriber in interested:
                if _tells(subscriber, event, version):
                    subscriber.events.append(event)
        for subscriber in subscribers:
            state.number(uow, subscriber.state, subscriber.events)
        outbox.taken(uow, events)
        return len(events)
