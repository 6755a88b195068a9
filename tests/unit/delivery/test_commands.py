"""What ``gateway subscriptions`` prints: where each Subscription's delivery
stands, in columns and as JSON, and never a subscriber's secrets (its
headers' values, its endpoint's query)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from gateway.auth import keys
from gateway.auth.clients import ClientRegistration, new_registration
from gateway.delivery.commands import described, details, summary, table
from gateway.delivery.operator import Overview, Sent
from gateway.notifications import subscriptions
from gateway.notifications.state import State
from tests.http.test_notifications import subscription

ENDPOINT = "https://home.example:8443/hooks/gateway?key=query-secret"
CREATED = "2026-12-01T09:00:00Z"


def _client() -> ClientRegistration:
    return new_registration(
        "home-system",
        org_ods="V9C01",
        org_name="Heath View Care Home",
        kind="care-home",
        scopes="system/*.rs",
        keys=[keys.to_jwk(keys.generate_private_key().public_key())],
    )


def _state(**changes: Any) -> State:
    current = State("sub-1", "home-system", CREATED, "active", 3, 2, 0, 0.0, 1_764_579_600.0, None)
    return replace(current, **changes)


def _overview(resource: dict[str, Any] | None = None, **changes: Any) -> Overview:
    resource = resource or subscription(
        "admission", ENDPOINT, filters=("Encounter?relationship=resident",)
    )
    meta = {"source": "urn:ods:V9C01", "lastUpdated": CREATED}
    resource = {**resource, "id": "sub-1", "meta": meta}
    return Overview(_state(**changes), resource, 1, subscriptions.read(resource), None, _client())


SENT = [
    Sent(2, subscriptions.topics.PREFIX + "admission", "Encounter/e1/_history/1", CREATED, CREATED),
    Sent(3, subscriptions.topics.PREFIX + "admission", "Encounter/e2/_history/1", CREATED, None),
]


def test_the_list_is_a_line_per_subscription_in_columns() -> None:
    failing = _overview(status="error", failures=10, last_error="ConnectError: " + "x" * 200)
    pull = _overview(subscription("discharge", None), status="requested", numbered=0)
    header, first, second = table([failing, pull])
    assert header.split() == [
        "ID", "SUBSCRIBER", "TOPIC", "CHANNEL", "STATUS", "NUMBERED/ACKED", "FAILURES", "LAST",
        "ERROR",
    ]  # fmt: skip
    assert first.split("  ")[0] == "sub-1"
    assert "home-system (Heath View Care Home, V9C01)" in first
    assert "rest-hook home.example:8443" in first and "/hooks" not in first
    assert "error" in first and "3/2" in first
    # The last error, shortened to fit a line.
    assert first.endswith("…") and len(first) < 250
    assert "discharge" in second and "pull" in second
    # Columns line up: each starts where its header does.
    assert header.index("TOPIC") == first.index("admission") == second.index("discharge")


def test_no_header_value_nor_endpoint_query_is_ever_printed() -> None:
    found = _overview()
    printed = "\n".join(
        [
            *table([found]),
            *described(found, SENT),
            json.dumps(summary(found)),
            json.dumps(details(found, SENT)),
        ]
    )
    assert "secret-1" not in printed and "query-secret" not in printed
    assert "X-Home-Key (values not shown)" in printed
    assert "https://home.example:8443/hooks/gateway?… (query not shown)" in printed


def test_show_says_what_it_asks_for_where_delivery_stands_and_what_was_sent() -> None:
    lines = described(_overview(failures=2, next_attempt=1_764_579_660.0), SENT)
    text = "\n".join(lines)
    assert lines[0] == f"Subscription/sub-1 (version 1, {CREATED}, author urn:ods:V9C01)"
    assert "admission: Admission to hospital" in text
    assert "Encounter?relationship=resident" in text
    assert "3 numbered, 2 acknowledged" in text
    assert "2 (next attempt after 2025-12-01T09:01:00Z)" in text
    assert "last sent     2025-12-01T09:00:00Z" in text
    assert lines[-2].split()[:3] == ["#2", "admission", "Encounter/e1/_history/1"]
    assert lines[-2].endswith(f"delivered {CREATED}")
    assert lines[-1].endswith("pending")


def test_a_pull_subscriptions_events_are_fetched_not_pending() -> None:
    found = _overview(subscription("admission", None))
    (first, second) = details(found, SENT)["notifications"]
    assert first["delivered"] == CREATED and not first["pending"]
    assert second["delivered"] is None and not second["pending"]
    assert described(found, SENT)[-1].endswith("on the pull channel ($events)")


def test_a_deleted_subscription_keeps_its_state() -> None:
    gone = Overview(_state(status="off"), None, 2, None, "deleted by its subscriber", None)
    (line,) = table([gone])[1:]
    assert "home-system (not registered)" in line and "deleted by its subscriber" in line
    lines = described(gone, [])
    assert lines[0] == "Subscription/sub-1 (deleted: version 2)"
    text = "\n".join(lines)
    assert "problem       deleted by its subscriber" in text
    assert "  3 numbered, none listed" in text
    assert "none numbered yet" in "\n".join(described(replace(gone, state=_state(numbered=0)), []))
    assert summary(gone)["status"] == "off"
