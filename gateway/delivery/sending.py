"""Sending notifications on the rest-hook channel, and recording what was
delivered.

Each pass sends, per subscription due, one Bundle: the handshake of a
Subscription not yet active, else its oldest unacknowledged events in number
order (up to its ``max-count``), else a heartbeat when its period has passed
quietly. The Bundle is POSTed to the endpoint with the Subscription's
headers and a detached JWS of the body (``X-Signature``), signed with the
gateway's document key, whose public key ``/documents/jwks.json`` serves.

A 2xx acknowledges every event in the Bundle: they are marked delivered and
their audit entry staged in one unit of work, so an acknowledged event is
never sent again and every delivered one is on the audit log. Anything else
(a refusal, a timeout, no answer) is a failure: the same events are sent
again after an exponential backoff, and the Subscription goes to ``error``
after the configured number of failures in a row. A crash after the
subscriber acknowledged but before that was recorded sends those events
again: delivery is at least once, and the event numbers let a receiver
de-duplicate.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import orjson

from gateway import fhirjson
from gateway.audit import staging
from gateway.audit.events import notification_event
from gateway.auth.clients import ClientRegistry
from gateway.delivery import bundles, standing
from gateway.delivery.fanout import Subscriber, subscribers
from gateway.documents.signature import DocumentSigner
from gateway.errors import PreconditionFailed, Unprocessable
from gateway.interactions.provenance import Author
from gateway.notifications import state
from gateway.notifications.subscriptions import REST_HOOK
from gateway.store import Querier, Store, UnitOfWork

log = logging.getLogger("gateway.notifications")
SIGNATURE_HEADER = "X-Signature"


@dataclass(frozen=True)
class Policy:
    """How hard the worker tries: the failures in a row before a
    Subscription goes to ``error``, the first and the longest wait between
    attempts, each attempt's timeout, and whether endpoints on the
    gateway's own host (loopback) may be called (a local receiver, the
    demo's; never in production, where it would let a subscriber reach
    what listens only there)."""

    max_failures: int = 10
    backoff_s: float = 1.0
    max_backoff_s: float = 600.0
    timeout_s: float = 10.0
    allow_loopback: bool = False


@dataclass(frozen=True)
class Vetted:
    """Whether an endpoint may be called: why not (``refusal``), or the
    addresses it was vetted at, which the POST then connects to (the next
    when one cannot be reached, as a connection to a name tries each)."""

    refusal: str | None
    addresses: tuple[str, ...] = ()


def vet(endpoint: str, allow_loopback: bool) -> Vetted:
    """Look ``endpoint``'s host up once and vet the address: refused are
    plain http beyond loopback, an address on this host (unless loopback is
    allowed) and link-local ones (the cloud metadata service). The POST
    goes to the address vetted, so a name that resolves elsewhere the
    second time (DNS rebinding) cannot redirect it."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    try:
        found = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as error:
        return Vetted(f"the endpoint's host {host!r} cannot be resolved ({error})")
    local = False
    addresses = []
    for info in found:
        address = str(info[4][0]).split("%")[0]
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
        if ip.is_link_local or ip.is_unspecified or ip.is_multicast:
            return Vetted(f"the endpoint resolves to {ip}, which the gateway does not call")
        local = local or ip.is_loopback
        addresses.append(address)
    if local and not allow_loopback:
        return Vetted("the endpoint is on the gateway's own host, which it does not call")
    if parts.scheme != "https" and not local:
        return Vetted("the endpoint is not https")
    if not addresses:
        return Vetted(f"the endpoint's host {host!r} has no address")
    return Vetted(None, tuple(dict.fromkeys(addresses)))


def why_not_called(endpoint: str, allow_loopback: bool) -> str | None:
    """Why the gateway will not call ``endpoint`` (``vet``), or ``None``."""
    return vet(endpoint, allow_loopback).refusal


def signature_of(signer: DocumentSigner, body: bytes) -> str:
    """A detached JWS (RFC 7515 appendix F) of ``body``: header..signature."""
    header = {"alg": "EdDSA", "kid": signer.kid, "typ": "JOSE"}
    protected = _b64(orjson.dumps(header))
    signing_input = f"{protected}.{_b64(body)}".encode("ascii")
    return f"{protected}..{_b64(signer.key.sign(signing_input))}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Parcel:
    """What one subscription is sent in one attempt."""

    subscriber: Subscriber
    kind: str
    events: list[bundles.Notified]
    body: bytes


