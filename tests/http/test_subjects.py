"""Whose record it is, as an outsider would probe it: a record naming its
person by NHS number alone is that person's (resolved to their Patient when
written, or when decided once they are known); a clinical or restricted
record naming no one is its author's alone. What is withheld answers exactly
as what does not exist, on reads and on ``subject:identifier`` searches."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.store import Store
from tests.conftest import access_token
from tests.http.test_consent import ACT, AMBULANCE, COUNCIL, GP, SNOMED, World, actor, org
from tests.support.consents import privacy_consent

NHS = "https://fhir.nhs.uk/Id/nhs-number"
# Ada is registered with the GP and known to no one else; Ben is not on file yet.
ADA, BEN, NOBODY = "9990000026", "9990000034", "9990000042"
OTHER_GP = "B82002"
NO_RELATIONSHIP = ("council", "hospital", "ambulance-treat")
_VARYING = re.compile(
    rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # ids
    rb"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})"  # instants
)


def by_nhs_number(number: str) -> dict[str, Any]:
    return {"identifier": {"system": NHS, "value": number}}


class People(World):
    """The world of ``test_consent``, with Ada registered at its GP, an
    ambulance service asking for direct care (it never has a relationship),
    and another practice."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.tokens["ambulance-treat"] = access_token(
            store, client_id="ambulance-treat", kind="ambulance", org=AMBULANCE
        )
        self.tokens["other-gp"] = access_token(
            store, client_id="other-gp", kind="gp-practice", org=OTHER_GP
        )
        self.ada = patient(self, "gp", ADA, GP)


@pytest.fixture
def world(store: Store) -> Iterator[People]:
    built = People(store)
    yield built
    built.api.__exit__(None, None, None)


def patient(world: World, who: str, number: str, practice: str) -> str:
    return world.post(
        who,
        {
            "resourceType": "Patient",
            "identifier": [{"system": NHS, "value": number}],
            "generalPractitioner": [org(practice)],
        },
    )


def condition(subject: dict[str, Any] | None, text: str = "Asthma") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "code": {"coding": [{"system": SNOMED, "code": "195967001"}], "text": text},
        "onsetDateTime": "2024-01-10",
    }
    if subject is not None:
        resource["subject"] = subject
    return resource


def letter(subject: dict[str, Any] | None, label: str) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "meta": {"security": [{"system": ACT, "code": label}]},
        "status": "current",
        "type": {"coding": [{"system": SNOMED, "code": "371530004", "display": "Clinic letter"}]},
        "content": [{"attachment": {"contentType": "text/plain", "data": "bGV0dGVy"}}],
    }
    if subject is not None:
        resource["subject"] = subject
    return resource


def _normalised(answer: httpx.Response, replace: dict[str, str]) -> tuple[int, Any, bytes]:
    body = answer.content
    for old, new in replace.items():
        body = body.replace(old.encode(), new.encode())
    headers = sorted(
        (k, v) for k, v in answer.headers.items() if k.lower() not in ("x-request-id", "date")
    )
    return answer.status_code, headers, _VARYING.sub(b"*", body)


def assert_read_as_missing(world: World, who: str, res_type: str, res_id: str) -> None:
    """A read of ``res_type/res_id`` answers, byte for byte but for ids,
    instants and the request id, as a read of one that does not exist."""
    missing = str(uuid.uuid4())
    hidden = world.get(who, f"/fhir/{res_type}/{res_id}")
    absent = world.get(who, f"/fhir/{res_type}/{missing}")
    assert hidden.status_code == 404, (who, hidden.text)
    assert _normalised(hidden, {res_id: "X"}) == _normalised(absent, {missing: "X"}), who


def assert_searched_as_missing(world: World, who: str, res_type: str, number: str) -> None:
    """A search by the person's NHS number finds nothing, and answers as a
    search by a number no record names."""
    url = f"/fhir/{res_type}?subject:identifier={NHS}|{{}}"
    hidden = world.get(who, url.format(number))
    absent = world.get(who, url.format(NOBODY))
    assert hidden.status_code == 200 and hidden.json().get("entry") is None, (who, hidden.text)
    assert hidden.json()["total"] == 0
    assert _normalised(hidden, {number: "N"}) == _normalised(absent, {NOBODY: "N"}), who


