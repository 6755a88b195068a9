"""Notifications in the demo, once its gateway serves: a care home and a
council subscribe, each through the API with its own client's token (a
Subscription is a resource its subscriber writes), to admissions and
discharges of the people they care for, delivered to the demo's receiver
(``gateway.demo.receiver``); then the hospital's admission of one of their
residents, and the discharge, are loaded one after the other as ``gateway
load`` loads them, and both subscribers are told of each.

Subscribing is a conditional update on the topic, so a demo started again
changes its own Subscriptions (the receiver's port is new each time) and
never adds another beside them. The admission and discharge are the
generator's (``AdtWriter.write_apart``): loaded on a later run they are
already on file, and no one is told again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.auth import keys
from gateway.auth.commands import client_assertion
from gateway.auth.exchange import ASSERTION_TYPE
from gateway.demo.generate import NOTIFIED, Manifest, StoryPerson
from gateway.demo.launch import key_file
from gateway.demo.receiver import Receiver
from gateway.demo.sources.hl7 import FORMAT, apart
from gateway.demo.world import HOSPITAL, Organisation, borough_of, organisations
from gateway.loading.records import load
from gateway.notifications.subscriptions import FILTER_URL, PAYLOAD_URL
from gateway.notifications.topics import PREFIX
from gateway.store import Store

TOPICS = ("admission", "discharge")
_READY_S = 600.0  # how long the gateway may take to start (a first run builds its caches)
_TOLD_S = 60.0  # how long both subscribers may take to be told of an event


@dataclass(frozen=True)
class Subscriber:
    """Who subscribes in the demo: an organisation, the relationship with
    the person its Subscriptions ask for, and the payload it wants."""

    organisation: Organisation
    relationship: str
    payload: str

    @property
    def path(self) -> str:
        """Where on the receiver its notifications arrive."""
        return f"/{self.organisation.client_id}"


def subscribers(manifest: Manifest) -> tuple[StoryPerson, list[Subscriber]] | None:
    """The person the demo admits and discharges, and the care home and the
    council that subscribe; ``None`` for a demo generated before there were
    notifications."""
    person = manifest.stories.get(NOTIFIED)
    if person is None:
        return None
    home = next(o for o in organisations() if o.ods == person.organisation)
    # The story's person has an open case with the council of the home's borough.
    council = borough_of(home).council
    return person, [
        Subscriber(home, "resident", "id-only"),
        Subscriber(council, "open-case", "full-resource"),
    ]


def ready(directory: Path, manifest: Manifest) -> bool:
    """Whether the demo's files hold the admission and discharge to load."""
    return NOTIFIED in manifest.stories and all(
        (directory / path).is_file() for path in apart(HOSPITAL)
    )


def subscription(subscriber: Subscriber, topic: str, endpoint: str) -> dict[str, Any]:
    """A Subscriptions Backport Subscription to ``topic`` for ``subscriber``."""
    wanted = f"Encounter?relationship={subscriber.relationship}"
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": f"gateway demo: {topic}s of the people we care for",
        "criteria": PREFIX + topic,
        "_criteria": {"extension": [{"url": FILTER_URL, "valueString": wanted}]},
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": PAYLOAD_URL, "valueCode": subscriber.payload}]},
        },
    }


def token(base: str, key_path: Path, organisation: Organisation) -> str:
    """An access token for ``organisation``'s demo client, from the running
    gateway's token endpoint, as ``gateway token --url`` asks for one."""
    private = keys.load_private_key(key_path.read_bytes())
    kid = str(keys.to_jwk(private.public_key())["kid"])
    token_url = f"{base}/auth/token"
    assertion = client_assertion(organisation.client_id, private, token_url, kid, int(time.time()))
    answer = httpx.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            "scope": "system/Subscription.cruds",
        },
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def subscribe(base: str, key_path: Path, subscriber: Subscriber, receiver_url: str) -> list[str]:
    """``subscriber``'s Subscriptions to each of ``TOPICS``, made or brought
    up to date (a conditional update on the topic); their ids."""
    bearer = token(base, key_path, subscriber.organisation)
    made = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for topic in TOPICS:
            answer = http.put(
                "/fhir/Subscription",
                params={"criteria:exact": PREFIX + topic, "type": "rest-hook"},
                json=subscription(subscriber, topic, receiver_url + subscriber.path),
                headers={
                    "Authorization": f"Bearer {bearer}",
                    "Content-Type": "application/fhir+json",
                },
            )
            answer.raise_for_status()
            made.append(str(answer.json()["id"]))
    return made


def _serving(base: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    return False


def _told(receiver: Receiver, paths: list[str], topic: str, seconds: float) -> bool:
    """Whether every one of ``paths`` was told of a ``topic`` event in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        heard = {
            n.path
            for n in receiver.received()
            if n.kind == "event-notification" and n.topic == topic
        }
        if heard.issuperset(paths):
            return True
        time.sleep(0.2)
    return False


def after_start(
    directory: Path,
    manifest: Manifest,
    base: str,
    receiver: Receiver,
    open_store: Callable[[], Store],
    say: Callable[[str], None] = print,
) -> None:
    """Once the gateway at ``base`` serves: subscribe, then load the
    admission and, once both subscribers were told of it, the discharge."""
    chosen = subscribers(manifest)
    if chosen is None or not _serving(base, _READY_S):
        return
    person, subscribing = chosen
    for subscriber in subscribing:
        key = key_file(directory, subscriber.organisation)
        ids = subscribe(base, key, subscriber, receiver.url)
        say(
            f"notifications: {subscriber.organisation.name} subscribed to "
            f"{' and '.join(t + 's' for t in TOPICS)} ({subscriber.relationship}, "
            f"{subscriber.payload}): "
            f"Subscription/{', Subscription/'.join(ids)}"
        )
    paths = [subscriber.path for subscriber in subscribing]
    store = open_store()
    try:
        for topic, path in zip(TOPICS, apart(HOSPITAL), strict=True):
            report = load(store, FORMAT, HOSPITAL.ods, [directory / path])
            if report.rejections:
                say(f"notifications: the {topic} was refused: {report.rejections[0].reason}")
                return
            if not report.loaded:
                say(
                    f"notifications: {person.name}'s {topic} was loaded on an earlier run; "
                    f"what arrived then is in {receiver.log_file}"
                )
                continue
            say(f"notifications: the hospital's {topic} of {person.name} loaded ({path})")
            if not _told(receiver, paths, topic, _TOLD_S):
                say(f"notifications: not every subscriber was told of the {topic} in time")
    finally:
        store.close()


def start(
    directory: Path,
    manifest: Manifest,
    base: str,
    receiver: Receiver,
    open_store: Callable[[], Store],
    say: Callable[[str], None] = print,
) -> threading.Thread:
    """``after_start`` in a thread of its own, which ends with the demo."""

    def run() -> None:
        try:
            after_start(directory, manifest, base, receiver, open_store, say)
        except Exception as exc:  # the demo serves on without its notifications
            say(f"notifications: stopped: {type(exc).__name__}: {exc}")

    thread = threading.Thread(target=run, name="demo-notifications", daemon=True)
    thread.start()
    return thread
