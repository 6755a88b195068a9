"""Consent on every read path, with several organisations at once: each test
checks what each one is shown and that nothing else is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.auth.tokens import Purpose
from gateway.store import Store
from tests.conftest import access_token, make_client
from tests.support.consents import privacy_consent

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
GP, COUNCIL, HOME, HOSPITAL, AMBULANCE = "A81001", "E09000007", "VM123", "RKE", "RRU"
SNOMED = "http://snomed.info/sct"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def org(ods: str) -> dict[str, Any]:
    return {"identifier": {"system": ODS, "value": ods}}


def actor(reference: dict[str, Any]) -> dict[str, Any]:
    role = {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
    return {"role": {"coding": [role]}, "reference": reference}


class World:
    """A person registered with a GP and supported by the council, whose
    care home writes their records; a hospital and an ambulance service
    with no relationship."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.tokens = {
            "gp": access_token(store, client_id="gp", kind="gp-practice", org=GP),
            "council": access_token(store, client_id="council", kind="council", org=COUNCIL),
            "home": access_token(store, client_id="home", kind="care-home", org=HOME),
            "hospital": access_token(store, client_id="hospital", kind="hospital", org=HOSPITAL),
            "ambulance": access_token(
                store,
                client_id="ambulance",
                kind="ambulance",
                org=AMBULANCE,
                purpose=Purpose.ETREAT,
                reason="999 call from the care home",
            ),
        }
        self.api = make_client(store, token=None)
        self.api.__enter__()
        self.patient = self.post(
            "home",
            {
                "resourceType": "Patient",
                "identifier": [
                    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}
                ],
                "generalPractitioner": [org(GP)],
            },
        )
        self.subject = {"reference": f"Patient/{self.patient}"}
        self.post(
            "home",
            {
                "resourceType": "EpisodeOfCare",
                "status": "active",
                "patient": self.subject,
                "managingOrganization": org(COUNCIL),
            },
        )
        self.asthma = self.condition("195967001", "Asthma")
        self.depression = self.condition("35489007", "Depression", labels=["PSY"])

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def post(self, who: str, resource: dict[str, Any]) -> str:
        answer = self.api.post(
            f"/fhir/{resource['resourceType']}", json=resource, headers=self.headers(who)
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def condition(self, code: str, text: str, labels: list[str] = ()) -> str:  # type: ignore[assignment]
        resource: dict[str, Any] = {
            "resourceType": "Condition",
            "subject": self.subject,
            "code": {"coding": [{"system": SNOMED, "code": code}], "text": text},
            "onsetDateTime": "2024-01-10",
        }
        if labels:
            resource["meta"] = {"security": [{"system": ACT, "code": label} for label in labels]}
        return self.post("home", resource)

    def get(self, who: str, url: str) -> Any:
        return self.api.get(url, headers=self.headers(who))

    def ids(self, who: str, url: str) -> list[str]:
        bundle = self.get(who, url).json()
        return sorted(e["resource"]["id"] for e in bundle.get("entry", []))


@pytest.fixture
def world(store: Store) -> Iterator[World]:
    built = World(store)
    yield built
    built.api.__exit__(None, None, None)


def test_reads_follow_the_relationships(world: World) -> None:
    url = f"/fhir/Condition/{world.asthma}"
    assert world.get("gp", url).status_code == 200  # registered GP
    assert world.get("council", url).status_code == 200  # active social care episode
    assert world.get("home", url).status_code == 200  # its author
    hidden = world.get("hospital", url)  # no relationship
    missing = world.get("hospital", "/fhir/Condition/does-not-exist")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["issue"][0]["diagnostics"].replace(world.asthma, "X") == missing.json()[
        "issue"
    ][0]["diagnostics"].replace("does-not-exist", "X")
    assert world.get("hospital", f"{url}/_history/1").status_code == 404
    assert world.get("hospital", f"{url}/_history").status_code == 404


def test_restricted_data_stays_with_its_author(world: World) -> None:
    url = f"/fhir/Condition/{world.depression}"
    assert world.get("home", url).status_code == 200
    for who in ("gp", "council", "hospital", "ambulance"):
        assert world.get(who, url).status_code == 404, who


def test_searches_count_and_page_only_what_may_be_seen(world: World) -> None:
    url = f"/fhir/Condition?subject=Patient/{world.patient}"
    assert world.ids("home", url) == sorted([world.asthma, world.depression])
    assert world.ids("gp", url) == [world.asthma]
    assert world.get("gp", url).json()["total"] == 1
    assert world.ids("hospital", url) == []
    assert world.get("hospital", url).json()["total"] == 0
    assert world.get("hospital", url + "&_summary=count").json()["total"] == 0
    assert world.get("gp", url + "&_summary=count").json()["total"] == 1
    compartment = f"/fhir/Patient/{world.patient}/Condition"
    assert world.ids("gp", compartment) == [world.asthma]
    assert world.ids("hospital", compartment) == []


def test_includes_and_chains_reveal_nothing_hidden(world: World) -> None:
    revinclude = f"/fhir/Patient?_id={world.patient}&_revinclude=Condition:subject"
    assert world.ids("gp", revinclude) == sorted([world.patient, world.asthma])
    assert world.ids("hospital", revinclude) == []
    include = "/fhir/Condition?_include=Condition:subject"
    assert world.ids("gp", include) == sorted([world.patient, world.asthma])
    assert world.ids("hospital", include) == []


def test_the_include_bound_counts_only_what_the_requester_may_see(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GP sees one of the person's two Conditions: with room for one
    included resource its page is whole, the hidden one neither counted nor
    hinted at; with room for none it is refused as for any other page."""
    from gateway.interactions import search as searching

    revinclude = f"/fhir/Patient?_id={world.patient}&_revinclude=Condition:subject"
    monkeypatch.setattr(searching, "MAX_INCLUDED", 1)
    assert world.ids("gp", revinclude) == sorted([world.patient, world.asthma])
    monkeypatch.setattr(searching, "MAX_INCLUDED", 0)
    assert world.get("gp", revinclude).status_code == 400
    assert world.ids("hospital", revinclude) == []


def test_has_does_not_match_through_hidden_records(world: World) -> None:
    """Only the PSY-labelled Condition has the depression code: a _has on it
    must not tell the GP that the person has one."""
    hidden = "/fhir/Patient?_has:Condition:subject:code=35489007"
    assert world.ids("home", hidden) == [world.patient]  # the author sees it
    assert world.ids("gp", hidden) == []
    assert world.get("gp", hidden + "&_summary=count").json()["total"] == 0
    shown = "/fhir/Patient?_has:Condition:subject:code=195967001"
    assert world.ids("gp", shown) == [world.patient]
    assert world.get("gp", shown).json()["total"] == 1
    assert world.ids("hospital", shown) == []


def test_chains_do_not_match_through_hidden_records(world: World) -> None:
    """The hospital wrote an Observation (so sees it, as its author) about a
    person it has no relationship with: a chain through the hidden Patient
    must not confirm who that person is."""
    observation = world.post(
        "hospital",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": SNOMED, "code": "364075005"}]},
            "subject": world.subject,
        },
    )
    nhs = "https://fhir.nhs.uk/Id/nhs-number|9990000018"
    assert world.ids("hospital", f"/fhir/Observation?subject={world.subject['reference']}") == [
        observation
    ]
    chained = f"/fhir/Observation?subject:Patient.identifier={nhs}"
    assert world.ids("hospital", chained) == []
    assert world.get("hospital", chained).json()["total"] == 0
    assert world.ids("gp", chained) == [observation]
    nested = "/fhir/Observation?subject:Patient._has:Condition:subject:code=35489007"
    assert world.ids("gp", nested) == []
    asthma = "/fhir/Observation?subject:Patient._has:Condition:subject:code=195967001"
    assert world.ids("gp", asthma) == [observation]
    assert world.ids("home", asthma) == []  # no relationship: the hospital's record is hidden


def test_emergency_access_without_a_relationship(world: World) -> None:
    assert world.get("ambulance", f"/fhir/Patient/{world.patient}").status_code == 200
    found = world.ids(
        "ambulance", "/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018"
    )
    assert found == [world.patient]
    url = f"/fhir/Condition?subject=Patient/{world.patient}"
    assert world.ids("ambulance", url) == [world.asthma]  # not the PSY one


def test_a_dissent_applies_on_the_next_request(world: World) -> None:
    consent = privacy_consent(
        world.subject,
        {"type": "permit", "provision": [{"type": "deny", "actor": [actor(org(COUNCIL))]}]},
    )
    consent_id = world.post("gp", consent)
    url = f"/fhir/Condition/{world.asthma}"
    assert world.get("council", url).status_code == 404
    assert world.get("gp", url).status_code == 200
    assert world.ids("council", f"/fhir/Condition?subject=Patient/{world.patient}") == []
    # Withdrawn: at once, on every path.
    withdrawn = {**consent, "id": consent_id, "status": "inactive"}
    answer = world.api.put(
        f"/fhir/Consent/{consent_id}", json=withdrawn, headers=world.headers("gp")
    )
    assert answer.status_code == 200, answer.text
    assert world.get("council", url).status_code == 200


def test_a_consent_that_cannot_be_applied_is_refused(world: World) -> None:
    unknown = privacy_consent(
        world.subject, {"type": "deny", "actor": [actor({"reference": "Organization/unknown"})]}
    )
    answer = world.api.post("/fhir/Consent", json=unknown, headers=world.headers("gp"))
    assert answer.status_code == 422
    assert "cannot be resolved" in answer.json()["issue"][0]["diagnostics"]


def consent_naming_an_organisation(world: World) -> str:
    """The GP records a dissent towards the council, naming it by a reference
    to its Organization; that Organization's id."""
    council = world.post(
        "home", {"resourceType": "Organization", "identifier": [{"system": ODS, "value": COUNCIL}]}
    )
    world.post(
        "gp",
        privacy_consent(
            world.subject,
            {"type": "deny", "actor": [actor({"reference": f"Organization/{council}"})]},
        ),
    )
    return council


def test_a_consent_that_stops_making_sense_withholds_the_record(world: World) -> None:
    """Its actor's Organization is deleted: the Consent can no longer be read,
    so the person's record is withheld from all but its authors (fail closed)."""
    url = f"/fhir/Condition/{world.asthma}"
    council = consent_naming_an_organisation(world)
    assert world.get("council", url).status_code == 404
    assert world.get("gp", url).status_code == 200
    deleted = world.api.delete(f"/fhir/Organization/{council}", headers=world.headers("home"))
    assert deleted.status_code == 204
    assert world.get("gp", url).status_code == 404
    assert world.get("home", url).status_code == 200  # the author


def test_the_registered_gp_changes_with_the_data(world: World) -> None:
    url = f"/fhir/Condition/{world.asthma}"
    assert world.get("gp", url).status_code == 200
    moved = world.get("home", f"/fhir/Patient/{world.patient}").json()
    moved["generalPractitioner"] = [org("B82005")]
    assert (
        world.api.put(
            f"/fhir/Patient/{world.patient}", json=moved, headers=world.headers("home")
        ).status_code
        == 200
    )
    assert world.get("gp", url).status_code == 404


def _diagnostics(answer: Any, hidden_id: str) -> tuple[int, str, str]:
    """The status and the OperationOutcome, with the id asked for made neutral."""
    issue = answer.json()["issue"][0]
    return (
        answer.status_code,
        issue["details"]["text"].replace(hidden_id, "X"),
        issue["diagnostics"].replace(hidden_id, "X"),
    )


def test_a_deletion_of_hidden_data_answers_as_missing(world: World) -> None:
    url = f"/fhir/Condition/{world.asthma}"
    assert world.api.delete(url, headers=world.headers("home")).status_code == 204
    assert world.get("gp", url).status_code == 410  # it could see what was deleted
    assert _diagnostics(world.get("hospital", url), world.asthma) == _diagnostics(
        world.get("hospital", "/fhir/Condition/never-was"), "never-was"
    )
    assert world.get("hospital", f"{url}/_history/2").status_code == 404
    assert world.get("gp", f"{url}/_history/2").status_code == 410
    history = world.get("gp", f"{url}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert world.get("hospital", f"{url}/_history").status_code == 404
    depression = f"/fhir/Condition/{world.depression}"
    assert world.api.delete(depression, headers=world.headers("home")).status_code == 204
    assert world.get("gp", depression).status_code == 404  # PSY: never the GP's to see


def test_hidden_resources_cannot_be_changed(world: World) -> None:
    """Each write answers as for a missing id (``test_write_leaks``)."""
    url = f"/fhir/Condition/{world.asthma}"
    changed = {**world.get("home", url).json(), "onsetDateTime": "2020-01-01"}
    answer = world.api.put(url, json=changed, headers=world.headers("hospital"))
    missing = world.api.put(
        "/fhir/Condition/never-was",
        json={**changed, "id": "never-was"},
        headers=world.headers("hospital"),
    )
    assert _diagnostics(answer, world.asthma) == _diagnostics(missing, "never-was")
    deleted = world.api.delete(url, headers=world.headers("hospital"))
    assert deleted.status_code == 204 and "etag" not in deleted.headers
    kept = world.get("home", url).json()
    assert kept["meta"]["versionId"] == "1"
    assert kept["onsetDateTime"] == "2024-01-10"


NHS = "https://fhir.nhs.uk/Id/nhs-number|9990000018"


def test_conditional_writes_do_not_match_hidden_resources(world: World) -> None:
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}],
    }
    # The GP may see the person: If-None-Exist finds them, nothing is written.
    found = world.api.post(
        "/fhir/Patient",
        json=patient,
        headers={**world.headers("gp"), "If-None-Exist": f"identifier={NHS}"},
    )
    assert found.status_code == 200 and found.json()["id"] == world.patient
    # The hospital may not: the match is not there for it, so it creates.
    created = world.api.post(
        "/fhir/Patient",
        json=patient,
        headers={**world.headers("hospital"), "If-None-Exist": f"identifier={NHS}"},
    )
    assert created.status_code == 201 and created.json()["id"] != world.patient
    # A conditional update that would match the hidden one (and its own) sees
    # only its own: it updates that, never the hidden one.
    own = created.json()["id"]
    updated = world.api.put(
        f"/fhir/Patient?identifier={NHS}",
        json={**patient, "gender": "female"},
        headers=world.headers("hospital"),
    )
    assert updated.status_code == 200 and updated.json()["id"] == own
    assert "gender" not in world.get("gp", f"/fhir/Patient/{world.patient}").json()
    # Naming the hidden id in the body cannot reach it either.
    forced = world.api.put(
        "/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|0000000000",
        json={**patient, "id": world.patient, "gender": "male"},
        headers=world.headers("hospital"),
    )
    assert forced.status_code == 404


