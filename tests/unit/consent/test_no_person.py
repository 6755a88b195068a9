"""Records with no person on file: shared only when they are no one's
record (``directory``) and unrestricted; otherwise their author's alone
(``person-unknown``, ``no-person``)."""

from __future__ import annotations

import dataclasses

import pytest

from consent.engine import decide
from consent.model import (
    ACT_CODE,
    CONFIDENTIALITY,
    DIRECTORY,
    NO_PERSON,
    PERSON,
    Person,
    Requester,
    ResourceFacts,
)
from tests.unit.consent.test_engine import (
    AMBULANCE,
    COUNCIL,
    GP,
    HOME,
    HOSPITAL,
    NOW,
    ambulance,
    auditor,
    council,
    gp,
    hospital_emergency,
    hospital_treat,
    requester,
)

EVERYONE_BUT_THE_AUTHOR = [
    gp,
    council,
    hospital_treat,
    hospital_emergency,
    ambulance,
    requester(AMBULANCE, "ambulance"),
    requester("QMJ", "analytics", "POPHLTH"),
]


def rule(who: Requester, whom: Person | None, what: ResourceFacts) -> tuple[bool, str]:
    decision = decide(who, whom, what, NOW)
    return decision.permit, decision.rule


def facts(res_type: str, whose: str, *labels: str) -> ResourceFacts:
    return ResourceFacts(
        res_type=res_type,
        res_id="r1",
        labels=frozenset((ACT_CODE, label) for label in labels),
        author_ods=HOME,
        whose=whose,
    )


@pytest.mark.parametrize("who", EVERYONE_BUT_THE_AUTHOR, ids=lambda r: f"{r.kind}-{r.purpose}")
def test_a_record_of_a_person_not_yet_known_is_its_authors_alone(who: Requester) -> None:
    record = facts("Condition", PERSON)
    assert rule(who, None, record) == (False, "person-unknown")
    assert decide(requester(HOME, "care-home"), None, record, NOW).rule == "author"


@pytest.mark.parametrize("who", EVERYONE_BUT_THE_AUTHOR, ids=lambda r: f"{r.kind}-{r.purpose}")
def test_a_clinical_record_naming_no_one_is_its_authors_alone(who: Requester) -> None:
    assert rule(who, None, facts("Condition", NO_PERSON)) == (False, "no-person")
    sex = facts("DocumentReference", NO_PERSON, "SEX")
    assert rule(who, None, sex) == (False, "no-person")
    assert decide(requester(HOME, "care-home"), None, sex, NOW).rule == "author"


@pytest.mark.parametrize("label", ["PSY", "ETH", "SEX", "SDV"])
def test_no_ones_record_is_shared_unless_restricted(label: str) -> None:
    assert decide(council, None, facts("Organization", DIRECTORY), NOW).rule == "directory"
    labelled = facts("Organization", DIRECTORY, label)
    assert rule(council, None, labelled) == (False, "no-person")
    assert rule(ambulance, None, labelled) == (False, "no-person")
    confidential = dataclasses.replace(
        facts("Organization", DIRECTORY), labels=frozenset({(CONFIDENTIALITY, "R")})
    )
    assert decide(council, None, confidential, NOW).rule == "legally-restricted"


def test_an_auditor_still_sees_the_kinds_it_sees_of_everyone() -> None:
    assert decide(auditor, None, facts("Consent", PERSON), NOW).rule == "audit"
    assert decide(auditor, None, facts("Condition", PERSON), NOW).rule == "audit-scope"
    assert decide(auditor, None, facts("Condition", NO_PERSON), NOW).rule == "audit-scope"


def test_once_the_person_is_known_their_rules_decide() -> None:
    record = facts("Condition", PERSON)
    ada = Person("p1", frozenset({GP, HOSPITAL}))
    assert decide(gp, ada, record, NOW).rule == "implied-consent"
    assert decide(council, ada, record, NOW).rule == "no-relationship"
    assert decide(ambulance, ada, record, NOW).rule == "emergency-access"
    assert decide(requester(COUNCIL, "council"), None, record, NOW).rule == "person-unknown"
