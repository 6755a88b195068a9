"""Which plan a consent-filtered search takes (``Scope.broad``), on each
store: a requester with many people in its care tests candidates one by one,
one with few reads what it sees. Judged from how many people its claims of
care name, not how many claims there are, so an organisation with a long
history with a few people still reads only theirs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from consent.model import Requester
from gateway.access.scope import BROAD_FROM, Scope, forget_breadth
from gateway.store import Store
from tests.support.indexed import put_indexed

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
COUNCIL = Requester(org_ods="E09000007", kind="council", purpose="TREAT")


def _put(store: Store, resources: list[dict[str, Any]]) -> None:
    forget_breadth(store)  # a store shared between tests holds a new world
    put_indexed(store, resources)


def _episode(number: int, person: int, status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "EpisodeOfCare",
        "id": f"episode-{number}",
        "status": status,
        "patient": {"reference": f"Patient/p{person}"},
        "managingOrganization": {"identifier": {"system": ODS, "value": "E09000007"}},
    }


def _people(count: int) -> list[dict[str, Any]]:
    return [{"resourceType": "Patient", "id": f"p{n}"} for n in range(count)]


def test_a_requester_caring_for_many_people_is_broad(store: Store) -> None:
    _put(store, [*_people(BROAD_FROM), *(_episode(n, n) for n in range(BROAD_FROM))])
    assert Scope(COUNCIL, NOW).broad(store)


def test_one_person_short_is_not(store: Store) -> None:
    people = BROAD_FROM - 1
    _put(store, [*_people(people), *(_episode(n, n) for n in range(people))])
    assert not Scope(COUNCIL, NOW).broad(store)


def test_many_claims_on_a_few_people_are_not_many_people(store: Store) -> None:
    claims = 3 * BROAD_FROM
    _put(store, [*_people(5), *(_episode(n, n % 5) for n in range(claims))])
    assert not Scope(COUNCIL, NOW).broad(store)


def test_claims_that_lapsed_do_not_count(store: Store) -> None:
    count = 2 * BROAD_FROM
    _put(store, [*_people(count), *(_episode(n, n, "finished") for n in range(count))])
    assert not Scope(COUNCIL, NOW).broad(store)


def test_breadth_is_judged_once_a_minute_not_per_search(store: Store) -> None:
    """It picks a plan, never what is shown: judged again only after a while."""
    _put(store, [*_people(BROAD_FROM), *(_episode(n, n) for n in range(BROAD_FROM))])
    scope = Scope(COUNCIL, NOW)
    assert scope.broad(store)
    with store.unit_of_work() as uow:
        for n in range(BROAD_FROM):
            uow.execute(
                "DELETE FROM search_token WHERE res_type = ? AND res_id = ?",
                ("EpisodeOfCare", f"episode-{n}"),
            )
    assert Scope(COUNCIL, NOW).broad(store)  # as judged a moment ago
    forget_breadth(store)
    assert not Scope(COUNCIL, NOW).broad(store)


def test_emergency_care_and_audit_see_everyone(store: Store) -> None:
    crew = Requester(org_ods="RRU", kind="ambulance", purpose="ETREAT")
    auditor = Requester(org_ods="AUD", kind="auditor", purpose="HCOMPL")
    assert Scope(crew, NOW).broad(store)
    assert Scope(auditor, NOW).broad(store)
    assert not Scope(Requester(org_ods="AUD", kind="auditor", purpose="TREAT"), NOW).broad(store)