def test_bundle_reads_and_references_see_only_what_may_be_seen(world: World) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Condition/{world.asthma}"}},
            {"request": {"method": "GET", "url": f"Condition/{world.depression}"}},
            {"request": {"method": "GET", "url": "Condition/never-was"}},
        ],
    }

    def statuses(who: str) -> list[str]:
        answer = world.api.post("/fhir", json=batch, headers=world.headers(who))
        assert answer.status_code == 200
        return [e["response"]["status"] for e in answer.json()["entry"]]

    assert statuses("home") == ["200 OK", "200 OK", "404 Not Found"]
    assert statuses("gp") == ["200 OK", "404 Not Found", "404 Not Found"]
    assert statuses("hospital") == ["404 Not Found"] * 3
    transaction = {**batch, "type": "transaction", "entry": batch["entry"][1:2]}
    hidden = world.api.post("/fhir", json=transaction, headers=world.headers("gp"))
    assert hidden.status_code == 404
    # A conditional reference resolves only to what the requester may see.
    encounter = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "request": {"method": "POST", "url": "Encounter"},
                "resource": {
                    "resourceType": "Encounter",
                    "status": "in-progress",
                    "class": {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "code": "EMER",
                    },
                    "subject": {"reference": f"Patient?identifier={NHS}"},
                },
            }
        ],
    }
    refused = world.api.post("/fhir", json=encounter, headers=world.headers("hospital"))
    assert refused.status_code == 412
    assert "matches no Patient" in refused.json()["issue"][0]["diagnostics"]
    accepted = world.api.post("/fhir", json=encounter, headers=world.headers("gp"))
    assert accepted.status_code == 200, accepted.text


