"""What the access layer reads of a person for the consent rules, on each
store: the care relationships and Consents, in as few statements as the
facts allow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent.model import NATIONAL, TYPE_1
from gateway import fhirjson
from gateway.access import optouts
from gateway.access.index import entries
from gateway.access.people import load_people, load_person
from gateway.store import Store, StoredVersion

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _write(store: Store, res_type: str, res_id: str, resource: dict[str, Any] | None) -> None:
    """A first version of ``resource``, or (``None``) a second that deletes it."""
    with store.unit_of_work() as uow:
        uow.append(
            StoredVersion(
                res_type=res_type,
                res_id=res_id,
                version=1 if resource else 2,
                last_updated="2026-11-01T00:00:00.000000Z",
                method="POST" if resource else "DELETE",
                content=fhirjson.dumps(resource) if resource else None,
            ),
            entries(resource) if resource else (),
        )


def _put(store: Store, resource: dict[str, Any]) -> None:
    _write(store, resource["resourceType"], resource["id"], resource)


def _organisation(res_id: str, ods: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": res_id,
        "identifier": [{"system": ODS, "value": ods}],
    }


def _by_reference(res_id: str) -> dict[str, Any]:
    return {"reference": f"Organization/{res_id}"}


@pytest.fixture
def person(store: Store) -> Store:
    """A person whose carers are named by reference to Organizations (one
    twice, one deleted, one never there) and by ODS code."""
    for res_id, ods in (("gp", "f1"), ("home", "h1"), ("ward", "w1"), ("gone", "g1")):
        _put(store, _organisation(res_id, ods))
    _write(store, "Organization", "gone", None)
    recent = (NOW - timedelta(days=3)).isoformat()
    long_ago = (NOW - timedelta(days=90)).isoformat()
    practice_code = {"identifier": {"system": ODS, "value": "x1"}}
    _put(
        store,
        {
            "resourceType": "Patient",
            "id": "p1",
            "generalPractitioner": [_by_reference("gp"), practice_code],
        },
    )

    def episode(status: str, manager: str) -> dict[str, Any]:
        return {
            "resourceType": "EpisodeOfCare",
            "status": status,
            "managingOrganization": _by_reference(manager),
        }

    def encounter(status: str, provider: str, ended: str | None = None) -> dict[str, Any]:
        found = {
            "resourceType": "Encounter",
            "status": status,
            "serviceProvider": _by_reference(provider),
        }
        return found | ({"period": {"end": ended}} if ended else {})

    linked = [
        episode("active", "home"),
        episode("finished", "ward"),
        episode("active", "gone"),
        episode("active", "none"),
        encounter("finished", "ward", recent),
        encounter("in-progress", "ward"),
        encounter("finished", "gp", long_ago),
    ]
    for number, resource in enumerate(linked):
        person = "patient" if resource["resourceType"] == "EpisodeOfCare" else "subject"
        resource.update({"id": f"r{number}", person: {"reference": "Patient/p1"}})
        _put(store, resource)
    return store


def test_carers_named_by_reference_are_read_at_once(
    person: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    for name in ("read", "read_many", "select"):
        method = getattr(person, name)

        def counted(*args: Any, _name: str = name, _method: Any = method, **options: Any) -> Any:
            calls.append(_name)
            return _method(*args, **options)

        monkeypatch.setattr(person, name, counted)
    found = load_person(person, "p1", NOW)
    assert found is not None
    # The practice (by reference and by code), the home's active episode,
    # the ward's recent encounters; not a finished episode's manager, a
    # deleted or missing Organization, nor an encounter's of long ago.
    assert found.relationships == {"F1", "X1", "H1", "W1"}
    assert "read" not in calls
    assert calls.count("read_many") == 1, calls


def test_people_read_together_read_only_what_bears_on_a_decision_now(
    person: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's people are read without the records whose claim of care has
    lapsed or that claim none (a finished episode, an Encounter of long
    ago): the access index says so. What is found is what reading every
    record finds."""
    read: list[str] = []
    select = person.select

    def recorded(*args: Any, **options: Any) -> Any:
        rows = select(*args, **options)
        read.extend(str(row[1]) for row in rows if row[0] in ("EpisodeOfCare", "Encounter"))
        return rows

    monkeypatch.setattr(person, "select", recorded)
    together = load_people(person, ["p1"], NOW)
    assert sorted(read) == ["r0", "r2", "r3", "r4", "r5"]
    monkeypatch.setattr(person, "select", select)
    assert together == {"p1": load_person(person, "p1", NOW)}


def test_a_person_not_on_file_has_no_facts(person: Store) -> None:
    assert load_person(person, "nobody", NOW) is None
    _write(person, "Patient", "p1", None)
    assert load_person(person, "p1", NOW) is None


def test_opt_outs_are_read_with_the_rest_and_only_the_coded_records(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A type 1 opt-out is read from the person's Observations and
    Conditions coded so, in the statement that reads their other records
    (never their every Observation); the national list by NHS number, once
    for a page of people; and only for a decision on secondary use."""
    snomed = "http://snomed.info/sct"
    for patient_id, number in (("p1", "9990000018"), ("p2", "9434765919")):
        _put(
            store,
            {
                "resourceType": "Patient",
                "id": patient_id,
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": number}],
            },
        )

    def observation(res_id: str, code: str, when: str) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "id": res_id,
            "status": "final",
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": snomed, "code": code}]},
            "effectiveDateTime": when,
        }

    _put(store, observation("opted", "827241000000103", "2025-01-01"))
    _put(store, observation("pulse", "364075005", "2025-02-01"))
    optouts.replace(store, ["9434765919"])
    read: list[str] = []
    select = store.select

    def recorded(*args: Any, **options: Any) -> Any:
        rows = select(*args, **options)
        read.extend(str(row[1]) for row in rows if row and row[0] == "Observation")
        return rows

    monkeypatch.setattr(store, "select", recorded)
    together = load_people(store, ["p1", "p2"], NOW, secondary_use=True)
    assert read == ["opted"]
    # Direct care reads neither the coded records nor the national list.
    read.clear()
    direct = load_people(store, ["p1", "p2"], NOW)
    assert read == []
    assert [direct[p].opted_out for p in ("p1", "p2")] == [None, None]  # type: ignore[union-attr]
    monkeypatch.setattr(store, "select", select)
    alone = {p: load_person(store, p, NOW, secondary_use=True) for p in ("p1", "p2")}
    assert together == alone
    assert [together[p].opted_out for p in ("p1", "p2")] == [TYPE_1, NATIONAL]  # type: ignore[union-attr]
    _put(store, observation("withdrawn", "827261000000102", "2025-03-01"))
    optouts.replace(store, [])
    assert load_person(store, "p1", NOW, secondary_use=True).opted_out is None  # type: ignore[union-attr]
    assert load_people(store, ["p1", "p2"], NOW, secondary_use=True)["p2"].opted_out is None  # type: ignore[union-attr]
