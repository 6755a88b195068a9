"""GET /fhir/metadata: https://hl7.org/fhir/R4/http.html#capabilities"""

from __future__ import annotations

from starlette.testclient import TestClient

from conformance.registry import RESOURCES
from conformance.validation import validate_resource


def test_the_capability_statement_is_valid_fhir(client: TestClient) -> None:
    body = client.get("/fhir/metadata").json()
    assert body["resourceType"] == "CapabilityStatement"
    assert validate_resource(body, "CapabilityStatement") == []
    assert body["fhirVersion"] == "4.0.1"
    assert body["kind"] == "instance"
    assert body["implementation"]["url"] == "http://testserver/fhir"


def test_it_lists_every_type_in_scope_with_its_interactions(client: TestClient) -> None:
    rest = client.get("/fhir/metadata").json()["rest"][0]
    listed = {r["type"]: {i["code"] for i in r["interaction"]} for r in rest["resource"]}
    assert set(listed) == set(RESOURCES)
    assert listed["Patient"] >= {"read", "vread", "update", "delete", "create"}
    assert listed["AuditEvent"] == {
        "read",
        "vread",
        "history-instance",
        "history-type",
        "search-type",
    }
    assert "search-type" in listed["Patient"]
    assert {i["code"] for i in rest["interaction"]} == {
        "transaction",
        "batch",
        "history-system",
        "search-system",
    }


def test_what_it_advertises_is_what_the_server_does(client: TestClient) -> None:
    """For each type: an advertised create works; an unadvertised one is 405."""
    rest = client.get("/fhir/metadata").json()["rest"][0]
    for resource in rest["resource"]:
        codes = {i["code"] for i in resource["interaction"]}
        response = client.post(f"/fhir/{resource['type']}", json={"resourceType": resource["type"]})
        if "create" in codes:
            assert response.status_code != 405, resource["type"]
        else:
            assert response.status_code == 405, resource["type"]


def test_it_lists_each_types_search_parameters_with_their_types(client: TestClient) -> None:
    rest = client.get("/fhir/metadata").json()["rest"][0]
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    params = {p["name"]: p["type"] for p in patient["searchParam"]}
    assert params["identifier"] == "token"
    assert params["family"] == "string"
    assert params["birthdate"] == "date"
    assert params["general-practitioner"] == "reference"
    assert params["_id"] == "token" and params["_lastUpdated"] == "date"
    assert "Patient:general-practitioner" in patient["searchInclude"]


def test_the_base_answers_alike_with_and_without_its_slash(client: TestClient) -> None:
    bare, slashed = client.get("/fhir?_count=1"), client.get("/fhir/?_count=1")
    assert bare.status_code == slashed.status_code == 200
    assert bare.json()["type"] == slashed.json()["type"] == "searchset"
    assert bare.headers["content-type"] == slashed.headers["content-type"]
