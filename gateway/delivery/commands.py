"""``gateway subscriptions list|show|disable``: every Subscription, where its
delivery stands and what it was last told, for the gateway's operator; and
switching one off.

The headers a subscriber asked to be sent with its notifications hold its
credentials (a bearer token, an API key): only their names are printed. So
is an endpoint's query, where a receiver may expect a key too.
"""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from gateway.auth.commands import CommandError
from gateway.delivery import operator
from gateway.delivery.operator import Overview, Sent
from gateway.notifications.subscriptions import FILTER_URL, PULL, REST_HOOK
from gateway.notifications.topics import BY_URL, PREFIX
from gateway.store import Store

_LAST = 10  # notifications ``show`` lists unless told
_ERROR_WIDTH = 60  # of a last error in ``list``
# ``list``'s columns; the last error last, as long as it is.
_COLUMNS = (
    "ID",
    "SUBSCRIBER",
    "TOPIC",
    "CHANNEL",
    "STATUS",
    "NUMBERED/ACKED",
    "FAILURES",
    "LAST ERROR",
)


def add_commands(commands: Any) -> None:
    subscriptions = commands.add_parser(
        "subscriptions", help="Subscriptions to care-pathway events and their delivery"
    )
    subscriptions.add_argument("--database-url", help="overrides GATEWAY_DATABASE_URL")
    actions = subscriptions.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one line per Subscription: where delivery stands")
    listing.add_argument("--json", action="store_true", help="a JSON array instead")
    show = actions.add_parser(
        "show", help="one Subscription: what it asks for, its delivery, its last notifications"
    )
    show.add_argument("sub_id", metavar="ID", help="the Subscription's id")
    show.add_argument(
        "--last", type=int, default=_LAST, metavar="N", help=f"notifications listed ({_LAST})"
    )
    show.add_argument("--json", action="store_true", help="a JSON object instead")
    disable = actions.add_parser(
        "disable",
        help="stop delivering: the Subscription goes off (its subscriber may start it again "
        "by updating it; `gateway clients disable` stops a subscriber for good)",
    )
    disable.add_argument("sub_id", metavar="ID", help="the Subscription's id")
    disable.add_argument(
        "--reason", help="why; its subscriber reads it as the Subscription's error in $status"
    )
    disable.add_argument(
        "--operator",
        help="who decided, for the Provenance of the change (default: your login name)",
    )


def run(args: argparse.Namespace, store: Store) -> int:
    if args.action == "list":
        overviews = operator.every(store)
        if args.json:
            print(json.dumps([summary(o) for o in overviews], indent=2))
        elif not overviews:
            print("no Subscriptions")
        else:
            print("\n".join(table(overviews)))
        return 0
    found = operator.one(store, args.sub_id)
    if found is None:
        raise CommandError(f"the gateway has no Subscription {args.sub_id!r}")
    if args.action == "show":
        if args.last < 0:
            raise CommandError("--last is a number of notifications, 0 or more")
        sent = operator.latest(store, found.sub_id, args.last)
        if args.json:
            print(json.dumps(details(found, sent), indent=2))
        else:
            print("\n".join(described(found, sent)))
        return 0
    if args.action == "disable":
        print(disabled(store, found, args.reason, args.operator or _login()))
        return 0
    raise AssertionError(args.action)


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment
        return "unknown"


def disabled(store: Store, found: Overview, reason: str | None, who: str) -> str:
    """Switch ``found`` off, and say what that did."""
    done = operator.switch_off(store, found.sub_id, reason, who)
    if done is None:  # its state went between reading it and now
        raise CommandError(f"the gateway has no Subscription {found.sub_id!r}")
    name = f"Subscription/{found.sub_id}"
    if done.was == "off":
        return f"{name} is already off: nothing changed"
    written = (
        f"version {done.version} says so"
        if done.version is not None
        else f"the Subscription itself is unchanged: {done.not_written}"
    )
    client = found.state.client_id
    return (
        f"{name} switched off (it was {done.was}): nothing more is numbered or sent for it; "
        f"{written}.\nIts subscriber may start it again by updating it; to stop the "
        f"subscriber for good: gateway clients disable {client}"
    )


