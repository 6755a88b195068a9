"""``$ingest``: registered sources push their own records over the API, each
mapped and loaded as their organisation's, answered record by record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from gateway.loading.person import element_sources
from gateway.store import Store
from mappings.identity import mapped_id
from mappings.ukcore import LOCAL_ID
from tests.conftest import access_token, make_client
from tests.http.test_audit import entries

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
COUNCIL = "713"


def _council(store: Store, scopes: str = "system/*.cruds") -> TestClient:
    token = access_token(store, client_id="council-app", kind="council", org=COUNCIL, scopes=scopes)
    return make_client(store, token=token)


def _summary(answer: dict[str, Any]) -> dict[str, int]:
    (summary,) = [p for p in answer["parameter"] if p["name"] == "summary"]
    return {part["name"]: part["valueInteger"] for part in summary["part"]}


def _records(answer: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {
            part["name"]: next(v for k, v in part.items() if k.startswith("value"))
            for part in p["part"]
        }
        for p in answer["parameter"]
        if p["name"] == "record"
    ]


def test_a_council_pushes_its_return_and_sees_the_people_it_cares_for(store: Store) -> None:
    body = (FIXTURES / "cld" / "return.csv").read_bytes()
    with _council(store) as api:
        pushed = api.post("/fhir/$ingest", content=body, headers={"content-type": "text/csv"})
        assert pushed.status_code == 200, pushed.text
        answer = pushed.json()
        assert answer["resourceType"] == "Parameters"
        assert _summary(answer) == {"records": 5, "loaded": 5, "unchanged": 0, "rejected": 0}
        assert [r["position"] for r in _records(answer)] == [f"line {n}" for n in range(2, 7)]

        # The open Service is an active EpisodeOfCare the council manages:
        # the care relationship that lets it read the person's record.
        person = mapped_id("NHS", "Patient", "9990000018")
        patient = api.get(f"/fhir/Patient/{person}")
        assert patient.status_code == 200
        assert patient.json()["meta"]["source"] == f"urn:ods:{COUNCIL}"
        episodes = api.get(f"/fhir/EpisodeOfCare?patient={person}&status=active").json()
        (episode,) = [e["resource"] for e in episodes["entry"]]
        assert episode["managingOrganization"]["identifier"]["value"] == COUNCIL

        again = api.post("/fhir/$ingest?format=cld", content=body)
        assert _summary(again.json()) == {"records": 5, "loaded": 0, "unchanged": 5, "rejected": 0}

    last = [e for e in entries(store) if e["subtype"] == "operation"][-2]
    written = [e["what"]["reference"] for e in last["event"]["entity"] if "what" in e]
    assert any(ref.startswith("EpisodeOfCare/") for ref in written)
    assert f"Patient/{person}/_history/1" in written


def test_rejections_name_the_line_and_the_reason(store: Store) -> None:
    body = (FIXTURES / "cld" / "drift.csv").read_bytes()
    with _council(store) as api:
        answer = api.post("/fhir/$ingest?format=cld", content=body).json()
    assert _summary(answer) == {"records": 7, "loaded": 1, "unchanged": 0, "rejected": 6}
    rejected = {r["position"]: r["reason"] for r in _records(answer) if r["outcome"] == "rejected"}
    assert "Modulus 11" in rejected["line 3"]
    assert "Primary_Support_Reason" in rejected["line 4"]
    assert "before Event_Start_Date" in rejected["line 7"]
    assert "7 values" in rejected["line 8"]


def test_only_the_kind_of_organisation_that_keeps_a_format_pushes_it(store: Store) -> None:
    body = (FIXTURES / "cld" / "return.csv").read_bytes()
    with make_client(store) as gp:  # a GP practice's client
        refused = gp.post("/fhir/$ingest?format=cld", content=body)
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
    assert store.select("SELECT COUNT(*) FROM resource_current WHERE res_type = 'Patient'", []) == [
        (0,)
    ]


def test_no_client_pushes_the_organisation_directory(store: Store) -> None:
    """The directory names organisations for every reader: only the
    operator loads it (``gateway load``), never a client's push."""
    body = b"ods_code,name,kind,address\nE09000007,Not the council,council,\n"
    with _council(store) as api:
        refused = api.post("/fhir/$ingest?format=organisations", content=body)
    assert refused.status_code == 403
    assert "gateway load" in refused.json()["issue"][0]["diagnostics"]
    assert store.select(
        "SELECT COUNT(*) FROM resource_current WHERE res_type = 'Organization'", []
    ) == [(0,)]


def test_a_token_that_may_not_write_is_refused(store: Store) -> None:
    body = (FIXTURES / "cld" / "return.csv").read_bytes()
    with _council(store, scopes="system/*.rs") as api:
        refused = api.post("/fhir/$ingest?format=cld", content=body)
    assert refused.status_code == 403
    assert "Patient" in refused.json()["issue"][0]["diagnostics"]


def test_the_format_must_be_said(store: Store) -> None:
    with _council(store) as api:
        unnamed = api.post(
            "/fhir/$ingest", content=b"a,b\n", headers={"content-type": "text/plain"}
        )
        unknown = api.post("/fhir/$ingest?format=xml", content=b"<x/>")
        empty = api.post("/fhir/$ingest?format=cld", content=b"  ")
    assert unnamed.status_code == unknown.status_code == 415
    assert "format" in unnamed.json()["issue"][0]["diagnostics"]
    assert empty.status_code == 400


