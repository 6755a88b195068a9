"""patch: https://hl7.org/fhir/R4/http.html#patch, as JSON Patch (RFC 6902),
on an instance and conditionally, decided and recorded as an update is."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import jsonpatch
from starlette.testclient import TestClient

from gateway.store import Store
from tests.conftest import access_token, make_client
from tests.http.test_audit import entries

PATCH = "application/json-patch+json"
NHS = "https://fhir.nhs.uk/Id/nhs-number"


def _patient(client: TestClient) -> dict[str, Any]:
    body = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS, "value": "9990000042"}],
        "name": [{"family": "Okafor", "given": ["Ada"]}],
        "birthDate": "1941-03-02",
        "gender": "female",
    }
    created: dict[str, Any] = client.post("/fhir/Patient", json=body).json()
    return created


def _patch(client: TestClient, url: str, operations: Any, **headers: str) -> httpx.Response:
    return client.patch(
        url, content=json.dumps(operations), headers={"Content-Type": PATCH, **headers}
    )


def test_a_patch_changes_what_it_names_and_writes_a_new_version(client: TestClient) -> None:
    created = _patient(client)
    url = f"/fhir/Patient/{created['id']}"
    answer = _patch(
        client,
        url,
        [
            {"op": "test", "path": "/birthDate", "value": "1941-03-02"},
            {"op": "replace", "path": "/name/0/family", "value": "Okafor-Ross"},
            {"op": "add", "path": "/name/0/given/-", "value": "Joan"},
            {"op": "remove", "path": "/gender"},
        ],
        **{"If-Match": 'W/"1"'},
    )
    assert answer.status_code == 200, answer.text
    patched = answer.json()
    assert patched["name"] == [{"family": "Okafor-Ross", "given": ["Ada", "Joan"]}]
    assert "gender" not in patched and patched["birthDate"] == "1941-03-02"
    assert patched["meta"]["versionId"] == "2" and answer.headers["etag"] == 'W/"2"'
    assert client.get(url).json() == patched
    history = client.get(f"{url}/_history").json()
    assert history["entry"][0]["request"] == {"method": "PATCH", "url": f"Patient/{created['id']}"}
    provenance = client.get(f"/fhir/Provenance?target=Patient/{created['id']}").json()
    activities = {
        e["resource"]["activity"]["coding"][0]["code"] for e in provenance.get("entry", [])
    }
    assert activities == {"CREATE", "UPDATE"}


def test_a_patch_is_audited_as_an_update(store: Store, client: TestClient) -> None:
    created = _patient(client)
    answer = _patch(
        client,
        f"/fhir/Patient/{created['id']}",
        [{"op": "replace", "path": "/gender", "value": "other"}],
    )
    assert answer.status_code == 200
    last = entries(store)[-1]
    assert last["request_id"] == answer.headers["x-request-id"]
    assert (last["subtype"], last["event"]["action"], last["outcome"]) == ("patch", "U", "0")


def test_a_stale_client_learns_it_before_its_patch_is_tried(client: TestClient) -> None:
    created = _patient(client)
    url = f"/fhir/Patient/{created['id']}"
    assert _patch(client, url, [{"op": "replace", "path": "/gender", "value": "male"}]).is_success
    stale = _patch(
        client,
        url,
        [{"op": "test", "path": "/gender", "value": "female"}],
        **{"If-Match": 'W/"1"'},
    )
    assert stale.status_code == 412
    assert "version 1" in stale.json()["issue"][0]["diagnostics"]


def test_a_patch_that_cannot_be_applied_is_422_and_changes_nothing(client: TestClient) -> None:
    created = _patient(client)
    url = f"/fhir/Patient/{created['id']}"
    for operations, says in (
        ([{"op": "test", "path": "/gender", "value": "male"}], "does not hold that value"),
        ([{"op": "replace", "path": "/deceasedBoolean", "value": True}], "cannot be applied"),
        ([{"op": "remove", "path": "/name/3"}], "cannot be applied"),
    ):
        answer = _patch(client, url, operations)
        assert answer.status_code == 422, answer.text
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert says in outcome["issue"][0]["diagnostics"]
    assert client.get(url).json()["meta"]["versionId"] == "1"


def test_what_is_not_a_json_patch_is_refused_with_the_reason(client: TestClient) -> None:
    created = _patient(client)
    url = f"/fhir/Patient/{created['id']}"
    for operations, status, says in (
        ({"op": "remove", "path": "/gender"}, 400, "non-empty array"),
        ([], 400, "non-empty array"),
        ([{"op": "delete", "path": "/gender"}], 400, "op must be one of"),
        # Found by fuzzing: an op that is an array or object was a TypeError, a 500.
        ([{"op": [], "path": {}}], 400, "op must be one of"),
        ([{"op": {"a": 1}, "path": "/gender"}], 400, "op must be one of"),
        ([{"op": "add", "path": "/gender"}], 400, "add needs 'value'"),
        ([{"op": "remove", "path": "gender"}], 400, "is not a JSON Pointer"),
        ([{"op": "replace", "path": "", "value": {}}], 400, "not the whole resource"),
    ):
        answer = _patch(client, url, operations)
        assert answer.status_code == status, (operations, answer.text)
        assert says in answer.json()["issue"][0]["diagnostics"], answer.text
    wrong_type = client.patch(url, content=b"gender=male", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    assert PATCH in wrong_type.json()["issue"][0]["diagnostics"]
    # FHIR JSON is a FHIRPath Patch, which is a Parameters resource.
    not_parameters = client.patch(url, json=[{"op": "remove", "path": "/gender"}])
    assert not_parameters.status_code == 400
    assert "Parameters" in not_parameters.json()["issue"][0]["diagnostics"]
    broken = client.patch(url, content=b"[{", headers={"Content-Type": PATCH})
    assert broken.status_code == 400
    assert client.get(url).json()["meta"]["versionId"] == "1"


def test_what_a_patch_makes_is_checked_as_an_update_of_it_would_be(client: TestClient) -> None:
    created = _patient(client)
    url = f"/fhir/Patient/{created['id']}"
    for operations, says in (
        ([{"op": "replace", "path": "/gender", "value": "mail"}], "Patient.gender"),
        ([{"op": "add", "path": "/colour", "value": "blue"}], "Patient.colour"),
        ([{"op": "replace", "path": "/id", "value": "another"}], "id"),
        ([{"op": "replace", "path": "/resourceType", "value": "Person"}], "resourceType"),
    ):
        answer = _patch(client, url, operations)
        assert answer.status_code in (400, 422), (operations, answer.text)
        assert says in json.dumps(answer.json()), answer.text
        # The same answer as a PUT of what the patch made.
        made = jsonpatch.apply_patch(client.get(url).json(), operations)
        put = client.put(url, json=made)
        assert (put.status_code, put.json()["issue"]) == (
            answer.status_code,
            answer.json()["issue"],
        )
    assert client.get(url).json()["meta"]["versionId"] == "1"


def test_a_patch_never_creates(client: TestClient) -> None:
    answer = _patch(
        client,
        "/fhir/Patient/0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        [{"op": "add", "path": "/gender", "value": "female"}],
    )
    assert answer.status_code == 404
    assert client.get("/fhir/Patient/0192a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").status_code == 404


def test_a_conditional_patch_changes_its_one_match(client: TestClient) -> None:
    created = _patient(client)
    answer = _patch(
        client,
        f"/fhir/Patient?identifier={NHS}|9990000042",
        [{"op": "replace", "path": "/gender", "value": "unknown"}],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == created["id"] and answer.json()["gender"] == "unknown"
    _patient(client)  # a second match
    two = _patch(
        client,
        f"/fhir/Patient?identifier={NHS}|9990000042",
        [{"op": "replace", "path": "/gender", "value": "male"}],
    )
    assert two.status_code == 412
    none = _patch(
        client,
        "/fhir/Patient?family=Nobody",
        [{"op": "replace", "path": "/gender", "value": "male"}],
    )
    assert none.status_code == 404
    bare = _patch(client, "/fhir/Patient", [{"op": "replace", "path": "/gender", "value": "male"}])
    assert bare.status_code == 400


def test_patching_needs_leave_to_read_as_well_as_to_update(store: Store) -> None:
    with make_client(store) as writer:
        created = _patient(writer)
        capability = writer.get("/fhir/metadata").json()
    patient = next(r for r in capability["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"code": "patch"} in patient["interaction"]
    token = access_token(store, client_id="updater", scopes="system/Patient.cu")
    with make_client(store, token=token) as update_only:
        answer = _patch(
            update_only,
            f"/fhir/Patient/{created['id']}",
            [{"op": "test", "path": "/birthDate", "value": "1941-03-02"}],
        )
    assert answer.status_code == 403


# -- FHIRPath Patch --------------------------------------------------------------------


def _operation(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    found = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}]
    for name, value in parts.items():
        found.append({"name": name, **value})
    return {"name": "operation", "part": found}


def _fhirpath_patch(client: TestClient, url: str, *operations: dict[str, Any]) -> httpx.Response:
    return client.patch(url, json={"resourceType": "Parameters", "parameter": list(operations)})


def test_a_fhirpath_patch_adds_inserts_replaces_moves_and_deletes(client: TestClient) -> None:
    created = _patient(client)
    url = f"/fhir/Patient/{created['id']}"
    answer = _fhirpath_patch(
        client,
        url,
        _operation("replace", "Patient.birthDate", value={"valueDate": "1941-03-03"}),
        _operation(
            "add", "Patient", name={"valueString": "deceased"}, value={"valueBoolean": False}
        ),
        _operation(
            "add",
            "Patient",
            name={"valueString": "telecom"},
            value={"valueContactPoint": {"system": "phone", "value": "020 7946 0000"}},
        ),
        _operation(
            "insert",
            "Patient.name[0].given",
            index={"valueInteger": 0},
            value={"valueString": "Joan"},
        ),
        _operation(
            "move",
            "Patient.name[0].given",
            source={"valueInteger": 1},
            destination={"valueInteger": 0},
        ),
        _operation("delete", "Patient.gender"),
        _operation("delete", "Patient.identifier.where(system='nowhere')"),
    )
    assert answer.status_code == 200, answer.text
    patched = answer.json()
    assert patched["birthDate"] == "1941-03-03"
    assert patched["deceasedBoolean"] is False
    assert patched["telecom"] == [{"system": "phone", "value": "020 7946 0000"}]
    assert patched["name"][0]["given"] == ["Ada", "Joan"]
    assert "gender" not in patched
    assert patched["meta"]["versionId"] == "2"


def test_a_fhirpath_patch_that_does_not_apply_is_422_or_400(client: TestClient) -> None:
    created = _patient(client)
    url = f"/fhir/Patient/{created['id']}"
    not_one = _fhirpath_patch(
        client,
        url,
        _operation("replace", "Patient.name | Patient.identifier", value={"valueString": "X"}),
    )
    assert not_one.status_code == 422, not_one.text
    twice = _fhirpath_patch(
        client,
        url,
        _operation(
            "add", "Patient", name={"valueString": "birthDate"}, value={"valueDate": "1950"}
        ),
    )
    assert twice.status_code == 422 and "does not repeat" in twice.text
    bad_path = _fhirpath_patch(client, url, _operation("delete", "Patient.name.where("))
    assert bad_path.status_code == 400 and "not FHIRPath" in bad_path.text
    bad_type = _fhirpath_patch(client, url, _operation("merge", "Patient.name"))
    assert bad_type.status_code == 400
    invalid = _fhirpath_patch(
        client, url, _operation("replace", "Patient.gender", value={"valueCode": "mail"})
    )
    assert invalid.status_code in (400, 422) and "Patient.gender" in invalid.text
    assert client.get(url).json()["meta"]["versionId"] == "1"


# -- in a batch or a transaction ------------------------------------------------------


def _binary(operations: list[dict[str, Any]]) -> dict[str, Any]:
    data = base64.b64encode(json.dumps(operations).encode()).decode()
    return {"resourceType": "Binary", "contentType": PATCH, "data": data}


def test_patches_in_a_transaction_are_all_or_nothing(client: TestClient) -> None:
    first, second = _patient(client), _patient(client)
    fhirpath_patch = {
        "resourceType": "Parameters",
        "parameter": [
            _operation("replace", "Patient.birthDate", value={"valueDate": "1950-01-01"})
        ],
    }
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": _binary([{"op": "replace", "path": "/gender", "value": "other"}]),
                "request": {"method": "PATCH", "url": f"Patient/{first['id']}", "ifMatch": 'W/"1"'},
            },
            {
                "resource": fhirpath_patch,
                "request": {"method": "PATCH", "url": f"Patient/{second['id']}"},
            },
        ],
    }
    answer = client.post("/fhir", json=transaction)
    assert answer.status_code == 200, answer.text
    assert [e["response"]["status"] for e in answer.json()["entry"]] == ["200 OK", "200 OK"]
    assert client.get(f"/fhir/Patient/{first['id']}").json()["gender"] == "other"
    assert client.get(f"/fhir/Patient/{second['id']}").json()["birthDate"] == "1950-01-01"
    # One that fails (a stale If-Match) undoes the other.
    transaction["entry"][1]["request"]["ifMatch"] = 'W/"1"'
    failed = client.post("/fhir", json=transaction)
    assert failed.status_code == 412
    assert client.get(f"/fhir/Patient/{first['id']}").json()["meta"]["versionId"] == "2"


def test_a_batch_answers_each_patch_and_refuses_what_is_not_one(client: TestClient) -> None:
    created = _patient(client)
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": _binary([{"op": "test", "path": "/gender", "value": "male"}]),
                "request": {"method": "PATCH", "url": f"Patient/{created['id']}"},
            },
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "PATCH", "url": f"Patient/{created['id']}"},
            },
            {
                "resource": _binary([{"op": "replace", "path": "/gender", "value": "male"}]),
                "request": {"method": "PATCH", "url": "Patient?family=Okafor"},
            },
            {
                "resource": _binary([{"op": "replace", "path": "/gender", "value": "male"}]),
                "request": {"method": "PATCH", "url": f"Patient/{created['id']}"},
            },
        ],
    }
    answer = client.post("/fhir", json=batch)
    assert answer.status_code == 200, answer.text
    statuses = [e["response"]["status"] for e in answer.json()["entry"]]
    assert statuses == ["422 Unprocessable Entity", "400 Bad Request", "400 Bad Request", "200 OK"]
    assert client.get(f"/fhir/Patient/{created['id']}").json()["gender"] == "male"