# -- what is printed ---------------------------------------------------------------


def _short(text: str | None, width: int) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _when(seconds: float) -> str | None:
    if not seconds:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _host(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def _endpoint(endpoint: str) -> str:
    """``endpoint`` without what it may carry for its receiver: a query."""
    parts = urlsplit(endpoint)
    shown = f"{parts.scheme}://{_host(endpoint)}{parts.path}"
    return shown + ("?… (query not shown)" if parts.query else "")


def _topic(found: Overview) -> str:
    if found.subscription is not None:
        return found.subscription.topic.key
    criteria = str((found.resource or {}).get("criteria", "?"))
    return criteria.removeprefix(PREFIX)


def _channel(found: Overview) -> tuple[str, str | None]:
    """The channel's kind and, for a rest-hook, its endpoint."""
    subscription = found.subscription
    if subscription is not None:
        return subscription.channel, subscription.endpoint
    channel = (found.resource or {}).get("channel") or {}
    endpoint = channel.get("endpoint")
    return str(channel.get("type", "?")), endpoint if isinstance(endpoint, str) else None


def _channel_text(found: Overview) -> str:
    kind, endpoint = _channel(found)
    if kind == REST_HOOK and endpoint:
        return f"{REST_HOOK} {_host(endpoint)}"
    return kind


def _subscriber(found: Overview) -> str:
    client = found.client
    if client is None:
        return f"{found.state.client_id or '?'} (not registered)"
    disabled = ", disabled" if client.disabled else ""
    return f"{client.client_id} ({client.org_name}, {client.org_ods}{disabled})"


def summary(found: Overview) -> dict[str, Any]:
    """``list --json``: one Subscription."""
    client = found.client
    kind, endpoint = _channel(found)
    current = found.state
    return {
        "id": found.sub_id,
        "subscriber": {
            "client": current.client_id,
            "organisation": client.org_name if client else None,
            "ods": client.org_ods if client else None,
            "kind": str(client.kind) if client else None,
            "disabled": client.disabled if client else None,
        },
        "topic": _topic(found),
        "channel": kind,
        "endpointHost": _host(endpoint) if endpoint else None,
        "status": current.status,
        "numbered": current.numbered,
        "acknowledged": current.acknowledged,
        "failures": current.failures,
        "lastError": current.last_error,
        "problem": found.problem,
    }


def table(overviews: Sequence[Overview]) -> list[str]:
    """``list``: a header and one line per Subscription, in columns."""
    rows = [_COLUMNS]
    for found in overviews:
        current = found.state
        rows.append(
            (
                found.sub_id,
                _subscriber(found),
                _topic(found),
                _channel_text(found),
                current.status,
                f"{current.numbered}/{current.acknowledged}",
                str(current.failures),
                _short(found.problem or current.last_error, _ERROR_WIDTH),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]]
        ).rstrip()
        for row in rows
    ]


def _filters(found: Overview) -> list[str]:
    criteria = (found.resource or {}).get("_criteria") or {}
    return [
        str(e.get("valueString"))
        for e in criteria.get("extension") or []
        if isinstance(e, dict) and e.get("url") == FILTER_URL
    ]


def _header_names(found: Overview) -> list[str]:
    """The names of the headers sent with each notification (their values
    are the subscriber's secrets)."""
    if found.subscription is not None:
        return [name for name, _ in found.subscription.headers]
    channel = (found.resource or {}).get("channel") or {}
    return [str(h).partition(":")[0].strip() for h in channel.get("header") or []]


def _notification(sent: Sent, channel: str) -> dict[str, Any]:
    return {
        "number": sent.number,
        "topic": sent.topic.removeprefix(PREFIX),
        "focus": sent.focus,
        "occurred": sent.occurred,
        "delivered": sent.delivered,
        # The pull channel acknowledges nothing: its subscriber fetches.
        "pending": sent.delivered is None and channel != PULL,
    }


