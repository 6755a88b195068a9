"""A write and its audit entry commit together or not at all (PRODUCT.md
section 5): the entry of a create, update, delete or transaction is staged
in the write's own transaction (``gateway.audit.staging``) and moved into
the log before the answer leaves, so no write is ever stored without it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from gateway import repository
from gateway.store import Store
from tests.http.test_audit import entries
from tests.http.test_consent import World


def _count(store: Store, res_type: str) -> int:
    rows = store.select("SELECT COUNT(*) FROM resource_current WHERE res_type = ?", [res_type])
    return int(str(rows[0][0]))


def test_a_create_and_its_entry_are_one_transaction(world: World) -> None:
    answer = world.api.post(
        "/fhir/Condition",
        json={"resourceType": "Condition", "subject": world.subject, "code": {"text": "Gout"}},
        headers=world.headers("home"),
    )
    assert answer.status_code == 201
    created = answer.json()
    ours = [e for e in entries(world.store) if e["request_id"] == answer.headers["x-request-id"]]
    (entry,) = ours  # one entry: written with the write, none after it
    assert entry["event"]["outcomeDesc"] == "committed"
    assert entry["subtype"] == "create" and entry["patient_id"] == world.patient
    named = [e.get("what", {}).get("reference") for e in entry["event"]["entity"]]
    assert f"Condition/{created['id']}/_history/1" in named


class _Broken:
    """The audit tables as a full disk leaves them: nothing can be staged."""

    @staticmethod
    def stage(uow: Any, records: Any) -> None:
        raise OSError("database or disk is full")


@pytest.mark.parametrize("kind", ["create", "update", "delete", "transaction"])
def test_a_write_whose_entry_cannot_be_written_is_not_stored(
    world: World, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    before = {t: _count(world.store, t) for t in ("Condition", "Provenance")}
    asthma = world.get("home", f"/fhir/Condition/{world.asthma}").json()
    monkeypatch.setattr(repository, "staging", _Broken)
    home = world.headers("home")
    new = {"resourceType": "Condition", "subject": world.subject, "code": {"text": "Gout"}}
    if kind == "create":
        answer = world.api.post("/fhir/Condition", json=new, headers=home)
    elif kind == "update":
        changed = {**asthma, "onsetDateTime": "2020-01-01"}
        answer = world.api.put(f"/fhir/Condition/{world.asthma}", json=changed, headers=home)
    elif kind == "delete":
        answer = world.api.delete(f"/fhir/Condition/{world.asthma}", headers=home)
    else:
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": new, "request": {"method": "POST", "url": "Condition"}}],
        }
        answer = world.api.post("/fhir", json=bundle, headers=home)
    assert answer.status_code == 500
    assert "x-request-id" in answer.headers
    # Nothing was stored: not the write, not its Provenance.
    assert {t: _count(world.store, t) for t in before} == before
    kept = world.get("home", f"/fhir/Condition/{world.asthma}").json()
    assert kept["meta"]["versionId"] == asthma["meta"]["versionId"]
    # The failure itself is on the log, by the HTTP layer's own writer.
    (failure,) = [
        e for e in entries(world.store) if e["request_id"] == answer.headers["x-request-id"]
    ]
    assert failure["outcome"] == "8"


def test_a_database_turned_read_only_mid_write_leaves_no_write_unaudited(
    world: World, request: pytest.FixtureRequest
) -> None:
    """PostgreSQL turned read-only for a moment (as a failover or a full
    disk leaves it) while writes arrive: each write is refused whole, none
    is stored without its entry, and once writable again they succeed."""
    if "postgres" not in type(world.store).__name__.lower():
        pytest.skip("turning the whole server read-only is PostgreSQL's")
    import psycopg

    cluster = request.getfixturevalue("pg_cluster")

    def server(sql: str) -> None:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute(sql)
            conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)  # every backend takes the reloaded setting

    new = {"resourceType": "Condition", "subject": world.subject, "code": {"text": "Gout"}}
    home = world.headers("home")
    before = _count(world.store, "Condition")
    server("ALTER SYSTEM SET default_transaction_read_only = on")
    try:
        statuses = [
            world.api.post("/fhir/Condition", json=new, headers=home).status_code for _ in range(3)
        ]
    finally:
        server("ALTER SYSTEM RESET default_transaction_read_only")
    assert all(status >= 500 for status in statuses), statuses
    assert _count(world.store, "Condition") == before
    assert world.api.post("/fhir/Condition", json=new, headers=home).status_code == 201
    stored = {
        f"Condition/{res_id}/_history/{version}"
        for res_id, version in world.store.select(
            "SELECT res_id, version FROM resource_version WHERE res_type = 'Condition'", []
        )
    }
    named = {
        e.get("what", {}).get("reference")
        for entry in entries(world.store)
        for e in entry["event"]["entity"]
    }
    assert stored <= named