def test_records_are_labelled_from_their_codes_whatever_the_source(world: World) -> None:
    """The care home sends an HIV diagnosis (ICD-10) with only a
    confidentiality label of its own: the gateway adds SEX and keeps N."""
    hiv = world.post(
        "home",
        {
            "resourceType": "Condition",
            "meta": {
                "security": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                        "code": "N",
                    }
                ]
            },
            "subject": world.subject,
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "B20.1"}]},
        },
    )
    url = f"/fhir/Condition/{hiv}"
    stored = world.get("home", url).json()
    assert {(s["system"].rsplit("/", 1)[1], s["code"]) for s in stored["meta"]["security"]} == {
        ("v3-Confidentiality", "N"),
        ("v3-ActCode", "SEX"),
    }
    assert world.get("gp", url).status_code == 404
    assert world.ids("home", "/fhir/Condition?_security=" + ACT + "|SEX") == [hiv]
    assert world.ids("gp", f"/fhir/Condition?subject=Patient/{world.patient}") == [world.asthma]


def test_a_code_sent_without_its_system_is_labelled_as_any_listed_system_would(
    world: World,
) -> None:
    """A depression diagnosis whose sender left out the code system (ICD-10
    F32.9, a code and words only) is not shared as if it were unrestricted."""
    untold = world.post(
        "home",
        {
            "resourceType": "Condition",
            "subject": world.subject,
            "code": {"coding": [{"code": "F32.9"}], "text": "Depressive episode"},
        },
    )
    url = f"/fhir/Condition/{untold}"
    stored = world.get("home", url).json()
    assert [(s["system"].rsplit("/", 1)[1], s["code"]) for s in stored["meta"]["security"]] == [
        ("v3-ActCode", "PSY")
    ]
    assert world.get("gp", url).status_code == 404
    assert untold not in world.ids("gp", f"/fhir/Condition?subject=Patient/{world.patient}")


