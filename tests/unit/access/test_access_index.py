"""What a resource's access rows say (``gateway.access.index``): never more
than a decision would find, read with the decisions' own functions."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.access.index import access_entries
from gateway.store.values import DateRange, ReferenceValue, TokenValue

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SCOPE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
    ]
}


def _rows(resource: dict[str, Any]) -> set[tuple[str, object]]:
    found: set[tuple[str, object]] = set()
    for entry in access_entries(resource):
        value = entry.value
        if isinstance(value, TokenValue):
            found.add((entry.param, value.code))
        elif isinstance(value, ReferenceValue):
            found.add((entry.param, f"{value.target_type}/{value.target_id}"))
        elif isinstance(value, DateRange):
            found.add((entry.param, (value.low, value.high)))
    return found


def _claims(resource: dict[str, Any]) -> set[tuple[str, str | None, str]]:
    """(param, person, organisation) of each claim of care ``resource`` makes."""
    return {
        (entry.param, entry.value.system, entry.value.code)
        for entry in access_entries(resource)
        if entry.param.startswith("_access-carer") and isinstance(entry.value, TokenValue)
    }


def _consent(provision: dict[str, Any], status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": "c1",
        "status": status,
        "scope": SCOPE,
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p1"},
        "provision": provision,
    }


def _actor(reference: dict[str, Any]) -> dict[str, Any]:
    return {"reference": reference}


def _refusals(resource: dict[str, Any]) -> set[object]:
    return {code for param, code in _rows(resource) if param == "_access-denies"}


def test_a_record_says_whose_it_is_who_wrote_it_and_its_labels() -> None:
    rows = _rows(
        {
            "resourceType": "Observation",
            "id": "o1",
            "meta": {
                "source": "urn:ods:A81001",
                "security": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                        "code": "R",
                    },
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"},
                ],
            },
            "status": "final",
            "code": {"text": "mood"},
            "subject": {"reference": "Patient/p1"},
        }
    )
    assert rows == {
        ("_access-person", "Patient/p1"),
        ("_access-author", "A81001"),
        ("_access-label", "R"),
        ("_access-label", "restricted"),
    }


def test_a_record_naming_no_patient_by_id_says_whose_kind_it_is() -> None:
    named = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "1"}},
    }
    assert ("_access-whose", "identified") in _rows(named)
    assert ("_access-whose", "no-person") in _rows({"resourceType": "Condition", "id": "c2"})
    assert _rows({"resourceType": "Medication", "id": "m1"}) == {("_access-whose", "directory")}


def test_care_claims_by_code_by_organisation_and_until_when() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "generalPractitioner": [
            {"identifier": {"system": ODS, "value": "a81001"}},
            {"reference": "Organization/gp2"},
        ],
    }
    assert _claims(patient) == {
        ("_access-carer", "p1", "A81001"),
        ("_access-carer-org", "p1", "gp2"),
    }
    episode = {
        "resourceType": "EpisodeOfCare",
        "id": "ep1",
        "status": "active",
        "patient": {"reference": "Patient/p2"},
        "managingOrganization": {"reference": "Organization/council"},
    }
    assert _claims(episode) == {("_access-carer-org", "p2", "council")}
    # A claim about no Patient named by id is about no one a decision finds.
    unnamed = {**episode, "patient": {"identifier": {"system": ODS, "value": "x"}}}
    assert _claims(unnamed) == set()
    finished = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "subject": {"reference": "Patient/p1"},
        "period": {"end": "2026-11-01T00:00:00Z"},
        "serviceProvider": {"identifier": {"system": ODS, "value": "RRV"}},
    }
    assert ("_access-care-until", ("2026-12-01T00:00:00.000000Z",) * 2) in _rows(finished)
    planned = {**finished, "status": "planned"}
    assert not {r for r in _rows(planned) if r[0].startswith("_access-car")}


@pytest.mark.parametrize(
    ("provision", "refused"),
    [
        ({"type": "deny"}, {"*"}),
        (
            {"type": "deny", "actor": [_actor({"identifier": {"system": ODS, "value": "e09"}})]},
            {"E09"},
        ),
        # Named by reference: resolved only when decided, so said of no one.
        ({"type": "deny", "actor": [_actor({"reference": "Organization/council"})]}, set()),
        ({"type": "permit"}, set()),
        # Narrowed to some records, some purposes, or with exceptions: a
        # decision may still show some of the person's records.
        ({"type": "deny", "class": [{"code": "Observation"}]}, set()),
        ({"type": "deny", "purpose": [{"code": "ETREAT"}]}, set()),
        ({"type": "deny", "purpose": [{"code": "TREAT"}]}, {"*"}),
        ({"type": "deny", "provision": [{"type": "permit"}]}, set()),
        ({"type": "deny", "securityLabel": [{"code": "PSY"}]}, set()),
        ({"type": "deny", "dataPeriod": {"start": "2020-01-01"}}, set()),
    ],
)
def test_a_consent_refuses_wholly_only_when_nothing_narrows_it(
    provision: dict[str, Any], refused: set[object]
) -> None:
    assert _refusals(_consent(provision)) == refused
    assert _refusals(_consent(provision, status="inactive")) == set()


def test_a_refusal_says_when_it_holds_and_an_unreadable_consent_holds_the_record() -> None:
    rows = _rows(_consent({"type": "deny", "period": {"start": "2026-01-01", "end": "2026"}}))
    windows = [code for param, code in rows if param == "_access-deny-window"]
    assert windows == [("2026-01-01T00:00:00.000000Z", "2027-01-01T00:00:00.000000Z")]
    held = _rows(_consent({"type": "deny", "somethingElse": True}))
    assert ("_access-held", "held") in held and not _refusals(_consent({"type": "x"}))