def notified(
    reader: Querier, sub_id: str, after: int, until: int, limit: int
) -> list[bundles.Notified]:
    """The subscription's numbered events after ``after``, with their versions."""
    return notified_in(reader, [(sub_id, after, min(until, after + limit))]).get(sub_id, [])


def notified_in(
    reader: Querier, windows: Sequence[tuple[str, int, int]]
) -> dict[str, list[bundles.Notified]]:
    """Each window's events (subscription, after, up to) with their
    versions, by subscription: two statements, however many."""
    found = state.numbered_in(reader, windows)
    versions = reader.vread_many(
        (n.res_type, n.res_id, n.version) for events in found.values() for n in events
    )
    return {
        sub_id: [
            bundles.Notified(
                n.number,
                n.occurred,
                f"{n.res_type}/{n.res_id}/_history/{n.version}",
                versions.get((n.res_type, n.res_id, n.version)),
                n.patient_id,
            )
            for n in events
        ]
        for sub_id, events in found.items()
    }


def _due(subscriber: Subscriber, now: float) -> str | None:
    current = subscriber.state
    subscription = subscriber.subscription
    if current.next_attempt > now:
        return None
    if current.status == state.REQUESTED:
        return bundles.HANDSHAKE  # on the pull channel, activation alone
    if subscription.channel != REST_HOOK:
        return None  # fetched with $events
    if current.numbered > current.acknowledged:
        return bundles.EVENT
    heartbeat = subscription.heartbeat_s
    if heartbeat and now - current.last_sent >= heartbeat:
        return bundles.HEARTBEAT
    return None


def parcels(
    reader: Querier, registry: ClientRegistry, now: float, base_url: str | None
) -> list[Parcel]:
    """What is due to be sent now (read as any request reads: the lease is
    checked when what was sent is recorded)."""
    kinds = [
        (subscriber, kind)
        for subscriber in subscribers(reader, registry, state.delivering(reader))
        if (kind := _due(subscriber, now)) is not None
    ]
    pending = notified_in(
        reader,
        [
            (s.state.sub_id, s.state.acknowledged, min(s.state.numbered,
             s.state.acknowledged + s.subscription.max_count))
            for s, kind in kinds
            if kind == bundles.EVENT
        ],
    )  # fmt: skip
    due: list[Parcel] = []
    for subscriber, kind in kinds:
        current = subscriber.state
        events = pending.get(current.sub_id, []) if kind == bundles.EVENT else []
        if subscriber.subscription.payload == "full-resource":
            events = [_as_may_be_seen_now(subscriber, event) for event in events]
        bundle = bundles.notification(subscriber.subscription, current, kind, events, base_url)
        due.append(Parcel(subscriber, kind, events, fhirjson.dumps(bundle)))
    return due


def _as_may_be_seen_now(subscriber: Subscriber, event: bundles.Notified) -> bundles.Notified:
    """``event`` with its version, if its subscriber may still see it; else
    by reference only. An event is told as consent decided when it
    happened, but a retry hours later must not carry the content of a
    record its person has since withheld."""
    version = event.version
    if version is None or subscriber.access.visible(version):
        return event
    return bundles.Notified(event.number, event.occurred, event.focus, None, event.patient_id)


_MAX_REPLY = 64 * 1024  # of an endpoint's reply read, so its connection can be used again


def send(
    client: httpx.Client,
    signer: DocumentSigner,
    parcel: Parcel,
    policy: Policy,
    vetted: Vetted | None = None,
) -> str | None:
    """POST ``parcel``; ``None`` when acknowledged (2xx), else why not.
    ``vetted``: its endpoint vetted (``vet``), once per pass for each
    endpoint; without it, vetted now."""
    subscription = parcel.subscriber.subscription
    if subscription.channel != REST_HOOK:
        return None  # the pull channel's handshake: nothing to send
    assert subscription.endpoint is not None
    vetted = vetted or vet(subscription.endpoint, policy.allow_loopback)
    if vetted.refusal is not None:
        return vetted.refusal
    named = httpx.URL(subscription.endpoint)
    headers = {name: value for name, value in subscription.headers}
    headers["Content-Type"] = "application/fhir+json"
    headers[SIGNATURE_HEADER] = signature_of(signer, parcel.body)
    # To an address vetted, under the endpoint's own name: in the Host
    # header, and for TLS the name its certificate is checked against.
    headers["Host"] = named.netloc.decode("ascii")
    extensions = {"sni_hostname": named.host} if named.scheme == "https" else {}
    status = 0
    for index, address in enumerate(vetted.addresses):
        try:
            status = _post(client, named.copy_with(host=address), parcel, headers, extensions,
                           policy)  # fmt: skip
            break
        except httpx.ConnectError as error:
            if index == len(vetted.addresses) - 1:
                return f"{type(error).__name__}: {error}"[:300]
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: {error}"[:300]
    if 200 <= status < 300:
        return None
    return f"the endpoint answered {status}"


