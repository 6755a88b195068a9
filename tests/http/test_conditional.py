"""Conditional create (If-None-Exist) and conditional update:
https://hl7.org/fhir/R4/http.html#ccreate and #cond-update"""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.http.test_crud import NHS, patient

IF_NONE_EXIST = {"If-None-Exist": f"identifier={NHS}|9990000042"}


def test_conditional_create_creates_when_nothing_matches(client: TestClient) -> None:
    response = client.post("/fhir/Patient", json=patient(), headers=IF_NONE_EXIST)
    assert response.status_code == 201


def test_conditional_create_returns_the_match_and_writes_nothing(client: TestClient) -> None:
    first = client.post("/fhir/Patient", json=patient(), headers=IF_NONE_EXIST).json()
    second = client.post("/fhir/Patient", json=patient(gender="male"), headers=IF_NONE_EXIST)
    assert second.status_code == 200
    assert second.json()["id"] == first["id"]
    assert "gender" not in second.json()
    assert client.get("/fhir/Patient/_history").json()["entry"].__len__() == 1


def test_conditional_create_with_several_matches_is_412(client: TestClient) -> None:
    client.post("/fhir/Patient", json=patient())
    client.post("/fhir/Patient", json=patient())
    response = client.post("/fhir/Patient", json=patient(), headers=IF_NONE_EXIST)
    assert response.status_code == 412


def test_conditional_create_with_an_unknown_parameter_is_400(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient", json=patient(), headers={"If-None-Exist": "shoe-size=9"}
    )
    assert response.status_code == 400
    assert "shoe-size" in response.json()["issue"][0]["diagnostics"]


def test_conditional_create_ignores_deleted_matches(client: TestClient) -> None:
    old = client.post("/fhir/Patient", json=patient()).json()["id"]
    client.delete(f"/fhir/Patient/{old}")
    response = client.post("/fhir/Patient", json=patient(), headers=IF_NONE_EXIST)
    assert response.status_code == 201 and response.json()["id"] != old


def test_conditional_update_creates_when_nothing_matches(client: TestClient) -> None:
    response = client.put(f"/fhir/Patient?identifier={NHS}|9990000042", json=patient())
    assert response.status_code == 201


def test_conditional_update_updates_the_single_match(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    response = client.put(
        f"/fhir/Patient?identifier={NHS}|9990000042", json=patient(gender="female")
    )
    assert response.status_code == 200
    assert response.json()["id"] == pid and response.json()["meta"]["versionId"] == "2"


def test_conditional_update_with_a_different_body_id_is_400(client: TestClient) -> None:
    client.post("/fhir/Patient", json=patient())
    response = client.put(f"/fhir/Patient?identifier={NHS}|9990000042", json=patient(id="other"))
    assert response.status_code == 400


def test_conditional_update_with_several_matches_is_412(client: TestClient) -> None:
    client.post("/fhir/Patient", json=patient())
    client.post("/fhir/Patient", json=patient())
    response = client.put(f"/fhir/Patient?identifier={NHS}|9990000042", json=patient())
    assert response.status_code == 412


def test_put_on_a_type_without_criteria_is_400(client: TestClient) -> None:
    assert client.put("/fhir/Patient", json=patient()).status_code == 400


def test_conditional_update_by_id(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    response = client.put(f"/fhir/Patient?_id={pid}", json=patient(active=True))
    assert response.status_code == 200 and response.json()["id"] == pid


def test_conditional_create_takes_any_search_parameter(client: TestClient) -> None:
    """Criteria are run by the search engine: any parameter, chains included."""
    first = client.post(
        "/fhir/Patient",
        json=patient(),
        headers={"If-None-Exist": "family=okafor&birthdate=1941-03-02"},
    )
    assert first.status_code == 201
    again = client.post(
        "/fhir/Patient",
        json=patient(),
        headers={"If-None-Exist": "family=okafor&birthdate=1941-03-02"},
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


def test_result_parameters_are_not_criteria(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient", json=patient(), headers={"If-None-Exist": "identifier=x&_count=1"}
    )
    assert response.status_code == 400
    assert "_count" in response.json()["issue"][0]["diagnostics"]