def _bundle_as_for(answer: Any, asked_id: str) -> tuple[int, dict[str, Any]]:
    """A search's status and Bundle, less what every Bundle has of its own
    (its id and time), with the id asked about made neutral."""
    bundle = answer.json()
    bundle.pop("id", None)
    bundle.pop("meta", None)
    text = json.dumps(bundle, sort_keys=True).replace(asked_id, "X")
    return answer.status_code, json.loads(text)


@pytest.mark.parametrize(
    "search",
    [
        "/fhir/Condition?subject=Patient/{id}",
        "/fhir/Condition?patient={id}&_total=accurate",
        "/fhir/Patient/{id}/Condition",
        "/fhir/EpisodeOfCare?patient=Patient/{id}&_count=1",
    ],
)
def test_a_search_naming_a_hidden_person_answers_as_for_no_one(world: World, search: str) -> None:
    """A search naming one person's records tests its candidates one by one,
    whoever asks: for a person the requester may not see, it answers exactly
    as for a person that never was."""
    hidden = world.get("hospital", search.format(id=world.patient))
    missing = world.get("hospital", search.format(id="never-was"))
    assert _bundle_as_for(hidden, world.patient) == _bundle_as_for(missing, "never-was")
    assert world.get("gp", search.format(id=world.patient)).json().get("entry")