def _post(
    client: httpx.Client,
    url: httpx.URL,
    parcel: Parcel,
    headers: dict[str, str],
    extensions: dict[str, str],
    policy: Policy,
) -> int:
    """POST the parcel's body; the status answered."""
    with client.stream(
        "POST", url, content=parcel.body, headers=headers, timeout=policy.timeout_s,
        extensions=extensions,
    ) as answer:  # fmt: skip
        # Only the status matters. A short reply is read to its end, so the
        # connection serves the next POST; a longer one is left unread, its
        # connection closed.
        read = 0
        for chunk in answer.iter_raw():
            read += len(chunk)
            if read > _MAX_REPLY:
                break
        return answer.status_code


def recorded(
    store: Store,
    holder: str,
    attempts: Sequence[tuple[Parcel, str | None]],
    now: float,
    policy: Policy,
    lease_s: float,
) -> None:
    """Record how a pass's attempts went (each parcel and its error, or
    ``None``), with the audit entries of what they delivered, in one unit of
    work under the lease (a process that lost it records nothing: its
    successor sends again). A Subscription made active by its handshake, or
    put in error, says so itself in a new version."""
    if not attempts:
        return
    with store.unit_of_work() as uow:
        if not state.hold(uow, holder, now, lease_s):
            return
        found = uow.read_many(("Subscription", p.subscriber.state.sub_id) for p, _ in attempts)
        for parcel, error in attempts:
            now_stands = found.get(("Subscription", parcel.subscriber.state.sub_id))
            if now_stands is None or now_stands.version != parcel.subscriber.version:
                # Changed since it was made (an endpoint moved, say): a
                # handshake with the old one must not make it active, nor a
                # failure there count against the new one.
                continue
            _record(uow, parcel, error, now, policy)


def _record(uow: UnitOfWork, parcel: Parcel, error: str | None, now: float, policy: Policy) -> None:
    current = parcel.subscriber.state
    if error is not None:
        wait = min(policy.backoff_s * 2**current.failures, policy.max_backoff_s)
        give_up = current.failures + 1 >= policy.max_failures
        if state.failed(uow, current, error, now, retry_in=wait, give_up=give_up) and give_up:
            _say_status(uow, current.sub_id, state.ERROR, error)
        log.warning(
            "notification not delivered",
            extra={"subscription": current.sub_id, "error": error, "gave_up": give_up},
        )
        return
    last = parcel.events[-1].number if parcel.events else current.acknowledged
    if not state.delivered(uow, current, last, now):
        return  # switched off meanwhile
    if current.status == state.REQUESTED:
        _say_status(uow, current.sub_id, state.ACTIVE)
    if parcel.events:
        stage_delivered(uow, parcel.subscriber, parcel.events, REST_HOOK)


# Who changes a Subscription's status: the gateway, keeping its subscriber
# as its author (meta.source), so that it stays its subscriber's to see.
NOTIFIER = Author.gateway("gateway:notifications", "gateway notifications")
_ERROR_URL = "urn:london-care-gateway:subscription-error"


def _say_status(uow: UnitOfWork, sub_id: str, status: str, error: str | None = None) -> None:
    """The Subscription says its new ``status`` itself, unless it changed
    since it was read (then it is delivered as it now asks)."""
    found = uow.read("Subscription", sub_id)
    if found is None or found.content is None:
        return
    with contextlib.suppress(PreconditionFailed, Unprocessable):
        standing.write_status(uow, found, status, NOTIFIER, error)


def stage_delivered(
    uow: UnitOfWork, subscriber: Subscriber, events: Sequence[bundles.Notified], channel: str
) -> None:
    """Stage the audit entry of ``events`` delivered to ``subscriber``."""
    record = notification_event(
        recorded=fhirjson.instant(),
        recipient=subscriber.requester,
        subscription_id=subscriber.state.sub_id,
        channel=channel,
        numbers=(events[0].number, events[-1].number),
        delivered=[(event.focus, event.patient_id) for event in events],
    )
    staging.stage(uow, [record])
