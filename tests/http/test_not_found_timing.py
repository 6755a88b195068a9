"""A 404 takes as long whether the record is hidden or absent: the time to
answer must not tell a prober which ids exist (PRODUCT.md section 4).

Nothing here compares a time with a fixed figure other than the floor
itself, which is a lower bound that load can only make easier to meet.
Each test first times its requests with no floor (the median of a few
tries: what they cost on this machine now, loaded or not), then sets the
floor well above that and times them again: every refusal leaves no sooner
than the floor, and the answer that shows something leaves about as soon
as it did without a floor (only refusals wait)."""

from __future__ import annotations

import math
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.testclient import TestClient

from gateway.store import Store
from tests.conftest import access_token, make_client

FLOOR_MS = 300
TRIES = 5


def _home_and_hospital(store: Store) -> tuple[str, str]:
    """Tokens of a care home that writes a person's record and of a
    hospital with no relationship to them."""
    return (
        access_token(store, client_id="home", kind="care-home", org="VM123"),
        access_token(store, client_id="hospital", kind="hospital", org="RKE"),
    )


def _post(api: TestClient, token: str, resource: dict[str, Any]) -> str:
    answer = api.post(
        f"/fhir/{resource['resourceType']}",
        json=resource,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201
    return str(answer.json()["id"])


class Timed:
    """``TRIES`` answers to one request: the last status and JSON, every time."""

    def __init__(self, status: int, seconds: list[float], body: dict[str, Any]) -> None:
        self.status, self.seconds, self.body = status, seconds, body

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


Request = tuple[str, str, dict[str, Any] | None]  # path, token, body to POST (or None: GET)


def _timed(api: TestClient, request: Request, tries: int = TRIES) -> Timed:
    """GET the path (POST the body to it, when given) ``tries`` times."""
    path, token, body = request
    headers = {"Authorization": f"Bearer {token}"}
    seconds = []
    for _ in range(tries):
        started = time.perf_counter()
        if body is None:
            answer = api.get(path, headers=headers)
        else:
            answer = api.post(path, json=body, headers=headers)
        seconds.append(time.perf_counter() - started)
    return Timed(answer.status_code, seconds, answer.json())


def _without_and_with_a_floor(
    store: Store, setup: Callable[[TestClient], dict[str, Request]], shown: str
) -> tuple[dict[str, Timed], dict[str, Timed], float]:
    """``setup``'s requests timed with no floor, then with one five times the
    slowest of their medians (``FLOOR_MS`` at least): both sets of answers,
    and the floor in seconds. With the floor, the refusals are asked once
    (each answer must wait it out), the ``shown`` request ``TRIES`` times."""
    with make_client(store, token=None, not_found_floor_ms=0) as api:
        requests = setup(api)
        unfloored = {name: _timed(api, request) for name, request in requests.items()}
    slowest = max(timed.median for timed in unfloored.values())
    floor_ms = max(FLOOR_MS, math.ceil(5000 * slowest))
    with make_client(store, token=None, not_found_floor_ms=floor_ms) as api:
        floored = {
            name: _timed(api, request, TRIES if name == shown else 1)
            for name, request in requests.items()
        }
    return unfloored, floored, floor_ms / 1000


def _did_not_wait(unfloored: Timed, floored: Timed, floor_s: float) -> bool:
    """The answer took about as long with the floor as without it: not
    half the floor longer, where waiting it out would take it all."""
    return floored.median < unfloored.median + floor_s / 2


def _waited(refused: Timed, floor_s: float) -> bool:
    return min(refused.seconds) >= floor_s


def test_hidden_and_absent_records_are_refused_after_the_same_floor(store: Store) -> None:
    author, stranger = _home_and_hospital(store)

    def setup(api: TestClient) -> dict[str, Request]:
        patient = _post(api, author, {"resourceType": "Patient", "gender": "female"})
        return {
            "shown": (f"/fhir/Patient/{patient}", author, None),
            "hidden": (f"/fhir/Patient/{patient}", stranger, None),
            "absent": (f"/fhir/Patient/{uuid.uuid4()}", stranger, None),
            "hidden version": (f"/fhir/Patient/{patient}/_history/1", stranger, None),
        }

    unfloored, floored, floor_s = _without_and_with_a_floor(store, setup, "shown")

    assert floored["shown"].status == 200
    assert _did_not_wait(unfloored["shown"], floored["shown"], floor_s)  # only refusals wait
    for name in ("hidden", "absent", "hidden version"):
        assert floored[name].status == 404, name
        assert _waited(floored[name], floor_s), (name, floored[name].seconds, floor_s)


def test_searches_that_show_nothing_wait_out_the_same_floor(store: Store) -> None:
    """A search whose matches are all withheld reads and decides each of
    them; one with no matches does not. Both answer an empty page, and
    neither sooner than the floor, so the time does not tell that a person
    has records of that kind."""
    author, stranger = _home_and_hospital(store)

    def setup(api: TestClient) -> dict[str, Request]:
        patient = _post(api, author, {"resourceType": "Patient"})
        for text in ("falls", "frailty", "dementia"):
            condition = {
                "resourceType": "Condition",
                "subject": {"reference": f"Patient/{patient}"},
                "code": {"text": text},
            }
            _post(api, author, condition)
        return {
            "found": (f"/fhir/Condition?subject=Patient/{patient}", author, None),
            "withheld": (f"/fhir/Condition?subject=Patient/{patient}", stranger, None),
            "none there": (f"/fhir/Condition?subject=Patient/{uuid.uuid4()}", stranger, None),
            "history": ("/fhir/Condition/_history", stranger, None),
        }

    unfloored, floored, floor_s = _without_and_with_a_floor(store, setup, "found")

    found = floored["found"]
    assert found.status == 200 and len(found.body["entry"]) == 3
    assert _did_not_wait(unfloored["found"], found, floor_s)
    for name in ("withheld", "none there", "history"):
        assert floored[name].status == 200 and "entry" not in floored[name].body, name
        assert _waited(floored[name], floor_s), (name, floored[name].seconds, floor_s)


def test_a_batch_with_an_entry_not_found_waits_out_the_floor(store: Store) -> None:
    author, stranger = _home_and_hospital(store)

    def batch(token: str, path: str) -> Request:
        body = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": path}}],
        }
        return ("/fhir", token, body)

    def setup(api: TestClient) -> dict[str, Request]:
        patient = _post(api, author, {"resourceType": "Patient"})
        return {
            "shown": batch(author, f"Patient/{patient}"),
            "hidden": batch(stranger, f"Patient/{patient}"),
            "absent": batch(stranger, f"Patient/{uuid.uuid4()}"),
        }

    unfloored, floored, floor_s = _without_and_with_a_floor(store, setup, "shown")

    def statuses(timed: Timed) -> list[str]:
        assert timed.status == 200
        return [e["response"]["status"][:3] for e in timed.body["entry"]]

    assert statuses(floored["shown"]) == ["200"]
    assert _did_not_wait(unfloored["shown"], floored["shown"], floor_s)
    for name in ("hidden", "absent"):
        assert statuses(floored[name]) == ["404"], name
        assert _waited(floored[name], floor_s), (name, floored[name].seconds, floor_s)
