"""Notifications end to end: Subscriptions written through the API, changes
written through the API, the delivery worker's passes, and a real HTTP
receiver on loopback; consent deciding each notification per recipient."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import staging
from gateway.auth.clients import ClientRegistry
from gateway.delivery import sending
from gateway.delivery.sending import SIGNATURE_HEADER, Policy
from gateway.delivery.worker import NotificationWorker
from gateway.documents.signature import load_or_create_document_key
from gateway.notifications.subscriptions import (
    CHANNEL_SYSTEM,
    CHANNEL_TYPE_URL,
    FILTER_URL,
    PAYLOAD_URL,
)
from gateway.notifications.topics import PREFIX
from gateway.store import Store, as_bytes
from tests.conftest import BASE_URL, TEST_DOCUMENT_KEY, access_token, make_client
from tests.http.test_consent import ACT, GP, World
from tests.support.consents import privacy_consent
from tests.support.receiver import Receiver, receiver

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def subscription(
    topic: str,
    endpoint: str | None,
    *,
    filters: tuple[str, ...] = (),
    payload: str = "id-only",
    heartbeat: int | None = None,
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": PAYLOAD_URL, "valueCode": payload}]},
    }
    if endpoint is None:
        channel["_type"] = {
            "extension": [
                {"url": CHANNEL_TYPE_URL, "valueCoding": {"system": CHANNEL_SYSTEM, "code": "pull"}}
            ]
        }
    else:
        channel.update(type="rest-hook", endpoint=endpoint, header=["X-Home-Key: secret-1"])
    if heartbeat:
        channel["extension"] = [
            {
                "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                "backport-heartbeat-period",
                "valueUnsignedInt": heartbeat,
            }
        ]
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "care pathway events",
        "criteria": PREFIX + topic,
        "channel": channel,
    }
    if filters:
        resource["_criteria"] = {
            "extension": [{"url": FILTER_URL, "valueString": f} for f in filters]
        }
    return resource


class Pathway(World):
    """The consent tests' world, with a hospital that admits the person and
    a worker delivering to a receiver on loopback."""

    def __init__(self, store: Store, hook: Receiver) -> None:
        super().__init__(store)
        self.hook = hook
        signer = load_or_create_document_key(Path(TEST_DOCUMENT_KEY))
        self.public = signer.key.public_key()
        self.worker = NotificationWorker(
            store, signer, base_url=BASE_URL, policy=Policy(allow_loopback=True, backoff_s=1.0)
        )

    def subscribe(self, who: str, resource: dict[str, Any]) -> str:
        return self.post(who, resource)

    def stay(self, status: str, *, klass: str = "IMP", labels: tuple[str, ...] = ()) -> str:
        encounter: dict[str, Any] = {
            "resourceType": "Encounter",
            "status": status,
            "class": {"system": ACT, "code": klass},
            "subject": self.subject,
        }
        if labels:
            encounter["meta"] = {"security": [{"system": ACT, "code": c} for c in labels]}
        return self.post("hospital", encounter)

    def discharge(self, encounter_id: str) -> None:
        current = self.get("hospital", f"/fhir/Encounter/{encounter_id}").json()
        answer = self.api.put(
            f"/fhir/Encounter/{encounter_id}",
            json={**current, "status": "finished"},
            headers=self.headers("hospital"),
        )
        assert answer.status_code == 200, answer.text


@pytest.fixture
def pathway(store: Store) -> Iterator[Pathway]:
    with receiver() as hook:
        built = Pathway(store, hook)
        yield built
        built.worker.stop()
        built.api.__exit__(None, None, None)


def _verify(public: Ed25519PublicKey, body: bytes, signature: str) -> None:
    protected, empty, signed = signature.split(".")
    assert empty == ""
    payload = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    public.verify(
        base64.urlsafe_b64decode(signed + "=" * (-len(signed) % 4)),
        f"{protected}.{payload}".encode(),
    )


def test_a_registered_practice_hears_of_the_admission_signed_and_once(pathway: Pathway) -> None:
    hook = pathway.hook
    gp = pathway.subscribe(
        "gp",
        subscription(
            "admission",
            hook.url + "/gp",
            filters=("Encounter?relationship=registered",),
            payload="full-resource",
        ),
    )
    pathway.worker.run_once()
    (handshake,) = hook.of("/gp")
    assert handshake.status["type"] == "handshake"
    # Active, as the Subscription itself now says, still its subscriber's alone.
    made = pathway.get("gp", f"/fhir/Subscription/{gp}")
    assert made.json()["status"] == "active" and made.json()["meta"]["versionId"] == "2"
    assert pathway.get("council", f"/fhir/Subscription/{gp}").status_code == 404
    assert handshake.headers["x-home-key"] == "secret-1"
    assert pathway.get("gp", f"/fhir/Subscription/{gp}/$status").json()["entry"][0]["resource"][
        "parameter"
    ][2] == {"name": "status", "valueCode": "active"}

    stay = pathway.stay("in-progress")
    progress = pathway.worker.run_once()
    assert progress.events == 1 and progress.sent == 1
    (told,) = hook.of("/gp", "event-notification")
    _verify(pathway.public, told.body, told.headers[SIGNATURE_HEADER.lower()])
    (event,) = told.status["notification-event"]
    assert event["event-number"] == "1"
    assert event["focus"]["reference"] == f"{BASE_URL}/Encounter/{stay}/_history/1"
    assert told.status["topic"] == PREFIX + "admission"
    assert told.bundle["type"] == "history"
    assert told.bundle["entry"][1]["resource"]["id"] == stay  # full-resource
    # Acknowledged: the next pass sends nothing again.
    assert pathway.worker.run_once().sent == 0
    assert len(hook.of("/gp", "event-notification")) == 1


def test_consent_decides_each_recipient(pathway: Pathway) -> None:
    hook = pathway.hook
    for who in ("gp", "council", "ambulance"):
        pathway.subscribe(who, subscription("admission", f"{hook.url}/{who}"))
    pathway.worker.run_once()
    pathway.stay("in-progress", labels=("PSY",))  # restricted: its author's alone
    pathway.stay("in-progress")
    pathway.worker.run_once()
    for who in ("gp", "council"):
        (told,) = hook.of(f"/{who}", "event-notification")
        (event,) = told.status["notification-event"]
        # Numbered 1: nothing was spent on the withheld admission.
        assert event["event-number"] == "1", who
    # No relationship: a subscription never breaks the glass.
    assert hook.of("/ambulance", "event-notification") == []


def test_a_failing_endpoint_is_retried_then_put_in_error(pathway: Pathway) -> None:
    hook = pathway.hook
    sub = pathway.subscribe("gp", subscription("admission", hook.url + "/gp"))
    pathway.worker.run_once()
    hook.answers = [500, 503]
    stay = pathway.stay("in-progress")
    first = pathway.worker.run_once()
    assert first.failed == 1 and first.sent == 0
    assert pathway.worker.run_once(time.time() + 0.5).sent == 0  # backing off
    assert pathway.worker.run_once(time.time() + 1.5).failed == 1  # second failure
    assert pathway.worker.run_once(time.time() + 10).sent == 1
    (told,) = hook.of("/gp", "event-notification")
    assert told.status["notification-event"][0]["focus"]["reference"].endswith(
        f"Encounter/{stay}/_history/1"
    )
    # Failing every time: in error after the configured number of failures.
    pathway.worker.policy = Policy(allow_loopback=True, max_failures=2, backoff_s=1.0)
    hook.answers = [500] * 5
    pathway.stay("in-progress")
    assert pathway.worker.run_once().failed == 1
    assert pathway.worker.run_once(time.time() + 5).failed == 1
    assert pathway.worker.run_once(time.time() + 50).failed == 0  # given up
    resource = pathway.get("gp", f"/fhir/Subscription/{sub}").json()
    assert resource["status"] == "error" and "500" in resource["error"]
    status = pathway.get("gp", f"/fhir/Subscription/{sub}/$status").json()
    parameters = {p["name"]: p for p in status["entry"][0]["resource"]["parameter"]}
    assert parameters["status"]["valueCode"] == "error"
    assert "500" in parameters["error"]["valueCodeableConcept"]["text"]
    # The subscriber asks again: a handshake, then what waited is sent.
    hook.answers = []
    answer = pathway.api.put(
        f"/fhir/Subscription/{sub}",
        json={**resource, "status": "requested"},
        headers=pathway.headers("gp"),
    )
    assert answer.status_code == 200, answer.text
    pathway.worker.run_once()
    assert [r.status["type"] for r in hook.of("/gp")][-2:] == ["handshake", "event-notification"]


def test_a_pull_subscriber_fetches_its_events(pathway: Pathway) -> None:
    sub = pathway.subscribe(
        "council", subscription("discharge", None, filters=("Encounter?class=IMP",))
    )
    stay = pathway.stay("in-progress")
    pathway.discharge(stay)
    pathway.stay("finished", klass="EMER")  # another class: filtered out
    pathway.worker.run_once()
    # Nothing to shake hands with: active at once, as it says itself.
    assert pathway.get("council", f"/fhir/Subscription/{sub}").json()["status"] == "active"
    answer = pathway.get("council", f"/fhir/Subscription/{sub}/$events?content=full-resource")
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    assert bundle["type"] == "history"
    parameters = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}
    assert parameters["type"]["valueCode"] == "query-event"
    assert parameters["events-since-subscription-start"]["valueString"] == "1"
    assert bundle["entry"][1]["resource"]["status"] == "finished"
    # The subscriber's alone: anyone else is told exactly what a missing one gets.
    hidden = pathway.get("gp", f"/fhir/Subscription/{sub}/$events")
    missing = pathway.get("gp", "/fhir/Subscription/no-such-subscription/$events")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content.replace(sub.encode(), b"X") == missing.content.replace(
        b"no-such-subscription", b"X"
    )


def test_a_subscription_the_gateway_cannot_deliver_is_refused(pathway: Pathway) -> None:
    bad_topic = subscription("admission", "https://gp.example/hook")
    bad_topic["criteria"] = PREFIX + "no-such-topic"
    bad_filter = subscription("death", "https://gp.example/hook", filters=("Patient?class=IMP",))
    for resource in (bad_topic, bad_filter):
        answer = pathway.api.post(
            "/fhir/Subscription", json=resource, headers=pathway.headers("gp")
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["resourceType"] == "OperationOutcome"


def test_delivered_notifications_are_in_the_access_report(pathway: Pathway) -> None:
    pathway.subscribe("gp", subscription("admission", pathway.hook.url + "/gp"))
    pathway.worker.run_once()
    stay = pathway.stay("in-progress")
    pathway.worker.run_once()
    staging.sequence_now(pathway.store)  # as the audit writer does, every few milliseconds
    report = pathway.get("gp", f"/fhir/Patient/{pathway.patient}/$access-report").json()
    accesses = [
        {
            part["name"]: next(v for k, v in part.items() if k.startswith("value"))
            for part in p["part"]
        }
        for p in report["parameter"]
        if p["name"] == "access"
    ]
    (told,) = [a for a in accesses if a["interaction"] == "notification"]
    assert told["organization"]["value"] == GP and told["purpose"] == "TREAT"
    assert told["shown"] == 1
    entry = pathway.store.select(
        "SELECT entry FROM audit_entry WHERE subtype = 'notification'", []
    )[0][0]
    assert f"Encounter/{stay}/_history/1".encode() in as_bytes(entry)


def test_a_dissenting_persons_events_reach_only_their_authors(pathway: Pathway) -> None:
    hook = pathway.hook
    for who in ("gp", "council", "hospital"):
        pathway.subscribe(who, subscription("admission", f"{hook.url}/{who}"))
    pathway.worker.run_once()
    pathway.post("gp", privacy_consent(pathway.subject, {"type": "deny"}))
    pathway.stay("in-progress")
    pathway.worker.run_once()
    assert hook.of("/gp", "event-notification") == []
    assert hook.of("/council", "event-notification") == []
    (told,) = hook.of("/hospital", "event-notification")  # the hospital wrote it
    assert told.status["notification-event"][0]["event-number"] == "1"


@pytest.mark.parametrize(
    ("topic", "change"),
    [
        ("discharge", "discharge"),
        ("ae-attendance", "attend"),
        ("death", "die"),
    ],
)
def test_each_topic_is_told(pathway: Pathway, topic: str, change: str) -> None:
    hook = pathway.hook
    pathway.subscribe("gp", subscription(topic, hook.url + "/gp", payload="full-resource"))
    pathway.worker.run_once()
    if change == "discharge":
        pathway.discharge(pathway.stay("in-progress"))
        expected = "Encounter"
    elif change == "attend":
        pathway.stay("arrived", klass="EMER")
        expected = "Encounter"
    else:
        current = pathway.get("home", f"/fhir/Patient/{pathway.patient}").json()
        died = {**current, "deceasedDateTime": "2026-12-01T10:00:00Z"}
        answer = pathway.api.put(
            f"/fhir/Patient/{pathway.patient}", json=died, headers=pathway.headers("home")
        )
        assert answer.status_code == 200, answer.text
        expected = "Patient"
    pathway.worker.run_once()
    (told,) = hook.of("/gp", "event-notification")
    assert told.status["topic"] == PREFIX + topic
    assert told.bundle["entry"][1]["resource"]["resourceType"] == expected


def test_an_empty_payload_says_only_that_something_happened(pathway: Pathway) -> None:
    hook = pathway.hook
    pathway.subscribe("gp", subscription("admission", hook.url + "/gp", payload="empty"))
    pathway.worker.run_once()
    stay = pathway.stay("in-progress")
    pathway.worker.run_once()
    (told,) = hook.of("/gp", "event-notification")
    assert len(told.bundle["entry"]) == 1  # the status alone
    assert stay.encode() not in told.body
    assert told.status["notification-event"][0]["event-number"] == "1"


def test_events_are_sent_in_order_and_heartbeats_fill_the_quiet(pathway: Pathway) -> None:
    hook = pathway.hook
    pathway.subscribe("gp", subscription("admission", hook.url + "/gp", heartbeat=60))
    pathway.worker.run_once()
    stays = [pathway.stay("in-progress") for _ in range(3)]
    pathway.worker.run_once()
    numbers = [
        (e["event-number"], e["focus"]["reference"].split("/")[-3])
        for told in hook.of("/gp", "event-notification")
        for e in told.status["notification-event"]
    ]
    assert numbers == [("1", stays[0]), ("2", stays[1]), ("3", stays[2])]
    assert pathway.worker.run_once(time.time() + 30).sent == 0
    assert pathway.worker.run_once(time.time() + 61).sent == 1
    (beat,) = hook.of("/gp", "heartbeat")
    assert beat.status["events-since-subscription-start"] == "3"


def test_the_capability_statement_lists_the_topics(pathway: Pathway) -> None:
    statement = pathway.api.get("/fhir/metadata").json()
    (entry,) = [r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription"]
    listed = {e["valueCanonical"] for e in entry["extension"]}
    assert listed == {PREFIX + key for key in ("admission", "discharge", "ae-attendance",
                                                "death", "red-bag")}  # fmt: skip
    assert {o["name"] for o in entry["operation"]} >= {"status", "events"}


def test_status_answers_alike_for_hidden_and_missing(pathway: Pathway) -> None:
    sub = pathway.subscribe("gp", subscription("admission", None))
    for method in ("GET", "POST"):
        hidden = pathway.api.request(
            method, f"/fhir/Subscription/{sub}/$status", headers=pathway.headers("council")
        )
        missing = pathway.api.request(
            method, "/fhir/Subscription/nothing-here/$status", headers=pathway.headers("council")
        )
        assert hidden.status_code == missing.status_code == 404
        assert hidden.content.replace(sub.encode(), b"X") == missing.content.replace(
            b"nothing-here", b"X"
        )
        assert {k: v for k, v in hidden.headers.items() if k != "x-request-id"} == {
            k: v for k, v in missing.headers.items() if k != "x-request-id"
        } | {"content-length": hidden.headers["content-length"]}


def test_a_handshake_with_an_endpoint_since_changed_activates_nothing(pathway: Pathway) -> None:
    hook = pathway.hook
    sub = pathway.subscribe("gp", subscription("admission", hook.url + "/old"))
    parcels = sending.parcels(pathway.store, ClientRegistry(pathway.store), time.time(), BASE_URL)
    (handshake,) = parcels
    current = pathway.get("gp", f"/fhir/Subscription/{sub}").json()
    moved = {**current, "channel": {**current["channel"], "endpoint": hook.url + "/new"}}
    answer = pathway.api.put(f"/fhir/Subscription/{sub}", json=moved, headers=pathway.headers("gp"))
    assert answer.status_code == 200, answer.text
    hook.answers = [503]  # the new endpoint refuses its handshake: still requested
    assert pathway.worker.run_once().failed == 1  # and the worker holds the lease
    sending.recorded(
        pathway.store, pathway.worker.holder, [(handshake, None)], time.time(), Policy(), 10
    )
    after = pathway.get("gp", f"/fhir/Subscription/{sub}").json()
    assert after["status"] == "requested" and after["meta"]["versionId"] == "2"
    assert hook.of("/old") == []
    assert pathway.worker.run_once(time.time() + 5).sent == 1  # the new handshake
    assert [r.status["type"] for r in hook.of("/new")] == ["handshake"]


def test_a_retry_after_the_person_dissents_carries_no_content(pathway: Pathway) -> None:
    hook = pathway.hook
    pathway.subscribe("gp", subscription("admission", hook.url + "/gp", payload="full-resource"))
    pathway.worker.run_once()
    hook.answers = [503]
    stay = pathway.stay("in-progress")
    assert pathway.worker.run_once().failed == 1  # numbered for the GP, not yet delivered
    pathway.post("gp", privacy_consent(pathway.subject, {"type": "deny"}))
    assert pathway.worker.run_once(time.time() + 5).sent == 1
    (told,) = hook.of("/gp", "event-notification")
    (entry,) = told.bundle["entry"][1:]
    assert "resource" not in entry and entry["request"]["url"] == f"Encounter/{stay}"
    assert b'"status":"in-progress"' not in told.body


def test_a_care_homes_pushed_record_tells_the_practice_of_a_new_red_bag(store: Store) -> None:
    """The home pushes its resident's record (``$ingest``); the resident's
    practice, subscribed to the Red Bag topic for its registered patients,
    is told, with the Patient as the focus; pushed again unchanged, nothing."""
    home = access_token(store, client_id="home", kind="care-home", org="VM4X2")
    practice = access_token(store, client_id="practice", kind="gp-practice", org="F84003")
    record = (FIXTURES / "carehome" / "winifred-maddox.json").read_bytes()
    with receiver() as hook, make_client(store, token=None) as api:
        worker = NotificationWorker(
            store,
            load_or_create_document_key(Path(TEST_DOCUMENT_KEY)),
            base_url=BASE_URL,
            policy=Policy(allow_loopback=True),
        )
        try:
            made = api.post(
                "/fhir/Subscription",
                json=subscription(
                    "red-bag", hook.url + "/gp", filters=("Patient?relationship=registered",)
                ),
                headers={"Authorization": f"Bearer {practice}"},
            )
            assert made.status_code == 201, made.text
            worker.run_once()
            for _ in range(2):
                pushed = api.post(
                    "/fhir/$ingest?format=care-home",
                    content=record,
                    headers={"Authorization": f"Bearer {home}", "content-type": "application/json"},
                )
                assert pushed.status_code == 200, pushed.text
                worker.run_once()
        finally:
            worker.stop()
    (told,) = hook.of("/gp", "event-notification")
    (event,) = told.status["notification-event"]
    assert told.status["topic"] == PREFIX + "red-bag"
    assert "/Patient/" in event["focus"]["reference"]


def test_the_post_goes_to_the_address_vetted_under_the_endpoints_name(pathway: Pathway) -> None:
    hook = pathway.hook
    port = hook.url.rsplit(":", 1)[1]
    by_name = f"http://localhost:{port}/named"
    vetted = sending.vet(by_name, allow_loopback=True)
    assert vetted.refusal is None and "127.0.0.1" in vetted.addresses
    pathway.subscribe("gp", subscription("admission", by_name))
    pathway.worker.run_once()
    (handshake,) = hook.of("/named")
    assert handshake.headers["host"] == f"localhost:{port}"


def test_events_are_fetched_by_number_and_bad_asks_are_refused(pathway: Pathway) -> None:
    sub = pathway.subscribe("gp", subscription("admission", None))
    stays = [pathway.stay("in-progress") for _ in range(3)]
    pathway.worker.run_once()
    url = f"/fhir/Subscription/{sub}/$events"

    def numbers(query: str) -> list[str]:
        answer = pathway.get("gp", url + query)
        assert answer.status_code == 200, answer.text
        status = answer.json()["entry"][0]["resource"]["parameter"]
        return [
            part["valueString"]
            for p in status
            if p["name"] == "notification-event"
            for part in p["part"]
            if part["name"] == "event-number"
        ]

    assert numbers("") == ["1", "2", "3"]
    assert numbers("?eventsSinceNumber=2") == ["2", "3"]
    assert numbers("?eventsSinceNumber=2&eventsUntilNumber=2") == ["2"]
    assert numbers("?eventsSinceNumber=9") == []
    focus = pathway.get("gp", url + "?eventsSinceNumber=3&content=id-only").json()
    assert focus["entry"][1]["request"]["url"] == f"Encounter/{stays[2]}"
    assert "resource" not in focus["entry"][1]
    for bad in ("?eventsSinceNumber=-1", "?eventsSinceNumber=x", "?content=everything",
                "?since=1", "?eventsUntilNumber=99999999999999999999"):  # fmt: skip
        refused = pathway.get("gp", url + bad)
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["resourceType"] == "OperationOutcome"
    not_parameters = pathway.api.post(url, json={"resourceType": "Patient"},
                                      headers=pathway.headers("gp"))  # fmt: skip
    assert not_parameters.status_code == 400