def test_everything_holds_only_what_may_be_seen(world: World) -> None:
    url = f"/fhir/Patient/{world.patient}/$everything"
    home = world.get("home", url).json()
    home_ids = sorted(e["resource"]["id"] for e in home["entry"])
    assert world.patient in home_ids
    assert {world.asthma, world.depression} <= set(home_ids)
    assert home["total"] == len(home_ids)
    gp = world.get("gp", url).json()
    gp_types = sorted({e["resource"]["resourceType"] for e in gp["entry"]})
    gp_ids = {e["resource"]["id"] for e in gp["entry"]}
    assert world.asthma in gp_ids and world.depression not in gp_ids
    assert gp["total"] == len(gp_ids) == len(home_ids) - 1
    assert gp_types == ["Condition", "EpisodeOfCare", "Patient", "Provenance"]
    missing = world.get("hospital", "/fhir/Patient/never-was/$everything")
    hidden = world.get("hospital", url)
    assert _diagnostics(hidden, world.patient) == _diagnostics(missing, "never-was")
    # Paged, and a page link replayed by someone else shows only their own.
    first = world.get("gp", url + "?_count=2").json()
    assert len(first["entry"]) == 2
    pages, link = [first], next(x["url"] for x in first["link"] if x["relation"] == "next")
    while link:
        page = world.get("gp", link.removeprefix("http://testserver")).json()
        pages.append(page)
        link = next((x["url"] for x in page["link"] if x["relation"] == "next"), "")
    paged = [e["resource"]["id"] for p in pages for e in p.get("entry", [])]
    assert sorted(paged) == sorted(gp_ids)
    second = next(x["url"] for x in first["link"] if x["relation"] == "next")
    assert world.get("hospital", second.removeprefix("http://testserver")).status_code == 404
    only = world.get("gp", url + "?_type=Condition").json()
    assert [e["resource"]["id"] for e in only["entry"]] == [world.asthma]
    assert world.get("gp", url + "?_type=Medication").status_code == 400
    assert world.get("gp", url + "?start=2020").status_code == 400


def test_page_links_replayed_show_only_what_the_replayer_may_see(world: World) -> None:
    url = f"/fhir/Condition?subject=Patient/{world.patient}&_count=1&_sort=_id"
    first = world.get("home", url).json()
    link = next(x["url"] for x in first["link"] if x["relation"] == "next")
    path = link.removeprefix("http://testserver")
    shown = {
        who: [e["resource"]["id"] for e in world.get(who, path).json().get("entry", [])]
        for who in ("home", "gp", "hospital")
    }
    assert shown["hospital"] == []
    assert world.depression not in shown["gp"]
    assert set(shown["home"]) <= {world.asthma, world.depression}


AUDITOR = "X26"


