"""create, read, vread, update, delete: https://hl7.org/fhir/R4/http.html"""

from __future__ import annotations

import json
from email.utils import parsedate_to_datetime
from pathlib import Path

from starlette.testclient import TestClient

from gateway.interactions import write
from tests.conftest import BASE_URL, TEST_ORG
from tests.support.acting import as_source

NHS = "https://fhir.nhs.uk/Id/nhs-number"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "r4"


def patient(**extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS, "value": "9990000042"}],
        "name": [{"family": "Okafor", "given": ["Ada"]}],
        "birthDate": "1941-03-02",
    }
    body.update(extra)
    return body


def test_create_assigns_an_id_and_answers_201_with_location_etag_last_modified(
    client: TestClient,
) -> None:
    response = client.post("/fhir/Patient", json=patient(id="client-chosen"))
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "client-chosen"  # create ignores a client id
    assert body["meta"]["versionId"] == "1"
    assert response.headers["location"] == f"{BASE_URL}/Patient/{body['id']}/_history/1"
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["content-type"].startswith("application/fhir+json")
    modified = parsedate_to_datetime(response.headers["last-modified"])
    assert body["meta"]["lastUpdated"].startswith(modified.strftime("%Y-%m-%dT%H:%M:%S"))
    assert list(body)[:3] == ["resourceType", "id", "meta"]


def test_read_returns_the_current_version(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=patient()).json()
    response = client.get(f"/fhir/Patient/{created['id']}")
    assert response.status_code == 200
    assert response.json() == created
    assert response.headers["etag"] == 'W/"1"'


