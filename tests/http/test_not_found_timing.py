"""A 404 takes as long whether the record is hidden or absent: the time to
answer must not tell a prober which ids exist (PRODUCT.md section 4)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.testclient import TestClient

from gateway.store import Store
from tests.conftest import access_token, make_client

FLOOR_MS = 300


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


def _timed(
    api: TestClient, path: str, token: str, body: dict[str, Any] | None = None
) -> tuple[int, float, dict[str, Any]]:
    """GET ``path`` (POST ``body`` to it, when given): status, seconds, JSON."""
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    if body is None:
        answer = api.get(path, headers=headers)
    else:
        answer = api.post(path, json=body, headers=headers)
    return answer.status_code, time.perf_counter() - started, answer.json()


def test_hidden_and_absent_records_are_refused_after_the_same_floor(store: Store) -> None:
    author, stranger = _home_and_hospital(store)
    with make_client(store, token=None, not_found_floor_ms=FLOOR_MS) as api:
        patient = _post(api, author, {"resourceType": "Patient", "gender": "female"})

        shown = _timed(api, f"/fhir/Patient/{patient}", author)
        hidden = _timed(api, f"/fhir/Patient/{patient}", stranger)
        absent = _timed(api, f"/fhir/Patient/{uuid.uuid4()}", stranger)
        hidden_version = _timed(api, f"/fhir/Patient/{patient}/_history/1", stranger)

    assert shown[0] == 200 and shown[1] < FLOOR_MS / 1000  # only refusals wait
    for status, elapsed, _ in (hidden, absent, hidden_version):
        assert status == 404
        assert elapsed >= FLOOR_MS / 1000


def test_searches_that_show_nothing_wait_out_the_same_floor(store: Store) -> None:
    """A search whose matches are all withheld reads and decides each of
    them; one with no matches does not. Both answer an empty page, and
    neither sooner than the floor, so the time does not tell that a person
    has records of that kind."""
    author, stranger = _home_and_hospital(store)
    with make_client(store, token=None, not_found_floor_ms=FLOOR_MS) as api:
        patient = _post(api, author, {"resourceType": "Patient"})
        for text in ("falls", "frailty", "dementia"):
            condition = {
                "resourceType": "Condition",
                "subject": {"reference": f"Patient/{patient}"},
                "code": {"text": text},
            }
            _post(api, author, condition)

        found = _timed(api, f"/fhir/Condition?subject=Patient/{patient}", author)
        withheld = _timed(api, f"/fhir/Condition?subject=Patient/{patient}", stranger)
        none_there = _timed(api, f"/fhir/Condition?subject=Patient/{uuid.uuid4()}", stranger)
        history = _timed(api, "/fhir/Condition/_history", stranger)

    assert found[0] == 200 and len(found[2]["entry"]) == 3 and found[1] < FLOOR_MS / 1000
    for status, elapsed, page in (withheld, none_there, history):
        assert status == 200 and "entry" not in page
        assert elapsed >= FLOOR_MS / 1000


def test_a_batch_with_an_entry_not_found_waits_out_the_floor(store: Store) -> None:
    author, stranger = _home_and_hospital(store)
    with make_client(store, token=None, not_found_floor_ms=FLOOR_MS) as api:
        patient = _post(api, author, {"resourceType": "Patient"})

        def batch(token: str, path: str) -> tuple[list[str], float]:
            body = {
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [{"request": {"method": "GET", "url": path}}],
            }
            status, elapsed, answer = _timed(api, "/fhir", token, body)
            assert status == 200
            return [e["response"]["status"][:3] for e in answer["entry"]], elapsed

        shown = batch(author, f"Patient/{patient}")
        hidden = batch(stranger, f"Patient/{patient}")
        absent = batch(stranger, f"Patient/{uuid.uuid4()}")

    assert shown[0] == ["200"] and shown[1] < FLOOR_MS / 1000
    for statuses, elapsed in (hidden, absent):
        assert statuses == ["404"] and elapsed >= FLOOR_MS / 1000