def _check(world: World, *parameters: dict[str, Any], who: str = "auditor") -> Any:
    if "auditor" not in world.tokens:
        world.tokens["auditor"] = access_token(
            world.store,
            client_id="auditor",
            kind="auditor",
            org=AUDITOR,
            scopes="system/Patient.rs system/Consent.rs",
            purpose=Purpose.HCOMPL,
        )
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patient", "valueReference": world.subject},
            *parameters,
        ],
    }
    return world.api.post("/fhir/$access-check", json=body, headers=world.headers(who))


def _organisation(ods: str) -> dict[str, Any]:
    return {"name": "organization", "valueIdentifier": {"system": ODS, "value": ods}}


def _by_name(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {p["name"]: p for p in parameters}


def _summary(answer: Any) -> dict[str, tuple[int, int, set[str]]]:
    found = {}
    for item in answer.json()["parameter"]:
        if item["name"] != "type":
            continue
        parts = item["part"]
        named = _by_name(parts)
        rules = {_by_name(p["part"])["rule"]["valueCode"] for p in parts if p["name"] == "reason"}
        found[named["type"]["valueCode"]] = (
            named["shown"]["valueInteger"],
            named["withheld"]["valueInteger"],
            rules,
        )
    return found


def test_access_check_explains_without_disclosing(world: World) -> None:
    gp = _check(world, _organisation(GP))
    assert gp.status_code == 200, gp.text
    answer = _by_name(gp.json()["parameter"])
    assert answer["relationship"]["valueBoolean"] is True
    assert answer["kind"]["valueCode"] == "gp-practice"  # from its registered client
    assert _summary(gp)["Condition"] == (1, 1, {"implied-consent", "restricted-label"})
    assert world.asthma not in gp.text and "Asthma" not in gp.text  # no data, only counts
    hospital = _check(world, _organisation(HOSPITAL))
    assert _by_name(hospital.json()["parameter"])["relationship"]["valueBoolean"] is False
    assert _summary(hospital)["Condition"] == (0, 2, {"no-relationship"})
    emergency = _check(
        world,
        _organisation(HOSPITAL),
        {"name": "purpose", "valueCode": "ETREAT"},
        {"name": "resource", "valueReference": {"reference": f"Condition/{world.depression}"}},
    )
    decision = _by_name(_by_name(emergency.json()["parameter"])["decision"]["part"])
    assert decision["permit"]["valueBoolean"] is False
    assert decision["rule"]["valueCode"] == "restricted-label"


def test_access_check_names_the_consent_that_decided(world: World) -> None:
    consent = world.post(
        "gp",
        privacy_consent(
            world.subject,
            {"type": "permit", "provision": [{"type": "deny", "actor": [actor(org(COUNCIL))]}]},
        ),
    )
    council = _check(
        world,
        _organisation(COUNCIL),
        {"name": "resource", "valueReference": {"reference": f"Condition/{world.asthma}"}},
    )
    decision = _by_name(_by_name(council.json()["parameter"])["decision"]["part"])
    assert decision["permit"]["valueBoolean"] is False
    assert decision["consent"]["valueReference"]["reference"] == f"Consent/{consent}"
    assert decision["provision"]["valueString"] == "provision.provision[0]"


def test_access_check_is_for_compliance_only(world: World) -> None:
    _check(world, _organisation(GP))  # registers the auditor
    assert _check(world, _organisation(GP), who="gp").status_code == 403
    assert _check(world, _organisation("ZZZ99")).status_code == 400  # kind unknown
    assert (
        _check(world, _organisation("ZZZ99"), {"name": "kind", "valueCode": "hospital"}).status_code
        == 200
    )
    assert _check(world, {"name": "organization", "valueString": ""}).status_code == 400
    other = _check(
        world,
        _organisation(GP),
        {"name": "resource", "valueReference": {"reference": "Organization/x"}},
    )
    assert other.status_code == 404


def test_only_those_caring_for_the_person_record_their_consent(world: World) -> None:
    dissent = privacy_consent(world.subject, {"type": "deny"})
    for who in ("hospital", "ambulance"):
        answer = world.api.post("/fhir/Consent", json=dissent, headers=world.headers(who))
        assert answer.status_code == 403, who
        assert "care relationship" in answer.json()["issue"][0]["diagnostics"]
    assert world.get("gp", f"/fhir/Condition/{world.asthma}").status_code == 200  # nothing written
    recorded = world.post("council", dissent)  # an active social care episode
    url = f"/fhir/Consent/{recorded}"
    withdrawn = {**dissent, "id": recorded, "status": "inactive"}
    assert world.api.put(url, json=withdrawn, headers=world.headers("hospital")).status_code == 404
    ignored = world.api.delete(url, headers=world.headers("hospital"))  # as if nothing were there
    assert ignored.status_code == 204 and "etag" not in ignored.headers
    assert world.api.put(url, json=withdrawn, headers=world.headers("gp")).status_code == 200
    # Moving a Consent to a person one does not care for is refused too.
    stranger = world.post("hospital", {"resourceType": "Patient"})
    moved = {**withdrawn, "patient": {"reference": f"Patient/{stranger}"}}
    assert world.api.put(url, json=moved, headers=world.headers("gp")).status_code == 403


def test_provenance_is_shown_only_with_what_it_is_about(world: World) -> None:
    """Each write's Provenance names the versions written: it must not tell
    the hospital that the care home wrote a Condition it may not see."""
    about_asthma = f"/fhir/Provenance?target=Condition/{world.asthma}"
    about_depression = f"/fhir/Provenance?target=Condition/{world.depression}"
    assert len(world.ids("home", about_asthma)) == 1
    assert len(world.ids("gp", about_asthma)) == 1
    assert world.ids("gp", about_depression) == []  # PSY: the GP may not see it
    assert world.ids("hospital", about_asthma) == []
    history = world.get("hospital", "/fhir/Provenance/_history").json()
    assert history.get("entry", []) == []
    provenance = world.ids("home", about_depression)[0]
    assert world.get("gp", f"/fhir/Provenance/{provenance}").status_code == 404
    assert world.get("home", f"/fhir/Provenance/{provenance}").status_code == 200


def test_a_list_or_composition_is_shown_only_with_every_record_it_names(
    world: World,
) -> None:
    """A problem list or a summary names its items, often with their words:
    one naming the PSY-labelled depression must not tell the GP of it,
    whether read, searched for or included."""
    entries = [
        {"item": {"reference": f"Condition/{world.asthma}", "display": "Asthma"}},
        {"item": {"reference": f"Condition/{world.depression}", "display": "Depression"}},
    ]
    problems = world.post(
        "home",
        {
            "resourceType": "List",
            "status": "current",
            "mode": "snapshot",
            "title": "Problems",
            "subject": world.subject,
            "entry": entries,
        },
    )
    asthma_only = world.post(
        "home",
        {
            "resourceType": "List",
            "status": "current",
            "mode": "snapshot",
            "subject": world.subject,
            "entry": entries[:1],
        },
    )
    summary = world.post(
        "home",
        {
            "resourceType": "Composition",
            "status": "final",
            "type": {"text": "Care summary"},
            "subject": world.subject,
            "date": "2026-11-01",
            "author": [org(HOME)],
            "title": "Care summary",
            "section": [
                {
                    "title": "Problems",
                    "section": [
                        {
                            "title": "Mental health",
                            "entry": [{"reference": f"Condition/{world.depression}"}],
                        }
                    ],
                }
            ],
        },
    )
    for url in (f"/fhir/List/{problems}", f"/fhir/Composition/{summary}"):
        assert world.get("home", url).status_code == 200  # their author
        assert world.get("gp", url).status_code == 404, url
    assert world.get("gp", f"/fhir/List/{asthma_only}").status_code == 200
    assert world.ids("gp", f"/fhir/List?subject=Patient/{world.patient}") == [asthma_only]
    assert world.ids("gp", f"/fhir/List?item=Condition/{world.depression}") == []
    assert world.ids("gp", f"/fhir/Composition?subject=Patient/{world.patient}") == []
    included = world.ids("gp", f"/fhir/Condition?_id={world.asthma}&_revinclude=List:item")
    assert included == sorted([world.asthma, asthma_only])
    everything = world.ids("gp", f"/fhir/Patient/{world.patient}/$everything?_type=List")
    assert everything == [asthma_only]
    # A List naming the Provenance of the depression's write tells of it too.
    depression_write = world.ids("home", f"/fhir/Provenance?target=Condition/{world.depression}")
    provenances = world.post(
        "home",
        {
            "resourceType": "List",
            "status": "current",
            "mode": "working",
            "subject": world.subject,
            "entry": [{"item": {"reference": f"Provenance/{depression_write[0]}"}}],
        },
    )
    assert world.get("gp", f"/fhir/List/{provenances}").status_code == 404
    # A List naming itself is decided, not chased for ever: its author's alone.
    itself = {"item": {"reference": f"List/{asthma_only}"}}
    answer = world.api.put(
        f"/fhir/List/{asthma_only}",
        json={**world.get("home", f"/fhir/List/{asthma_only}").json(), "entry": [itself]},
        headers=world.headers("home"),
    )
    assert answer.status_code == 200, answer.text
    assert world.get("gp", f"/fhir/List/{asthma_only}").status_code == 404
    assert world.get("home", f"/fhir/List/{asthma_only}").status_code == 200


def test_a_visit_is_as_sensitive_as_the_diagnoses_it_names(world: World) -> None:
    """A visit whose diagnoses include the PSY-labelled depression tells of
    it (the high-water mark of what it holds): the GP, who may not see the
    depression, is not shown that visit, but is shown one naming asthma.
    Reports and panels are held to their results and members alike."""

    def visit(*conditions: str) -> str:
        return world.post(
            "home",
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                },
                "subject": world.subject,
                "diagnosis": [{"condition": {"reference": f"Condition/{c}"}} for c in conditions],
            },
        )

    low, high = visit(world.asthma), visit(world.asthma, world.depression)
    assert world.get("gp", f"/fhir/Encounter/{low}").status_code == 200
    assert world.get("gp", f"/fhir/Encounter/{high}").status_code == 404
    assert world.get("home", f"/fhir/Encounter/{high}").status_code == 200  # its author
    assert world.ids("gp", f"/fhir/Encounter?diagnosis=Condition/{world.asthma}") == [low]

    # So is a report with its results, and a panel with its members.
    mood = world.post(
        "home",
        {
            "resourceType": "Observation",
            "meta": {"security": [{"system": ACT, "code": "PSY"}]},
            "status": "final",
            "code": {"text": "PHQ-9 score"},
            "subject": world.subject,
            "valueInteger": 19,
        },
    )
    report = world.post(
        "home",
        {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "code": {"text": "Mood assessment"},
            "subject": world.subject,
            "result": [{"reference": f"Observation/{mood}"}],
        },
    )
    panel = world.post(
        "home",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "Wellbeing panel"},
            "subject": world.subject,
            "hasMember": [{"reference": f"Observation/{mood}"}],
        },
    )
    for url in (f"/fhir/DiagnosticReport/{report}", f"/fhir/Observation/{panel}"):
        assert world.get("gp", url).status_code == 404, url
        assert world.get("home", url).status_code == 200, url


