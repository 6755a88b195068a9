"""Writes reveal nothing: aimed at a record the requester may not see, every
write answers exactly as it does for an id where nothing stands (PRODUCT.md
section 4, "Nothing leaks"), and changes nothing. Probed as an outsider
would, on SQLite and PostgreSQL: the same status, the same headers but for
the request id, the same body once the id asked for is made neutral."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import httpx

from tests.http.test_consent import HOSPITAL, World

_NEUTRAL_HEADERS = ("x-request-id", "date")


def _shape(answer: httpx.Response, asked_id: str) -> tuple[int, dict[str, str], str]:
    """What an outsider can compare: status, headers and body, with the id
    it asked about (and the gateway's own ids and instants) made neutral."""
    headers = {
        name: value.replace(asked_id, "X")
        for name, value in answer.headers.items()
        if name not in _NEUTRAL_HEADERS and name != "content-length"
    }
    body = answer.text.replace(asked_id, "X")
    body = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)", "<instant>", body)
    return answer.status_code, headers, body


def _alike(
    world: World, write: Callable[[str], httpx.Response], hidden_id: str, missing_id: str
) -> httpx.Response:
    hidden = write(hidden_id)
    missing = write(missing_id)
    assert _shape(hidden, hidden_id) == _shape(missing, missing_id)
    return hidden


def _hospital(world: World) -> dict[str, str]:
    return world.headers("hospital")


def _condition(world: World, res_id: str, **changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": res_id,
        "subject": world.subject,
        "code": {"text": "Asthma"},
        "onsetDateTime": "2020-01-01",
    }
    return {**resource, **changes}


def _unchanged(world: World) -> None:
    kept = world.get("home", f"/fhir/Condition/{world.asthma}").json()
    assert kept["meta"]["versionId"] == "1"
    assert kept["onsetDateTime"] == "2024-01-10"


