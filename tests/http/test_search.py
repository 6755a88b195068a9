"""Search over the HTTP API, on SQLite and PostgreSQL alike:
https://hl7.org/fhir/R4/search.html"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from gateway.interactions import write
from tests.conftest import BASE_URL, TEST_ORG
from tests.support.acting import as_source

NHS = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED = "http://snomed.info/sct"


def _put(client: TestClient, resource: dict[str, Any]) -> None:
    """Load ``resource`` at its id as the test client's organisation's own
    record (so the client sees it as its author), as ``gateway load`` writes
    a source's records: a client itself may create at an id of its choosing
    only within its own ids (``<ODS>-...``), and these tests are about
    search, not ids."""
    store = client.app.state.store  # type: ignore[attr-defined]
    res_type = resource["resourceType"]
    write.update(store, as_source(TEST_ORG), res_type, resource["id"], resource)


@pytest.fixture
def people(client: TestClient) -> TestClient:
    """A GP, three patients and some observations."""
    _put(
        client,
        {
            "resourceType": "Practitioner",
            "id": "gp-khan",
            "name": [{"family": "Khan", "given": ["Sarah"]}],
        },
    )
    _put(
        client,
        {
            "resourceType": "Patient",
            "id": "ada",
            "identifier": [{"system": NHS, "value": "9990000018"}],
            "name": [{"family": "Okafor", "given": ["Ada"]}],
            "gender": "female",
            "birthDate": "1941-03-02",
            "generalPractitioner": [{"reference": "Practitioner/gp-khan"}],
            "address": [{"postalCode": "NW1 8XY", "city": "London"}],
        },
    )
    _put(
        client,
        {
            "resourceType": "Patient",
            "id": "zoe",
            "identifier": [{"system": NHS, "value": "9990000026"}],
            "name": [{"family": "Zoë-Brown", "given": ["Zoë"]}],
            "gender": "female",
            "birthDate": "1987-11-30",
        },
    )
    _put(
        client,
        {
            "resourceType": "Patient",
            "id": "tom",
            "identifier": [{"system": "https://hospital.example/mrn", "value": "H123"}],
            "name": [{"family": "Okafor-Smith", "given": ["Tom"]}],
            "gender": "male",
            "birthDate": "1941-12-25",
        },
    )
    for obs_id, subject, value, when in [
        ("pulse-ada", "ada", 72, "2026-01-05T10:00:00Z"),
        ("pulse-ada-2", "ada", 95, "2026-02-05T10:00:00Z"),
        ("pulse-tom", "tom", 60, "2025-12-24T09:30:00Z"),
    ]:
        _put(
            client,
            {
                "resourceType": "Observation",
                "id": obs_id,
                "status": "final",
                "code": {
                    "coding": [{"system": SNOMED, "code": "364075005", "display": "Heart rate"}],
                    "text": "Pulse rate",
                },
                "subject": {"reference": f"Patient/{subject}"},
                "effectiveDateTime": when,
                "valueQuantity": {
                    "value": value,
                    "unit": "/min",
                    "system": "http://unitsofmeasure.org",
                    "code": "/min",
                },
            },
        )
    return client


def ids(client: TestClient, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    return sorted(
        e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"
    )


def test_string_search_starts_with_ignoring_case_and_accents(people: TestClient) -> None:
    assert ids(people, "/fhir/Patient?family=okafor") == ["ada", "tom"]
    assert ids(people, "/fhir/Patient?family=ZOE") == ["zoe"]
    assert ids(people, "/fhir/Patient?name=zoë") == ["zoe"]
    assert ids(people, "/fhir/Patient?family:exact=Okafor") == ["ada"]
    assert ids(people, "/fhir/Patient?family:exact=okafor") == []
    assert ids(people, "/fhir/Patient?family:contains=smith") == ["tom"]
    assert ids(people, "/fhir/Patient?address-postalcode=NW1") == ["ada"]


def test_token_search_by_system_and_code(people: TestClient) -> None:
    assert ids(people, f"/fhir/Patient?identifier={NHS}|9990000018") == ["ada"]
    assert ids(people, "/fhir/Patient?identifier=H123") == ["tom"]
    assert ids(people, f"/fhir/Patient?identifier={NHS}|") == ["ada", "zoe"]
    assert ids(people, "/fhir/Patient?identifier=|H123") == []
    assert ids(people, "/fhir/Patient?gender=male") == ["tom"]
    assert ids(people, "/fhir/Patient?gender:not=male") == ["ada", "zoe"]
    assert ids(people, "/fhir/Observation?code:text=pulse") == [
        "pulse-ada",
        "pulse-ada-2",
        "pulse-tom",
    ]
    assert ids(people, "/fhir/Patient?_id=ada,zoe") == ["ada", "zoe"]


def test_codes_are_found_by_the_system_their_binding_names(people: TestClient) -> None:
    """A ``code`` element has no system of its own; it is indexed with the
    code system of its required binding, as HAPI FHIR does."""
    gender = "http://hl7.org/fhir/administrative-gender"
    assert ids(people, f"/fhir/Patient?gender={gender}|male") == ["tom"]
    assert ids(people, f"/fhir/Patient?gender={gender}|") == ["ada", "tom", "zoe"]
    assert ids(people, "/fhir/Patient?gender=|male") == []
    assert ids(people, "/fhir/Patient?gender=http://example.org/other|male") == []
    assert ids(people, f"/fhir/Patient?gender:not={gender}|male") == ["ada", "zoe"]


def test_or_within_a_parameter_and_across_repeats(people: TestClient) -> None:
    assert ids(people, "/fhir/Patient?family=zoe,okafor-smith") == ["tom", "zoe"]
    assert ids(people, "/fhir/Patient?family=okafor&gender=female") == ["ada"]


def test_missing(people: TestClient) -> None:
    assert ids(people, "/fhir/Patient?general-practitioner:missing=false") == ["ada"]
    assert ids(people, "/fhir/Patient?general-practitioner:missing=true") == ["tom", "zoe"]


def test_date_search_with_prefixes_and_precision(people: TestClient) -> None:
    assert ids(people, "/fhir/Patient?birthdate=1941") == ["ada", "tom"]
    assert ids(people, "/fhir/Patient?birthdate=1941-03") == ["ada"]
    assert ids(people, "/fhir/Patient?birthdate=1941-03-02") == ["ada"]
    assert ids(people, "/fhir/Patient?birthdate=lt1950") == ["ada", "tom"]
    assert ids(people, "/fhir/Patient?birthdate=gt1941-06") == ["tom", "zoe"]
    assert ids(people, "/fhir/Patient?birthdate=ge1987-11-30") == ["zoe"]
    assert ids(people, "/fhir/Patient?birthdate=le1941-03-02") == ["ada"]
    assert ids(people, "/fhir/Patient?birthdate=sa1941-03-02") == ["tom", "zoe"]
    assert ids(people, "/fhir/Patient?birthdate=eb1941-12-25") == ["ada"]
    assert ids(people, "/fhir/Patient?birthdate=ne1941") == ["zoe"]
    assert ids(people, "/fhir/Observation?date=ge2026-01-01&date=lt2026-02") == ["pulse-ada"]
    assert ids(people, "/fhir/Patient?_lastUpdated=gt2000-01-01") == ["ada", "tom", "zoe"]


def test_a_bad_date_is_400(people: TestClient) -> None:
    response = people.get("/fhir/Patient?birthdate=yesterday")
    assert response.status_code == 400
    assert "birthdate" in response.json()["issue"][0]["diagnostics"]


def test_reference_search(people: TestClient) -> None:
    every_ada = ["pulse-ada", "pulse-ada-2"]
    assert ids(people, "/fhir/Observation?subject=Patient/ada") == every_ada
    assert ids(people, "/fhir/Observation?subject:Patient=ada") == every_ada
    assert ids(people, f"/fhir/Observation?subject={BASE_URL}/Patient/ada") == every_ada
    assert ids(people, "/fhir/Observation?patient=ada") == every_ada
    assert ids(people, "/fhir/Patient?general-practitioner=Practitioner/gp-khan") == ["ada"]


def test_quantity_search(people: TestClient) -> None:
    assert ids(people, "/fhir/Observation?value-quantity=gt70") == ["pulse-ada", "pulse-ada-2"]
    assert ids(people, "/fhir/Observation?value-quantity=72") == ["pulse-ada"]
    assert ids(people, "/fhir/Observation?value-quantity=le72||/min") == ["pulse-ada", "pulse-tom"]
    assert ids(people, "/fhir/Observation?value-quantity=ge90|http://unitsofmeasure.org|/min") == [
        "pulse-ada-2"
    ]
    assert ids(people, "/fhir/Observation?value-quantity=72|http://other|/min") == []


def test_chained_search_two_levels(people: TestClient) -> None:
    assert ids(people, "/fhir/Observation?subject:Patient.name=okafor-smith") == ["pulse-tom"]
    assert ids(
        people,
        "/fhir/Observation?subject:Patient.general-practitioner:Practitioner.family=khan",
    ) == ["pulse-ada", "pulse-ada-2"]
    assert ids(people, f"/fhir/Observation?patient.identifier={NHS}|9990000018") == [
        "pulse-ada",
        "pulse-ada-2",
    ]


def test_a_chain_through_an_ambiguous_reference_must_name_the_type(people: TestClient) -> None:
    response = people.get("/fhir/Patient?general-practitioner.name=khan")
    assert response.status_code == 400


def test_reverse_chaining_with_has(people: TestClient) -> None:
    assert ids(people, "/fhir/Patient?_has:Observation:subject:value-quantity=gt90") == ["ada"]
    assert ids(people, f"/fhir/Patient?_has:Observation:subject:code={SNOMED}|364075005") == [
        "ada",
        "tom",
    ]
    nested = (
        "/fhir/Practitioner?_has:Patient:general-practitioner:_has:Observation:subject:"
        "value-quantity=gt90"
    )
    assert ids(people, nested) == ["gp-khan"]


def test_include_and_revinclude(people: TestClient) -> None:
    bundle = people.get("/fhir/Observation?_id=pulse-ada&_include=Observation:subject").json()
    modes = {(e["resource"]["id"], e["search"]["mode"]) for e in bundle["entry"]}
    assert modes == {("pulse-ada", "match"), ("ada", "include")}
    bundle = people.get(
        "/fhir/Patient?_id=ada&_revinclude=Observation:subject"
        "&_include=Patient:general-practitioner"
    ).json()
    modes = {(e["resource"]["id"], e["search"]["mode"]) for e in bundle["entry"]}
    assert modes == {
        ("ada", "match"),
        ("pulse-ada", "include"),
        ("pulse-ada-2", "include"),
        ("gp-khan", "include"),
    }
    assert bundle["total"] == 1


def test_includes_past_their_bound_are_refused_not_cut_short(
    people: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.interactions import search as searching

    url = (
        "/fhir/Patient?_id=ada&_revinclude=Observation:subject"
        "&_include=Patient:general-practitioner"
    )
    monkeypatch.setattr(searching, "MAX_INCLUDED", 3)
    assert people.get(url).status_code == 200  # three included: at the bound
    monkeypatch.setattr(searching, "MAX_INCLUDED", 2)
    answer = people.get(url)
    assert answer.status_code == 400
    issue = answer.json()["issue"][0]
    assert issue["code"] == "too-costly" and "more than 2 resources" in issue["diagnostics"]
    monkeypatch.setattr(searching, "MAX_INCLUDED", 1000)
    monkeypatch.setattr(searching, "MAX_INCLUDE_SCAN", 1)
    answer = people.get("/fhir/Patient?_id=ada&_revinclude=Observation:subject")
    assert answer.status_code == 400
    assert "more than 1 references" in answer.json()["issue"][0]["diagnostics"]


def test_include_iterate(people: TestClient) -> None:
    bundle = people.get(
        "/fhir/Observation?_id=pulse-ada&_include=Observation:subject"
        "&_include:iterate=Patient:general-practitioner"
    ).json()
    included = sorted(
        e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"
    )
    assert included == ["ada", "gp-khan"]


def test_sort_on_several_keys(people: TestClient) -> None:
    def order(url: str) -> list[str]:
        return [e["resource"]["id"] for e in people.get(url).json()["entry"]]

    assert order("/fhir/Patient?_sort=birthdate") == ["ada", "tom", "zoe"]
    assert order("/fhir/Patient?_sort=-birthdate") == ["zoe", "tom", "ada"]
    assert order("/fhir/Patient?_sort=gender,-birthdate") == ["zoe", "ada", "tom"]
    assert order("/fhir/Observation?_sort=-date") == ["pulse-ada-2", "pulse-ada", "pulse-tom"]


def _follow(client: TestClient, bundle: dict[str, Any], relation: str) -> dict[str, Any] | None:
    url = next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)
    if url is None:
        return None
    parts = urlsplit(url)
    response = client.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_paging_is_stable_while_data_changes(people: TestClient) -> None:
    first = people.get("/fhir/Patient?_sort=birthdate&_count=2").json()
    assert [e["resource"]["id"] for e in first["entry"]] == ["ada", "tom"]
    assert first["total"] == 3
    _put(people, {"resourceType": "Patient", "id": "aaa", "birthDate": "1900-01-01"})
    second = _follow(people, first, "next")
    assert second is not None
    assert [e["resource"]["id"] for e in second["entry"]] == ["zoe"]
    assert _follow(people, second, "next") is None
    back = _follow(people, second, "previous")
    assert back is not None
    assert [e["resource"]["id"] for e in back["entry"]] == ["ada", "tom"]


def test_total_summary_and_elements(people: TestClient) -> None:
    assert "total" not in people.get("/fhir/Patient?_total=none").json()
    count = people.get("/fhir/Patient?_summary=count").json()
    assert count["total"] == 3 and "entry" not in count
    shaped = people.get("/fhir/Patient?_id=ada&_elements=name").json()["entry"][0]["resource"]
    assert set(shaped) == {"resourceType", "id", "meta", "name"}
    assert any(t["code"] == "SUBSETTED" for t in shaped["meta"]["tag"])


def test_search_by_post(people: TestClient) -> None:
    response = people.post(
        "/fhir/Patient/_search",
        content=b"family=okafor&gender=male",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert [e["resource"]["id"] for e in response.json()["entry"]] == ["tom"]


def test_patient_compartment_search(people: TestClient) -> None:
    assert ids(people, "/fhir/Patient/ada/Observation") == ["pulse-ada", "pulse-ada-2"]
    assert ids(people, "/fhir/Patient/ada/Observation?value-quantity=gt90") == ["pulse-ada-2"]
    assert people.get("/fhir/Patient/ada/Organization").status_code == 404


def test_unknown_parameters_are_400_unless_lenient(people: TestClient) -> None:
    strict = people.get("/fhir/Patient?family=okafor&shoe-size=9")
    assert strict.status_code == 400
    assert "shoe-size" in strict.json()["issue"][0]["diagnostics"]
    lenient = people.get(
        "/fhir/Patient?family=okafor&shoe-size=9", headers={"Prefer": "handling=lenient"}
    ).json()
    assert sorted(e["resource"]["id"] for e in lenient["entry"]) == ["ada", "tom"]
    self_link = next(x["url"] for x in lenient["link"] if x["relation"] == "self")
    assert "family=okafor" in self_link and "shoe-size" not in self_link


def test_deleted_resources_never_match(people: TestClient) -> None:
    people.delete("/fhir/Patient/zoe")
    assert ids(people, "/fhir/Patient?gender=female") == ["ada"]
    assert ids(people, "/fhir/Patient?_has:Observation:subject:code=364075005") == ["ada", "tom"]
    people.delete("/fhir/Patient/tom")
    assert ids(people, "/fhir/Observation?subject:Patient.gender=male") == []


def test_system_search_across_types_pages_through_both(people: TestClient) -> None:
    assert ids(people, "/fhir?_type=Patient,Practitioner&_id=ada,gp-khan") == ["ada", "gp-khan"]
    first = people.get("/fhir?_type=Patient,Observation&_count=4").json()
    assert first["total"] == 6
    seen = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in first["entry"]]
    second = _follow(people, first, "next")
    assert second is not None
    seen += [(e["resource"]["resourceType"], e["resource"]["id"]) for e in second["entry"]]
    assert sorted(seen) == sorted(
        [("Observation", o) for o in ("pulse-ada", "pulse-ada-2", "pulse-tom")]
        + [("Patient", p) for p in ("ada", "tom", "zoe")]
    )
    assert people.get("/fhir?_type=Patient,Observation&family=okafor").status_code == 400
    assert people.get("/fhir?_type=Basic").status_code == 400


def test_identifier_of_type(client: TestClient) -> None:
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0203"
    _put(
        client,
        {
            "resourceType": "Patient",
            "id": "typed",
            "identifier": [
                {
                    "type": {"coding": [{"system": v2, "code": "MR"}]},
                    "system": "https://hospital.example/mrn",
                    "value": "H777",
                }
            ],
        },
    )
    assert ids(client, f"/fhir/Patient?identifier:of-type={v2}|MR|H777") == ["typed"]
    assert ids(client, f"/fhir/Patient?identifier:of-type={v2}|NH|H777") == []
    assert client.get("/fhir/Patient?identifier:of-type=H777").status_code == 400


def test_composite_parameters_match_both_parts_on_one_element(client: TestClient) -> None:
    loinc = "http://loinc.org"
    _put(
        client,
        {
            "resourceType": "Observation",
            "id": "bp",
            "status": "final",
            "code": {"coding": [{"system": loinc, "code": "85354-9"}]},
            "component": [
                {
                    "code": {"coding": [{"system": loinc, "code": "8480-6"}]},
                    "valueQuantity": {
                        "value": 150,
                        "unit": "mmHg",
                        "system": "http://unitsofmeasure.org",
                        "code": "mm[Hg]",
                    },
                },
                {
                    "code": {"coding": [{"system": loinc, "code": "8462-4"}]},
                    "valueQuantity": {
                        "value": 95,
                        "unit": "mmHg",
                        "system": "http://unitsofmeasure.org",
                        "code": "mm[Hg]",
                    },
                },
            ],
        },
    )
    _put(
        client,
        {
            "resourceType": "Observation",
            "id": "weight",
            "status": "final",
            "code": {"coding": [{"system": loinc, "code": "29463-7"}]},
            "valueQuantity": {"value": 70, "unit": "kg"},
        },
    )
    systolic = f"{loinc}|8480-6"
    assert ids(client, f"/fhir/Observation?component-code-value-quantity={systolic}$gt140") == [
        "bp"
    ]
    # 95 belongs to the diastolic component: no systolic over 140 pairs with it
    assert ids(client, f"/fhir/Observation?component-code-value-quantity={systolic}$lt100") == []
    assert ids(client, f"/fhir/Observation?code-value-quantity={loinc}|29463-7$70") == ["weight"]
    assert ids(client, f"/fhir/Observation?combo-code-value-quantity={systolic}$150") == ["bp"]
    bad = client.get("/fhir/Observation?code-value-quantity=70")
    assert bad.status_code == 400


def test_summary_true_text_and_data(people: TestClient) -> None:
    _put(
        people,
        {
            "resourceType": "Patient",
            "id": "narrated",
            "text": {
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">N</div>',
            },
            "name": [{"family": "Narrated"}],
            "maritalStatus": {"text": "Widowed"},
            "photo": [{"contentType": "image/png", "data": "iVBORw0KGgo="}],
        },
    )
    url = "/fhir/Patient?_id=narrated&_summary="
    summary = people.get(url + "true").json()["entry"][0]["resource"]
    assert "name" in summary and "photo" not in summary and "maritalStatus" not in summary
    text = people.get(url + "text").json()["entry"][0]["resource"]
    assert set(text) == {"resourceType", "id", "meta", "text"}
    data = people.get(url + "data").json()["entry"][0]["resource"]
    assert "text" not in data and "photo" in data
    for shaped in (summary, text, data):
        assert any(t["code"] == "SUBSETTED" for t in shaped["meta"]["tag"])
