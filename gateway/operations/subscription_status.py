"""``Subscription/[id]/$status`` and ``Subscription/[id]/$events``: where a
subscription's delivery stands, and its events fetched again (or fetched at
all, on the pull channel), as the Subscriptions Backport IG defines them.

Both are asked by the subscriber of a Subscription its repository lets it
read (a Subscription is its author's alone): anyone else is answered as for
a Subscription that does not exist. ``$events`` gives each event as it was
decided for the subscriber when it happened; a version the subscriber may
no longer see now (its person has since dissented, say) is given by
reference, never with its content.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway import fhirjson
from gateway.delivery import bundles, sending
from gateway.errors import InvalidRequest
from gateway.integers import whole_number
from gateway.notifications import state, subscriptions
from gateway.notifications.subscriptions import PAYLOADS
from gateway.store import Store, StoredVersion

_MAX_EVENTS = 100  # the most events one $events answer gives


@dataclass(frozen=True)
class EventsRequest:
    since: int | None
    until: int | None
    content: str | None


def _number(name: str, value: str) -> int:
    number = whole_number(value)
    if number is None:
        raise InvalidRequest(f"{name} is an event number, not {value!r}", code="GW-0166")
    return number


def body_parameters(body: Any) -> list[tuple[str, str]]:
    """The primitive parameters of a POSTed Parameters resource, as text."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest(
            "the body of this operation must be a Parameters resource", code="GW-0166"
        )
    found = []
    for parameter in body.get("parameter") or []:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        value = (
            next((v for k, v in parameter.items() if k.startswith("value")), None)
            if isinstance(parameter, dict)
            else None
        )
        if not isinstance(name, str) or not isinstance(value, (str, int)) or value is True:
            raise InvalidRequest(
                "every parameter has a name and a string or number value", code="GW-0166"
            )
        found.append((name, str(value)))
    return found


def parse_events_request(params: Sequence[tuple[str, str]]) -> EventsRequest:
    """``eventsSinceNumber`` (inclusive), ``eventsUntilNumber`` (inclusive)
    and ``content`` of ``$events``."""
    since = until = None
    content = None
    for name, value in params:
        if name == "eventsSinceNumber":
            since = _number(name, value)
        elif name == "eventsUntilNumber":
            until = _number(name, value)
        elif name == "content":
            if value not in PAYLOADS:
                raise InvalidRequest(
                    f"content is one of {', '.join(PAYLOADS)}, not {value!r}", code="GW-0166"
                )
            content = value
        elif not name.startswith("_"):
            raise InvalidRequest(
                f"$events takes eventsSinceNumber, eventsUntilNumber and content, not {name!r}",
                code="GW-0166",
            )
    return EventsRequest(since, until, content)


def status(store: Store, found: StoredVersion, base_url: str | None) -> dict[str, Any]:
    """The ``$status`` searchset of the Subscription ``found``."""
    subscription = subscriptions.read(fhirjson.loads(found.content or b"{}"))
    current = state.of(store, found.res_id) or state.never_noted(found)
    resource = bundles.status_resource(subscription, current, bundles.QUERY_STATUS, [], base_url)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [
            {
                "fullUrl": f"urn:uuid:{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
        ],
    }


@dataclass(frozen=True)
class Fetched:
    bundle: dict[str, Any]
    events: list[bundles.Notified]


def events(
    store: Store,
    found: StoredVersion,
    request: EventsRequest,
    base_url: str | None,
    *,
    may_see: Callable[[StoredVersion], bool],
    may_read: Callable[[str], bool],
) -> Fetched:
    """The ``$events`` history Bundle of the Subscription ``found``: its
    events numbered from ``since`` to ``until`` (by default the last
    the last ten) up to ``until`` (by default the last), with the payload
    asked (by default the subscription's)."""
    subscription = subscriptions.read(fhirjson.loads(found.content or b"{}"))
    current = state.of(store, found.res_id) or state.never_noted(found)
    since = max(request.since if request.since is not None else current.numbered - 9, 1)
    until = min(request.until if request.until is not None else current.numbered, current.numbered)
    fetched = sending.notified(store, found.res_id, since - 1, until, _MAX_EVENTS)
    payload = request.content or subscription.payload
    shown = [
        bundles.Notified(
            event.number,
            event.occurred,
            event.focus,
            event.version
            if event.version is not None
            and may_read(event.version.res_type)
            and may_see(event.version)
            else None,
            event.patient_id,
        )
        for event in fetched
    ]
    asked = subscriptions.Subscription(**{**subscription.__dict__, "payload": payload})
    bundle = bundles.notification(asked, current, bundles.QUERY_EVENT, shown, base_url)
    return Fetched(bundle, shown)