def test_update_of_a_hidden_record_answers_as_for_a_missing_one(world: World) -> None:
    """``PUT [type]/[id]``, with and without ``If-Match``: the care home's
    Condition is hidden from the hospital (no relationship)."""
    answer = _alike(
        world,
        lambda res_id: world.api.put(
            f"/fhir/Condition/{res_id}", json=_condition(world, res_id), headers=_hospital(world)
        ),
        world.asthma,
        "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    )
    assert answer.status_code == 404
    _alike(
        world,
        lambda res_id: world.api.put(
            f"/fhir/Condition/{res_id}",
            json=_condition(world, res_id),
            headers={**_hospital(world), "If-Match": 'W/"1"'},
        ),
        world.asthma,
        "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
    )
    _unchanged(world)
    # Nothing was created at the missing id either.
    assert (
        world.get("home", "/fhir/Condition/0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").status_code == 404
    )


def test_an_organisation_creates_at_its_own_ids_only(world: World) -> None:
    """Update as create is for ids of the organisation's own; anywhere else
    the refusal is the one a hidden record gets."""
    own = f"{HOSPITAL}-visit-7"
    created = world.api.put(
        f"/fhir/Condition/{own}", json=_condition(world, own), headers=_hospital(world)
    )
    assert created.status_code == 201
    assert world.get("hospital", f"/fhir/Condition/{own}").status_code == 200
    foreign = "A81001-visit-7"  # the GP's namespace: not the hospital's to create in
    refused = world.api.put(
        f"/fhir/Condition/{foreign}", json=_condition(world, foreign), headers=_hospital(world)
    )
    hidden = world.api.put(
        f"/fhir/Condition/{world.asthma}",
        json=_condition(world, world.asthma),
        headers=_hospital(world),
    )
    assert _shape(refused, foreign) == _shape(hidden, world.asthma)


def test_delete_of_a_hidden_record_answers_as_for_a_missing_one(world: World) -> None:
    answer = _alike(
        world,
        lambda res_id: world.api.delete(f"/fhir/Condition/{res_id}", headers=_hospital(world)),
        world.asthma,
        "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    )
    assert answer.status_code == 204 and "etag" not in answer.headers
    _unchanged(world)


def test_conditional_update_naming_a_hidden_id_answers_as_for_a_missing_one(
    world: World,
) -> None:
    """``PUT [type]?criteria`` that matches nothing, with the body naming an
    id: as a ``PUT`` to that id."""
    _alike(
        world,
        lambda res_id: world.api.put(
            "/fhir/Condition?code=nothing-matches",
            json=_condition(world, res_id),
            headers=_hospital(world),
        ),
        world.asthma,
        "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    )
    _unchanged(world)


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def test_bundle_entries_aimed_at_hidden_records_answer_as_for_missing_ones(
    world: World,
) -> None:
    """Batch and transaction entries: PUT, DELETE and GET, nested in one
    Bundle, answer alike for hidden and missing ids."""

    def batch(res_id: str) -> httpx.Response:
        return world.api.post(
            "/fhir",
            json=_bundle(
                "batch",
                {
                    "resource": _condition(world, res_id),
                    "request": {"method": "PUT", "url": f"Condition/{res_id}"},
                },
                {"request": {"method": "DELETE", "url": f"Condition/{res_id}"}},
                {"request": {"method": "GET", "url": f"Condition/{res_id}"}},
                {"request": {"method": "GET", "url": f"Condition/{res_id}/_history/1"}},
            ),
            headers=_hospital(world),
        )

    answer = _alike(world, batch, world.asthma, "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    statuses = [e["response"]["status"] for e in answer.json()["entry"]]
    assert [s.split()[0] for s in statuses] == ["404", "204", "404", "404"]

    def transaction(res_id: str) -> httpx.Response:
        return world.api.post(
            "/fhir",
            json=_bundle(
                "transaction",
                {
                    "resource": _condition(world, res_id),
                    "request": {"method": "PUT", "url": f"Condition/{res_id}"},
                },
            ),
            headers=_hospital(world),
        )

    assert (
        _alike(world, transaction, world.asthma, "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").status_code
        == 404
    )

    def deleting(res_id: str) -> httpx.Response:
        return world.api.post(
            "/fhir",
            json=_bundle(
                "transaction", {"request": {"method": "DELETE", "url": f"Condition/{res_id}"}}
            ),
            headers=_hospital(world),
        )

    assert (
        _alike(world, deleting, world.asthma, "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").status_code
        == 200
    )
    _unchanged(world)


def test_a_deletion_of_a_hidden_record_is_not_revived(world: World) -> None:
    """A record the home deleted, which the hospital never could see, is
    "not known" to the hospital's PUT, as a missing id is; the home, which
    saw it, may write it again."""
    url = f"/fhir/Condition/{world.asthma}"
    assert world.api.delete(url, headers=world.headers("home")).status_code == 204
    _alike(
        world,
        lambda res_id: world.api.put(
            f"/fhir/Condition/{res_id}", json=_condition(world, res_id), headers=_hospital(world)
        ),
        world.asthma,
        "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    )
    revived = world.api.put(
        url, json=_condition(world, world.asthma), headers=world.headers("home")
    )
    assert revived.status_code == 201


def test_patch_of_a_hidden_record_answers_as_for_a_missing_one(world: World) -> None:
    """``PATCH [type]/[id]``, with and without ``If-Match``, and with a
    ``test`` that would tell a stored value if it were applied."""
    for patch, extra in (
        ([{"op": "replace", "path": "/onsetDateTime", "value": "2019-01-01"}], {}),
        ([{"op": "test", "path": "/onsetDateTime", "value": "2024-01-10"}], {}),
        ([{"op": "remove", "path": "/onsetDateTime"}], {"If-Match": 'W/"1"'}),
    ):
        answer = _alike(
            world,
            lambda res_id, patch=patch, extra=extra: world.api.patch(  # type: ignore[misc]
                f"/fhir/Condition/{res_id}",
                content=json.dumps(patch),
                headers={
                    **_hospital(world),
                    **extra,
                    "Content-Type": "application/json-patch+json",
                },
            ),
            world.asthma,
            "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        )
        assert answer.status_code == 404
    _unchanged(world)


def test_conditional_patch_matching_only_a_hidden_record_answers_as_matching_nothing(
    world: World,
) -> None:
    patch = json.dumps([{"op": "replace", "path": "/onsetDateTime", "value": "2019-01-01"}])
    headers = {**_hospital(world), "Content-Type": "application/json-patch+json"}
    hidden = world.api.patch("/fhir/Condition?code=195967001", content=patch, headers=headers)
    missing = world.api.patch("/fhir/Condition?code=100000009", content=patch, headers=headers)
    assert hidden.status_code == missing.status_code == 404
    assert _shape(hidden, "195967001") == _shape(missing, "100000009")
    _unchanged(world)


def test_a_fhirpath_patch_of_a_hidden_record_answers_as_for_a_missing_one(world: World) -> None:
    patch = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "Condition.onset"},
                    {"name": "value", "valueDateTime": "2019-01-01"},
                ],
            }
        ],
    }
    answer = _alike(
        world,
        lambda res_id: world.api.patch(
            f"/fhir/Condition/{res_id}", json=patch, headers=_hospital(world)
        ),
        world.asthma,
        "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    )
    assert answer.status_code == 404
    _unchanged(world)


def test_a_patch_entry_of_a_batch_answers_alike_for_hidden_and_missing(world: World) -> None:
    data = base64.b64encode(
        json.dumps([{"op": "test", "path": "/onsetDateTime", "value": "2024-01-10"}]).encode()
    ).decode()

    def batch(res_id: str) -> httpx.Response:
        return world.api.post(
            "/fhir",
            json={
                "resourceType": "Bundle",
                "type": "batch",
                "entry": [
                    {
                        "resource": {
                            "resourceType": "Binary",
                            "contentType": "application/json-patch+json",
                            "data": data,
                        },
                        "request": {"method": "PATCH", "url": f"Condition/{res_id}"},
                    }
                ],
            },
            headers=_hospital(world),
        )

    answer = _alike(world, batch, world.asthma, "0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
    assert answer.json()["entry"][0]["response"]["status"].startswith("404")
    _unchanged(world)
