"""A Subscription is its author organisation's alone (issue 27): the care
home that asks to be told of its residents' admissions reads it and finds it
by its search parameters; any other organisation, for direct care or under
emergency access, and an auditor, are answered on every path that names it
exactly as for an id where nothing stands (PRODUCT.md section 4, "Nothing
leaks"), and change nothing. Its endpoint and headers (a credential among
them) are the subscriber's business."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.auth.tokens import Purpose
from tests.conftest import access_token
from tests.http.test_consent import HOME, World
from tests.support.alike import answered_alike

EXAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "r4" / "Subscription.json"
# An id where nothing stands, of the form (and length) the server gives.
MISSING = "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
PATCH = "application/json-patch+json"
# The request's own, not the resource's: the only headers allowed to differ.


def _subscription(res_id: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads(EXAMPLE.read_text("utf-8"))
    del resource["id"]
    if res_id is not None:
        resource["id"] = res_id
    return resource


@pytest.fixture
def subscription(world: World) -> str:
    """The care home's Subscription, written by its own client."""
    world.tokens["auditor"] = access_token(
        world.store, client_id="auditor", kind="auditor", org="X26", purpose=Purpose.HCOMPL
    )
    res_id = world.post("home", _subscription())
    assert len(res_id) == len(MISSING)  # so that the answers can be alike byte for byte
    return res_id


def _alike(ask: Callable[[str], httpx.Response], hidden_id: str) -> httpx.Response:
    return answered_alike(ask, hidden_id, MISSING)


def test_its_author_reads_it_and_finds_it(world: World, subscription: str) -> None:
    read = world.get("home", f"/fhir/Subscription/{subscription}")
    assert read.status_code == 200, read.text
    assert read.json()["channel"] == _subscription()["channel"]
    assert read.json()["meta"]["source"] == f"urn:ods:{HOME}"
    for query in (
        "",
        f"?_id={subscription}",
        "?criteria=urn:london-care-gateway:SubscriptionTopic:admission",
        "?url=https://fhir.rosemary-court.example/fhir-notify",
        "?type=rest-hook",
        "?payload=application/fhir%2Bjson",
        "?contact=digital@rosemary-court.example",
    ):
        assert world.ids("home", f"/fhir/Subscription{query}") == [subscription], query
    assert world.ids("home", "/fhir/Subscription?type=websocket") == []


@pytest.mark.parametrize("who", ["gp", "council", "hospital", "ambulance", "auditor"])
def test_anyone_else_is_answered_as_if_it_did_not_exist(
    world: World, subscription: str, who: str
) -> None:
    """Read, vread and history; update (PUT), PATCH and DELETE: the same
    bytes as for a missing id. A search does not find it."""
    api, headers = world.api, world.headers(who)
    before = world.get("home", f"/fhir/Subscription/{subscription}").content
    for tail in ("", "/_history/1", "/_history"):

        def read(res_id: str, tail: str = tail) -> httpx.Response:
            answer: httpx.Response = api.get(f"/fhir/Subscription/{res_id}{tail}", headers=headers)
            return answer

        assert _alike(read, subscription).status_code == 404
    changed = {"status": "off", "channel": {"type": "rest-hook", "endpoint": "https://x.example/"}}
    updated = _alike(
        lambda i: api.put(
            f"/fhir/Subscription/{i}", json={**_subscription(i), **changed}, headers=headers
        ),
        subscription,
    )
    patched = _alike(
        lambda i: api.patch(
            f"/fhir/Subscription/{i}",
            content=json.dumps([{"op": "replace", "path": "/status", "value": "off"}]),
            headers={**headers, "Content-Type": PATCH},
        ),
        subscription,
    )
    assert updated.status_code == patched.status_code == 404
    # DELETE is idempotent: where nothing stands it answers as if it had deleted.
    _alike(lambda i: api.delete(f"/fhir/Subscription/{i}", headers=headers), subscription)
    for query in ("", f"?_id={subscription}", "?type=rest-hook"):
        found = world.get(who, f"/fhir/Subscription{query}")
        assert found.status_code == 200, found.text
        assert found.json().get("entry", []) == [] and found.json().get("total", 0) == 0
    # And nothing changed.
    assert world.get("home", f"/fhir/Subscription/{subscription}").content == before
