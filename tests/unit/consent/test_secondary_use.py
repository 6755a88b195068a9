"""Secondary use (POPHLTH, HOPERAT, HRESCH): its own rules, tried before any
of direct care's, and direct care's decisions unchanged by its facts."""

from __future__ import annotations

import pytest

from consent.engine import decide, type_1_opt_out
from consent.model import (
    ACT_CODE,
    CONFIDENTIALITY,
    NATIONAL,
    PERSON,
    TYPE_1,
    TYPE_1_OPT_OUT,
    TYPE_1_WITHDRAWN,
    ConsentPolicy,
    Person,
    Provision,
    ResourceFacts,
)
from tests.unit.consent.test_engine import GP, NOW, gp, requester

ICB = "QMJ"
population_health = requester(ICB, "analytics", "POPHLTH")


def record(*labels: tuple[str, str], author: str = GP) -> ResourceFacts:
    return ResourceFacts(
        res_type="Condition",
        res_id="c1",
        labels=frozenset(labels),
        author_ods=author,
        whose=PERSON,
    )


def rule(who: object, whom: Person, what: ResourceFacts) -> tuple[bool, str]:
    decision = decide(who, whom, what, NOW)  # type: ignore[arg-type]
    return decision.permit, decision.rule


ada = Person("p1", frozenset({GP}))


def test_everyone_not_opted_out_is_seen_without_a_relationship() -> None:
    assert rule(population_health, ada, record()) == (True, "secondary-use")
    assert rule(population_health, Person("p2"), record()) == (True, "secondary-use")


@pytest.mark.parametrize("kind", ["gp-practice", "hospital", "council", "auditor"])
def test_only_analytics_may_use_it(kind: str) -> None:
    assert rule(requester(GP, kind, "POPHLTH"), ada, record()) == (False, "secondary-use-kind")


@pytest.mark.parametrize(
    "label", [(ACT_CODE, "PSY"), (ACT_CODE, "ETH"), (ACT_CODE, "SEX"), (ACT_CODE, "SDV")]
)
def test_restricted_data_never_even_the_authors_own(label: tuple[str, str]) -> None:
    assert rule(population_health, ada, record(label)) == (False, "restricted-never-secondary")
    # Its own: an analytics team's record is not its to use again for this.
    own = record(label, author=ICB)
    assert rule(population_health, ada, own) == (False, "restricted-never-secondary")
    # The direct care author still sees it.
    assert rule(gp, ada, record(label)) == (True, "author")


def test_r_confidential_data_never() -> None:
    confidential = record((CONFIDENTIALITY, "R"), author=ICB)
    assert rule(population_health, ada, confidential) == (False, "restricted-never-secondary")


@pytest.mark.parametrize("why", [TYPE_1, NATIONAL])
def test_an_opted_out_person_is_left_out_and_direct_care_is_unchanged(why: str) -> None:
    opted = Person("p1", frozenset({GP}), opted_out=why)
    assert rule(population_health, opted, record()) == (False, why)
    assert rule(population_health, opted, record(author=ICB)) == (False, why)
    assert rule(gp, opted, record(author="X1")) == (True, "implied-consent")


def _deny(*purposes: str) -> Person:
    provision = Provision(type="deny", path="provision", purposes=frozenset(purposes))
    consent = ConsentPolicy("c1", "active", (None, None), provision)
    return Person("p1", frozenset({GP}), consents=(consent,))


def test_a_consent_denying_the_purpose_applies_and_one_for_another_does_not() -> None:
    assert rule(population_health, _deny("POPHLTH"), record()) == (False, "consent")
    assert rule(population_health, _deny("HRESCH"), record()) == (True, "secondary-use")
    # A dissent naming no purpose denies secondary use too.
    assert rule(population_health, _deny(), record()) == (False, "consent")


def _coded(code: tuple[str | None, str], when: str | None) -> ResourceFacts:
    return ResourceFacts(
        res_type="Observation", res_id=code[1], codes=frozenset({code}), clinical_low=when
    )


def test_the_later_of_an_opt_out_and_its_withdrawal_decides() -> None:
    opted = _coded(TYPE_1_OPT_OUT, "2025-01-01T00:00:00.000000Z")
    before = _coded(TYPE_1_WITHDRAWN, "2024-01-01T00:00:00.000000Z")
    after = _coded(TYPE_1_WITHDRAWN, "2025-02-01T00:00:00.000000Z")
    same = _coded(TYPE_1_WITHDRAWN, "2025-01-01T00:00:00.000000Z")
    assert not type_1_opt_out([])
    assert not type_1_opt_out([after])
    assert type_1_opt_out([opted])
    assert type_1_opt_out([opted, before])
    assert type_1_opt_out([opted, same])  # not shown to follow it
    assert not type_1_opt_out([after, opted])
    # Where dates cannot tell, the opt-out stands.
    assert type_1_opt_out([_coded(TYPE_1_OPT_OUT, None), after])
    assert type_1_opt_out([opted, _coded(TYPE_1_WITHDRAWN, None)])
    # The code in another system is not the SNOMED CT concept.
    assert not type_1_opt_out([_coded(("urn:local", TYPE_1_OPT_OUT[1]), "2025-01-01")])