def found(world: World, who: str, res_type: str, number: str) -> list[str]:
    return world.ids(who, f"/fhir/{res_type}?subject:identifier={NHS}|{number}")


def test_a_record_naming_the_person_by_nhs_number_is_theirs(world: People) -> None:
    ada = world.ada
    record = world.post("home", condition(by_nhs_number(ADA)))
    stored = world.get("home", f"/fhir/Condition/{record}").json()
    assert stored["subject"] == {"reference": f"Patient/{ada}", **by_nhs_number(ADA)}
    # Her GP sees it, by every way of asking for her records.
    assert world.get("gp", f"/fhir/Condition/{record}").status_code == 200
    assert found(world, "gp", "Condition", ADA) == [record]
    assert world.ids("gp", f"/fhir/Condition?subject=Patient/{ada}") == [record]
    assert world.ids("gp", f"/fhir/Patient/{ada}/Condition") == [record]
    # No one without a relationship with her sees it, nor can tell it is there.
    for who in NO_RELATIONSHIP:
        assert_read_as_missing(world, who, "Condition", record)
        assert_searched_as_missing(world, who, "Condition", ADA)
        assert world.ids(who, f"/fhir/Condition?subject=Patient/{ada}") == []
    # An emergency crew sees it as any record of hers (emergency access).
    assert found(world, "ambulance", "Condition", ADA) == [record]


def test_a_restricted_letter_by_nhs_number_follows_the_persons_rules(world: People) -> None:
    """The PSY letter about the world's person, who has the council's
    support: withheld from the council until a Consent permits it PSY data,
    and from everyone else but its author."""
    number = "9990000018"
    psy = world.post("home", letter(by_nhs_number(number), "PSY"))
    assert world.get("home", f"/fhir/DocumentReference/{psy}").status_code == 200
    assert found(world, "home", "DocumentReference", number) == [psy]
    for who in ("council", "gp", "hospital", "ambulance", "ambulance-treat"):
        assert_read_as_missing(world, who, "DocumentReference", psy)
        assert_searched_as_missing(world, who, "DocumentReference", number)
    # Named by NHS number too: resolved to the person, whose GP records it.
    permit = privacy_consent(
        by_nhs_number(number),
        {
            "type": "permit",
            "actor": [actor(org(COUNCIL))],
            "securityLabel": [{"system": ACT, "code": "PSY"}],
        },
    )
    consent = world.post("gp", permit)
    recorded = world.get("gp", f"/fhir/Consent/{consent}").json()
    assert recorded["patient"]["reference"] == f"Patient/{world.patient}"
    assert world.get("council", f"/fhir/DocumentReference/{psy}").status_code == 200
    assert found(world, "council", "DocumentReference", number) == [psy]
    assert_read_as_missing(world, "gp", "DocumentReference", psy)


def test_a_record_of_a_person_not_yet_known_waits_for_them(world: People) -> None:
    """Ben is not on file: what names him is its author's alone. Once his
    GP's record of him is loaded, it is his, and his GP sees it."""
    record = world.post("home", condition(by_nhs_number(BEN), "Fall at home"))
    stored = world.get("home", f"/fhir/Condition/{record}").json()
    assert stored["subject"] == by_nhs_number(BEN)  # no one to resolve to
    assert found(world, "home", "Condition", BEN) == [record]
    for who in ("gp", "other-gp", "ambulance", *NO_RELATIONSHIP):
        assert_read_as_missing(world, who, "Condition", record)
        assert_searched_as_missing(world, who, "Condition", BEN)
    ben = patient(world, "other-gp", BEN, OTHER_GP)
    assert world.get("other-gp", f"/fhir/Condition/{record}").status_code == 200
    assert found(world, "other-gp", "Condition", BEN) == [record]
    assert found(world, "ambulance", "Condition", BEN) == [record]  # emergency access
    for who in ("gp", *NO_RELATIONSHIP):
        assert_read_as_missing(world, who, "Condition", record)
        assert_searched_as_missing(world, who, "Condition", BEN)
    # Written again now he is known, it names him by id as well.
    again = world.api.put(
        f"/fhir/Condition/{record}",
        json={**condition(by_nhs_number(BEN), "Fall at home"), "id": record},
        headers=world.headers("home"),
    )
    assert again.status_code == 200, again.text
    assert again.json()["subject"]["reference"] == f"Patient/{ben}"
    assert world.ids("other-gp", f"/fhir/Patient/{ben}/Condition") == [record]


