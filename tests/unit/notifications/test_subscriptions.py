"""What a Subscription asks for, read or refused with the element at fault;
and the endpoints the gateway will not call."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.delivery.sending import why_not_called
from gateway.errors import Unprocessable
from gateway.notifications import subscriptions
from gateway.notifications.topics import PREFIX
from tests.http.test_notifications import subscription


def _refusal(resource: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(Unprocessable) as refused:
        subscriptions.read(resource)
    issue = refused.value.issues[0]
    return refused.value.code, issue.expression[0]


def test_a_backport_subscription_is_read_whole() -> None:
    resource = subscription(
        "admission",
        "https://home.example/hook",
        filters=("Encounter?class=IMP,EMER&relationship=resident", "Encounter?patient=Patient/p1"),
        payload="full-resource",
        heartbeat=120,
    )
    read = subscriptions.read({**resource, "id": "s1"})
    assert read.topic.key == "admission" and read.channel == subscriptions.REST_HOOK
    assert read.filters == subscriptions.Filters("p1", frozenset({"IMP", "EMER"}), "resident")
    assert read.headers == (("X-Home-Key", "secret-1"),)
    assert (read.payload, read.heartbeat_s, read.max_count) == ("full-resource", 120, 20)
    pull = subscriptions.read(subscription("death", None))
    assert pull.channel == subscriptions.PULL and pull.endpoint is None


@pytest.mark.parametrize(
    ("change", "code", "path"),
    [
        ({"criteria": PREFIX + "birthday"}, "GW-0160", "Subscription.criteria"),
        ({"criteria": "Encounter?status=in-progress"}, "GW-0160", "Subscription.criteria"),
        ({"channel": {"type": "email"}}, "GW-0162", "Subscription.channel.type"),
        (
            {"channel": {"type": "rest-hook", "endpoint": "ftp://x.example/"}},
            "GW-0163",
            "Subscription.channel.endpoint",
        ),
        (
            {"channel": {"type": "rest-hook", "endpoint": "https://user:pw@x.example/"}},
            "GW-0163",
            "Subscription.channel.endpoint",
        ),
        (
            {"channel": {"type": "rest-hook", "endpoint": "https://x.example/", "header": ["X"]}},
            "GW-0164",
            "Subscription.channel.header[0]",
        ),
        (
            {
                "channel": {
                    "type": "rest-hook",
                    "endpoint": "https://x.example/",
                    "header": ["X-Signature: forged"],
                }
            },
            "GW-0164",
            "Subscription.channel.header[0]",
        ),
        (
            {
                "channel": {
                    "type": "rest-hook",
                    "endpoint": "https://x.example/",
                    "header": ["X-A: a\r\nHost: evil"],
                }
            },
            "GW-0164",
            "Subscription.channel.header[0]",
        ),
    ],
)
def test_what_cannot_be_delivered_is_refused(change: dict[str, Any], code: str, path: str) -> None:
    resource = {**subscription("admission", "https://home.example/hook"), **change}
    assert _refusal(resource) == (code, path)


@pytest.mark.parametrize(
    ("topic", "criterion"),
    [
        ("death", "Patient?class=IMP"),  # a topic's own filters only
        ("admission", "Patient?patient=p1"),  # of the topic's resource type
        ("admission", "Encounter?relationship=friend"),
        ("admission", "Encounter?patient="),
    ],
)
def test_filters_the_topic_does_not_define_are_refused(topic: str, criterion: str) -> None:
    resource = subscription(topic, "https://home.example/hook", filters=(criterion,))
    assert _refusal(resource)[0] in ("GW-0160", "GW-0161")


@pytest.mark.parametrize(
    ("endpoint", "loopback", "why"),
    [
        ("https://127.0.0.1/hook", False, "own host"),
        ("https://[::1]/hook", False, "own host"),
        ("https://[::ffff:127.0.0.1]/hook", False, "own host"),
        ("https://[::ffff:169.254.169.254]/hook", True, "does not call"),
        ("https://0.0.0.0/hook", True, "does not call"),
        ("http://127.0.0.1:9/hook", True, None),
        ("https://169.254.169.254/latest", True, "does not call"),
        ("http://10.20.30.40/hook", False, "not https"),
        ("https://10.20.30.40/hook", False, None),
    ],
)
def test_the_endpoints_the_gateway_will_not_call(
    endpoint: str, loopback: bool, why: str | None
) -> None:
    blocked = why_not_called(endpoint, loopback)
    assert (blocked is None) == (why is None), blocked
    if why:
        assert why in str(blocked)