def test_read_with_a_matching_if_none_match_is_304(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=patient()).json()
    response = client.get(f"/fhir/Patient/{created['id']}", headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 304 and response.content == b""


def test_read_of_an_unknown_resource_is_404(client: TestClient) -> None:
    response = client.get("/fhir/Patient/nobody")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.json()["issue"][0]["code"] == "not-found"


def test_update_creates_a_new_version_and_vread_reads_each(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=patient()).json()
    pid = created["id"]
    updated = client.put(f"/fhir/Patient/{pid}", json=patient(id=pid, gender="female"))
    assert updated.status_code == 200
    assert updated.json()["meta"]["versionId"] == "2"
    assert updated.headers["etag"] == 'W/"2"'
    assert updated.headers["location"].endswith(f"/Patient/{pid}/_history/2")
    assert "gender" not in client.get(f"/fhir/Patient/{pid}/_history/1").json()
    assert client.get(f"/fhir/Patient/{pid}/_history/2").json()["gender"] == "female"
    assert client.get(f"/fhir/Patient/{pid}/_history/3").status_code == 404
    assert client.get(f"/fhir/Patient/{pid}/_history/x").status_code == 404


def test_update_as_create_keeps_the_client_id_within_its_own_ids(client: TestClient) -> None:
    """A client creates with PUT at an id of its organisation's own
    (``<ODS code>-...``); anywhere else, what it may not see (nothing, or a
    record consent hides) is "not known" alike, and nothing is created."""
    own = f"{TEST_ORG}-care-home-42"
    response = client.put(f"/fhir/Patient/{own}", json=patient(id=own))
    assert response.status_code == 201
    assert response.json()["id"] == own
    assert client.get(f"/fhir/Patient/{own}").status_code == 200
    elsewhere = client.put("/fhir/Patient/care-home-42", json=patient(id="care-home-42"))
    assert elsewhere.status_code == 404
    assert elsewhere.json()["issue"][0]["code"] == "not-found"
    assert client.get("/fhir/Patient/care-home-42").status_code == 404


def test_update_whose_body_id_differs_from_the_url_is_400(client: TestClient) -> None:
    response = client.put("/fhir/Patient/a", json=patient(id="b"))
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Patient.id"]
    missing = client.put("/fhir/Patient/a", json=patient())
    assert missing.status_code == 400
    assert client.get("/fhir/Patient/a").status_code == 404


def test_if_match_with_a_stale_version_is_412_and_writes_nothing(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    first = client.put(
        f"/fhir/Patient/{pid}", json=patient(id=pid, active=True), headers={"If-Match": 'W/"1"'}
    )
    assert first.status_code == 200
    stale = client.put(
        f"/fhir/Patient/{pid}", json=patient(id=pid, active=False), headers={"If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["issue"][0]["code"] == "conflict"
    assert client.get(f"/fhir/Patient/{pid}").json()["active"] is True


def test_if_match_on_a_resource_that_does_not_exist_is_412(client: TestClient) -> None:
    new = f"{TEST_ORG}-new"
    response = client.put(f"/fhir/Patient/{new}", json=patient(id=new), headers={"If-Match": '"1"'})
    assert response.status_code == 412


def test_malformed_if_match_is_400(client: TestClient) -> None:
    response = client.put("/fhir/Patient/a", json=patient(id="a"), headers={"If-Match": "soon"})
    assert response.status_code == 400


def test_delete_then_read_is_410_and_history_keeps_the_versions(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    deleted = client.delete(f"/fhir/Patient/{pid}")
    assert deleted.status_code == 204
    assert deleted.headers["etag"] == 'W/"2"'
    gone = client.get(f"/fhir/Patient/{pid}")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert client.get(f"/fhir/Patient/{pid}/_history/1").status_code == 200
    assert client.get(f"/fhir/Patient/{pid}/_history/2").status_code == 410
    history = client.get(f"/fhir/Patient/{pid}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history["entry"][0]


def test_deleting_twice_or_deleting_nothing_succeeds_without_a_new_version(
    client: TestClient,
) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204
    again = client.delete(f"/fhir/Patient/{pid}")
    assert again.status_code == 204 and "etag" not in again.headers
    assert client.delete("/fhir/Patient/never-was").status_code == 204
    assert client.get(f"/fhir/Patient/{pid}/_history").json()["total"] == 2


def test_an_update_after_a_delete_revives_the_resource(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    client.delete(f"/fhir/Patient/{pid}")
    revived = client.put(f"/fhir/Patient/{pid}", json=patient(id=pid))
    assert revived.status_code == 201
    assert revived.json()["meta"]["versionId"] == "3"
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200


def test_prefer_return_minimal_sends_no_body(client: TestClient) -> None:
    response = client.post("/fhir/Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert response.status_code == 201
    assert response.content == b""
    assert response.headers["location"]


def test_prefer_return_operation_outcome(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "information"


def test_prefer_return_representation_is_the_default(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient", json=patient(), headers={"Prefer": "return=representation"}
    )
    assert response.json()["resourceType"] == "Patient"


def test_meta_from_the_client_is_kept_but_version_and_date_are_the_servers(
    client: TestClient,
) -> None:
    body = patient(
        meta={
            "versionId": "99",
            "lastUpdated": "2001-01-01T00:00:00Z",
            "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"],
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
            ],
        }
    )
    stored = client.post("/fhir/Patient", json=body).json()
    assert stored["meta"]["versionId"] == "1"
    assert stored["meta"]["lastUpdated"] != "2001-01-01T00:00:00Z"
    assert stored["meta"]["profile"] == body["meta"]["profile"]  # type: ignore[index]
    assert stored["meta"]["security"][0]["code"] == "R"


def test_an_r4_example_of_every_type_round_trips(client: TestClient) -> None:
    """Each type's R4 example (tests/fixtures/r4) is created and read back as
    sent, apart from the id and meta the server sets; AuditEvent, which only
    the gateway writes, is refused with 405."""
    # The Consent example's actor: a privacy Consent whose actor cannot be
    # resolved to an organisation is refused (422), so it must exist first.
    archway = {
        "resourceType": "Organization",
        "id": "archway-medical-centre",
        "identifier": [
            {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "Y03079"}
        ],
    }
    # Loaded at the ids the examples name, as the practice's own records.
    store = client.app.state.store  # type: ignore[attr-defined]
    write.update(store, as_source(TEST_ORG), "Organization", archway["id"], archway)
    # The Consent example's person, registered with the test client's practice:
    # only an organisation caring for a person may record their Consent.
    amara = {
        "resourceType": "Patient",
        "id": "amara-okafor",
        "generalPractitioner": [
            {
                "identifier": {
                    "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                    "value": TEST_ORG,
                }
            }
        ],
    }
    write.update(store, as_source(TEST_ORG), "Patient", "amara-okafor", amara)
    for path in sorted(FIXTURES.glob("*.json")):
        example = json.loads(path.read_text())
        res_type = example["resourceType"]
        response = client.post(f"/fhir/{res_type}", json=example)
        if res_type == "AuditEvent":
            assert response.status_code == 405
            continue
        assert response.status_code == 201, (res_type, response.text)
        stored = client.get(f"/fhir/{res_type}/{response.json()['id']}").json()
        for key, value in example.items():
            if key not in ("id", "meta"):
                assert stored[key] == value, (res_type, key)
        server_set = {"versionId", "lastUpdated", "source"}  # source: the author
        assert set(example.get("meta", {})) - server_set <= set(stored["meta"])


def test_racing_update_as_creates_of_one_id_all_succeed_in_turn(client: TestClient) -> None:
    """Writers racing to create the same id: one creates, the others update
    after it, and every version is kept; none sees a spurious conflict."""
    from concurrent.futures import ThreadPoolExecutor

    raced = f"{TEST_ORG}-raced"

    def put(n: int) -> int:
        body = patient(id=raced, birthDate=f"19{40 + n}-01-01")
        return client.put(f"/fhir/Patient/{raced}", json=body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(put, range(8)))
    assert sorted(statuses) == [200] * 7 + [201]
    history = client.get(f"/fhir/Patient/{raced}/_history").json()
    assert history["total"] == 8
