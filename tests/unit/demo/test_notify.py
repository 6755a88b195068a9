"""The demo's notifications: the person it admits and discharges once the
gateway serves, the admission and discharge kept apart from the hospital's
feed, and the Subscriptions its care home and council write."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gateway.demo.generate import NOTIFIED, Manifest, generate
from gateway.demo.notify import ready, subscribers, subscription
from gateway.demo.sources.hl7 import apart
from gateway.demo.world import HOSPITAL
from gateway.notifications import subscriptions
from mappings.hl7v2.parser import parse_message, split_messages

TODAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    out = tmp_path_factory.mktemp("demo")
    return out, generate(out, 400, 11, TODAY)


def _messages(path: Path) -> list[str]:
    return [text for _, text in split_messages(path.read_bytes())]


def test_the_stay_is_kept_apart_from_the_feed(demo: tuple[Path, Manifest]) -> None:
    out, manifest = demo
    assert ready(out, manifest)
    person = manifest.stories[NOTIFIED]
    admission, discharge = apart(HOSPITAL)
    assert {str(admission), str(discharge)}.isdisjoint(str(f.path) for f in manifest.files)
    feed = (out / "hospital" / f"{HOSPITAL.ods}-adt.hl7").read_bytes()
    for path, event in ((admission, "A01"), (discharge, "A03")):
        (text,) = _messages(out / path)
        message = parse_message(text)
        assert message.event == event
        assert person.nhs_number in text
        assert text.split("\r")[0].split("|")[9].encode() not in feed  # its own MSH-10


def test_the_home_and_the_council_subscribe(demo: tuple[Path, Manifest]) -> None:
    _, manifest = demo
    chosen = subscribers(manifest)
    assert chosen is not None
    person, (home, council) = chosen
    assert home.organisation.ods == person.organisation
    assert (home.organisation.kind, council.organisation.kind) == ("care-home", "council")
    for subscriber in (home, council):
        for topic in ("admission", "discharge"):
            asked = subscription(subscriber, topic, "http://127.0.0.1:9/" + subscriber.path)
            read = subscriptions.read(asked)  # the gateway takes it as it is
            assert read.topic.key == topic and read.filters.relationship == subscriber.relationship
    assert (home.payload, council.payload) == ("id-only", "full-resource")


def test_a_demo_generated_before_notifications_has_none(tmp_path: Path) -> None:
    manifest = Manifest(seed=1, people=1, today=TODAY.isoformat())
    assert subscribers(manifest) is None and not ready(tmp_path, manifest)
