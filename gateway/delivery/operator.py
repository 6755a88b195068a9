"""What the gateway's operator sees of Subscriptions and their delivery
(``gateway subscriptions list`` and ``show``), and switching one off
(``gateway subscriptions disable``).

An operator is not a client: these read the store directly, every
subscriber's Subscriptions alike, as ``gateway clients`` reads the registry.
What they read is the operator's to see (where each subscription's delivery
stands and which versions it was told of), never a subscriber's secrets:
the headers a subscriber asked to be sent carry its credentials, and are
left to the command to name without their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import fhirjson
from gateway.auth.clients import ClientRegistration, ClientRegistry
from gateway.delivery import standing
from gateway.errors import PreconditionFailed, Unprocessable
from gateway.interactions.provenance import Author
from gateway.notifications import state, subscriptions
from gateway.notifications.subscriptions import Subscription
from gateway.store import Querier, Store, StoredVersion, UnitOfWork


@dataclass(frozen=True)
class Overview:
    """One Subscription as the operator sees it: where its delivery stands,
    the resource as stored, what the worker reads it as and its subscriber's
    client."""

    state: state.State
    resource: dict[str, Any] | None  # ``None``: deleted, or never stored
    version: int | None  # the resource's current version
    subscription: Subscription | None  # ``None`` when ``problem`` says why
    problem: str | None
    client: ClientRegistration | None  # ``None``: no longer registered

    @property
    def sub_id(self) -> str:
        return self.state.sub_id


def _overview(reader: Querier, registry: ClientRegistry, current: state.State) -> Overview:
    found = reader.read("Subscription", current.sub_id)
    client = registry.get(current.client_id) if current.client_id else None
    if found is None or found.content is None:
        gone = "deleted by its subscriber" if found is not None else "not on file"
        version = found.version if found is not None else None
        return Overview(current, None, version, None, gone, client)
    resource: dict[str, Any] = fhirjson.loads(found.content)
    problem: str | None = None
    try:
        subscription: Subscription | None = subscriptions.read(resource)
    except Unprocessable as exc:
        # Written before a rule it breaks: the worker delivers nothing for it.
        subscription, problem = None, f"not deliverable: {exc.message}"
    return Overview(current, resource, found.version, subscription, problem, client)


def every(store: Store) -> list[Overview]:
    """Every Subscription the gateway has noted, oldest first."""
    registry = ClientRegistry(store)
    return [_overview(store, registry, current) for current in state.every(store)]


def one(store: Store, sub_id: str) -> Overview | None:
    current = state.of(store, sub_id)
    return _overview(store, ClientRegistry(store), current) if current is not None else None


@dataclass(frozen=True)
class Sent:
    """An event numbered for a subscription: when its delivery was
    acknowledged (``None``: not yet, or fetched on the pull channel, which
    acknowledges nothing)."""

    number: int
    topic: str
    focus: str  # Type/id/_history/version
    occurred: str
    delivered: str | None


def latest(reader: Querier, sub_id: str, limit: int) -> list[Sent]:
    """The subscription's last ``limit`` numbered events, oldest first."""
    rows = reader.select(
        "SELECT number, topic, res_type, res_id, version, occurred, delivered "
        "FROM subscription_notification WHERE sub_id = ? ORDER BY number DESC LIMIT ?",
        [sub_id, limit],
    )
    return [
        Sent(int(str(n)), str(t), f"{rt}/{ri}/_history/{v}", str(o), str(d) if d else None)
        for n, t, rt, ri, v, o, d in reversed(rows)
    ]


def operator_author(operator: str) -> Author:
    """Who writes what an operator's command changes: the gateway, naming
    the operator, as ``gateway matches merge`` does."""
    return Author.gateway(f"operator:{operator}", "operator")


@dataclass(frozen=True)
class SwitchedOff:
    """What ``switch_off`` did: the status it found, and the version of the
    Subscription it wrote saying ``off`` (``None``: none, ``not_written``
    says why)."""

    was: str
    version: int | None
    not_written: str | None


def switch_off(store: Store, sub_id: str, reason: str | None, operator: str) -> SwitchedOff | None:
    """Stop delivering to ``sub_id`` (``None``: the gateway has no such
    Subscription). Its state goes ``off``, with why as its last error (its
    subscriber reads that in ``$status``); the Subscription itself is
    written ``off`` as a new version by the gateway, keeping its subscriber
    as its author (``meta.source``), so that it stays its subscriber's to
    see. Both, or neither, in one unit of work."""
    why = "switched off by the gateway's operator" + (f": {reason}" if reason else "")
    with store.unit_of_work() as uow:
        current = state.of(uow, sub_id)
        if current is None:
            return None
        if current.status == state.OFF:
            return SwitchedOff(current.status, None, "it was already off")
        # Straight to the state, not through ``state.noted``: that is for a
        # subscriber's own write, and would make the operator its subscriber.
        uow.execute(
            "UPDATE subscription_state SET status = ?, next_attempt = 0, last_error = ? "
            "WHERE sub_id = ?",
            [state.OFF, why[:500], sub_id],
        )
        found = uow.read("Subscription", sub_id)
        if found is None or found.content is None:
            return SwitchedOff(current.status, None, "the Subscription was deleted")
        return _write_off(uow, found, current.status, operator)


def _write_off(uow: UnitOfWork, found: StoredVersion, was: str, operator: str) -> SwitchedOff:
    if fhirjson.loads(found.content or b"{}").get("status") == state.OFF:
        return SwitchedOff(was, None, "the Subscription already said off")
    try:
        written = standing.write_status(uow, found, state.OFF, operator_author(operator))
    except PreconditionFailed:  # the unit of work reads what it locks: not expected
        return SwitchedOff(was, None, "the Subscription changed as it was written")
    except Unprocessable as exc:
        return SwitchedOff(was, None, f"the Subscription breaks a rule now ({exc.message})")
    return SwitchedOff(was, written.version, None)
