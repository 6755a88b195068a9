"""Notifications from the real thing: ``gateway serve`` processes delivering
to a receiver on loopback. Killed with SIGKILL between a change and its
delivery, the gateway delivers after restart; several processes on one
database deliver each event once."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_server import Server, _start, _stop, register, token_for
from tests.http.test_notifications import subscription
from tests.support.receiver import Receiver, receiver

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("GATEWAY_NOTIFY_ALLOW_LOOPBACK", "1")
    monkeypatch.setenv("GATEWAY_NOTIFY_MAX_FAILURES", "1000")
    with receiver() as listening:
        yield listening


class Parties:
    """A GP subscribed to admissions, and the hospital that admits its patient."""

    def __init__(self, database_url: str, tmp_path: Path) -> None:
        gp_key = register(database_url, tmp_path, "gp")
        hospital_key = register(
            database_url,
            tmp_path,
            "hospital",
            "--kind",
            "hospital",
            "--scope",
            "system/*.cruds",
            "--org",
            "RKE",
            "--org-name",
            "Whittington Hospital",
        )
        self.gp = {"Authorization": f"Bearer {token_for(database_url, 'gp', gp_key)}"}
        self.hospital = {
            "Authorization": f"Bearer {token_for(database_url, 'hospital', hospital_key)}"
        }
        self.patient = ""

    def subscribe(self, server: Server, endpoint: str) -> str:
        answer = httpx.post(
            f"{server.base}/fhir/Subscription",
            json=subscription("admission", endpoint),
            headers=self.gp,
        )
        assert answer.status_code == 201, answer.text
        registered = {
            "resourceType": "Patient",
            "generalPractitioner": [{"identifier": {"system": ODS, "value": "A81001"}}],
        }
        made = httpx.post(f"{server.base}/fhir/Patient", json=registered, headers=self.hospital)
        assert made.status_code == 201, made.text
        self.patient = made.json()["id"]
        return str(answer.json()["id"])

    def admit(self, server: Server) -> str | None:
        """An admission, its Encounter's id if acknowledged."""
        encounter = {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"system": ACT, "code": "IMP"},
            "subject": {"reference": f"Patient/{self.patient}"},
        }
        try:
            answer = httpx.post(
                f"{server.base}/fhir/Encounter", json=encounter, headers=self.hospital, timeout=5
            )
        except httpx.TransportError:
            return None
        return str(answer.json()["id"]) if answer.status_code == 201 else None


def _told(hook: Receiver) -> list[tuple[int, str]]:
    """(event number, Encounter id) of every event the receiver was sent."""
    return [
        (int(event["event-number"]), event["focus"]["reference"].split("/")[-3])
        for told in hook.of("/gp", "event-notification")
        for event in told.status["notification-event"]
    ]


def _wait_for(hook: Receiver, count: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len({number for number, _ in _told(hook)}) >= count:
            return
        time.sleep(0.1)


def test_killed_between_a_change_and_its_delivery_the_gateway_delivers_after_restart(
    store_url: str, tmp_path: Path, hook: Receiver
) -> None:
    parties = Parties(store_url, tmp_path)
    draw = random.Random(20261207)
    admitted: list[str] = []
    kills = 4
    server = _start(store_url, tmp_path)
    parties.subscribe(server, hook.url + "/gp")
    for round_ in range(kills):
        # The receiver refuses half the rounds: those events wait, numbered, for the restart.
        hook.answers = [503] * 1000 if round_ % 2 else []
        admitted += [a for _ in range(4) if (a := parties.admit(server))]
        time.sleep(draw.uniform(0.0, 0.4))
        server.process.kill()  # SIGKILL: between the change and the delivery, or after
        server.process.wait(timeout=10)
        hook.answers = []
        server = _start(store_url, tmp_path)
    try:
        _wait_for(hook, len(admitted))
    finally:
        _stop(server)
    told = _told(hook)
    numbers = sorted({number for number, _ in told})
    assert numbers == list(range(1, len(admitted) + 1)), "an event was lost or numbered twice"
    assert {encounter for _, encounter in told} == set(admitted)
    # At least once: sent again only when a kill came after the receiver's
    # acknowledgement and before the gateway recorded it.
    again = sum(n - 1 for n in Counter(number for number, _ in told).values())
    assert again <= kills


def test_several_gateway_processes_on_one_database_deliver_each_event_once(
    store_url: str, tmp_path: Path, hook: Receiver
) -> None:
    parties = Parties(store_url, tmp_path)
    nodes = [_start(store_url, tmp_path) for _ in range(3)]
    try:
        parties.subscribe(nodes[0], hook.url + "/gp")
        admitted = [parties.admit(nodes[n % 3]) for n in range(12)]
        assert all(admitted)
        _wait_for(hook, len(admitted))
        time.sleep(1.0)  # time for a second delivery, were there to be one
    finally:
        for node in nodes:
            _stop(node)
    told = _told(hook)
    assert sorted(number for number, _ in told) == list(range(1, 13)), "each event once"
    assert [number for number, _ in told] == sorted(number for number, _ in told), "in order"
    assert {encounter for _, encounter in told} == set(admitted)
