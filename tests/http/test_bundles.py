"""batch and transaction Bundles: https://hl7.org/fhir/R4/http.html#transaction"""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from tests.conftest import BASE_URL
from tests.http.test_crud import NHS, patient


def tx(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def observation(subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "364075005"}]},
        "subject": {"reference": subject},
    }


def test_transaction_resolves_urn_uuid_references(client: TestClient) -> None:
    urn = "urn:uuid:0e2b4c1a-8f5e-4b7a-9d59-0a4f2c0d8e11"
    response = client.post("/fhir", json=tx(post(observation(urn)), post(patient(), urn)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    obs_entry, patient_entry = body["entry"]
    assert patient_entry["response"]["status"] == "201 Created"
    pid = patient_entry["resource"]["id"]
    assert obs_entry["resource"]["subject"]["reference"] == f"Patient/{pid}"
    assert patient_entry["response"]["location"] == f"{BASE_URL}/Patient/{pid}/_history/1"
    stored = client.get(obs_entry["response"]["location"].removeprefix("http://testserver"))
    assert stored.json()["subject"]["reference"] == f"Patient/{pid}"


def test_transaction_is_all_or_nothing(client: TestClient) -> None:
    """One invalid entry: 400 naming the entry, and none of the others stored."""
    bad = {"resourceType": "Observation", "status": "final"}  # code is required
    response = client.post("/fhir", json=tx(post(patient()), post(bad)))
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["expression"][0].startswith("Bundle.entry[1].resource.")
    assert "entry 1" in issue["details"]["text"]
    assert "entry" not in client.get("/fhir/_history").json()


def test_transaction_rolls_back_when_a_late_entry_fails(client: TestClient) -> None:
    """A failure found while writing (a stale If-Match) undoes earlier writes."""
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    response = client.post(
        "/fhir",
        json=tx(
            post(patient(gender="male")),
            {
                "resource": patient(id=pid, active=False),
                "request": {"method": "PUT", "url": f"Patient/{pid}", "ifMatch": 'W/"9"'},
            },
        ),
    )
    assert response.status_code == 412
    assert len(client.get("/fhir/Patient/_history").json()["entry"]) == 1


def test_transaction_processes_deletes_posts_puts_then_gets(client: TestClient) -> None:
    """Whatever the Bundle order, the GET sees the PUT and the DELETE ran first."""
    doomed = client.post("/fhir/Patient", json=patient()).json()["id"]
    kept = client.post("/fhir/Patient", json=patient()).json()["id"]
    response = client.post(
        "/fhir",
        json=tx(
            {"request": {"method": "GET", "url": f"Patient/{kept}"}},
            {
                "resource": patient(id=kept, gender="other"),
                "request": {"method": "PUT", "url": f"Patient/{kept}"},
            },
            {"request": {"method": "DELETE", "url": f"Patient/{doomed}"}},
        ),
    )
    assert response.status_code == 200, response.text
    read, put, delete = response.json()["entry"]
    assert read["resource"]["gender"] == "other"
    assert put["response"]["status"] == "200 OK"
    assert delete["response"]["status"] == "204 No Content"
    assert client.get(f"/fhir/Patient/{doomed}").status_code == 410


def test_transaction_honours_conditional_create(client: TestClient) -> None:
    existing = client.post("/fhir/Patient", json=patient()).json()["id"]
    urn = "urn:uuid:7d0b8f30-7b57-4d3a-8d1e-3f6a8b9d2c10"
    response = client.post(
        "/fhir",
        json=tx(
            post(patient(), urn, ifNoneExist=f"identifier={NHS}|9990000042"),
            post(observation(urn)),
        ),
    )
    assert response.status_code == 200, response.text
    matched, obs = response.json()["entry"]
    assert matched["response"]["status"] == "200 OK"
    assert obs["resource"]["subject"]["reference"] == f"Patient/{existing}"
    assert client.get(f"/fhir/Patient/{existing}/_history").json()["total"] == 1


def test_transaction_resolves_conditional_references(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    response = client.post(
        "/fhir", json=tx(post(observation(f"Patient?identifier={NHS}|9990000042")))
    )
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    unmatched = client.post("/fhir", json=tx(post(observation("Patient?identifier=nobody"))))
    assert unmatched.status_code == 412


def test_transaction_with_an_unresolvable_urn_is_400(client: TestClient) -> None:
    response = client.post("/fhir", json=tx(post(observation("urn:uuid:nowhere"))))
    assert response.status_code == 400


def test_transaction_changing_one_resource_twice_is_400(client: TestClient) -> None:
    entry = {"resource": patient(id="x"), "request": {"method": "PUT", "url": "Patient/x"}}
    response = client.post("/fhir", json=tx(entry, entry))
    assert response.status_code == 400
    assert client.get("/fhir/Patient/x").status_code == 404


def test_transaction_honours_prefer_minimal(client: TestClient) -> None:
    response = client.post("/fhir", json=tx(post(patient())), headers={"Prefer": "return=minimal"})
    entry = response.json()["entry"][0]
    assert "resource" not in entry and entry["response"]["location"]


def test_batch_entries_succeed_or_fail_on_their_own(client: TestClient) -> None:
    response = client.post(
        "/fhir",
        json=tx(
            post(patient()),
            post({"resourceType": "Observation", "status": "final"}),
            {"request": {"method": "GET", "url": "Patient/missing"}},
            {"request": {"method": "PATCH", "url": "Patient/x"}},
            kind="batch",
        ),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created", "400 Bad Request", "404 Not Found", "400 Bad Request"]
    assert body["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert len(client.get("/fhir/Patient/_history").json()["entry"]) == 1


def test_batch_read_and_vread(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    response = client.post(
        "/fhir",
        json=tx(
            {"request": {"method": "GET", "url": f"Patient/{pid}"}},
            {"request": {"method": "GET", "url": f"{BASE_URL}/Patient/{pid}/_history/1"}},
            kind="batch",
        ),
    )
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [pid, pid]


def test_posting_something_other_than_a_batch_or_transaction_is_400(client: TestClient) -> None:
    assert client.post("/fhir", json=patient()).status_code == 400
    assert client.post("/fhir", json=tx(kind="collection")).status_code == 400
    assert client.post("/fhir", json=[1, 2]).status_code == 400
    entries_not_a_list = {"resourceType": "Bundle", "type": "batch", "entry": {}}
    assert client.post("/fhir", json=entries_not_a_list).status_code == 400


def test_an_empty_transaction_answers_an_empty_response(client: TestClient) -> None:
    response = client.post("/fhir", json=tx())
    assert response.status_code == 200
    assert response.json()["type"] == "transaction-response"


def test_a_request_method_that_is_an_array_or_object_is_refused(client: TestClient) -> None:
    """Fuzzing found it: an entry's request.method of [] or {} raised
    TypeError (unhashable) where the method is looked up: a 500."""
    for kind in ("transaction", "batch"):
        for method in ([], {}, ["POST"], 1, None):
            entry = {"resource": patient(), "request": {"method": method, "url": "Patient"}}
            response = client.post("/fhir", json=tx(entry, kind=kind))
            if kind == "batch":  # the entry fails on its own
                assert response.status_code == 200, (kind, method, response.text)
                answer = response.json()["entry"][0]["response"]
                assert answer["status"].startswith("400"), (method, answer)
                issue = answer["outcome"]["issue"][0]
            else:
                assert response.status_code == 400, (kind, method, response.text)
                issue = response.json()["issue"][0]
            assert issue["expression"] == ["Bundle.entry[0].request.method"]


def test_an_if_match_that_is_not_a_string_is_refused(client: TestClient) -> None:
    """Fuzzing found it: an entry's request.ifMatch of true, 1, [] or {} was an
    AttributeError where it is read as an ETag: a 500."""
    created = client.post("/fhir/Patient", json=patient()).json()
    for if_match in (True, 1, [], {}, 1e300):
        entry = {
            "resource": {**created},
            "request": {"method": "PUT", "url": f"Patient/{created['id']}", "ifMatch": if_match},
        }
        response = client.post("/fhir", json=tx(entry))
        assert response.status_code == 400, (if_match, response.text)
        assert "is not a version ETag" in response.json()["issue"][0]["diagnostics"]
        batch = client.post("/fhir", json=tx(entry, kind="batch"))
        assert batch.json()["entry"][0]["response"]["status"].startswith("400"), batch.text


def test_what_a_delete_or_read_entry_carries_besides_is_not_read(client: TestClient) -> None:
    """Fuzzing found it: a DELETE entry with ``"resource": false`` was prepared
    for writing as if it were one, an AttributeError: a 500."""
    created = client.post("/fhir/Patient", json=patient()).json()
    url = f"Patient/{created['id']}"
    for method in ("GET", "DELETE"):
        for carried in (False, 1, [], "x", {"resourceType": "Patient", "id": "other"}):
            entry = {"request": {"method": method, "url": url}, "resource": carried}
            response = client.post("/fhir", json=tx(entry, kind="batch"))
            assert response.status_code == 200, (method, carried, response.text)
            status = response.json()["entry"][0]["response"]["status"]
            assert status.startswith(("200", "204", "404", "410")), (method, carried, status)