def details(found: Overview, sent: Sequence[Sent]) -> dict[str, Any]:
    """``show --json``: one Subscription, without its headers' values."""
    subscription = found.subscription
    kind, endpoint = _channel(found)
    resource = found.resource or {}
    current = found.state
    return {
        **summary(found),
        "resource": {
            "version": found.version,
            "status": resource.get("status"),
            "source": (resource.get("meta") or {}).get("source"),
            "lastUpdated": (resource.get("meta") or {}).get("lastUpdated"),
            "criteria": resource.get("criteria"),
            "filters": _filters(found),
            "channel": kind,
            "endpoint": _endpoint(endpoint) if endpoint else None,
            "headerNames": _header_names(found),
            "payload": subscription.payload if subscription else None,
            "heartbeatSeconds": subscription.heartbeat_s if subscription else None,
            "maxCount": subscription.max_count if subscription else None,
            "end": resource.get("end"),
        },
        "state": {
            "created": current.created,
            "status": current.status,
            "numbered": current.numbered,
            "acknowledged": current.acknowledged,
            "failures": current.failures,
            "nextAttempt": _when(current.next_attempt),
            "lastSent": _when(current.last_sent),
            "lastError": current.last_error,
        },
        "notifications": [_notification(s, kind) for s in sent],
    }


def described(found: Overview, sent: Sequence[Sent]) -> list[str]:
    """``show``: one Subscription, for a person to read."""
    facts = details(found, sent)
    resource, current = facts["resource"], facts["state"]
    topic = BY_URL.get(str(resource["criteria"]))
    lines = [f"Subscription/{found.sub_id}"]
    if found.resource is not None:
        lines[0] += (
            f" (version {found.version}, {resource['lastUpdated']}, "
            f"author {resource['source'] or '?'})"
        )
    elif found.version is not None:
        lines[0] += f" (deleted: version {found.version})"

    def fact(name: str, value: object) -> None:
        lines.append(f"  {name:<14}{value}")

    fact("subscriber", _subscriber(found))
    if found.problem:
        fact("problem", found.problem)
    if found.resource is not None:
        fact(
            "topic",
            f"{facts['topic']}: {topic.title}" if topic else resource["criteria"],
        )
        fact("filters", ", ".join(resource["filters"]) or "none")
        kind = resource["channel"]
        fact("channel", f"{kind} to {resource['endpoint']}" if resource["endpoint"] else kind)
        names = resource["headerNames"]
        fact("headers", f"{', '.join(names)} (values not shown)" if names else "none")
        fact("payload", resource["payload"] or "?")
        heartbeat = resource["heartbeatSeconds"]
        fact("heartbeat", f"every {heartbeat} s" if heartbeat else "none")
        fact("ends", resource["end"] or "never")
        fact("its status", resource["status"])
    lines.append("delivery")
    fact("status", current["status"])
    fact("since", current["created"])
    fact("events", f"{current['numbered']} numbered, {current['acknowledged']} acknowledged")
    failures = f"{current['failures']}"
    if current["failures"] and current["nextAttempt"]:
        failures += f" (next attempt after {current['nextAttempt']})"
    fact("failures", failures)
    fact("last sent", current["lastSent"] or "never")
    fact("last error", current["lastError"] or "none")
    notifications = facts["notifications"]
    if notifications:
        lines.append(f"notifications (the last {len(notifications)} of {current['numbered']})")
    else:
        lines.append("notifications")
        numbered = current["numbered"]
        lines.append(f"  {numbered} numbered, none listed" if numbered else "  none numbered yet")
    for told in notifications:
        if told["delivered"]:
            how = f"delivered {told['delivered']}"
        else:
            how = "pending" if told["pending"] else "on the pull channel ($events)"
        lines.append(
            f"  #{told['number']:<5} {told['topic']:<14} {told['focus']}  "
            f"occurred {told['occurred']}  {how}"
        )
    return lines
