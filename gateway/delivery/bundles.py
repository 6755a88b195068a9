"""Notification Bundles as the Subscriptions Backport IG shapes them for
R4: a ``history`` Bundle whose first entry is the SubscriptionStatus (a
Parameters resource with the backport's profile), then, per event, its focus
as the subscription's payload asks: nothing (``empty``), the reference
(``id-only``) or the version the event is about (``full-resource``).

The same builder answers ``$status`` and ``$events`` and makes what the
rest-hook channel sends, so a subscriber reads one shape whichever way it
gets it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from gateway import fhirjson
from gateway.notifications.state import State
from gateway.notifications.subscriptions import BACKPORT, Subscription
from gateway.store import StoredVersion

STATUS_PROFILE = BACKPORT + "backport-subscription-status-r4"
NOTIFICATION_PROFILE = BACKPORT + "backport-subscription-notification-r4"
HANDSHAKE, HEARTBEAT, EVENT = "handshake", "heartbeat", "event-notification"
QUERY_STATUS, QUERY_EVENT = "query-status", "query-event"


def _reference(base_url: str | None, relative: str) -> str:
    return f"{base_url.rstrip('/')}/{relative}" if base_url else relative


class Notified:
    """One event in a notification: its number, when, and the version it is
    about (``None`` for a payload without it)."""

    def __init__(
        self,
        number: int,
        occurred: str,
        focus: str,
        version: StoredVersion | None,
        patient_id: str | None = None,
    ) -> None:
        self.number = number
        self.occurred = occurred
        self.focus = focus  # Type/id/_history/version: the version it is about
        self.version = version
        self.patient_id = patient_id  # whose record it is


def status_resource(
    subscription: Subscription,
    current: State,
    kind: str,
    events: Sequence[Notified],
    base_url: str | None,
) -> dict[str, Any]:
    """The SubscriptionStatus (R4: Parameters) of a notification or query."""
    parameters: list[dict[str, Any]] = [
        {
            "name": "subscription",
            "valueReference": {
                "reference": _reference(base_url, f"Subscription/{subscription.id}")
            },
        },
        {"name": "topic", "valueCanonical": subscription.topic.url},
        {"name": "status", "valueCode": current.status},
        {"name": "type", "valueCode": kind},
        # A string: R4 has no 64-bit integer.
        {"name": "events-since-subscription-start", "valueString": str(current.numbered)},
    ]
    for event in events:
        parts: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(event.number)},
            {"name": "timestamp", "valueInstant": event.occurred},
        ]
        if subscription.payload != "empty":
            parts.append(
                {
                    "name": "focus",
                    "valueReference": {"reference": _reference(base_url, event.focus)},
                }
            )
        parameters.append({"name": "notification-event", "part": parts})
    if current.last_error and kind in (QUERY_STATUS,):
        parameters.append({"name": "error", "valueCodeableConcept": {"text": current.last_error}})
    return {
        "resourceType": "Parameters",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": parameters,
    }


def notification(
    subscription: Subscription,
    current: State,
    kind: str,
    events: Sequence[Notified],
    base_url: str | None,
    *,
    content: Callable[[StoredVersion], dict[str, Any]] = lambda v: fhirjson.loads(
        v.content or b"{}"
    ),
) -> dict[str, Any]:
    """A notification Bundle of ``kind`` with ``events`` in number order."""
    status = status_resource(subscription, current, kind, events, base_url)
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{status['id']}",
            "resource": status,
            "request": {"method": "GET", "url": f"Subscription/{subscription.id}/$status"},
            "response": {"status": "200"},
        }
    ]
    if subscription.payload != "empty":
        for event in events:
            entry: dict[str, Any] = {}
            if base_url:
                entry["fullUrl"] = _reference(base_url, event.focus.split("/_history/")[0])
            version = event.version
            if subscription.payload == "full-resource" and version is not None:
                entry["resource"] = content(version)
            created = version is not None and version.version == 1
            entry["request"] = {
                "method": "POST" if created else "PUT",
                "url": event.focus.split("/_history/")[0],
            }
            entry["response"] = {"status": "201" if created else "200"}
            entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": fhirjson.instant(),
        "entry": entries,
    }
