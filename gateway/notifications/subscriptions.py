"""What a Subscription asks for, read from the resource as the FHIR R4
Subscriptions Backport IG shapes it: the topic (``criteria``, a
SubscriptionTopic's canonical URL), the filters on it (the
``backport-filter-criteria`` extensions), the channel (``rest-hook`` to an
endpoint, or the gateway's ``pull`` channel for systems that cannot receive
calls and fetch with ``$events``), the payload (``empty``, ``id-only`` or
``full-resource``), the headers sent with it and the heartbeat period.

A Subscription that asks for what the gateway cannot do (an unknown topic, a
filter the topic does not define, an endpoint that is not HTTPS) is refused
when it is written, with the element at fault, never accepted and left idle.

https://hl7.org/fhir/uv/subscriptions-backport/
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gateway.errors import Issue, Unprocessable
from gateway.notifications import topics

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
FILTER_URL = BACKPORT + "backport-filter-criteria"
PAYLOAD_URL = BACKPORT + "backport-payload-content"
HEARTBEAT_URL = BACKPORT + "backport-heartbeat-period"
MAX_COUNT_URL = BACKPORT + "backport-max-count"
CHANNEL_TYPE_URL = BACKPORT + "backport-channel-type"
PROFILE = BACKPORT + "backport-subscription"
# The gateway's own channel: nothing is sent; the subscriber fetches with $events.
CHANNEL_SYSTEM = "urn:london-care-gateway:CodeSystem:channel-type"
PULL = "pull"
REST_HOOK = "rest-hook"
PAYLOADS = ("empty", "id-only", "full-resource")
# The relationship filter's values: the care relationship the consent rules
# read (PRODUCT.md section 4), by the name each kind of organisation gives it.
RELATIONSHIPS = {
    "registered": "gp-practice",
    "resident": "care-home",
    "open-case": "council",
    "care": None,  # any kind: a hospital's patients, an ambulance service's
}
_MAX_NOTIFICATION_EVENTS = 100
# Headers the gateway sets on every notification, or that HTTP itself owns.
_GATEWAYS_HEADERS = frozenset(
    {"host", "content-type", "content-length", "transfer-encoding", "connection", "x-signature"}
)


@dataclass(frozen=True)
class Filters:
    """What narrows a topic's events for one subscriber: one person, the
    encounter classes, the relationship the subscriber must have with the
    person (all must hold)."""

    patient: str | None = None
    classes: frozenset[str] = frozenset()
    relationship: str | None = None


@dataclass(frozen=True)
class Subscription:
    """One Subscription as the worker delivers it."""

    id: str
    status: str
    topic: topics.Topic
    filters: Filters
    channel: str  # REST_HOOK or PULL
    endpoint: str | None
    headers: tuple[tuple[str, str], ...]
    payload: str
    heartbeat_s: int | None
    max_count: int
    end: str | None

    @property
    def delivering(self) -> bool:
        """Whether events are numbered for it now (``off`` and ``error`` are not)."""
        return self.status in ("requested", "active")


def _refused(message: str, path: str, code: str) -> Unprocessable:
    return Unprocessable(message, code=code, issues=[Issue("business-rule", message, (path,))])


def _extensions(element: Any, url: str) -> list[dict[str, Any]]:
    if not isinstance(element, dict):
        return []
    return [e for e in element.get("extension") or [] if e.get("url") == url]


def _filters(topic: topics.Topic, criteria: list[str]) -> Filters:
    patient: str | None = None
    classes: set[str] = set()
    relationship: str | None = None
    path = "Subscription.criteria.extension"
    for criterion in criteria:
        res_type, _, query = criterion.partition("?")
        if res_type != topic.resource_type or not query:
            raise _refused(
                f"a filter on {topic.key} is {topic.resource_type}?<key>=<value>, "
                f"not {criterion!r}",
                path,
                "GW-0160",
            )
        for key, value in parse_qsl(query, keep_blank_values=True):
            if not value:
                raise _refused(f"the filter {key} has no value", path, "GW-0161")
            if key not in topic.filters:
                raise _refused(
                    f"the topic {topic.key} is filtered by {', '.join(topic.filters)}, not {key!r}",
                    path,
                    "GW-0161",
                )
            if key == "patient":
                patient = value.removeprefix("Patient/")
            elif key == "class":
                classes.update(v for v in value.split(",") if v)
            elif key == "relationship":
                if value not in RELATIONSHIPS:
                    raise _refused(
                        f"relationship is one of {', '.join(RELATIONSHIPS)}, not {value!r}",
                        path,
                        "GW-0161",
                    )
                relationship = value
    return Filters(patient, frozenset(classes), relationship)


def _channel_type(channel: dict[str, Any]) -> str:
    given = channel.get("type")
    if given == REST_HOOK:
        return REST_HOOK
    for extension in _extensions(channel.get("_type"), CHANNEL_TYPE_URL):
        coding = extension.get("valueCoding") or {}
        if coding.get("system") == CHANNEL_SYSTEM and coding.get("code") == PULL:
            return PULL
    raise _refused(
        "the channel is rest-hook, or the gateway's pull channel (fetched with $events: "
        f"_type with the extension {CHANNEL_TYPE_URL}, {CHANNEL_SYSTEM}#{PULL})",
        "Subscription.channel.type",
        "GW-0162",
    )


def _endpoint(channel: dict[str, Any]) -> str:
    endpoint = channel.get("endpoint")
    if not isinstance(endpoint, str):
        raise _refused(
            "a rest-hook channel names its endpoint", "Subscription.channel.endpoint", "GW-0163"
        )
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _refused(
            f"the endpoint is an https URL, not {endpoint!r}",
            "Subscription.channel.endpoint",
            "GW-0163",
        )
    if parts.username or parts.password:
        raise _refused(
            "the endpoint carries no credentials: send them as a channel.header",
            "Subscription.channel.endpoint",
            "GW-0163",
        )
    return endpoint


def _headers(channel: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    headers = []
    for index, header in enumerate(channel.get("header") or []):
        name, colon, value = str(header).partition(":")
        name = name.strip()
        if (
            not colon
            or not name.replace("-", "").isascii()
            or not name.replace("-", "").isalnum()
            or name.lower() in _GATEWAYS_HEADERS
            or any(c in value for c in "\r\n\0")
        ):
            raise _refused(
                f"a header is 'Name: value' (not one the gateway sets: "
                f"{', '.join(sorted(_GATEWAYS_HEADERS))}), not {header!r}",
                f"Subscription.channel.header[{index}]",
                "GW-0164",
            )
        headers.append((name, value.strip()))
    return tuple(headers)


def _payload(channel: dict[str, Any]) -> str:
    contents = _extensions(channel.get("_payload"), PAYLOAD_URL)
    content = contents[0].get("valueCode") if contents else "id-only"
    if content not in PAYLOADS:
        raise _refused(
            f"the payload content is one of {', '.join(PAYLOADS)}, not {content!r}",
            "Subscription.channel.payload",
            "GW-0165",
        )
    mime = channel.get("payload")
    if content != "empty" and mime not in (None, "application/fhir+json", "application/json"):
        raise _refused(
            f"notifications are sent as application/fhir+json, not {mime!r}",
            "Subscription.channel.payload",
            "GW-0165",
        )
    return str(content)


def _unsigned(channel: dict[str, Any], url: str) -> int | None:
    for extension in _extensions(channel, url):
        value = extension.get("valueUnsignedInt", extension.get("valuePositiveInt"))
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def read(resource: dict[str, Any]) -> Subscription:
    """The Subscription ``resource`` describes, or ``Unprocessable`` naming
    what the gateway cannot deliver as asked."""
    criteria = resource.get("criteria")
    topic = topics.BY_URL.get(criteria) if isinstance(criteria, str) else None
    if topic is None:
        raise _refused(
            f"criteria is the canonical URL of a topic the gateway has "
            f"({', '.join(t.url for t in topics.TOPICS)}), not {criteria!r}",
            "Subscription.criteria",
            "GW-0160",
        )
    filters = _filters(
        topic,
        [str(e.get("valueString")) for e in _extensions(resource.get("_criteria"), FILTER_URL)],
    )
    channel = resource.get("channel") or {}
    kind = _channel_type(channel)
    max_count = _unsigned(channel, MAX_COUNT_URL) or 20
    return Subscription(
        id=str(resource.get("id", "")),
        status=str(resource.get("status", "requested")),
        topic=topic,
        filters=filters,
        channel=kind,
        endpoint=_endpoint(channel) if kind == REST_HOOK else None,
        headers=_headers(channel),
        payload=_payload(channel),
        heartbeat_s=_unsigned(channel, HEARTBEAT_URL),
        max_count=min(max_count, _MAX_NOTIFICATION_EVENTS),
        end=resource.get("end") if isinstance(resource.get("end"), str) else None,
    )