def test_a_number_two_patients_carry_names_no_one_for_sure(world: People) -> None:
    """Two Patients with one NHS number: the record is neither's, so
    neither's GP is shown it."""
    patient(world, "other-gp", ADA, OTHER_GP)
    record = world.post("home", condition(by_nhs_number(ADA), "Fall at home"))
    assert "reference" not in world.get("home", f"/fhir/Condition/{record}").json()["subject"]
    for who in ("gp", "other-gp", "ambulance", *NO_RELATIONSHIP):
        assert_read_as_missing(world, who, "Condition", record)


def test_records_naming_no_one_are_their_authors_alone(world: People) -> None:
    sex = world.post("home", letter(None, "SEX"))
    unnamed = world.post(
        "home",
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": SNOMED, "code": "364075005"}], "text": "Pulse"},
        },
    )
    about_a_ward = world.post("home", condition({"reference": "Group/ward-3"}))
    for res_type, res_id in (
        ("DocumentReference", sex),
        ("Observation", unnamed),
        ("Condition", about_a_ward),
    ):
        assert world.get("home", f"/fhir/{res_type}/{res_id}").status_code == 200
        for who in ("gp", "ambulance", *NO_RELATIONSHIP):
            assert_read_as_missing(world, who, res_type, res_id)
    for who in ("council", "gp", "hospital"):
        assert world.ids(who, "/fhir/DocumentReference?type=371530004") == []
        assert world.ids(who, "/fhir/Observation?subject:missing=true") == []
        assert world.ids(who, "/fhir/Condition?subject=Group/ward-3") == []
    # What is no one's record is still everyone's, unless it is restricted.
    directory = world.post("home", {"resourceType": "Location", "name": "Ward 3"})
    assert world.get("council", f"/fhir/Location/{directory}").status_code == 200
    sdv = letter(None, "SDV")["meta"]
    refuge = world.post("home", {"resourceType": "Location", "name": "Refuge", "meta": sdv})
    assert_read_as_missing(world, "council", "Location", refuge)


def test_a_transaction_resolves_the_person_as_a_single_write_does(world: People) -> None:
    ada = world.ada
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": condition(by_nhs_number(ADA), "Hay fever"),
                "request": {"method": "POST", "url": "Condition"},
            }
        ],
    }
    answer = world.api.post("/fhir", json=bundle, headers=world.headers("home"))
    assert answer.status_code == 200, answer.text
    location = answer.json()["entry"][0]["response"]["location"]
    record = location.split("Condition/")[1].split("/")[0]
    assert world.ids("gp", f"/fhir/Patient/{ada}/Condition") == [record]
    for who in NO_RELATIONSHIP:
        assert_read_as_missing(world, who, "Condition", record)


def test_a_record_whose_patient_is_gone_is_its_authors_alone(world: People) -> None:
    """Once Ada's Patient is deleted, no one is known to be hers: even an
    emergency crew, who saw her record, no longer does."""
    record = world.post("home", condition({"reference": f"Patient/{world.ada}"}))
    assert world.get("ambulance", f"/fhir/Condition/{record}").status_code == 200
    gone = world.api.delete(f"/fhir/Patient/{world.ada}", headers=world.headers("gp"))
    assert gone.status_code in (200, 204), gone.text
    for who in ("gp", "ambulance", *NO_RELATIONSHIP):
        assert_read_as_missing(world, who, "Condition", record)
    assert world.get("home", f"/fhir/Condition/{record}").status_code == 200
