"""Whose record a resource says it is: a Patient by id, a person by
identifier (resolved later), a clinical record naming no one, no one's, or
(a Subscription, a Group) its author's alone."""

from __future__ import annotations

from typing import Any

import pytest

from consent.engine import decide
from consent.model import DIRECTORY, NO_PERSON, PERSON, Requester
from gateway.access.facts import (
    _PERSON_ELEMENT,
    AUTHORS_OWN_TYPES,
    PERSONAL_TYPES,
    facts_of,
    person_identifier,
    whose_record,
)
from tests.unit.consent.test_engine import HOME, NOW, auditor, requester
from tests.unit.consent.test_no_person import EVERYONE_BUT_THE_AUTHOR

NHS = "https://fhir.nhs.uk/Id/nhs-number"
BY_NHS_NUMBER = {"identifier": {"system": NHS, "value": "9990000018"}}


@pytest.mark.parametrize("res_type", sorted(_PERSON_ELEMENT))
def test_a_person_named_by_nhs_number_alone_is_named_by_identifier(res_type: str) -> None:
    resource = {"resourceType": res_type, _PERSON_ELEMENT[res_type]: BY_NHS_NUMBER}
    assert person_identifier(resource) == (NHS, "9990000018")
    assert whose_record(resource) == (None, (NHS, "9990000018"), PERSON)
    assert facts_of(resource).whose == PERSON


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        # typed Patient: any identifier system names the person
        (
            {"type": "Patient", "identifier": {"system": "urn:mrn", "value": "42"}},
            ("urn:mrn", "42"),
        ),
        (
            {
                "type": "http://hl7.org/fhir/StructureDefinition/Patient",
                "identifier": {"system": "urn:mrn", "value": "42"},
            },
            ("urn:mrn", "42"),
        ),
        ({"type": "Patient", "identifier": {"value": "42"}}, (None, "42")),
        # untyped: only an NHS number says it is a person
        ({"identifier": {"system": "urn:mrn", "value": "42"}}, None),
        # typed as anything else: not a person
        ({"type": "Group", "identifier": {"system": NHS, "value": "9990000018"}}, None),
        # a literal reference decides; the identifier beside it is kept, not read
        ({"reference": "Patient/p-1", **BY_NHS_NUMBER}, None),
        ({"identifier": {"system": NHS}}, None),
        ({"identifier": {"system": NHS, "value": ""}}, None),
        ({"display": "Ada"}, None),
    ],
)
def test_which_logical_references_name_a_person(subject: Any, expected: object) -> None:
    assert person_identifier({"resourceType": "Condition", "subject": subject}) == expected


def test_a_literal_patient_is_the_person() -> None:
    condition = {"resourceType": "Condition", "subject": {"reference": "Patient/p-1"}}
    assert whose_record(condition) == ("p-1", None, PERSON)
    assert whose_record({"resourceType": "Patient", "id": "p-2"}) == ("p-2", None, PERSON)


@pytest.mark.parametrize("res_type", sorted(PERSONAL_TYPES - {"Patient"}))
def test_a_clinical_record_naming_no_one_is_still_a_persons(res_type: str) -> None:
    assert whose_record({"resourceType": res_type}) == (None, None, NO_PERSON)
    assert facts_of({"resourceType": res_type}).whose == NO_PERSON


@pytest.mark.parametrize(
    "subject",
    [{"reference": "Group/g-1"}, {"reference": "Device/d-1"}, {"display": "the ward"}],
)
def test_a_clinical_record_about_something_else_names_no_person(subject: Any) -> None:
    observation = {"resourceType": "Observation", "subject": subject}
    assert whose_record(observation).whose == NO_PERSON


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Organization"},
        {"resourceType": "Practitioner"},
        {"resourceType": "Location"},
        {"resourceType": "Medication"},
        {"resourceType": "Device"},  # equipment assigned to no one
        {"resourceType": "Provenance", "target": [{"reference": "Organization/o-1"}]},
    ],
)
def test_what_is_no_ones_record(resource: dict[str, Any]) -> None:
    assert whose_record(resource) == (None, None, DIRECTORY)


def test_a_device_or_provenance_naming_a_patient_is_theirs() -> None:
    device = {"resourceType": "Device", "patient": {"reference": "Patient/p-1"}}
    provenance = {"resourceType": "Provenance", "target": [{"reference": "Patient/p-1"}]}
    assert whose_record(device) == whose_record(provenance) == ("p-1", None, PERSON)
    implant = {"resourceType": "Device", "patient": BY_NHS_NUMBER}
    assert whose_record(implant) == (None, (NHS, "9990000018"), PERSON)


def _subscription(author: str) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "id": "s-1",
        "meta": {"source": f"urn:ods:{author}"},
        "status": "active",
        "reason": "Admissions of my residents",
        "criteria": "urn:london-care-gateway:SubscriptionTopic:admission",
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://home.example/fhir-notify",
            "header": ["Authorization: Bearer x"],
        },
    }


def test_a_subscription_names_no_person_yet_is_not_the_directorys() -> None:
    """A Subscription is no one's record, but its endpoint and headers (a
    credential among them) are not shared as an Organization is."""
    subscription = _subscription(HOME)
    assert whose_record(subscription) == (None, None, NO_PERSON)
    assert facts_of(subscription).whose == NO_PERSON
    assert "Subscription" in AUTHORS_OWN_TYPES and "Subscription" not in PERSONAL_TYPES


@pytest.mark.parametrize(
    "who",
    [*EVERYONE_BUT_THE_AUTHOR, auditor],
    ids=lambda r: f"{r.kind}-{r.purpose}",
)
def test_a_subscription_is_seen_by_its_author_alone(who: Requester) -> None:
    """Not by another organisation for direct care, nor under emergency
    access (ETREAT), nor by an auditor: only the organisation that wrote it."""
    facts = facts_of(_subscription(HOME))
    assert decide(requester(HOME, "care-home"), None, facts, NOW).rule == "author"
    decision = decide(who, None, facts, NOW)
    assert not decision.permit
    assert decision.rule == ("audit-scope" if who is auditor else "no-person")


def _group(author: str) -> dict[str, Any]:
    return {
        "resourceType": "Group",
        "id": "g-1",
        "meta": {"source": f"urn:ods:{author}"},
        "type": "person",
        "actual": True,
        "member": [
            {"entity": {"reference": "Patient/p-1"}},
            {"entity": {"reference": "Patient/p-2"}},
        ],
    }


def test_a_group_names_people_yet_is_no_ones_record() -> None:
    """A Group is a cohort, a list of people: naming them as members does not
    make it part of their records, and who is in it is not the directory's."""
    group = _group(HOME)
    assert whose_record(group) == (None, None, NO_PERSON)
    assert facts_of(group).whose == NO_PERSON
    assert "Group" in AUTHORS_OWN_TYPES and "Group" not in PERSONAL_TYPES


@pytest.mark.parametrize(
    "who",
    [*EVERYONE_BUT_THE_AUTHOR, auditor],
    ids=lambda r: f"{r.kind}-{r.purpose}",
)
def test_a_group_is_seen_by_its_author_alone(who: Requester) -> None:
    """Not by its members' other carers, nor under emergency access, nor by
    an auditor: only the organisation that wrote it."""
    facts = facts_of(_group(HOME))
    assert decide(requester(HOME, "care-home"), None, facts, NOW).rule == "author"
    decision = decide(who, None, facts, NOW)
    assert not decision.permit
    assert decision.rule == ("audit-scope" if who is auditor else "no-person")
