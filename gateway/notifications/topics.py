"""The care-pathway events a subscriber may be told of, as the FHIR R4
Subscriptions Backport IG names them: a SubscriptionTopic, by canonical URL,
and the change of a resource that is that event.

A topic is decided from what a write changes, the version before and the
version after, never from what a source says happened: an admission is an
Encounter of an inpatient or emergency class entering ``in-progress``, by
whichever path it arrived (an ADT A01, a transaction, a PUT).

https://hl7.org/fhir/uv/subscriptions-backport/
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Resource = dict[str, Any]
PREFIX = "urn:london-care-gateway:SubscriptionTopic:"
# v3 ActCode classes of a stay in hospital, and of an emergency attendance.
_INPATIENT = {"IMP", "ACUTE", "NONAC"}
_EMERGENCY = {"EMER"}
_ATTENDING = {"arrived", "triaged", "in-progress"}


@dataclass(frozen=True)
class Topic:
    """One kind of event: its canonical URL, a title, the resource type it is
    a change of, and whether a change (before, after; before ``None`` for
    a create) is one."""

    key: str
    title: str
    resource_type: str
    # Decided from a write's before and after; ``None`` for a topic of
    # source records loaded (``loaded_from``).
    happened: Callable[[Resource | None, Resource], bool] | None
    # The filter keys a Subscription to it may use (``subscriptions``).
    filters: tuple[str, ...] = ("patient", "relationship")
    # The source formats a record of which, loaded with a change, is an
    # event about its person (``outbox.record_loaded``).
    loaded_from: frozenset[str] = frozenset()

    @property
    def url(self) -> str:
        return PREFIX + self.key


def _status(resource: Resource | None) -> str | None:
    status = resource.get("status") if resource is not None else None
    return status if isinstance(status, str) else None


def _class(resource: Resource) -> str | None:
    value = resource.get("class")
    code = value.get("code") if isinstance(value, dict) else None
    return code if isinstance(code, str) else None


def _admitted(before: Resource | None, after: Resource) -> bool:
    return (
        _class(after) in _INPATIENT | _EMERGENCY
        and _status(after) == "in-progress"
        and _status(before) != "in-progress"
    )


def _discharged(before: Resource | None, after: Resource) -> bool:
    return (
        _class(after) in _INPATIENT | _EMERGENCY
        and _status(after) == "finished"
        and _status(before) != "finished"
    )


def _attended(before: Resource | None, after: Resource) -> bool:
    return (
        _class(after) in _EMERGENCY
        and _status(after) in _ATTENDING
        and (before is None or _status(before) not in _ATTENDING)
    )


def _deceased(resource: Resource | None) -> bool:
    if resource is None:
        return False
    return resource.get("deceasedBoolean") is True or isinstance(
        resource.get("deceasedDateTime"), str
    )


def _died(before: Resource | None, after: Resource) -> bool:
    return _deceased(after) and not _deceased(before)


_ENCOUNTER_FILTERS = ("patient", "relationship", "class")
TOPICS: tuple[Topic, ...] = (
    Topic("admission", "Admission to hospital", "Encounter", _admitted, _ENCOUNTER_FILTERS),
    Topic("discharge", "Discharge from hospital", "Encounter", _discharged, _ENCOUNTER_FILTERS),
    Topic("ae-attendance", "Attendance at A&E", "Encounter", _attended, _ENCOUNTER_FILTERS),
    Topic("death", "Death", "Patient", _died),
    # A care home's record of a resident loaded with a change (its focus:
    # the Patient; the record itself is read with Patient/[id]/$red-bag).
    Topic(
        "red-bag",
        "Care home's Red Bag record changed",
        "Patient",
        None,
        loaded_from=frozenset({"care-home"}),
    ),
)
BY_URL = {topic.url: topic for topic in TOPICS}
# The types a topic watches: only their writes are looked at.
WATCHED = frozenset(topic.resource_type for topic in TOPICS if topic.happened)


def events(before: Resource | None, after: Resource) -> list[Topic]:
    """The topics a change of a resource (``before``: ``None`` when it is
    new, or was deleted) is an event of."""
    res_type = after.get("resourceType")
    return [
        t
        for t in TOPICS
        if t.resource_type == res_type and t.happened is not None and t.happened(before, after)
    ]
