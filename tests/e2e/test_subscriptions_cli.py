"""``gateway subscriptions`` as an operator runs it, beside a real server
whose worker delivers to a receiver on loopback: the list and the detail
say where delivery stands without a subscriber's secrets, and ``disable``
stops delivery while the subscriber still sees its Subscription, off."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_server import Server, _start, _stop, gateway_command, register, token_for
from tests.http.test_notifications import subscription
from tests.support.receiver import Receiver, receiver

ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SECRET = "secret-1"  # the header value tests.http.test_notifications' Subscriptions carry


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as listening:
        yield listening


@pytest.fixture
def served(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("GATEWAY_NOTIFY_ALLOW_LOOPBACK", "1")  # the receiver is on loopback
    running = _start(store_url, tmp_path)
    yield running
    _stop(running)


def _until(done: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.1)


def _admit(http: httpx.Client) -> str:
    encounter = {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"system": ACT, "code": "IMP"},
    }
    created = http.post("/fhir/Encounter", json=encounter)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _status(http: httpx.Client, sub_id: str) -> dict[str, Any]:
    answer = http.get(f"/fhir/Subscription/{sub_id}/$status")
    assert answer.status_code == 200, answer.text
    parameters = answer.json()["entry"][0]["resource"]["parameter"]
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in parameters}


def test_listed_shown_and_switched_off(
    served: Server, hook: Receiver, store_url: str, tmp_path: Path
) -> None:
    key = register(store_url, tmp_path, "gp-system")
    token = token_for(store_url, "gp-system", key)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=served.base, timeout=10, headers=headers) as http:
        asked = subscription("admission", f"{hook.url}/gp?key=query-secret")
        created = http.post("/fhir/Subscription", json=asked)
        assert created.status_code == 201, created.text
        sub_id = created.json()["id"]
        stay = _admit(http)
        _until(lambda: bool(hook.of("/gp?key=query-secret", "event-notification")), "the admission")

        listed = gateway_command(store_url, "subscriptions", "list")
        assert listed.returncode == 0, listed.stderr
        header, line = listed.stdout.splitlines()
        assert header.split()[:3] == ["ID", "SUBSCRIBER", "TOPIC"]
        port = hook.url.rsplit(":", 1)[1]
        for shown in (sub_id, "gp-system (Riverside Surgery, A81001)", "admission",
                      f"rest-hook 127.0.0.1:{port}", "active  1/1"):  # fmt: skip
            assert shown in line, (shown, line)

        as_json = gateway_command(store_url, "subscriptions", "list", "--json")
        (summary,) = json.loads(as_json.stdout)
        assert summary["id"] == sub_id and summary["subscriber"]["client"] == "gp-system"
        assert (summary["status"], summary["numbered"], summary["acknowledged"]) == ("active", 1, 1)

        shown = gateway_command(store_url, "subscriptions", "show", sub_id)
        assert shown.returncode == 0, shown.stderr
        assert "X-Home-Key (values not shown)" in shown.stdout
        assert f"{hook.url}/gp?… (query not shown)" in shown.stdout
        assert f"#1     admission      Encounter/{stay}/_history/1" in shown.stdout
        assert "delivered 20" in shown.stdout
        detailed = gateway_command(store_url, "subscriptions", "show", sub_id, "--json")
        detail = json.loads(detailed.stdout)
        assert detail["resource"]["headerNames"] == ["X-Home-Key"]
        assert detail["notifications"][0]["focus"] == f"Encounter/{stay}/_history/1"
        for output in (listed.stdout, shown.stdout, json.dumps(summary), json.dumps(detail)):
            assert SECRET not in output and "query-secret" not in output

        off = gateway_command(
            store_url, "subscriptions", "disable", sub_id, "--reason", "endpoint under repair",
            "--operator", "duty-engineer",
        )  # fmt: skip
        assert off.returncode == 0, off.stderr
        assert f"Subscription/{sub_id} switched off (it was active)" in off.stdout
        assert "gateway clients disable gp-system" in off.stdout
        again = gateway_command(store_url, "subscriptions", "disable", sub_id)
        assert "already off" in again.stdout

        # Its subscriber still sees it, now saying off, and why in $status.
        read = http.get(f"/fhir/Subscription/{sub_id}")
        assert read.status_code == 200, read.text
        assert read.json()["status"] == "off"
        assert read.json()["meta"]["source"] == "urn:ods:A81001"
        status = _status(http, sub_id)
        assert status["status"] == "off"
        assert status["error"]["text"] == (
            "switched off by the gateway's operator: endpoint under repair"
        )

        # Nothing more is sent.
        told = len(hook.received)
        _admit(http)
        time.sleep(2)  # the worker polls every half second
        assert len(hook.received) == told
        after = json.loads(gateway_command(store_url, "subscriptions", "list", "--json").stdout)
        assert (after[0]["status"], after[0]["numbered"]) == ("off", 1)


def test_an_unknown_subscription_is_an_operator_error(store_url: str) -> None:
    for action in ("show", "disable"):
        answer = gateway_command(store_url, "subscriptions", action, "no-such-subscription")
        assert answer.returncode == 2
        assert "no Subscription 'no-such-subscription'" in answer.stderr
    empty = gateway_command(store_url, "subscriptions", "list")
    assert empty.returncode == 0 and empty.stdout == "no Subscriptions\n"