def test_a_social_care_assessment_is_the_persons_record(world: World) -> None:
    """Task is outside R4's patient compartment, but an assessment is the
    person's record: shown as theirs, not as directory data."""
    task = world.post(
        "council",
        {
            "resourceType": "Task",
            "status": "completed",
            "intent": "order",
            "code": {"text": "Care Act needs assessment"},
            "for": world.subject,
        },
    )
    url = f"/fhir/Task/{task}"
    assert world.get("council", url).status_code == 200
    assert world.get("gp", url).status_code == 200  # registered GP, implied consent
    assert world.get("hospital", url).status_code == 404
    everything = world.ids("gp", f"/fhir/Patient/{world.patient}/$everything?_type=Task")
    assert everything == [task]


def test_an_earlier_version_is_withheld_as_its_record_is_now(world: World) -> None:
    """The care home first records a low mood (unlabelled, shared with the
    GP), then codes it as depression (PSY). The GP, who may not see mental
    health data, no longer sees the record through any version of it:
    neither by version, nor in its history, nor in the type's or the
    system's history, nor through the Provenance of its first version."""
    low_mood = world.condition("366979004", "Low mood")
    url = f"/fhir/Condition/{low_mood}"
    assert world.get("gp", url + "/_history/1").status_code == 200
    answer = world.api.put(
        url,
        json={
            "resourceType": "Condition",
            "id": low_mood,
            "subject": world.subject,
            "code": {"coding": [{"system": SNOMED, "code": "35489007"}], "text": "Depression"},
            "onsetDateTime": "2024-01-10",
        },
        headers=world.headers("home"),
    )
    assert answer.status_code == 200, answer.text
    assert world.get("gp", url).status_code == 404
    assert world.get("gp", url + "/_history/1").status_code == 404
    assert world.get("gp", url + "/_history").status_code == 404
    for history in ("/fhir/Condition/_history", "/fhir/_history"):
        shown = world.get("gp", history).json()
        assert low_mood not in {e["resource"]["id"] for e in shown.get("entry", [])}, history
    # Nor what the Provenance of its first version says it was.
    assert world.ids("gp", f"/fhir/Provenance?target=Condition/{low_mood}") == []
    # Its author still sees every version, and what wrote them.
    assert world.get("home", url + "/_history/1").status_code == 200
    assert len(world.ids("home", f"/fhir/Provenance?target=Condition/{low_mood}")) == 2