def test_a_hospital_pushes_adt_and_only_as_itself(store: Store) -> None:
    token = access_token(store, client_id="pas", kind="hospital", org="RKE")
    feed = (FIXTURES / "hl7v2" / "admit.hl7").read_bytes()
    with make_client(store, token=token) as api:
        answer = api.post(
            "/fhir/$ingest", content=feed, headers={"content-type": "x-application/hl7-v2+er7"}
        ).json()
    assert _summary(answer)["loaded"] >= 1
    other = access_token(store, client_id="other-trust", kind="hospital", org="RAL")
    with make_client(store, token=other) as api:
        answer = api.post("/fhir/$ingest?format=hl7v2", content=feed).json()
    assert _summary(answer)["loaded"] == 0
    assert all("MSH-4" in r["reason"] for r in _records(answer) if r["outcome"] == "rejected")


def _home(store: Store) -> TestClient:
    token = access_token(store, client_id="home-app", kind="care-home", org="VM4X2")
    return make_client(store, token=token)


def test_a_source_without_a_relationship_adds_its_records_but_not_its_view_of_the_person(
    store: Store,
) -> None:
    """The person is on file from their care home. The council's request
    row gives it no relationship: its request is stored and linked to them,
    but the Patient is left as it was (writing it as the council's would
    make the council its author, and show it what the home recorded). The
    service row that opens an episode gives it one, and then its view of
    the person is merged in."""
    number = "9992345675"  # the care-home fixture's resident
    with _home(store) as home:
        pushed = home.post(
            "/fhir/$ingest?format=care-home",
            content=(FIXTURES / "carehome" / "winifred-maddox.json").read_bytes(),
        )
        assert _summary(pushed.json())["loaded"] == 1
    person = mapped_id("NHS", "Patient", number)
    lines = (FIXTURES / "cld" / "return.csv").read_text()
    lines = lines.replace("999 000 0018", number).replace("9990000018", number)
    header, request, *rest = lines.splitlines()
    service = next(line for line in rest if ",Service," in line)
    with _council(store) as council:
        answer = council.post(
            "/fhir/$ingest?format=cld", content=f"{header}\n{request}\n".encode()
        ).json()
        assert _summary(answer)["loaded"] == 1
        assert council.get(f"/fhir/Patient/{person}").status_code == 404
        (request_id,) = [
            r[0]
            for r in store.select(
                "SELECT res_id FROM resource_current WHERE res_type = 'ServiceRequest'", []
            )
        ]
        stored = council.get(f"/fhir/ServiceRequest/{request_id}").json()
        assert stored["subject"]["reference"] == f"Patient/{person}"
        with _home(store) as home:
            patient = home.get(f"/fhir/Patient/{person}").json()
        assert patient["meta"]["source"] == "urn:ods:VM4X2"
        assert patient["meta"]["versionId"] == "1"
        assert {s.org for s in element_sources(store, person).values()} == {"VM4X2"}

        answer = council.post(
            "/fhir/$ingest?format=cld", content=f"{header}\n{service}\n".encode()
        ).json()
        assert _summary(answer)["loaded"] == 1
        seen = council.get(f"/fhir/Patient/{person}")
        assert seen.status_code == 200
        systems = {i["system"] for i in seen.json()["identifier"]}
        assert any(system.endswith(":713") or "713" in system for system in systems), systems
        sources = element_sources(store, person)
        assert sources[f"identifier:{LOCAL_ID}:713|LA100"].format == "cld"


def test_each_provenance_names_records_that_consent_treats_alike(store: Store) -> None:
    """One hospital message holds a mental health diagnosis and an allergy:
    they get a Provenance each, so that who may see the allergy sees how it
    came to be. The visit names the diagnosis, so it is as sensitive as the
    diagnosis and shares its Provenance."""
    feed = "\r".join(
        [
            "MSH|^~\\&|PAS|RKE|GATEWAY|LONDON|20261120093000||ADT^A01|PRV0001|P|2.4",
            "EVN|A01|20261120093000",
            "PID|1||9990000034^^^NHS^NH||Doe^Jane||19500101|2",
            "PV1|1|I|W12^B^3^RKE||||||||||||||||V000777",
            "AL1|1|DA|PEN^Penicillin|SV|Rash",
            "DG1|1||F32.1^Moderate depressive episode^I10|||A",
        ]
    )
    token = access_token(store, client_id="pas", kind="hospital", org="RKE")
    with make_client(store, token=token) as api:
        assert api.post("/fhir/$ingest?format=hl7v2", content=feed.encode()).status_code == 200
    provenances = [
        json.loads(bytes(row[0]))
        for row in store.select(
            "SELECT v.content FROM resource_current c JOIN resource_version v "
            "ON v.res_type = c.res_type AND v.res_id = c.res_id AND v.version = c.version "
            "WHERE c.res_type = 'Provenance'",
            [],
        )
    ]
    by_target = {
        t["reference"].split("/")[0]: len(p["target"]) for p in provenances for t in p["target"]
    }
    condition = next(
        p for p in provenances if any("Condition/" in t["reference"] for t in p["target"])
    )
    assert sorted(t["reference"].split("/")[0] for t in condition["target"]) == [
        "Condition",
        "Encounter",
    ]
    assert by_target["AllergyIntolerance"] > 1  # with the Patient
