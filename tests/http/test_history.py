"""history at instance, type and system level: https://hl7.org/fhir/R4/http.html#history"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.testclient import TestClient

from gateway.store import Store
from tests.conftest import TEST_ORG
from tests.http.test_crud import patient
from tests.support.acting import stored


def _authored() -> dict:  # type: ignore[type-arg]
    return {**patient(), "meta": {"source": f"urn:ods:{TEST_ORG}"}}


def _stored(store: Store) -> str:
    """A Patient written straight to the store, with no Provenance beside it;
    authored by the test client's organisation, so it sees it."""
    return stored(store, _authored()).res_id


def _follow(client: TestClient, url: str) -> dict:  # type: ignore[type-arg]
    parts = urlsplit(url)
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _link(bundle: dict, relation: str) -> str | None:  # type: ignore[type-arg]
    return next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)


def test_instance_history_lists_versions_newest_first_with_a_total(client: TestClient) -> None:
    pid = client.post("/fhir/Patient", json=patient()).json()["id"]
    client.put(f"/fhir/Patient/{pid}", json=patient(id=pid, active=True))
    bundle = client.get(f"/fhir/Patient/{pid}/_history").json()
    assert bundle["type"] == "history" and bundle["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in bundle["entry"]] == ["2", "1"]
    assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT", "POST"]
    assert bundle["entry"][0]["response"]["etag"] == 'W/"2"'


def test_history_of_an_unknown_resource_is_404(client: TestClient) -> None:
    assert client.get("/fhir/Patient/nobody/_history").status_code == 404


def test_type_history_holds_only_that_type(client: TestClient) -> None:
    client.post("/fhir/Patient", json=patient())
    client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "Camden"})
    bundle = client.get("/fhir/Organization/_history").json()
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Organization"]


def test_system_history_pages_with_stable_next_and_previous_links(
    client: TestClient, store: Store
) -> None:
    # Written straight to the store, so no Provenance joins them in the
    # history; authored by the test client's organisation, so it sees them.
    ids = [_stored(store) for _ in range(5)]
    first = client.get("/fhir/_history?_count=2").json()
    assert [e["resource"]["id"] for e in first["entry"]] == ids[::-1][:2]
    assert _link(first, "previous") is None
    next_url = _link(first, "next")
    assert next_url is not None
    client.post("/fhir/Patient", json=patient())  # a write between pages shifts nothing
    second = _follow(client, next_url)
    assert [e["resource"]["id"] for e in second["entry"]] == ids[::-1][2:4]
    third = _follow(client, _link(second, "next"))  # type: ignore[arg-type]
    assert [e["resource"]["id"] for e in third["entry"]] == ids[:1]
    assert _link(third, "next") is None
    back = _follow(client, _link(second, "previous"))  # type: ignore[arg-type]
    assert [e["resource"]["id"] for e in back["entry"]] == ids[::-1][:2]


def test_history_since_filters_by_last_updated(client: TestClient, store: Store) -> None:
    _stored(store)
    assert "entry" not in client.get("/fhir/_history?_since=2999-01-01").json()
    assert len(client.get("/fhir/_history?_since=2000-01-01T00:00:00Z").json()["entry"]) == 1


def test_history_rejects_bad_parameters(client: TestClient) -> None:
    assert client.get("/fhir/_history?_count=-1").status_code == 400
    assert client.get("/fhir/_history?_since=yesterday").status_code == 400
    assert client.get("/fhir/_history?_cursor=forged").status_code == 400
    unknown = client.get("/fhir/_history?_at=2020")
    assert unknown.status_code == 400 and "_at" in unknown.json()["issue"][0]["diagnostics"]


def test_history_of_auditevent_is_allowed_but_writing_it_is_not(client: TestClient) -> None:
    assert client.get("/fhir/AuditEvent/_history").status_code == 200
    event = {"resourceType": "AuditEvent"}
    assert client.post("/fhir/AuditEvent", json=event).status_code == 405
    assert client.put("/fhir/AuditEvent/x", json={**event, "id": "x"}).status_code == 405
    assert client.delete("/fhir/AuditEvent/x").status_code == 405
